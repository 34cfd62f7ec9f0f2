"""Training at scale: streamed chips (memory, speed) and 1 vs 2 processes (``python -m bench train_scale``).

One synthetic scene (deep_pixel.io.synthetic, 1024 x 1024 px, polygons everywhere) is laid out 4 x 4
times into a 4096 x 4096 px raster and exported once as 256 x 256 px chips (stride 128); the small
folder holds its first BASE chips, the large one 10x as many. Each row is one training run in a fresh
process (``python -m deep_pixel train`` run in-process by this module's child mode, or torchrun's
ranks), with the same settings: UNET/resnet18, light decoder, batch 8 per process, 64 px crops,
STEPS steps x EPOCHS epochs, 10% validation chips (at least one whole validation batch in both
folders), fixed learning rate, package with ONNX. Peak RSS is each process's VmHWM (/proc/self/status):
while training (up to "writing the model package") and overall. chips/s is the median over epochs
2.. of training_log.json's chips_per_second (all processes together).

- memory: streamed chips (the default) on 10x the chips within 1.2x the peak RSS; chips held in memory
  (KEEP_PIXELS_BELOW, the old way) for comparison.
- speed: streamed with 0, 1 and 2 DataLoader workers against chips held in memory.
- processes: torchrun --nproc_per_node 2 (gloo, OMP_NUM_THREADS=1 each) against one process (2 threads).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from deep_pixel.core.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE, SCALE, STEPS, EPOCHS, COPIES = 80, 10, 16, 2, 4
SETTINGS = ["--backbone", "resnet18", "--batch-size", "8", "--learning-rate", "0.002", "--device", "cpu",
            "--max-epochs", str(EPOCHS), "--no-early-stop", "--validation-percent", "10"]


def vmhwm_mib() -> float:
    """This process's peak resident memory (MiB) so far."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakProgress(Progress):
    """Silent progress that notes the peak RSS when training ends (before the package is written)."""
    training = None

    def report(self, fraction, message=None):
        if self.training is None and (message or "").startswith("writing the model package"):
            self.training = vmhwm_mib()


def child(argv) -> int:
    """``child <report> <deep_pixel CLI arguments>``: run the command here, then write this process's peak
    RSS (while training, and overall) to ``<report>.<rank>``."""
    report, args = argv[0], argv[1:]
    if os.environ.get("BENCH_KEEP_PIXELS"):
        import deep_pixel.train.loop as loop
        loop.KEEP_PIXELS_BELOW = 1 << 62
    from deep_pixel.cli.main import build_parser
    parsed = build_parser().parse_args(args)
    progress = PeakProgress()
    parsed._module.run(parsed, progress)
    peak = vmhwm_mib()
    with open(f"{report}.{os.environ.get('RANK', '0')}", "w") as f:
        json.dump({"training": progress.training or peak, "overall": peak}, f)
    return 0


def make_folders(tmp):
    """The chips of COPIES x COPIES copies of one synthetic scene -> {chips: folder} for BASE and 10x BASE."""
    import rasterio
    from shapely import affinity

    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.synthetic import make_scene
    from deep_pixel.io.vector import read_vector
    scene = make_scene(os.path.join(tmp, "scene"), 1024, 1024, seed=1, train_fraction=1.0, per_class=40)
    vec = read_vector(scene.samples)
    big = os.path.join(tmp, "mosaic.tif")
    with rasterio.open(scene.image) as src:
        data, profile = src.read(), src.profile
        size = src.width * src.res[0]
    profile.update(width=src.width * COPIES, height=src.height * COPIES)
    geoms, values = [], []
    with rasterio.open(big, "w", **profile) as dst:
        for qy in range(COPIES):
            for qx in range(COPIES):
                dst.write(data, window=rasterio.windows.Window(qx * src.width, qy * src.height, src.width, src.height))
                geoms += [affinity.translate(g, qx * size, -qy * size) for g in vec.geometries]
                values += [int(v) for v in vec.attributes["Classvalue"]]
    every = os.path.join(tmp, "every")
    export_training_data(big, Samples(geoms, values, vec.crs_wkt), every, ExportOptions(
        tile_size_x=256, tile_size_y=256, stride_x=128, stride_y=128, output_nofeature_tiles=True), scene.schema)
    return {n: subset(every, os.path.join(tmp, f"chips{n}"), n) for n in (BASE, BASE * SCALE)}


def subset(source, target, n):
    """A chips folder with the first ``n`` chips of ``source`` (and its metadata)."""
    lines = open(os.path.join(source, "map.txt")).read().splitlines()[:n]
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(target, sub))
    for line in lines:
        for rel in line.split():
            os.link(os.path.join(source, rel), os.path.join(target, rel))
    for name in os.listdir(source):
        if os.path.isfile(os.path.join(source, name)) and name != "map.txt":
            shutil.copy(os.path.join(source, name), target)
    with open(os.path.join(target, "map.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return target


def measure(tmp, name, chips, workers=0, keep=False, processes=1):
    """One training run in fresh process(es) -> {chips_per_second, peak RSS per process, wall}."""
    out, report = os.path.join(tmp, "out", name), os.path.join(tmp, "reports", name)
    os.makedirs(os.path.dirname(report), exist_ok=True)
    args = ["train", "--input-training-data", chips, "--output-model", out, *SETTINGS,
            "--model-arguments", f"chip_size=64, steps_per_epoch={STEPS}, loader_workers={workers}"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    env = dict(os.environ, PYTHONPATH=ROOT, **({"BENCH_KEEP_PIXELS": "1"} if keep else {}))
    t0 = time.perf_counter()
    proc = subprocess.run([*launcher, "-m", "bench.bench_train_scale", "child", report, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    log = json.load(open(os.path.join(out, "training_log.json")))
    speeds = [e["chips_per_second"] for e in log["epochs"][1:]]
    peaks = [json.load(open(f"{report}.{r}")) for r in range(processes)]
    return {"name": name, "chips": log["training_chips"] + log["validation_chips"] + log["dropped_chips"],
            "cps": float(np.median(speeds)), "rss": [p["training"] for p in peaks],
            "overall": [p["overall"] for p in peaks], "wall": wall}


def row(r, base=None):
    ratio = f"{r['cps'] / base['cps']:6.2f}" if base else "      "
    rss = " + ".join(f"{v:.0f}" for v in r["rss"])
    overall = " + ".join(f"{v:.0f}" for v in r["overall"])
    return f"{r['name']:<40} {r['chips']:>6} {r['cps']:8.1f} {ratio} {rss:>12} {overall:>12} {r['wall']:7.1f}"


def main():
    import torch
    tmp = tempfile.mkdtemp(prefix="bench-train-scale-")
    try:
        t0 = time.perf_counter()
        folders = make_folders(tmp)
        setup = time.perf_counter() - t0
        small, large = folders[BASE], folders[BASE * SCALE]
        runs = [measure(tmp, "held in memory (the old way), 0 workers", small, keep=True),
                measure(tmp, "streamed, 0 workers", small),
                measure(tmp, "streamed, 1 worker", small, workers=1),
                measure(tmp, "streamed, 2 workers", small, workers=2),
                measure(tmp, "streamed, 0 workers, 10x chips", large),
                measure(tmp, "held in memory, 10x chips", large, keep=True),
                measure(tmp, "torchrun 2 processes (gloo), streamed", small, processes=2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    held, streamed, big, big_held, two = runs[0], runs[1], runs[4], runs[5], runs[6]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; chips 256 px, "
          f"4 bands uint16; UNET/resnet18 light, batch 8 per process, 64 px crops, {STEPS} steps x {EPOCHS} epochs, "
          f"10% validation; setup {setup:.0f} s")
    print(f"{'run':<40} {'chips':>6} {'chips/s':>8} {'ratio':>6} {'RSS training':>12} {'RSS overall':>12} "
          f"{'wall s':>7}   (RSS: peak MiB per process)")
    for r in runs:
        print(row(r, held))
    print(f"peak RSS while training, 10x chips / 1x, streamed: {big['rss'][0] / streamed['rss'][0]:.3f} (target <= "
          f"1.2; overall {big['overall'][0] / streamed['overall'][0]:.3f}); held in memory: "
          f"{big_held['rss'][0] / held['rss'][0]:.3f} (overall {big_held['overall'][0] / held['overall'][0]:.3f})")
    best = max(runs[1:4], key=lambda r: r["cps"])
    print(f"chips/s, best streamed ({best['name']}) / held in memory: {best['cps'] / held['cps']:.3f} (target >= 1)")
    print(f"chips/s, 2 processes / 1 process: {two['cps'] / streamed['cps']:.3f} (2 cores: no speed-up expected); "
          f"peak RSS per process {' / '.join(f'{v:.0f}' for v in two['rss'])} MiB against {streamed['rss'][0]:.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child(sys.argv[2:]))
    main()
