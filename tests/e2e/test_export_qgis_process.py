"""The export algorithm through scripts/qgis_process, as a user runs it."""
import json

from conftest import run_qgis_process


def test_qgis_process_lists_the_algorithm():
    out = run_qgis_process("list").stdout
    assert "deeppixel:exporttrainingdata" in out


def test_qgis_process_help_shows_parameters():
    out = run_qgis_process("help", "deeppixel:exporttrainingdata").stdout
    for name in ("INPUT_RASTER", "INPUT_SAMPLES", "CLASS_FIELD", "IMAGE_FORMAT", "TILE_SIZE_X", "STRIDE_Y",
                 "ROTATION_ANGLE", "OUTPUT_NOFEATURE_TILES", "BUFFER_RADIUS", "MASK_POLYGONS",
                 "MIN_LABELLED_FRACTION", "OUTPUT_FOLDER"):
        assert name in out


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
