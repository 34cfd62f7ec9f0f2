"""Export then train on the real Landsat tutorial data through scripts/qgis_process, as a user runs it."""
import json
import os

from conftest import run_qgis_process
from processing_help import assert_help_matches_declarations

from deep_pixel.model.package import load_package
from deep_pixel.train.options import TrainOptions


def _results(proc):
    return json.loads(proc.stdout[proc.stdout.index("{"):])["results"]


def test_qgis_process_help_shows_train_parameters():
    """qgis_process's description (--json): every parameter with the engine's declared label and default."""
    described = assert_help_matches_declarations(
        "deeppixel:trainmodel", TrainOptions, own=("INPUT_TRAINING_DATA", "ADDITIONAL_TRAINING_DATA", "OUTPUT_MODEL"),
        outputs=("MODEL_DEFINITION", "OUTPUT_MODEL", "BEST_EPOCH", "MIOU", "ACCURACY"))
    parameters = described["parameters"]
    assert "SEGFORMER" in json.dumps(parameters["MODEL_TYPE"]) and "resnet34" in json.dumps(parameters["BACKBONE"])


def test_export_then_train_on_landsat(landsat, tmp_path):
    chips = tmp_path / "chips"
    run_qgis_process("run", "deeppixel:exporttrainingdata", "--json", "--",
                     f"INPUT_RASTER={landsat['image']}", f"INPUT_SAMPLES={landsat['samples']}",
                     "CLASS_FIELD=class", "TILE_SIZE_X=64", "TILE_SIZE_Y=64", "STRIDE_X=32", "STRIDE_Y=32",
                     f"OUTPUT_FOLDER={chips}")
    model = tmp_path / "landsat_model"
    proc = run_qgis_process("run", "deeppixel:trainmodel", "--json", "--",
                            f"INPUT_TRAINING_DATA={chips}", "MAX_EPOCHS=2", "MODEL_TYPE=UNET", "BACKBONE=resnet18",
                            "BATCH_SIZE=4", "VALIDATION_PERCENT=20", "MONITOR=accuracy",
                            "MODEL_ARGUMENTS=chip_size=32,steps_per_epoch=3,lr_test_steps=5,class_balancing=true",
                            "SEED=7", "DEVICE=auto", "PRETRAIN_ON_RASTER=0.02", f"OUTPUT_MODEL={model}")
    res = _results(proc)
    assert res["MODEL_DEFINITION"] == str(model / "landsat_model.emd")
    assert sorted(os.listdir(model)) == ["landsat_model.dlpk", "landsat_model.emd", "landsat_model.onnx",
                                         "landsat_model.pth", "model_metrics.html", "training_log.json"]
    pkg = load_package(str(model / "landsat_model.dlpk"))
    assert pkg.in_channels == 8 and pkg.bands == list(range(1, 9))
    assert [(c.value, c.name) for c in pkg.schema] == [(1, "barren"), (2, "forest"), (3, "herbaceous"),
                                                        (4, "urban"), (5, "water")]
    emd = json.load(open(res["MODEL_DEFINITION"]))
    assert emd["SourceDataType"] == "int16" and emd["CRS"] and emd["CellSize"]
    import torch
    assert ("CUDA available" if torch.cuda.is_available() else "CUDA not available") in emd["Training"]["device"]
    log = json.load(open(model / "training_log.json"))
    assert log["lr_range_test"]["rates"] and log["validation_chips"] > 0
    assert "Learning-rate range test picked" in proc.stdout + proc.stderr
    assert "Pretraining done" in proc.stdout + proc.stderr
    assert "from the self-supervised pretraining" in proc.stdout + proc.stderr
    # ... then classify the scene with that model and score it against the polygons, all via qgis_process
    classified = tmp_path / "landsat_classes.tif"
    res = _results(run_qgis_process("run", "deeppixel:classifypixels", "--json", "--",
                                    f"INPUT_RASTER={landsat['image']}", f"MODEL_DEFINITION={model / 'landsat_model.dlpk'}",
                                    "TILE_SIZE=0", "BATCH_SIZE=2", f"OUTPUT_RASTER={classified}"))
    assert res["OUTPUT_RASTER"] == str(classified) and res["TILES"] >= 1
    assert (tmp_path / "landsat_classes.qml").is_file()
    acc = _results(run_qgis_process("run", "deeppixel:computeaccuracy", "--json", "--",
                                    f"INPUT_CLASSIFIED={classified}", f"REFERENCE={landsat['samples']}",
                                    "CLASS_FIELD=class", "SAMPLING=STRATIFIED_RANDOM", "NUMBER_OF_POINTS=100",
                                    f"OUTPUT_REPORT={tmp_path / 'acc.html'}",
                                    f"OUTPUT_TABLE={tmp_path / 'acc.csv'}"))
    for key in ("OVERALL_ACCURACY", "KAPPA", "MEAN_IOU"):
        assert isinstance(acc[key], float) and -1 <= acc[key] <= 1
    report = json.load(open(tmp_path / "acc.json"))
    assert report["sampling"] == "STRATIFIED_RANDOM" and report["pixels"] <= 5 * 20
    assert open(tmp_path / "acc.csv").read().count("\n") == 6      # header + 5 classes


def test_warnings_reach_qgis_process_as_warnings(landsat, tmp_path):
    """An engine warning is a Processing warning, not an "ERROR:" line (issue 17)."""
    chips = tmp_path / "chips"
    run_qgis_process("run", "deeppixel:exporttrainingdata", "--", f"INPUT_RASTER={landsat['image']}",
                     f"INPUT_SAMPLES={landsat['samples']}", "CLASS_FIELD=class", "TILE_SIZE_X=64", "TILE_SIZE_Y=64",
                     "STRIDE_X=64", "STRIDE_Y=64", f"OUTPUT_FOLDER={chips}")
    proc = run_qgis_process("run", "deeppixel:trainmodel", "--", f"INPUT_TRAINING_DATA={chips}", "MAX_EPOCHS=1",
                            "BACKBONE=resnet18", "VALIDATION_PERCENT=0", "DEVICE=cpu",
                            "MODEL_ARGUMENTS=steps_per_epoch=1,lr_test_steps=0",
                            f"OUTPUT_MODEL={tmp_path / 'model'}")
    out = proc.stdout + proc.stderr
    assert "No separate validation chips" in out
    line = next(ln for ln in out.splitlines() if "No separate validation chips" in ln)
    assert "ERROR" not in line, line
