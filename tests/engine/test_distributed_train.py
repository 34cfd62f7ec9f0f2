"""Distributed training (issue 13 part 2): torchrun, 2 gloo processes on CPU, real process groups.

One model trained by 2 ranks is a valid package that classifies; the ranks read disjoint chips
(DEEP_PIXEL_RANK_LOG); a rank killed mid-epoch is restarted by torchrun (--max-restarts) and the run
resumes from the checkpoint; so does the same command run again after the whole job was killed.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rasterio

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.model.package import load_package
from deep_pixel.train.checkpoint import checkpoint_path
from gis_files import scene_chips

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("dist") / "chips", stride=32)


def command(chips, out, epochs, restarts=0):
    return [*TORCHRUN, "--max-restarts", str(restarts), "-m", "deep_pixel", "--progress", "json", "train",
            "--input-training-data", chips, "--output-model", out, "--backbone", "resnet18", "--batch-size", "4",
            "--learning-rate", "0.001", "--device", "cpu", "--max-epochs", str(epochs), "--no-early-stop",
            "--validation-percent", "10", "--model-arguments", "chip_size=32, steps_per_epoch=3"]


def environment(rank_log):
    return dict(os.environ, DEEP_PIXEL_RANK_LOG=rank_log, PYTHONPATH=ROOT)


def messages(stdout):
    out = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            out.append(record.get("message") or json.dumps(record.get("result")))
    return out


def ranks(folder):
    """{rank: [records]} from DEEP_PIXEL_RANK_LOG."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            out[int(name[4:-6])] = [json.loads(line) for line in f if line.strip()]
    return out


def check_classifies(scene, emd, path):
    result = classify(scene.image, emd, path, ClassifyOptions(device="cpu"))
    with rasterio.open(result.output_raster) as ds:
        classes = ds.read(1)
    assert classes.shape == (384, 384) and set(np.unique(classes)) <= {0, 1, 2, 3, 4, 5}


def test_two_processes_train_one_valid_model_on_disjoint_chips(chips, scene, tmp_path):
    out, rank_log = str(tmp_path / "model"), str(tmp_path / "ranks")
    proc = subprocess.run(command(chips, out, 2), cwd=ROOT, env=environment(rank_log), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = messages(proc.stdout)
    assert any(m.startswith("Distributed training: 2 process(es), backend gloo; batch 4 per process, global batch 8; "
                            "learning rate 0.001 used as is (lr_scaling=none") for m in said), said
    assert sum(m.startswith("Epoch 1:") for m in said) == 1           # rank 0 alone logs
    assert sum('"output_model"' in m for m in said) == 1              # ... and prints the result
    pkg = load_package(out)
    assert pkg.num_classes == 5 and sorted(os.listdir(tmp_path)) == ["model", "ranks"]    # no checkpoint left
    log = json.load(open(os.path.join(out, "training_log.json")))
    assert log["distributed"] == {"processes": 2, "backend": "gloo", "batch_per_process": 4, "global_batch": 8,
                                  "lr_scaling": "none"}
    seen = {r: set().union(*(rec["chips"] for rec in records if "chips" in rec)) for r, records in
            ranks(rank_log).items()}
    assert sorted(seen) == [0, 1] and seen[0] and seen[1]
    assert not seen[0] & seen[1]                                       # each rank read its own shard
    assert len(seen[0] | seen[1]) <= log["training_chips"]
    check_classifies(scene, pkg.emd_path, str(tmp_path / "classified.tif"))


class Reader(threading.Thread):
    """Collects a process's stdout lines while it runs."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self):
        for line in self.stream:
            self.lines.append(line)

    def wait_for(self, text, proc, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if any(text in line for line in self.lines):
                return True
            time.sleep(0.05)
        return any(text in line for line in self.lines)


def _wait(predicate, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not predicate():
        time.sleep(0.02)
    return predicate()


def children(pid):
    """Process ids whose parent is ``pid`` (torchrun starts each rank in a session of its own)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_a_killed_rank_and_a_killed_job_resume_from_the_checkpoint(chips, scene, tmp_path):
    out, rank_log = str(tmp_path / "model"), str(tmp_path / "ranks")
    ckpt = checkpoint_path(out)
    proc = subprocess.Popen(command(chips, out, 6, restarts=1), cwd=ROOT, env=environment(rank_log),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    reader = Reader(proc.stdout)
    reader.start()
    try:
        assert _wait(lambda: os.path.isfile(os.path.join(ckpt, "resume.pt")), proc, 180), "no checkpoint"
        os.kill(ranks(rank_log)[1][-1]["pid"], signal.SIGKILL)     # one rank dies mid-epoch: torchrun restarts
        assert reader.wait_for("Resumed from the checkpoint of epoch", proc, 180), "".join(reader.lines)[-3000:]
    finally:                                          # then the whole job dies: torchrun and every rank
        for pid in [*children(proc.pid), proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    first = [m for m in messages("".join(reader.lines)) if m.startswith("Resumed")]
    assert first and "written by a run with 2 process(es)" in first[0]
    assert not os.path.exists(out)
    epoch = load_package(ckpt).emd["Checkpoint"]["epoch"]
    assert 1 <= epoch < 6
    again = subprocess.run(command(chips, out, 6, restarts=1), cwd=ROOT, env=environment(rank_log),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    said = messages(again.stdout)
    assert any(m.startswith(f"Resumed from the checkpoint of epoch {epoch} in {ckpt}") for m in said), said
    trained = [int(m.split()[1].rstrip(":")) for m in said if m.startswith("Epoch ") and "train loss" in m]
    assert trained == list(range(epoch + 1, 7))
    log = json.load(open(os.path.join(out, "training_log.json")))
    assert log["resumed_from_epoch"] == epoch and [e["epoch"] for e in log["epochs"]] == list(range(1, 7))
    assert not os.path.exists(ckpt)
    check_classifies(scene, load_package(out).emd_path, str(tmp_path / "classified.tif"))


def test_time_limit_under_torchrun_fits_the_decay_to_the_first_epochs_pace(chips, tmp_path):
    """Issue 16: MAX_EPOCHS empty + TIME_LIMIT: every rank stops together, the rate decayed by the limit."""
    out, rank_log = str(tmp_path / "model"), str(tmp_path / "ranks")
    args = command(chips, out, 1)
    i = args.index("--max-epochs")
    args[i:i + 2] = ["--time-limit", "0.3"]
    proc = subprocess.run(args, cwd=ROOT, env=environment(rank_log), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = messages(proc.stdout)
    assert any(m.startswith("TIME_LIMIT of 0.3 min at the first epoch's pace: about") for m in said), said
    log = json.load(open(os.path.join(out, "training_log.json")))
    assert log["stopped_by_time_limit"] or log["epochs"][-1]["lr"] < 0.001 * 0.1


def test_two_processes_train_averaged_members_into_one_model(chips, scene, tmp_path):
    """MODEL_ARGUMENTS members under torchrun: each network is trained by both ranks in turn, the average is
    measured with the ranks' counts summed, and rank 0 writes the one model."""
    out, rank_log = str(tmp_path / "model"), str(tmp_path / "ranks")
    cmd = command(chips, out, 1)
    cmd[-1] += ", members=2"
    proc = subprocess.run(cmd, cwd=ROOT, env=environment(rank_log), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = messages(proc.stdout)
    assert sum(m.startswith("Member 2 of 2 (seed 1000)") for m in said) == 1, said
    assert sum(m.startswith("Members' best epochs:") for m in said) == 1, said
    log = json.load(open(os.path.join(out, "training_log.json")))
    assert [m["seed"] for m in log["members"]] == [0, 1000] and log["distributed"]["processes"] == 2
    pkg = load_package(out)
    assert pkg.model_params["members"] == 2 and sorted(os.listdir(tmp_path)) == ["model", "ranks"]
    check_classifies(scene, pkg.emd_path, str(tmp_path / "classified.tif"))
