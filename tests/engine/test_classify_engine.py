"""Classify Pixels engine on real GeoTIFFs with a model trained for real on the synthetic scene."""
import os

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.core.errors import Cancelled, DeepPixelError
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.core.tiles import AUTO_PADDING


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def crop(src, dst, window, **changes):
    """Write a part of ``src`` to ``dst`` (a real GeoTIFF), optionally changing profile/data."""
    with rasterio.open(src) as ds:
        data = ds.read(window=window)
        profile = ds.profile.copy()
        profile.update(transform=ds.window_transform(window))
    edit = changes.pop("edit", None)
    if edit is not None:
        data = edit(data)
    profile.update(count=data.shape[0], width=data.shape[2], height=data.shape[1], **changes)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return str(dst)


@pytest.fixture(scope="module")
def reference(scene, trained_scene_model, tmp_path_factory):
    """The scene classified with the defaults, and the classification result."""
    out = str(tmp_path_factory.mktemp("classified") / "classified.tif")
    result = classify(scene.image, trained_scene_model, out, ClassifyOptions(device="cpu"))
    return out, result


def test_classification_is_right_and_styled(scene, reference):
    out, result = reference
    classes = read(out)
    truth = read(scene.truth)
    assert classes.shape == truth.shape
    assert (classes == truth).mean() > 0.8          # the model learned the scene (truth made independently)
    assert set(np.unique(classes)) <= {1, 2, 3, 4, 5}
    with rasterio.open(out) as ds:
        assert ds.nodata == 0 and ds.dtypes[0] == "uint8"
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        assert ds.overviews(1)                      # overviews for display
        assert ds.colormap(1)[1][:3] == (30, 90, 200)  # water's colour from the class schema
        tags = ds.tags()
        assert len(tags["DEEP_PIXEL_MODEL_SHA256"]) == 64 and "tile_size" in tags["DEEP_PIXEL_PARAMETERS"]
    from osgeo import gdal  # GDAL's own reader: category names from the .aux.xml
    gds = gdal.Open(out)                            # kept while its band is used (else GDAL crashes)
    gds.GetGeoTransform()                           # GDAL 3.6 GTiff loads the .aux.xml lazily, on this
    names = gds.GetRasterBand(1).GetCategoryNames()
    del gds
    assert names[:3] == ["", "water", "forest"] and len(names) == 6
    qml = open(out[:-4] + ".qml").read()           # QGIS's default style for the file (read by QGIS in tests/qgis)
    assert 'label="1 water"' in qml and 'type="paletted"' in qml
    assert result.device == "cpu" and result.tile.tile >= 256
    assert not [f for f in os.listdir(os.path.dirname(out)) if "partial" in f]


def test_offset_tile_grids_agree(trained_scene_model, tmp_path):
    """Blending makes tile placement irrelevant: grids offset from one another give the same classes."""
    from deep_pixel.io.synthetic import make_scene
    big = make_scene(str(tmp_path / "big"), width=768, height=768, seed=5)   # several tiles each way
    outs = []
    for i, offset in enumerate(((0, 0), (96, 32), (192, 64))):
        out = str(tmp_path / f"offset{i}.tif")
        result = classify(big.image, trained_scene_model, out,
                          ClassifyOptions(device="cpu", tile_size=256, grid_offset=offset))
        assert result.tiles >= 9 and result.tile.padding == AUTO_PADDING    # the network's border
        outs.append(read(out))
    for other in outs[1:]:
        agree = (other == outs[0]).mean()
        assert agree >= 0.995, agree
    assert (outs[0] == read(big.truth)).mean() > 0.8


def test_odd_sizes_and_a_raster_smaller_than_one_tile(scene, trained_scene_model, reference, tmp_path):
    base = read(reference[0])
    odd = crop(scene.image, tmp_path / "odd.tif", Window(17, 5, 301, 213))
    res = classify(odd, trained_scene_model, str(tmp_path / "odd_c.tif"), ClassifyOptions(device="cpu", tile_size=128))
    out = read(res.output_raster)
    assert out.shape == (213, 301) and (out > 0).all()
    assert (out == base[5:218, 17:318]).mean() > 0.95
    small = crop(scene.image, tmp_path / "small.tif", Window(100, 100, 40, 27))
    res = classify(small, trained_scene_model, str(tmp_path / "small_c.tif"), ClassifyOptions(device="cpu"))
    out = read(res.output_raster)
    assert out.shape == (27, 40) and (out > 0).all() and res.tiles == 1


def test_nodata_stays_nodata_and_empty_tiles_are_skipped(scene, trained_scene_model, tmp_path):
    def blank(data):
        data = data.copy()
        data[:, :, :200] = 0                       # the scene's nodata value: left part empty
        data[:, :12, :] = 0                        # and a border
        return data
    src = crop(scene.image, tmp_path / "holes.tif", Window(0, 0, 384, 384), edit=blank)
    res = classify(src, trained_scene_model, str(tmp_path / "holes_c.tif"),
                   ClassifyOptions(device="cpu", tile_size=64, padding=16))
    out = read(res.output_raster)
    assert (out[:, :200] == 0).all() and (out[:12] == 0).all()
    assert (out[12:, 200:] > 0).all()
    assert res.skipped_tiles > 0


def test_geographic_raster(scene, trained_scene_model, tmp_path):
    """A raster in EPSG:4326: pixel sizes compared in metres, CRS difference reported, output geographic."""
    dst_crs = CRS.from_epsg(4326)
    with rasterio.open(scene.image) as ds:
        transform, w, h = calculate_default_transform(ds.crs, dst_crs, ds.width, ds.height, *ds.bounds)
        profile = ds.profile.copy()
        profile.update(crs=dst_crs, transform=transform, width=w, height=h)
        path = str(tmp_path / "geographic.tif")
        with rasterio.open(path, "w", **profile) as out:
            for b in range(1, ds.count + 1):
                reproject(rasterio.band(ds, b), rasterio.band(out, b), resampling=Resampling.nearest)
    progress = RecordingProgress()
    res = classify(path, trained_scene_model, str(tmp_path / "geo_c.tif"), ClassifyOptions(device="cpu"), progress)
    # the device and why come first, then the tiles, then an estimate of the time left
    steps = [next(i for i, m in enumerate(progress.messages) if key in m)
             for key in ("Device: CPU as requested", " tiles of ", "estimated time left")]
    assert steps == sorted(steps)
    with rasterio.open(res.output_raster) as ds:
        assert ds.crs.is_geographic
        assert set(np.unique(ds.read(1))) - {0} <= {1, 2, 3, 4, 5}
    assert any("CRS differs" in m for m in progress.messages)


def test_rasters_that_do_not_fit_the_model(scene, trained_scene_model, tmp_path):
    three = crop(scene.image, tmp_path / "three.tif", Window(0, 0, 64, 64), edit=lambda d: d[:3])
    with pytest.raises(DeepPixelError, match=r"model takes 4 band\(s\) but .* has 3"):
        classify(three, trained_scene_model, str(tmp_path / "x.tif"), ClassifyOptions(device="cpu"))
    with rasterio.open(scene.image) as ds:
        coarse_t = ds.transform * ds.transform.scale(5, 5)
    coarse = crop(scene.image, tmp_path / "coarse.tif", Window(0, 0, 64, 64), transform=coarse_t)
    with pytest.raises(DeepPixelError, match=r"5\.0x apart.*gdalwarp -tr 10"):
        classify(coarse, trained_scene_model, str(tmp_path / "x.tif"), ClassifyOptions(device="cpu"))
    with pytest.raises(DeepPixelError, match="multiple of 16"):
        classify(scene.image, trained_scene_model, str(tmp_path / "x.tif"), ClassifyOptions(tile_size=100))
    with pytest.raises(DeepPixelError, match="would overwrite the input INPUT_RASTER"):
        classify(scene.image, trained_scene_model, scene.image, ClassifyOptions())
    assert not os.path.exists(tmp_path / "x.tif")


@pytest.mark.parametrize("cancel_after", [1, 3, 8])
def test_cancel_removes_partial_output(scene, trained_scene_model, tmp_path, cancel_after):
    progress = RecordingProgress(cancel_after=cancel_after)
    with pytest.raises(Cancelled):
        classify(scene.image, trained_scene_model, str(tmp_path / "c.tif"),
                 ClassifyOptions(device="cpu", tile_size=64, output_confidence=str(tmp_path / "conf.tif")), progress)
    assert os.listdir(tmp_path) == []


def test_memory_depends_on_width_not_height(scene, trained_scene_model, tmp_path):
    """Blending holds one tile and a seam band of rows: a raster 2x taller needs no more."""
    def stack(times):
        return crop(scene.image, tmp_path / f"tall{times}.tif", Window(0, 0, 384, 384),
                    edit=lambda d: np.concatenate([d, d[:, ::-1]] * times, axis=1))
    options = ClassifyOptions(device="cpu", tile_size=128, padding=32)
    short = classify(stack(1), trained_scene_model, str(tmp_path / "s.tif"), options)
    long = classify(stack(2), trained_scene_model, str(tmp_path / "t.tif"), options)
    assert read(long.output_raster).shape == (1536, 384)
    assert long.accumulator_bytes == short.accumulator_bytes


def test_folder_mask_confidence_and_tta(scene, trained_scene_model, reference, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    crop(scene.image, folder / "a.tif", Window(0, 0, 128, 128))
    crop(scene.image, folder / "b.tif", Window(128, 128, 96, 160))
    res = classify(str(folder), trained_scene_model, str(tmp_path / "out"),
                   ClassifyOptions(device="cpu", output_confidence=str(tmp_path / "c.tif")))
    assert sorted(os.path.basename(p) for p in res.outputs) == ["a_classified.tif", "b_classified.tif"]
    assert read(res.outputs[1]).shape == (160, 96)
    assert read(str(tmp_path / "out" / "b_confidence.tif")).shape == (160, 96)   # one per image
    assert not os.path.exists(tmp_path / "c.tif") and res.output_confidence == str(tmp_path / "out")

    conf = str(tmp_path / "conf.tif")
    res = classify(scene.image, trained_scene_model, str(tmp_path / "masked.tif"),
                   ClassifyOptions(device="cpu", mask_polygons=scene.samples, output_confidence=conf,
                                   test_time_augmentation=True))
    out = read(res.output_raster)
    from deep_pixel.export.samples import LabelBurner, Samples
    from deep_pixel.io.vector import read_vector
    vec = read_vector(scene.samples)
    with rasterio.open(scene.image) as ds:
        inside = LabelBurner(Samples(vec.geometries, [1] * len(vec.geometries), vec.crs_wkt), ds.crs.to_wkt()).burn(
            ds.transform, (ds.height, ds.width), ds.bounds) > 0
    assert (out[~inside] == 0).all() and (out[inside] > 0).mean() > 0.99
    c = read(conf)
    assert (c[out > 0] > 0.2).all() and (c[out > 0] <= 1.0001).all() and (c[out == 0] == -1).all()
    assert (out[inside] == read(reference[0])[inside]).mean() > 0.97   # TTA agrees with the plain run


def test_killed_classification_leaves_no_complete_looking_output(scene, trained_scene_model, tmp_path):
    """SIGKILL in the middle of a run: only a hidden .partial file may remain, never the target name."""
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "killed.tif"
    proc = subprocess.Popen([sys.executable, "-m", "deep_pixel", "--progress", "json", "classify",
                             "--input-raster", scene.image, "--model-definition", trained_scene_model,
                             "--output-raster", str(out), "--tile-size", "64", "--padding", "8", "--batch-size", "1",
                             "--device", "cpu"], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for line in proc.stdout:                       # wait until tiles are being classified
        if '"tile ' in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.2)
    names = os.listdir(tmp_path)
    assert "killed.tif" not in names and "killed.qml" not in names
    assert all(n.startswith(".killed.partial-") for n in names), names
