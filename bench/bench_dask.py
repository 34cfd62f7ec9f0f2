"""Classify Pixels in one process vs on a Dask LocalCluster of 2 workers (this machine).

Same model and raster as bench_classify (U-Net/resnet34, a dense 4096 x 4096 VRT mosaic), default
settings. On 2 cores two 1-thread workers have no more compute than one 2-thread process: the
ratio measures the sharding's overhead (halo strips, block files, assembly, task scheduling).
Target: wall time on the cluster <= 1.10 x one process. Two rasters: 4096 x 4096 (5 strips of tiles:
too few blocks to keep 2 workers busy, each block recomputing a strip of halo) and 4096 x 32768 (40
strips, 4 blocks). Rows:
- one process: ``classify(...)`` as the command line runs it (2 torch threads).
- cluster already running: ``DASK_SCHEDULER`` = a LocalCluster started before the clock starts (as
  on a real cluster, where workers outlive one raster).
- WORKERS=2: the command starts (and stops) its own LocalCluster; start-up included.
Peak RSS: the one process (VmHWM, its own subprocess); for the cluster, each worker's VmHWM and the
client's.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.bench_classify import ROOT, THREADS, mosaic, table, tiny_model, vm_hwm_mib

SIZE = 4096
TALL = 8           # the second raster: 8 x taller (40 strips of tiles: blocks enough for 2 workers)


def child(mode, image, emd, out):
    """In a subprocess: one classification; prints seconds and peak RSS (MiB) as JSON."""
    import torch
    torch.set_num_threads(THREADS)
    from deep_pixel.classify import ClassifyOptions, classify
    result = {}
    if mode == "single":
        t0 = time.perf_counter()
        classify(image, emd, out, ClassifyOptions(device="cpu"))
        result["seconds"] = time.perf_counter() - t0
    elif mode == "workers":
        t0 = time.perf_counter()
        classify(image, emd, out, ClassifyOptions(device="cpu", workers=2))
        result["seconds"] = time.perf_counter() - t0
    else:
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          env={"OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}) as cluster, Client(cluster) as client:
            t0 = time.perf_counter()
            classify(image, emd, out, ClassifyOptions(device="cpu", dask_scheduler=cluster.scheduler_address))
            result["seconds"] = time.perf_counter() - t0
            result["workers_mib"] = sorted(client.run(vm_hwm_mib).values())
    result["client_mib"] = vm_hwm_mib()
    print(json.dumps(result))


def measure(mode, image, emd, out):
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); from bench.bench_dask import child; "
            f"child({mode!r}, {image!r}, {emd!r}, {out!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("dask/distributed not installed: skipped (make setup installs them)")
        return
    from deep_pixel.io.synthetic import make_scene
    with tempfile.TemporaryDirectory() as tmp:
        emd = tiny_model(tmp)
        scene = make_scene(os.path.join(tmp, "big"), 1024, 1024, seed=4)
        for tall in (1, TALL):
            image = mosaic(scene.image, os.path.join(tmp, f"d{tall}.vrt"), SIZE // 1024, dense=True, tall=tall)
            runs = {mode: measure(mode, image, emd, os.path.join(tmp, f"{mode}{tall}.tif"))
                    for mode in ("single", "cluster", "workers")}
            report(runs, SIZE, SIZE * tall)


def report(runs, width, height):
    base = runs["single"]["seconds"]
    rows = []
    for mode, label in (("single", "one process (2 threads)"), ("cluster", "cluster already running, 2 x 1 thread"),
                        ("workers", "WORKERS=2 (LocalCluster started by the run)")):
        r = runs[mode]
        memory = f"{r['client_mib']:.0f}" + (" + workers " + " / ".join(f"{m:.0f}" for m in r["workers_mib"])
                                              if "workers_mib" in r else "")
        rows.append([label, f"{width * height / 1e6 / r['seconds']:.2f}", f"{r['seconds']:.1f}",
                     f"{r['seconds'] / base:.2f}", memory])
    table(f"Classify Pixels on Dask, {width} x {height} dense raster, defaults (target: cluster <= 1.10 x one "
          "process)", ["run", "raster MP/s", "seconds", "x one process", "peak RSS MiB"], rows)


if __name__ == "__main__":
    main()
