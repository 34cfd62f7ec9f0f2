"""A raster's GDAL mask (a GeoTIFF's internal per-dataset mask, an alpha band) hides pixels as nodata does:
Classify leaves them nodata, Export trains no label there and leaves them out of the band statistics."""
import glob
import json
import os

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from gis_files import masked_copy

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.io.bandstats import raster_stats
from deep_pixel.io.gdal_mask import gdal_masked, valid_in

HALF = 192          # rows above this are masked (the scene is 384 px high; its samples lie in its left half)


@pytest.fixture(scope="module")
def masked(scene, tmp_path_factory):
    return masked_copy(scene, str(tmp_path_factory.mktemp("masked") / "masked.tif"), HALF)


def test_classify_leaves_masked_pixels_nodata(masked, scene, trained_scene_model, tmp_path):
    classify(masked, trained_scene_model, str(tmp_path / "m.tif"), ClassifyOptions(device="cpu"))
    classify(scene.image, trained_scene_model, str(tmp_path / "o.tif"), ClassifyOptions(device="cpu"))
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(tmp_path / "o.tif") as o:
        got, plain, nodata = m.read(1), o.read(1), m.nodata
    assert (got[:HALF] == nodata).all()                         # hidden: nodata, as the input says
    shown = plain[HALF:] != nodata
    assert (got[HALF:][shown] != nodata).all()                  # shown: classified
    assert np.mean(got[HALF + 64:] == plain[HALF + 64:]) > 0.9


def test_export_trains_no_label_under_the_mask_and_leaves_it_out_of_the_statistics(masked, scene, tmp_path):
    from gis_files import scene_chips
    with rasterio.open(masked) as ds:
        assert gdal_masked(ds)
        valid = valid_in(ds, ds.read(), Window(0, 0, ds.width, ds.height))
        assert not valid[:HALF].any() and valid[HALF:].all()
        half = raster_stats(ds, [1, 2, 3, 4], ds.nodata)
        origin = ds.transform
    with rasterio.open(scene.image) as ds:
        whole = raster_stats(ds, [1, 2, 3, 4], ds.nodata)
    assert half["count"] < 0.55 * whole["count"]
    folder = scene_chips(masked_scene(scene, masked), tmp_path / "chips")
    labelled_rows = []
    for path in glob.glob(os.path.join(folder, "labels", "*.tif")):
        with rasterio.open(path) as lab:
            rows, cols = np.nonzero(lab.read(1))
            _, ys = rasterio.transform.xy(lab.transform, rows, cols)
            labelled_rows += [int((y - origin.f) / origin.e) for y in np.atleast_1d(ys)]
    assert labelled_rows and min(labelled_rows) >= HALF
    means = np.rint(json.load(open(os.path.join(folder, "deep_pixel_export.json")))["raster_band_stats"]["mean"])
    spanning = 0
    for path in glob.glob(os.path.join(folder, "images", "*.tif")):     # hidden pixels: the band means
        with rasterio.open(path) as chip:
            image = chip.read()
            rows = np.arange(chip.height) + int(round((chip.transform.f - origin.f) / origin.e))
        hidden, shown = image[:, rows < HALF], image[:, rows >= HALF]
        if hidden.size and shown.size:
            spanning += 1
            assert (hidden == means[:, None, None]).all()
            assert (shown != means[:, None, None]).any()
    assert spanning


def masked_scene(scene, path):
    from dataclasses import replace
    return replace(scene, image=path)


@pytest.mark.parametrize("data_bands", [3, 4])
def test_an_alpha_band_hides_transparent_pixels(scene, tmp_path, data_bands):
    """RGBA (GDAL's own alpha mask) and RGB + near-infrared + alpha (5 bands: alpha by its colour interpretation)."""
    with rasterio.open(scene.image) as src:
        profile, image = src.profile, src.read(list(range(1, data_bands + 1)))
    alpha = np.full((1,) + image.shape[1:], 255, np.uint16)
    alpha[0, :10] = 0
    profile.update(count=data_bands + 1, nodata=None)
    path = str(tmp_path / "rgba.tif")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.concatenate([image, alpha]))
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined][:data_bands] \
            + [ColorInterp.alpha]
    with rasterio.open(path) as ds:
        assert gdal_masked(ds)
        valid = valid_in(ds, ds.read(list(range(1, data_bands + 1))), Window(0, 0, ds.width, ds.height))
        outside = valid_in(ds, np.ones((data_bands, 20, 20), np.uint16), Window(-10, 370, 20, 20))
    assert not valid[:10].any() and valid[10:].all()
    assert not outside[:, :10].any() and not outside[14:].any() and outside[:14, 10:].all()


def test_a_band_tagged_alpha_that_holds_data_stays_data(scene, trained_scene_model, tmp_path):
    """GDAL and rasterio write a 4-band 8-bit GeoTIFF as RGBA unless told otherwise, so an RGB + near-infrared
    image made with their defaults has its infrared band tagged alpha: its zeros (dark water) are data."""
    with rasterio.open(scene.image) as src:
        profile, image = src.profile, src.read()
    image[3, :10] = 0
    profile.update(nodata=None)
    tagged, defaults = str(tmp_path / "rgbn.tif"), str(tmp_path / "rgbn8.tif")
    with rasterio.open(tagged, "w", **profile) as dst:
        dst.write(image)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    eight = (image.astype(np.float64) / image.max() * 254 + 1).astype(np.uint8)
    eight[3, :10] = 0
    plain = {k: profile[k] for k in ("driver", "width", "height", "count", "crs", "transform")}
    with rasterio.open(defaults, "w", dtype="uint8", **plain) as dst:
        dst.write(eight)
    for path in (tagged, defaults):
        with rasterio.open(path) as ds:
            assert ds.colorinterp[3] == ColorInterp.alpha
            assert not gdal_masked(ds)
            assert valid_in(ds, ds.read(), Window(0, 0, ds.width, ds.height)).all()
    classify(tagged, trained_scene_model, str(tmp_path / "c.tif"), ClassifyOptions(device="cpu"))
    with rasterio.open(tmp_path / "c.tif") as out:
        assert (out.read(1)[:10] != out.nodata).all()


def test_an_alpha_band_is_the_mask_not_an_exported_band(scene, tmp_path):
    """An RGBA orthophoto (as drone mosaics are) exports 3-band chips, PNG allowed; the transparent rows give no
    label. Classify then reads bands 1-3 of it, or of a copy without the alpha band."""
    import json
    from deep_pixel.core.progress import Progress
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.vector import read_vector
    with rasterio.open(scene.image) as src:
        image, plain = src.read([1, 2, 3]), {k: src.profile[k] for k in ("driver", "width", "height", "crs",
                                                                          "transform")}
    rgba = np.concatenate([(image.astype(np.float64) / image.max() * 255).astype(np.uint8),
                           np.full((1,) + image.shape[1:], 255, np.uint8)])
    rgba[3, :HALF] = 0
    path = str(tmp_path / "rgba.tif")
    with rasterio.open(path, "w", count=4, dtype="uint8", **plain) as dst:
        dst.write(rgba)
    logged = []
    progress = Progress()
    progress.log = logged.append
    vec = read_vector(scene.samples)
    folder = tmp_path / "chips"
    export_training_data(path, Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt),
                         str(folder), ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32,
                                                    image_format="PNG"), schema=scene.schema, progress=progress)
    assert any("Band 4 is the raster's alpha" in line for line in logged)
    emd = json.loads(next(folder.glob("*.emd")).read_text())
    assert emd["ExtractBands"] == [1, 2, 3]
    chips = sorted((folder / "images").glob("*.png"))
    with rasterio.open(chips[0]) as chip:
        assert chip.count == 3
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    model = train_model([str(folder)], str(tmp_path / "model"), TrainOptions(
        max_epochs=1, backbone="resnet18", learning_rate=2e-3, device="cpu",
        model_arguments={"chip_size": 64, "steps_per_epoch": 4, "lr_test_steps": 0})).emd_path
    rgb = str(tmp_path / "rgb.tif")
    with rasterio.open(rgb, "w", count=3, dtype="uint8", photometric="RGB", **plain) as dst:
        dst.write(rgba[:3])
    for source in (path, rgb):
        out = str(tmp_path / f"c_{os.path.basename(source)}")
        classify(source, model, out, ClassifyOptions(device="cpu"))
        with rasterio.open(out) as c:
            classes = c.read(1)
            assert (classes[:HALF] == c.nodata).all() == (source == path)
            assert (classes[HALF:] != c.nodata).all()


def test_a_raster_whose_mask_hides_every_sample_says_so(scene, tmp_path):
    from deep_pixel.core.errors import DeepPixelError
    from gis_files import scene_chips
    hidden = masked_copy(scene, str(tmp_path / "hidden.tif"), 384)
    with pytest.raises(DeepPixelError, match="holds only nodata .* or pixels its GDAL mask"):
        scene_chips(masked_scene(scene, hidden), tmp_path / "chips")
    assert not (tmp_path / "chips").exists()
