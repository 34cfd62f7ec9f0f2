"""Train Model's defaults on CUDA on the three real scenes (skipped without a GPU): ``python -m bench gpu_quality``.

The quality bench's split and held-out pixels (bench_quality.py), trained, classified and scored on the GPU.
A GPU machine without GDAL's Python bindings (a plain CUDA image: rasterio's wheel alone) cannot read the
polygons, so the inputs can be prepared on a machine that has them and carried over:

    python -m bench.bench_gpu_quality prepare DIR      # here: each scene's chips and held-out reference raster
    DEEP_PIXEL_GPU_QUALITY=DIR python -m bench gpu_quality            # there

QUALITY_MINUTES is the TIME_LIMIT (default 1.5: the GPU reaches its plateau within it), QUALITY_SEEDS the seeds,
GPU_QUALITY_ARGUMENTS extra MODEL_ARGUMENTS as JSON (e.g. '{"chip_size": 256}' for whole chips).
"""
import json
import os
import shutil
import sys
import tempfile
import time

from bench import bench_quality as bq


def prepare(root):
    """Each scene's chips folder, held-out reference raster (0 = none) and test image under ``root``/scene."""
    import rasterio
    for name, scene in bq.SCENES.items():
        if not os.path.isfile(scene.train_image):
            continue
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        train_gpkg, test_gpkg, schema = bq.prepare(scene, folder)
        _, labels = bq.burn(test_gpkg, scene.class_field, scene.test_image, schema)
        with rasterio.open(scene.test_image) as ds:
            profile = dict(driver="GTiff", width=ds.width, height=ds.height, count=1, dtype="uint8", crs=ds.crs,
                           transform=ds.transform, nodata=0)
        with rasterio.open(os.path.join(folder, "reference.tif"), "w", **profile) as out:
            out.write(labels.astype("uint8"), 1)
        bq.chips(scene, train_gpkg, schema, folder)
        shutil.copy(scene.test_image, os.path.join(folder, "test.tif"))
        print(f"{name}: {int((labels > 0).sum())} held-out px", flush=True)


def score(folder, tmp, seed, arguments, device="cuda"):
    """(mIoU, OA, training seconds, epochs) of the defaults (with ``arguments``) on ``device`` for one prepared
    scene."""
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    from deep_pixel.evaluate.accuracy import EvaluateOptions, evaluate
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    minutes = float(os.environ.get("QUALITY_MINUTES", "1.5"))
    out = os.path.join(tmp, f"{os.path.basename(folder)}-{seed}")
    t0 = time.perf_counter()
    trained = train_model([os.path.join(folder, "chips")], os.path.join(out, "model"), TrainOptions(
        device=device, seed=seed, time_limit=minutes, model_arguments=arguments), bq.Printer())
    seconds = time.perf_counter() - t0
    classified = os.path.join(out, "classified.tif")
    classify(os.path.join(folder, "test.tif"), trained.emd_path, classified, ClassifyOptions(device=device))
    s = evaluate(classified, reference_raster=os.path.join(folder, "reference.tif"), options=EvaluateOptions()).summary
    return s["mean_iou"], s["overall_accuracy"], seconds, trained.epochs_run


def main():
    import torch
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return
    arguments = json.loads(os.environ.get("GPU_QUALITY_ARGUMENTS", "{}"))
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}; MODEL_ARGUMENTS {arguments or 'defaults'}")
    with tempfile.TemporaryDirectory() as tmp:
        root = os.environ.get("DEEP_PIXEL_GPU_QUALITY")
        if not root:
            root = os.path.join(tmp, "inputs")
            prepare(root)                       # needs GDAL's Python bindings and ../shared/data
        print(f"{'scene':10s} {'seed':>4s} {'mIoU':>6s} {'OA':>6s} {'train s':>8s} {'epochs':>6s}")
        for name in sorted(os.listdir(root)):
            for seed in bq.SEEDS:
                miou, oa, seconds, epochs = score(os.path.join(root, name), tmp, seed, arguments)
                print(f"{name:10s} {seed:4d} {miou:6.3f} {oa:6.3f} {seconds:8.1f} {epochs:6d}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, bq.ROOT)
    if sys.argv[1:2] == ["prepare"] and len(sys.argv) == 3:
        prepare(sys.argv[2])
    else:
        main()
