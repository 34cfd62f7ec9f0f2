"""Classify Pixels through scripts/qgis_process with a model trained by deeppixel:trainmodel, in QGIS's
Python and through the external engine (DEEP_PIXEL_PYTHON): the same classes, a styled GeoTIFF."""
import json
import os

import numpy as np
import pytest
import rasterio
from conftest import ROOT, run_qgis_process
from processing_help import assert_help_matches_declarations
from rasterio.windows import Window

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.model.package import load_package

VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


def _results(proc):
    return json.loads(proc.stdout[proc.stdout.index("{"):])["results"]


@pytest.fixture(scope="module")
def qp_model(scene, tmp_path_factory):
    """Chips exported and a small model trained, both through qgis_process as a user runs them."""
    base = tmp_path_factory.mktemp("qp_classify")
    run_qgis_process("run", "deeppixel:exporttrainingdata", "--json", "--", f"INPUT_RASTER={scene.image}",
                     f"INPUT_SAMPLES={scene.samples}", "CLASS_FIELD=Classvalue", "TILE_SIZE_X=64", "TILE_SIZE_Y=64",
                     "STRIDE_X=32", "STRIDE_Y=32", f"OUTPUT_FOLDER={base / 'chips'}")
    res = _results(run_qgis_process(
        "run", "deeppixel:trainmodel", "--json", "--", f"INPUT_TRAINING_DATA={base / 'chips'}", "MAX_EPOCHS=6",
        "MODEL_TYPE=UNET", "BACKBONE=resnet18", "BATCH_SIZE=8", "LEARNING_RATE=0.002", "VALIDATION_PERCENT=0",
        "MODEL_ARGUMENTS=chip_size=64,steps_per_epoch=8,class_balancing=false", "SEED=3", "DEVICE=cpu",
        f"OUTPUT_MODEL={base / 'model'}"))
    return res["MODEL_DEFINITION"]


def test_help_lists_every_parameter():
    """qgis_process's description (--json): every parameter with the engine's declared label and default."""
    described = assert_help_matches_declarations(
        "deeppixel:classifypixels", ClassifyOptions, own=("INPUT_RASTER", "MODEL_DEFINITION", "OUTPUT_RASTER"),
        outputs=("OUTPUT_RASTER", "OUTPUT_CONFIDENCE", "OUTPUT_UNCERTAINTY", "OUTPUT_RASTERS", "TILES"))
    assert described["parameters"]["TILE_SIZE"]["default_value"] == 0


def test_in_process_and_external_engine_classify_alike(scene, qp_model, tmp_path):
    args = ["run", "deeppixel:classifypixels", "--json", "--", f"INPUT_RASTER={scene.image}",
            f"MODEL_DEFINITION={qp_model}", "TILE_SIZE=128", "PADDING=32", "BATCH_SIZE=2", "DEVICE=cpu"]
    inproc = run_qgis_process(*args, f"OUTPUT_RASTER={tmp_path / 'in.tif'}",
                              f"OUTPUT_CONFIDENCE={tmp_path / 'in_conf.tif'}")
    external = run_qgis_process(*args, f"OUTPUT_RASTER={tmp_path / 'ext.tif'}",
                                env={"DEEP_PIXEL_PYTHON": VENV_PYTHON})
    res = _results(inproc)
    assert res["OUTPUT_RASTER"] == str(tmp_path / "in.tif") and res["TILES"] >= 9
    assert res["OUTPUT_CONFIDENCE"] == str(tmp_path / "in_conf.tif")
    assert "External engine" in external.stdout + external.stderr
    assert "Device: CPU as requested" in inproc.stdout + inproc.stderr
    pkg = load_package(qp_model)
    with rasterio.open(tmp_path / "in.tif") as a, rasterio.open(tmp_path / "ext.tif") as b:
        classes = a.read(1)
        assert np.array_equal(classes, b.read(1))
        assert set(np.unique(classes)) <= set(pkg.class_values) and classes.all()
        assert a.tags()["DEEP_PIXEL_MODEL_SHA256"] == pkg.weights_hash
        assert a.colormap(1)[1][:3] == tuple(pkg.schema.classes[0].color[:3])
        assert a.nodata == 0 and a.overviews(1)
    with rasterio.open(scene.truth) as t:
        agree = (classes == t.read(1)).mean()
    print(f"agreement with the scene's truth: {agree:.3f}")
    assert agree > 0.5                                  # a real, if briefly trained, model
    assert 'label="1 water"' in (tmp_path / "in.qml").read_text()
    assert sorted(os.listdir(tmp_path)) == ["ext.qml", "ext.tif", "ext.tif.aux.xml", "in.qml", "in.tif",
                                            "in.tif.aux.xml", "in_conf.tif"]


def test_a_raster_that_does_not_fit_is_refused_with_the_fix(scene, qp_model, tmp_path):
    with rasterio.open(scene.image) as ds:
        profile = ds.profile.copy()
        data = ds.read([1, 2, 3], window=Window(0, 0, 64, 64))
        profile.update(count=3, width=64, height=64, transform=ds.window_transform(Window(0, 0, 64, 64)))
    three = tmp_path / "three_bands.tif"
    with rasterio.open(three, "w", **profile) as out:
        out.write(data)
    proc = run_qgis_process("run", "deeppixel:classifypixels", "--", f"INPUT_RASTER={three}",
                            f"MODEL_DEFINITION={qp_model}", f"OUTPUT_RASTER={tmp_path / 'x.tif'}", check=False)
    assert proc.returncode != 0
    assert "takes 4 band(s)" in proc.stdout + proc.stderr and "same bands" in proc.stdout + proc.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("x.", ".x."))]


def test_ensemble_models_through_qgis_process(scene, qp_model, tmp_path):
    """ENSEMBLE_MODELS: averaged with a copy of itself the model classifies as alone; a missing member is named."""
    args = ["run", "deeppixel:classifypixels", "--json", "--", f"INPUT_RASTER={scene.image}",
            f"MODEL_DEFINITION={qp_model}", "TILE_SIZE=128", "PADDING=32", "DEVICE=cpu", "PRECISION=float32"]
    run_qgis_process(*args, f"OUTPUT_RASTER={tmp_path / 'one.tif'}")
    both = run_qgis_process(*args, f"OUTPUT_RASTER={tmp_path / 'two.tif'}", f"ENSEMBLE_MODELS={qp_model}")
    assert "averaged with 1 more model(s)" in both.stdout + both.stderr
    with rasterio.open(tmp_path / "one.tif") as a, rasterio.open(tmp_path / "two.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
    missing = tmp_path / "gone" / "model.emd"
    proc = run_qgis_process(*args, f"OUTPUT_RASTER={tmp_path / 'x.tif'}", f"ENSEMBLE_MODELS={missing}", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"ENSEMBLE_MODELS: {missing} does not exist" in text
    assert "Traceback" not in text
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("x.", ".x."))]


def test_a_folder_of_images_through_qgis_process(scene, qp_model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    with rasterio.open(scene.image) as ds:
        for name, window in (("a", Window(0, 0, 96, 80)), ("b", Window(200, 150, 120, 100))):
            profile = ds.profile.copy()
            profile.update(width=window.width, height=window.height, transform=ds.window_transform(window))
            with rasterio.open(folder / f"{name}.tif", "w", **profile) as out:
                out.write(ds.read(window=window))
    res = _results(run_qgis_process("run", "deeppixel:classifypixels", "--json", "--", f"INPUT_RASTER={folder}",
                                    f"MODEL_DEFINITION={qp_model}", "DEVICE=cpu",
                                    f"OUTPUT_RASTER={tmp_path / 'out.tif'}"))
    assert res["OUTPUT_RASTER"] == str(tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["a_classified.qml", "a_classified.tif",
                                                    "a_classified.tif.aux.xml", "b_classified.qml",
                                                    "b_classified.tif", "b_classified.tif.aux.xml"]
    with rasterio.open(tmp_path / "out" / "b_classified.tif") as ds:
        assert ds.shape == (100, 120) and ds.read(1).all()


def test_masked_pixels_stay_nodata_through_qgis_process(scene, qp_model, tmp_path):
    """A GeoTIFF whose top half is hidden by its internal mask (as JPEG orthophotos carry): nodata there."""
    from gis_files import masked_copy
    masked = masked_copy(scene, str(tmp_path / "masked.tif"), 100)
    run_qgis_process("run", "deeppixel:classifypixels", "--json", "--", f"INPUT_RASTER={masked}",
                     f"MODEL_DEFINITION={qp_model}", "DEVICE=cpu", f"OUTPUT_RASTER={tmp_path / 'c.tif'}")
    with rasterio.open(tmp_path / "c.tif") as ds:
        classes = ds.read(1)
        assert (classes[:100] == ds.nodata).all() and (classes[100:] != ds.nodata).all()
