"""Classify Pixels with OUTPUT_UNCERTAINTY and Suggest Samples through scripts/qgis_process, as a user runs them."""
import json
import os

import numpy as np
import rasterio
from conftest import ROOT, run_qgis_process

from deep_pixel.io.vector import read_vector

VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


def _results(proc):
    return json.loads(proc.stdout[proc.stdout.index("{"):])["results"]


def test_uncertainty_then_suggestions(scene, trained_scene_model, tmp_path):
    classes, unc = str(tmp_path / "classes.tif"), str(tmp_path / "uncertainty.tif")
    res = _results(run_qgis_process(
        "run", "deeppixel:classifypixels", "--json", "--", f"INPUT_RASTER={scene.image}",
        f"MODEL_DEFINITION={trained_scene_model}", "DEVICE=cpu", f"OUTPUT_RASTER={classes}",
        f"OUTPUT_UNCERTAINTY={unc}", "UNCERTAINTY_MEASURE=entropy"))
    assert res["OUTPUT_UNCERTAINTY"] == unc and os.path.isfile(str(tmp_path / "uncertainty.qml"))
    with rasterio.open(unc) as u, rasterio.open(classes) as c:
        values, labels = u.read(1), c.read(1)
        assert u.dtypes[0] == "float32" and u.tags()["DEEP_PIXEL_UNCERTAINTY"] == "entropy"
    assert (labels > 0).all() and values.min() >= 0 and values.max() <= 1 and np.ptp(values) > 0.5

    # From the model (classified again inside, nothing left behind), then from the uncertainty raster.
    out = str(tmp_path / "suggestions.gpkg")
    res = _results(run_qgis_process(
        "run", "deeppixel:suggestsamples", "--json", "--", f"INPUT_RASTER={scene.image}",
        f"MODEL_DEFINITION={trained_scene_model}", f"INPUT_SAMPLES={scene.samples}", "NUMBER_OF_SUGGESTIONS=7",
        "SEED=5", "DEVICE=cpu", f"OUTPUT={out}"))
    assert res["SUGGESTIONS"] == 7
    vec = read_vector(out)
    assert vec.attributes["rank"] == list(range(1, 8)) and all("%" in m for m in vec.attributes["class_mix"])
    means = vec.attributes["mean_uncertainty"]
    assert means == sorted(means, reverse=True) and 0 < means[-1] and means[0] <= 1
    widths = {round(g.bounds[2] - g.bounds[0], 6) for g in vec.geometries}
    assert widths == {32 * 10.0}                       # 64 px chips / 2, at 10 m pixels

    again = str(tmp_path / "again.gpkg")                # through the external engine this time
    proc = run_qgis_process("run", "deeppixel:suggestsamples", "--", f"INPUT_RASTER={scene.image}",
                            f"INPUT_UNCERTAINTY={unc}", f"INPUT_SAMPLES={scene.samples}", "NUMBER_OF_SUGGESTIONS=7",
                            "SEED=5", f"OUTPUT={again}", env={"DEEP_PIXEL_PYTHON": VENV_PYTHON})
    assert "External engine" in proc.stdout + proc.stderr
    second = read_vector(again)
    assert [g.wkt for g in second.geometries] == [g.wkt for g in vec.geometries]     # same classification, same seed
    assert second.attributes == vec.attributes

    refused = run_qgis_process("run", "deeppixel:suggestsamples", "--", f"INPUT_RASTER={scene.image}",
                               f"OUTPUT={tmp_path / 'none.gpkg'}", check=False)
    assert refused.returncode != 0 and "MODEL_DEFINITION" in refused.stdout + refused.stderr
    assert not os.path.exists(tmp_path / "none.gpkg")
