"""Classify Pixels on a real Dask LocalCluster: the same output as one process, pixel for pixel,
also when a worker is killed mid-run or the client is killed and the command is run again."""
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

pytest.importorskip("distributed", reason="dask/distributed are not installed (make setup installs them)")

from deep_pixel.classify import ClassifyOptions, classify  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPTIONS = dict(tile_size=128, padding=16, runtime="torch", precision="float32", device="cpu", block_strips=3)


@pytest.fixture(scope="module")
def big(scene, tmp_path_factory):
    """The scene repeated 3 x 2 (1152 x 768 px): with 128 px tiles, 10 strips, so several blocks."""
    path = str(tmp_path_factory.mktemp("big") / "big.tif")
    with rasterio.open(scene.image) as src:
        data, profile = src.read(), src.profile
    data = np.tile(data, (1, 3, 2))
    profile.update(height=data.shape[1], width=data.shape[2], tiled=True, blockxsize=128, blockysize=128)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def single(big, trained_scene_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "classes.tif"
    classify(big, trained_scene_model, str(out), ClassifyOptions(output_confidence=str(out)[:-4] + "_conf.tif",
                                                                 **OPTIONS))
    return read(out), read(str(out)[:-4] + "_conf.tif")


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_local_cluster_output_is_the_single_process_output(big, trained_scene_model, single, tmp_path):
    out = tmp_path / "classes.tif"
    result = classify(big, trained_scene_model, str(out), ClassifyOptions(
        workers=2, output_confidence=str(tmp_path / "conf.tif"), **OPTIONS))
    assert np.array_equal(read(out), single[0])
    # the same classes; confidence to float32 rounding (a worker's one thread and the process's two can sum a
    # convolution in another order: 1 ulp on this machine's torch build)
    np.testing.assert_allclose(read(tmp_path / "conf.tif"), single[1], rtol=0, atol=1e-6)
    assert result.device == "dask"
    assert sorted(os.listdir(tmp_path)) == ["classes.qml", "classes.tif", "classes.tif.aux.xml", "conf.tif"]
    with rasterio.open(out) as ds:
        assert ds.overviews(1) and ds.colormap(1)


def test_workers_average_ensemble_models_as_one_process_does(big, trained_scene_model, second_scene_model, single,
                                                             tmp_path):
    options = dict(OPTIONS, ensemble_models=second_scene_model)
    classify(big, trained_scene_model, str(tmp_path / "one.tif"), ClassifyOptions(**options))
    classify(big, trained_scene_model, str(tmp_path / "dask.tif"), ClassifyOptions(workers=2, **options))
    averaged = read(tmp_path / "one.tif")
    assert np.array_equal(read(tmp_path / "dask.tif"), averaged)
    assert not np.array_equal(averaged, single[0])       # the member was averaged in


def test_a_worker_killed_mid_run_is_retried_and_the_output_is_the_same(big, trained_scene_model, single, tmp_path):
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = tmp_path / "classes.tif"
        manifest = str(out) + ".shards/manifest.json"
        errors = []
        run = threading.Thread(target=lambda: _catch(errors, classify, big, trained_scene_model, str(out),
                                                     ClassifyOptions(dask_scheduler=cluster.scheduler_address,
                                                                     **OPTIONS)))
        run.start()
        _wait_for(lambda: _running(manifest), 120)
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)        # one worker dies while it writes a block
        run.join(300)
        assert not errors, errors
        assert np.array_equal(read(out), single[0])
        assert not os.path.exists(str(out) + ".shards")


def test_a_killed_client_resumes_and_does_only_what_is_missing(big, trained_scene_model, single, tmp_path):
    out = tmp_path / "classes.tif"
    args = [sys.executable, "-m", "deep_pixel", "--progress", "json", "classify", "--input-raster", big,
            "--model-definition", trained_scene_model, "--output-raster", str(out),
            "--tile-size", "128", "--padding", "16", "--runtime", "torch", "--precision", "float32",
            "--device", "cpu", "--block-strips", "3", "--workers", "1"]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    manifest = str(out) + ".shards/manifest.json"
    try:
        _wait_for(lambda: _done(manifest) >= 1, 180)
    finally:
        os.killpg(first.pid, signal.SIGKILL)                   # the client and its cluster, at once
        first.wait()
    finished = _done(manifest)
    assert not os.path.exists(out) and finished >= 1
    again = subprocess.run(args[:-1] + ["2"], cwd=ROOT, capture_output=True, text=True, timeout=600)  # 2 workers
    assert again.returncode == 0, again.stderr
    assert f"Resuming: {finished} block(s)" in again.stdout
    assert np.array_equal(read(out), single[0])
    assert not os.path.exists(str(out) + ".shards")


def _catch(errors, fn, *args):
    try:
        fn(*args)
    except BaseException as e:          # reported by the test's own thread
        errors.append(e)


def _running(manifest) -> bool:
    """A worker is writing a block (its temporary file exists)."""
    folder = os.path.dirname(manifest)
    return os.path.isdir(folder) and any(".partial-" in f for f in os.listdir(folder))


def _done(manifest) -> int:
    try:
        with open(manifest, encoding="utf-8") as f:
            return len(json.load(f)["done"])
    except (OSError, ValueError, KeyError):
        return 0


def _wait_for(condition, seconds):
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
