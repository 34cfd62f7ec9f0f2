"""Training at scale: streamed chips (memory, speed) and 1 vs 2 processes (``python -m bench train_scale``).

One synthetic scene (deep_pixel.io.synthetic, 1024 x 1024 px, polygons everywhere) is laid out 4 x 4
times into a 4096 x 4096 px raster and exported once as 256 x 256 px chips (stride 128); the small
folder holds its first BASE chips, the large one 10x as many. Settings everywhere: UNET/resnet18,
light decoder, batch 8 per process, 64 px crops, fixed learning rate.

1. memory: whole training runs (``python -m deep_pixel train`` run in-process by this module's child
   mode; 1 epoch of STEPS steps, 10% validation chips, so both folders have a full validation batch;
   package with ONNX; 1 thread), each in a fresh process: peak RSS is its VmHWM (/proc/self/status)
   when training ends ("writing the model package") and at its end. By default a process holds its
   chips when their pixels take less than KEEP_PIXELS_BELOW (train/loop.py) and streams them
   otherwise; the rows force one way or the other too. 10x the chips should stay within 1.2x.
2. speed: one process trains one network and alternates, PASSES times, SPEED_STEPS steps from each
   source: chips held in memory, streamed with 0, 1 and 2 DataLoader workers (median chips/s; the
   alternation keeps a busy machine's load from favouring one source); and the time to make one
   example alone, held and streamed (what streaming costs, free of the machine's load).
3. processes: whole runs of 2 epochs (chips/s of epoch 2 from training_log.json, all processes
   together): one process (2 threads, then 1 thread) against torchrun --nproc_per_node 2 (gloo;
   torchrun gives each process OMP_NUM_THREADS=1); peak RSS per process.
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
BASE, SCALE, STEPS, COPIES = 80, 10, 16, 4
PASSES, SPEED_STEPS = 6, 6
SETTINGS = ["--backbone", "resnet18", "--batch-size", "8", "--learning-rate", "0.002", "--device", "cpu",
            "--no-early-stop", "--validation-percent", "10"]


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
    RSS (when training ends, and overall) to ``<report>.<rank>``."""
    report, args = argv[0], argv[1:]
    if os.environ.get("BENCH_BUDGET"):
        import deep_pixel.train.loop as loop
        loop.KEEP_PIXELS_BELOW = int(os.environ["BENCH_BUDGET"])
    from deep_pixel.cli.main import build_parser
    parsed = build_parser().parse_args(args)
    progress = PeakProgress()
    parsed._module.run(parsed, progress)
    peak = vmhwm_mib()
    with open(f"{report}.{os.environ.get('RANK', '0')}", "w") as f:
        json.dump({"training": progress.training or peak, "overall": peak}, f)
    return 0


def speed_child(argv) -> int:
    """``speed <chips folder> <report>``: chips/s of one network fed, in turn, from each source."""
    import torch

    from deep_pixel.chips.dataset import ChipLoader, training_keys
    from deep_pixel.chips.reader import read_chip_folders
    from deep_pixel.core.inputs import InputTransform
    from deep_pixel.model.registry import build_model
    from deep_pixel.train.augment import BatchMaker, augmentation_set, label_lut
    from deep_pixel.train.options import LIGHT_DECODER
    from deep_pixel.train.step import SegmentationLoss, Stepper
    folder, report = argv
    streamed, held = read_chip_folders([folder]), read_chip_folders([folder])
    held.keep()
    values = streamed.schema.values

    def maker(data):
        tf = InputTransform(data.band_stats["mean"], data.band_stats["std"], [[3, 2]])
        return BatchMaker(data.chips, tf, label_lut(values), 64, 16, augmentation_set("default"), 0.02)
    loaders = {"held in memory (the old way)": ChipLoader(maker(held), 0),
               "streamed, 0 workers": ChipLoader(maker(streamed), 0),
               "streamed, 1 worker": ChipLoader(maker(streamed), 1),
               "streamed, 2 workers": ChipLoader(maker(streamed), 2)}
    torch.manual_seed(0)
    model = build_model("UNET", "resnet18", 5, len(values), **LIGHT_DECODER).train()
    stepper = Stepper(model, torch.optim.AdamW(model.parameters(), lr=1e-3), SegmentationLoss(len(values)),
                      torch.device("cpu"), 8)
    speeds = {name: [] for name in loaders}
    names = list(loaders)
    for p in range(PASSES + 1):                      # pass 0 starts the workers and warms up
        for name in names[p % len(names):] + names[:p % len(names)]:
            keys = training_keys(np.random.default_rng(p).permutation(len(streamed.chips)).tolist(), 8,
                                 SPEED_STEPS, 0, p)
            t0, n = time.perf_counter(), 0
            for x, y in loaders[name].run(keys):
                stepper.step(lambda sub, x=x, y=y: (x[sub[0]:sub[-1] + 1], y[sub[0]:sub[-1] + 1]),
                             list(range(len(x))))
                n += len(x)
            if p:
                speeds[name].append(n / (time.perf_counter() - t0))
    for loader in loaders.values():
        loader.close()
    costs = {}
    for name, data in (("held", held), ("streamed", streamed)):       # one example, alone: the reading cost
        m, rng = maker(data), np.random.default_rng(0)
        t0 = time.perf_counter()
        for i in range(200):
            m.example(data.chips[i % len(data.chips)], rng)
        costs[name] = (time.perf_counter() - t0) / 200 * 1000
    with open(report, "w") as f:
        json.dump({"speeds": {k: float(np.median(v)) for k, v in speeds.items()}, "ms_per_example": costs}, f)
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
        width, height, size = src.width, src.height, src.width * src.res[0]
    profile.update(width=width * COPIES, height=height * COPIES)
    geoms, values = [], []
    with rasterio.open(big, "w", **profile) as dst:
        for qy in range(COPIES):
            for qx in range(COPIES):
                dst.write(data, window=rasterio.windows.Window(qx * width, qy * height, width, height))
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


def measure(tmp, name, chips, epochs, budget=None, processes=1, threads=None):
    """One training run in fresh process(es) -> {chips, chips/s of the last epoch, peak RSS per process, wall}."""
    out, report = os.path.join(tmp, "out", name), os.path.join(tmp, "reports", name)
    os.makedirs(os.path.dirname(report), exist_ok=True)
    args = ["train", "--input-training-data", chips, "--output-model", out, *SETTINGS, "--max-epochs", str(epochs),
            "--model-arguments", f"chip_size=64, steps_per_epoch={STEPS}, loader_workers=0"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    env = dict(os.environ, PYTHONPATH=ROOT, **({"BENCH_BUDGET": str(budget)} if budget is not None else {}),
               **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    t0 = time.perf_counter()
    proc = subprocess.run([*launcher, "-m", "bench.bench_train_scale", "child", report, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    log = json.load(open(os.path.join(out, "training_log.json")))
    peaks = [json.load(open(f"{report}.{r}")) for r in range(processes)]
    return {"name": name, "chips": log["training_chips"] + log["validation_chips"] + log["dropped_chips"],
            "pixels": len(os.listdir(os.path.join(chips, "images"))) * 256 * 256 * (4 * 2 + 2) / 2**20,
            "cps": log["epochs"][-1]["chips_per_second"], "rss": [p["training"] for p in peaks],
            "overall": [p["overall"] for p in peaks], "wall": wall}


def speeds(tmp, chips) -> dict:
    report = os.path.join(tmp, "speed.json")
    proc = subprocess.run([sys.executable, "-m", "bench.bench_train_scale", "speed", chips, report], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"speed failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.load(open(report))
    return result["speeds"], result["ms_per_example"]


def _mib(values):
    return " + ".join(f"{v:.0f}" for v in values)


def main():
    import torch

    from deep_pixel.train.loop import KEEP_PIXELS_BELOW
    tmp = tempfile.mkdtemp(prefix="bench-train-scale-")
    try:
        t0 = time.perf_counter()
        folders = make_folders(tmp)
        setup = time.perf_counter() - t0
        small, large = folders[BASE], folders[BASE * SCALE]
        memory = [measure(tmp, "default (held: below the budget)", small, 1, threads=1),
                  measure(tmp, "default, 10x (streamed)", large, 1, threads=1),
                  measure(tmp, "always streamed", small, 1, budget=0, threads=1),
                  measure(tmp, "always streamed, 10x", large, 1, budget=0, threads=1),
                  measure(tmp, "always held (the old way), 10x", large, 1, budget=1 << 62, threads=1)]
        fast, costs = speeds(tmp, small)
        procs = [measure(tmp, "1 process, 2 threads", small, 2), measure(tmp, "1 process, 1 thread", small, 2, threads=1),
                 measure(tmp, "torchrun, 2 processes x 1 thread (gloo)", small, 2, processes=2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} (other work "
          f"on the machine slows every row); chips 256 px, 4 bands uint16; UNET/resnet18 light, batch 8 per process, "
          f"64 px crops; setup {setup:.0f} s")
    print(f"\n1. memory: 1 epoch of {STEPS} steps, 10% validation, package written; 1 thread; default budget: "
          f"chips below {KEEP_PIXELS_BELOW / 2**20:.0f} MiB of pixels are held\n"
          f"{'run':<34} {'chips':>6} {'MiB of pixels':>13} {'peak RSS training':>18} {'peak RSS overall':>17} "
          f"{'wall s':>7}")
    for r in memory:
        print(f"{r['name']:<34} {r['chips']:>6} {r['pixels']:13.0f} {_mib(r['rss']):>18} {_mib(r['overall']):>17} "
              f"{r['wall']:7.1f}")
    d, d10, s, s10, h10 = (r["rss"][0] for r in memory)
    print(f"peak RSS, 10x chips / 1x (target <= 1.2): default {d10 / d:.3f}, always streamed {s10 / s:.3f}, "
          f"always held {h10 / d:.3f}")
    base = fast["held in memory (the old way)"]
    print(f"\n2. speed: median of {PASSES} alternating passes of {SPEED_STEPS} steps, {BASE} chips, one process, "
          "1 thread (2 threads on a busy 2-core machine measure the contention, see 3)\n"
          f"{'chips from':<32} {'chips/s':>8} {'ratio':>6}")
    for name, v in fast.items():
        print(f"{name:<32} {v:8.1f} {v / base:6.2f}")
    best = max((k for k in fast if k.startswith("streamed")), key=fast.get)
    print(f"best streamed ({best}) / held in memory: {fast[best] / base:.3f} (target >= 1)")
    print(f"making one example (64 px crop of a 256 px chip, augmented, normalised): held {costs['held']:.2f} ms, "
          f"streamed {costs['streamed']:.2f} ms (GDAL window read of the chip's one 256 px deflate block)")
    print(f"\n3. processes: 2 epochs of {STEPS} steps per process, chips/s of epoch 2 (all processes)\n"
          f"{'run':<40} {'chips/s':>8} {'ratio':>6} {'peak RSS per process':>21} {'wall s':>7}")
    for r in procs:
        print(f"{r['name']:<40} {r['cps']:8.1f} {r['cps'] / procs[0]['cps']:6.2f} {_mib(r['rss']):>21} "
              f"{r['wall']:7.1f}")
    print(f"chips/s, 2 processes / 1 process: {procs[2]['cps'] / procs[0]['cps']:.3f} (2 threads), "
          f"{procs[2]['cps'] / procs[1]['cps']:.3f} (1 thread); 2 cores: no speed-up expected")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("child", "speed"):
        sys.exit(child(sys.argv[2:]) if sys.argv[1] == "child" else speed_child(sys.argv[2:]))
    main()
