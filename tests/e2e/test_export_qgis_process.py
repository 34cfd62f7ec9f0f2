"""The export algorithm through scripts/qgis_process, as a user runs it."""
import json
import os

from conftest import run_qgis_process
from processing_help import assert_help_matches_declarations

from deep_pixel.export.run import ExportOptions


def test_qgis_process_lists_the_algorithm():
    out = run_qgis_process("list").stdout
    assert "deeppixel:exporttrainingdata" in out


def test_qgis_process_help_shows_parameters():
    """qgis_process's description (--json): every parameter with the engine's declared label and default."""
    assert_help_matches_declarations(
        "deeppixel:exporttrainingdata", ExportOptions,
        own=("INPUT_RASTER", "INPUT_SAMPLES", "CLASS_FIELD", "CLASS_SCHEMA", "MASK_POLYGONS", "OUTPUT_FOLDER"),
        outputs=("OUTPUT_FOLDER", "NUM_CHIPS"))


def test_qgis_process_export_on_real_data(landsat, tmp_path):
    out = tmp_path / "chips"
    proc = run_qgis_process("run", "deeppixel:exporttrainingdata", "--json", "--",
                            f"INPUT_RASTER={landsat['image']}", f"INPUT_SAMPLES={landsat['samples']}",
                            "CLASS_FIELD=class", "IMAGE_FORMAT=TIFF", "TILE_SIZE_X=64", "TILE_SIZE_Y=64",
                            "STRIDE_X=32", "STRIDE_Y=32", "ROTATION_ANGLE=90", f"OUTPUT_FOLDER={out}")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
    meta = json.load(open(out / "deep_pixel_export.json"))
    assert result["NUM_CHIPS"] == len(meta["chips"]) > 0
    assert {c["rotation"] for c in meta["chips"]} == {0, 90, 180, 270}
    assert meta["labelled_pixels_per_class"] == {"1": 109, "2": 383, "3": 145, "4": 65, "5": 16}


def test_qgis_process_reports_bad_input(landsat, tmp_path):
    proc = run_qgis_process("run", "deeppixel:exporttrainingdata", "--",
                            f"INPUT_RASTER={landsat['image']}", f"INPUT_SAMPLES={landsat['samples']}",
                            "TILE_SIZE_X=512", "TILE_SIZE_Y=512", f"OUTPUT_FOLDER={tmp_path / 'c'}", check=False)
    assert proc.returncode != 0
    assert "larger than the raster" in proc.stdout + proc.stderr


def test_an_rgba_orthophoto_exports_three_band_png_chips(tmp_path):
    """The real 0.5 m aerial tile as an RGBA orthophoto (its top 40 rows transparent, as a mosaic's collar): the
    alpha band is the mask, not a fourth image band, so PNG chips are allowed and hold 3 bands."""
    import glob

    import numpy as np
    import pytest
    import rasterio

    from bench.real_models import SCENES
    image, polygons, _ = SCENES["aerial"]
    if not os.path.exists(image):
        pytest.skip(f"real data {image} is absent (../shared/data beside the checkout)")
    with rasterio.open(image) as src:
        rgb, plain = src.read(), {k: src.profile[k] for k in ("driver", "width", "height", "crs", "transform")}
    alpha = np.full((1,) + rgb.shape[1:], 255, np.uint8)
    alpha[0, :40] = 0
    rgba = str(tmp_path / "rgba.tif")
    with rasterio.open(rgba, "w", count=4, dtype="uint8", **plain) as dst:     # GDAL's default: RGBA
        dst.write(np.concatenate([rgb, alpha]))
    out = tmp_path / "chips"
    proc = run_qgis_process("run", "deeppixel:exporttrainingdata", "--", f"INPUT_RASTER={rgba}",
                            f"INPUT_SAMPLES={polygons}", "CLASS_FIELD=Classvalue", "IMAGE_FORMAT=PNG",
                            "TILE_SIZE_X=128", "TILE_SIZE_Y=128", "STRIDE_X=64", "STRIDE_Y=64",
                            f"OUTPUT_FOLDER={out}")
    assert "alpha (transparency) band" in proc.stdout + proc.stderr
    assert json.load(open(out / "esri_model_definition.emd"))["ExtractBands"] == [1, 2, 3]
    meta = json.load(open(out / "deep_pixel_export.json"))
    chips = glob.glob(str(out / "images" / "*.png"))
    assert len(chips) == len(meta["chips"]) > 0
    with rasterio.open(chips[0]) as chip:
        assert chip.count == 3
    for c in meta["chips"]:                     # no label in the transparent rows
        row = c["row"]
        if row < 40:
            with rasterio.open(out / c["label"]) as lab:
                assert not lab.read(1)[:40 - row].any()
