"""Training throughput (chips/s) of the real pipeline vs bare forward+backward on in-memory tensors.

Same network, batch, crop size and optimiser in one run; the ratio bare/pipeline shows what the data
pipeline (random labelled crops, augmentation, normalisation, progress, scheduler) costs.
Target: ratio <= 1.10 on 2 CPU cores.
"""
import os
import tempfile
import time

import numpy as np
import torch

from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples
from deep_pixel.io.synthetic import make_scene
from deep_pixel.io.vector import read_vector
from deep_pixel.model.registry import build_model
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions
from deep_pixel.train.step import SegmentationLoss

BATCH, CROP, STEPS, BACKBONE = 8, 64, 15, "resnet18"


def bare_throughput(in_channels, classes, params, steps):
    torch.manual_seed(0)
    model = build_model("UNET", BACKBONE, in_channels, classes, **params).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = SegmentationLoss(classes)
    x = torch.randn(BATCH, in_channels, CROP, CROP)
    y = torch.randint(0, classes, (BATCH, CROP, CROP))
    for k in range(steps + 3):
        if k == 3:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - t0)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(os.path.join(tmp, "scene"), 512, 512, seed=1)
        vec = read_vector(scene.samples)
        samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
        chips = os.path.join(tmp, "chips")
        export_training_data(scene.image, samples, chips, ExportOptions(tile_size_x=128, tile_size_y=128,
                                                                         stride_x=64, stride_y=64))
        options = TrainOptions(max_epochs=3, backbone=BACKBONE, batch_size=BATCH, learning_rate=2e-3,
                               stop_when_not_improving=False, device="cpu",
                               model_arguments={"chip_size": CROP, "steps_per_epoch": STEPS})
        t0 = time.perf_counter()
        result = train_model(chips, os.path.join(tmp, "model"), options)
        wall = time.perf_counter() - t0
        emd = result.log["settings"]
        params = {k: emd[k] for k in ("encoder_depth", "decoder_channels") if k in emd}
        pipeline = [e["chips_per_second"] for e in result.log["epochs"][1:]]   # epoch 1 warms up
        in_ch = result.model.encoder.conv1.in_channels if hasattr(result.model.encoder, "conv1") else 5
        bare = [bare_throughput(in_ch, len(result.summary["values"]), params, STEPS) for _ in range(2)]
    p, b = float(np.median(pipeline)), float(np.median(bare))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; UNET/{BACKBONE} "
          f"{'light' if params else 'default'} decoder, {in_ch} channels, batch {BATCH}, crop {CROP} px, "
          f"{STEPS} steps per epoch")
    print(f"{'measure':<44} {'chips/s':>8}")
    print(f"{'training pipeline (train_model, epochs 2-3)':<44} {p:8.2f}")
    print(f"{'bare forward+backward+AdamW, tensors in RAM':<44} {b:8.2f}")
    print(f"{'ratio bare / pipeline (target <= 1.10)':<44} {b / p:8.3f}")
    print(f"whole train_model wall time incl. reading, evaluation, package: {wall:.1f} s")


if __name__ == "__main__":
    main()
