"""SIGTERM acts like cancel for every command (issue 14): a real ``python -m deep_pixel`` process is sent a
real SIGTERM mid-run. It exits with status 3 and one ``cancelled`` line naming SIGTERM, no traceback,
and no partial output or staging folder; Train Model keeps its checkpoint when it had one.
(Classify: tests/engine/test_reliability_inputs.py::test_sigterm_acts_like_cancel.)
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import snapshot
from gis_files import write_raster, write_vector
from shapely.geometry import box
from test_reliability_train import write_chips

from deep_pixel.model.package import load_package
from deep_pixel.train.checkpoint import checkpoint_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sigterm_when(args, ready, timeout=120):
    """Start ``python -m deep_pixel --progress json <args>``, send SIGTERM once ``ready(lines so far)`` is
    true; returns (exit status, stdout lines, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "deep_pixel", "--progress", "json", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.time() + timeout
        for line in proc.stdout:
            lines.append(line)
            if ready(lines) or time.time() > deadline:
                break
        assert proc.poll() is None, f"the command ended before it could be stopped: {lines[-3:]}"
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, lines + rest.splitlines(keepends=True), err


def assert_cancelled_in_one_line(code, lines, err):
    assert code == 3, err
    assert "Traceback" not in err and "Traceback" not in "".join(lines)
    final = [json.loads(x) for x in lines if x.startswith("{") and '"type": "progress"' not in x
             and '"type": "log"' not in x and '"type": "warning"' not in x]
    assert len(final) == 1 and final[0]["type"] == "cancelled", final
    assert "SIGTERM" in final[0]["message"] and "\n" not in final[0]["message"]
    return final[0]["message"]


def test_sigterm_during_export_removes_the_staging_folder(tmp_path):
    data = np.random.default_rng(0).integers(1, 200, (3, 1536, 1536)).astype(np.uint16)
    raster = write_raster(tmp_path / "r.tif", data)
    vector = write_vector(tmp_path / "s.gpkg", [box(1000, 464, 1768, 2000), box(1768, 464, 2536, 2000)], [1, 2])
    before = snapshot(tmp_path)
    code, lines, err = sigterm_when(
        ["export", "--input-raster", raster, "--input-samples", vector, "--class-field", "cls", "--output-folder",
         tmp_path / "chips", "--tile-size-x", 32, "--tile-size-y", 32, "--stride-x", 16, "--stride-y", 16],
        lambda lines: glob.glob(str(tmp_path / ".chips.partial-*" / "images" / "*.tif")))
    assert_cancelled_in_one_line(code, lines, err)
    assert snapshot(tmp_path) == before and not glob.glob(str(tmp_path / ".*"))


def _train_args(chips, out, steps):
    return ["train", "--input-training-data", chips, "--output-model", out, "--max-epochs", 50, "--no-early-stop",
            "--backbone", "resnet18", "--batch-size", 2, "--learning-rate", 0.003, "--device", "cpu",
            "--validation-percent", 0, "--model-arguments", f"chip_size=32, steps_per_epoch={steps}"]


def test_sigterm_during_training_before_a_checkpoint_leaves_nothing(tmp_path):
    chips = write_chips(tmp_path / "chips")
    before = snapshot(tmp_path)
    code, lines, err = sigterm_when(_train_args(chips, tmp_path / "m", 5000),
                                    lambda lines: '"epoch 1/50 batch 2/' in lines[-1])
    message = assert_cancelled_in_one_line(code, lines, err)
    assert "kept" not in message
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["chips"]


def test_sigterm_during_training_keeps_the_checkpoint_and_says_where(tmp_path):
    chips = write_chips(tmp_path / "chips")
    ckpt = checkpoint_path(str(tmp_path / "m"))
    code, lines, err = sigterm_when(_train_args(chips, tmp_path / "m", 2),
                                    lambda lines: "Checkpoint of epoch" in lines[-1])
    message = assert_cancelled_in_one_line(code, lines, err)
    assert f"is kept in {ckpt}" in message and "run the same command again" in message
    assert sorted(os.listdir(tmp_path)) == ["chips", "m.checkpoint"]        # no model folder, no .partial
    assert load_package(ckpt).emd["Checkpoint"]["epoch"] >= 1
    # a checkpoint is a loadable .emd + .pth; no .dlpk (zipping the weights cost a quarter of training time)
    assert not [n for n in os.listdir(ckpt) if n.endswith(".dlpk")] and any(n.endswith(".pth") for n in os.listdir(ckpt))


def test_sigterm_during_compute_accuracy_leaves_no_report(tmp_path):
    data = np.random.default_rng(0).integers(1, 4, (1, 2048, 2048)).astype(np.uint8)
    classified = write_raster(tmp_path / "c.tif", data)
    reference = write_raster(tmp_path / "ref.tif", data)
    before = snapshot(tmp_path)
    code, lines, err = sigterm_when(["evaluate", "--input-classified", classified, "--reference-raster", reference,
                                     "--output-report", tmp_path / "r.html", "--output-table", tmp_path / "t.csv"],
                                    lambda lines: '"block 2/' in lines[-1])
    assert_cancelled_in_one_line(code, lines, err)
    assert snapshot(tmp_path) == before and not glob.glob(str(tmp_path / ".*"))


def test_a_stop_is_never_taken_for_a_failure_that_code_tolerates(tmp_path, monkeypatch):
    """Code that tolerates an error (a chip that cannot be read, an ONNX file that does not load, a resume
    state that cannot be read) must let cancel and SIGTERM through: one full-suite run, under load, got
    SIGTERM while a chip was read and reported it as a failed chip (exit status 1, not 3)."""
    import pytest

    from deep_pixel.chips.dataset import ChipDataset
    from deep_pixel.classify import runtime_choice
    from deep_pixel.core.errors import Terminated
    from deep_pixel.train import resume

    def stop(*args, **kwargs):
        raise Terminated()

    class Maker:
        chips = ["chip"]
        example = whole_example = staticmethod(stop)
    with pytest.raises(Terminated):
        ChipDataset(Maker())[(0, 1)]
    monkeypatch.setattr(runtime_choice, "_onnx", stop)
    monkeypatch.setattr(runtime_choice, "cpu_bf16", lambda: None)
    monkeypatch.setattr(runtime_choice, "not_installed", lambda name: None)
    with pytest.raises(Terminated):
        runtime_choice._cpu(None, "cpu", "auto", "auto", None)
    (tmp_path / resume.RESUME_FILE).write_bytes(b"x")
    monkeypatch.setattr("torch.load", stop)
    with pytest.raises(Terminated):
        resume.load(str(tmp_path), "fingerprint")


def test_a_stop_that_c_code_turned_into_its_own_error_is_still_a_stop():
    """SIGTERM's Terminated raised while rasterio's Cython code runs comes out as its own TypeError ("A valid
    dtype is required"): a block that received SIGTERM ends with Terminated, not "Unexpected error"."""
    from deep_pixel.cli.signals import sigterm_cancels
    from deep_pixel.core.errors import Terminated
    with pytest.raises(Terminated) as caught:
        with sigterm_cancels():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except Terminated as e:
                raise TypeError("A valid dtype is required.") from e
    assert isinstance(caught.value.__cause__, TypeError) and signal.getsignal(signal.SIGTERM) is not None
    with pytest.raises(TypeError):                      # without SIGTERM an error stays what it is
        with sigterm_cancels():
            raise TypeError("a bug")
