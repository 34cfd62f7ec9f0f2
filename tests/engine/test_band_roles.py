"""Which band is which when a raster does not say: GDAL's red/green/blue colour tags name an RGB photo's bands,
and the fourth band of an undescribed RGB-tagged 4-band raster is taken as near infrared (RGB + NIR), so NDVI
and NDWI are added as for a raster whose bands are described."""
import json
from dataclasses import replace

import numpy as np
import rasterio
from rasterio.enums import ColorInterp

from gis_files import scene_chips

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.core.progress import Progress
from deep_pixel.io.raster import ASSUMED_NIR, band_names, describe
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions

RGB = ["red", "green", "blue"]


def test_the_fourth_band_of_an_rgb_tagged_raster_is_taken_as_near_infrared():
    undescribed = (None,) * 4
    assert band_names(undescribed, RGB + ["undefined"]) == ("red", "green", "blue", ASSUMED_NIR)
    assert band_names(undescribed, ["blue", "green", "red", "gray"]) == ("blue", "green", "red", ASSUMED_NIR)
    # tagged alpha: near infrared only when it holds data (rasterio's and GDAL's default 4-band 8-bit GeoTIFF)
    assert band_names(undescribed, RGB + ["alpha"], alpha_holds_data=True)[3] == ASSUMED_NIR
    assert band_names(undescribed, RGB + ["alpha"]) == ("red", "green", "blue", "Band_4")
    # RGB + a 4th band + an alpha mask: the 4th is near infrared; with five data bands nothing is assumed
    assert band_names((None,) * 5, RGB + ["undefined", "alpha"])[3:] == (ASSUMED_NIR, "Band_5")
    assert band_names((None,) * 5, RGB + ["undefined", "undefined"])[3:] == ("Band_4", "Band_5")
    # descriptions rule; untagged rasters and RGB photos are left as they are
    assert band_names(("B4", None, None, None), RGB + ["undefined"]) == ("B4", "Band_2", "Band_3", "Band_4")
    assert band_names(("blue", "green", "red", "nir"), ["undefined"] * 4) == ("blue", "green", "red", "nir")
    assert band_names(("red", "green", "blue", "dsm"), RGB + ["undefined"]) == ("red", "green", "blue", "dsm")
    assert band_names(undescribed, ["gray"] * 4) == ("Band_1", "Band_2", "Band_3", "Band_4")
    assert band_names((None,) * 3, RGB) == ("red", "green", "blue")


def rgbn_eight_bit(scene, path):
    """The synthetic scene (blue, green, red, nir) as R, G, B, N 8-bit, written with rasterio's defaults: no band
    descriptions, GDAL tags the bands red, green, blue, alpha."""
    with rasterio.open(scene.image) as src:
        image = src.read([3, 2, 1, 4]).astype(np.float64)
        plain = {k: src.profile[k] for k in ("driver", "width", "height", "crs", "transform")}
    low, high = image.min(axis=(1, 2), keepdims=True), image.max(axis=(1, 2), keepdims=True)
    with rasterio.open(path, "w", count=4, dtype="uint8", **plain) as dst:
        dst.write((1 + (image - low) / (high - low) * 254).astype(np.uint8))
    return path


def test_an_rgbn_raster_written_with_defaults_trains_with_ndvi_and_classifies(scene, tmp_path):
    path = rgbn_eight_bit(scene, str(tmp_path / "rgbn.tif"))
    with rasterio.open(path) as ds:
        assert ds.colorinterp[3] == ColorInterp.alpha and not any(ds.descriptions)
        assert describe(ds).band_names == ("red", "green", "blue", ASSUMED_NIR)
    folder = scene_chips(replace(scene, image=path), tmp_path / "chips")
    logged = []
    progress = Progress()
    progress.log = logged.append
    emd = train_model([folder], str(tmp_path / "model"), TrainOptions(
        max_epochs=1, backbone="resnet18", learning_rate=2e-3, device="cpu",
        model_arguments={"chip_size": 64, "steps_per_epoch": 2, "lr_test_steps": 0}), progress).emd_path
    assert any("the fourth is taken as near infrared" in line for line in logged)
    with open(emd) as f:
        package = json.load(f)
    assert package["BandNames"] == ["red", "green", "blue", ASSUMED_NIR]
    assert {(i["Name"], tuple(i["Bands"])) for i in package["SpectralIndices"]} == {("NDVI", (4, 1)),
                                                                                     ("NDWI", (2, 4))}
    out = str(tmp_path / "classes.tif")
    classify(path, emd, out, ClassifyOptions(device="cpu"))
    with rasterio.open(out) as c:
        assert (c.read(1) != c.nodata).all()
