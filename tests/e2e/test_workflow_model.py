"""The shipped Processing model (models/deep_pixel_workflow.model3) run through scripts/qgis_process.

It chains Export Training Data -> Train Model -> Classify Pixels -> Compute Accuracy, so it proves
that each algorithm's outputs are typed so the next one accepts them in the graphical modeler.
"""
import json
import os

import rasterio
from conftest import ROOT, run_qgis_process

MODEL = os.path.join(ROOT, "models", "deep_pixel_workflow.model3")


def test_the_model_is_shipped():
    """A missing .model3 fails here (the tests below would otherwise fail on a missing file less clearly)."""
    assert os.path.isfile(MODEL), "models/deep_pixel_workflow.model3 is missing: run scripts/build_workflow_model.py"


def test_shipped_model_is_what_the_script_builds(tmp_path):
    """The committed .model3 equals a fresh build by scripts/build_workflow_model.py (attribute order aside)."""
    import subprocess
    import sys
    from xml.etree.ElementTree import canonicalize  # nosec B405 (our own files)
    built = tmp_path / "built.model3"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_workflow_model.py"), str(built)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh, shipped = (canonicalize(from_file=str(p), strip_text=True) for p in (built, MODEL))
    assert fresh == shipped, "models/deep_pixel_workflow.model3 is stale: run scripts/build_workflow_model.py"
    for alg in ("deeppixel:exporttrainingdata", "deeppixel:trainmodel", "deeppixel:classifypixels",
                "deeppixel:computeaccuracy"):
        assert alg in shipped


def test_workflow_model_runs_through_qgis_process(tmp_path):
    from deep_pixel.io.synthetic import make_scene
    scene = make_scene(str(tmp_path / "scene"), width=256, height=256, seed=11, train_fraction=0.6)
    help_text = run_qgis_process("help", MODEL).stdout
    for name in ("INPUT_RASTER", "TRAINING_SAMPLES", "REFERENCE", "train:model_folder", "classify:classified",
                 "accuracy:accuracy_report"):
        assert name in help_text, name
    out = {"train:model_folder": str(tmp_path / "model"), "classify:classified": str(tmp_path / "classified.tif"),
           "accuracy:accuracy_report": str(tmp_path / "accuracy.html")}
    proc = run_qgis_process(
        "run", MODEL, "--json", "--", f"INPUT_RASTER={scene.image}", f"TRAINING_SAMPLES={scene.samples}",
        "CLASS_FIELD=Classvalue", f"REFERENCE={scene.samples}", "REFERENCE_CLASS_FIELD=Classvalue",
        "TILE_SIZE=64", "MAX_EPOCHS=1", *[f"{k}={v}" for k, v in out.items()])
    results = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
    assert os.path.isfile(tmp_path / "model" / "model.emd")
    with rasterio.open(out["classify:classified"]) as ds:
        assert (ds.width, ds.height) == (256, 256)
        assert set(int(v) for v in ds.read(1)[::8, ::8].ravel()) <= {1, 2, 3, 4, 5}
    html = open(out["accuracy:accuracy_report"]).read()
    assert "kappa" in html.lower()
    assert results["classify:classified"] == out["classify:classified"]
