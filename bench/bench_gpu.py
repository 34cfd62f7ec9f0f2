"""The CUDA path, on a machine with a GPU (skipped without one): ``python -m bench gpu``.

Trains a small package on the GPU (checks the .onnx export from a CUDA model), then classifies a
dense 4096 x 4096 VRT mosaic: defaults (torch float16 autocast, channels_last, cudnn.benchmark,
batch sized from free memory), float32, and ONNX Runtime (its CUDA provider when installed);
class agreement with float32; the bare float16 forward on the same tiles; and a run with the GPU
capped to a small memory fraction so that out-of-memory batch halving is exercised.
Inputs: a chips folder and a GeoTIFF (DEEP_PIXEL_GPU_CHIPS, DEEP_PIXEL_GPU_IMAGE), or they are made
here with the synthetic scene generator (needs GDAL's Python bindings).
"""
import os
import tempfile
import time

import numpy as np


def inputs(tmp):
    chips, image = os.environ.get("DEEP_PIXEL_GPU_CHIPS"), os.environ.get("DEEP_PIXEL_GPU_IMAGE")
    if chips and image:
        return chips, image
    from bench.bench_classify import tiny_model
    tiny_model(tmp)
    from deep_pixel.io.synthetic import make_scene
    return os.path.join(tmp, "chips"), make_scene(os.path.join(tmp, "big"), 1024, 1024, seed=4).image


def classify_timed(image, emd, out, progress=None, **kw):
    import torch

    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    r = classify(image, emd, out, ClassifyOptions(device="cuda", **kw), progress)
    return time.perf_counter() - t0, r


def read(path):
    import rasterio
    with rasterio.open(path) as ds:
        return ds.read(1)


def main():
    import torch
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return
    from bench.bench_classify import mosaic
    from deep_pixel.core.progress import RecordingProgress
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        chips, image = inputs(tmp)
        t0 = time.perf_counter()
        trained = train_model([chips], os.path.join(tmp, "gpu_model"), TrainOptions(
            max_epochs=2, device="cuda", validation_percent=0, model_arguments={"steps_per_epoch": 5}))
        print(f"trained on CUDA in {time.perf_counter() - t0:.1f} s; package: {sorted(os.listdir(os.path.dirname(trained.emd_path)))}")
        emd = trained.emd_path
        dense = mosaic(image, os.path.join(tmp, "d4096.vrt"), 4, dense=True)
        mp = 4096 * 4096 / 1e6
        progress = RecordingProgress()
        classify_timed(dense, emd, os.path.join(tmp, "warm.tif"))
        runs = {}
        for name, kw in (("defaults", {}), ("float32", {"precision": "float32"}), ("float16", {"precision": "float16"}),
                         ("onnxruntime", {"runtime": "onnxruntime"})):
            p = RecordingProgress()
            try:
                seconds, r = classify_timed(dense, emd, os.path.join(tmp, name + ".tif"), p, **kw)
            except Exception as e:  # reported: one runtime missing must not hide the others
                print(f"{name}: failed: {type(e).__name__}: {e}")
                continue
            runs[name] = read(r.output_raster)
            lines = [m for m in p.messages if m.startswith(("Device", "Runtime", "4096", "Warning"))]
            print(f"{name}: {r.runtime} {r.precision}, {mp / seconds:.2f} MP/s, {seconds:.2f} s, tile {r.tile.tile}, "
                  f"overlap {r.overlap_factor:.3f}\n    " + "\n    ".join(lines))
        for name, classes in runs.items():
            print(f"agreement {name} vs float32: {(classes == runs['float32']).mean():.5f}; "
                  f"classes {np.unique(classes).tolist()}")
        bare(emd, 896, 16)
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(0.005)
        seconds, r = classify_timed(dense, emd, os.path.join(tmp, "small.tif"), progress, batch_size=64)
        warned = [m for m in progress.messages if "out of memory" in m]
        print(f"memory capped to 0.5%: finished in {seconds:.1f} s; OOM messages: {warned}; "
              f"agreement with defaults {(read(r.output_raster) == runs['defaults']).mean():.5f}")


def bare(emd, tile, batch):
    import torch

    from deep_pixel.classify.runtimes import TorchRuntime
    from deep_pixel.model.package import load_package
    dev = torch.device("cuda")
    pkg = load_package(emd)
    run = TorchRuntime(pkg.build(dev), dev, "float16")
    x = np.random.default_rng(0).normal(size=(batch, pkg.in_channels, tile, tile)).astype(np.float32)
    run(x)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        run(x)
    torch.cuda.synchronize()
    print(f"bare torch float16 forward (host to host): {5 * batch * tile * tile / 1e6 / (time.perf_counter() - t0):.1f} "
          f"MP/s, batch {batch} of {tile} px")


if __name__ == "__main__":
    main()
