"""Self-supervised pretraining on the user's own imagery (PRETRAIN_ON_RASTER minutes; 0, the default: none).

Before supervised training, a copy of the network with one output per input channel learns to fill in
masked squares of random crops (masked-image modelling): crops of the export's source raster, every pixel
of it, labelled or not; the chips' pixels when the source raster is gone or changed. No label is used and
nothing is downloaded. Its encoder and decoder then start supervised training; the class head (and the
per-pixel branch) start fresh. The minutes come before TIME_LIMIT's (which covers supervised training);
progress, ETA and cancel work as in training. Under torchrun, rank 0 pretrains and shares the weights.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..core.device import is_oom
from ..io.gdal_mask import valid_in
from ..model.registry import build_model
from . import distributed
from .augment import AUGMENTATION_NAMES, flip_and_turn
from .pretrained import load_matching

MASK_SQUARE = 8            # px side of the squares that are masked
MASK_SHARE = 0.5           # share of a crop's squares masked
HEAD_PREFIXES = ("segmentation_head", "pixel_branch")
LEARNING_RATE = 1e-3
WARMUP_STEPS = 20


class Crops:
    """Random normalised crops of the source raster(s) recorded by Export, else of the chips."""

    def __init__(self, data, transform, crop: int, seed: int):
        import rasterio
        self.data, self.transform, self.crop = data, transform, crop
        self.rng = np.random.default_rng(seed + 104729)
        self.rasters = []
        for src in data.sources:
            path = src.get("path")
            if isinstance(path, str) and os.path.isfile(path):
                try:
                    ds = rasterio.open(path)
                except rasterio.errors.RasterioError:       # damaged or unreadable: the chips stand in
                    continue
                if (ds.width, ds.height, ds.count) == (src.get("width"), src.get("height"), src.get("count")) \
                        and min(ds.width, ds.height) >= crop:
                    self.rasters.append(ds)
                else:
                    ds.close()
        self.chips = [c for c in data.chips if min(c.shape[1:]) >= crop] or list(data.chips)

    @property
    def described(self) -> str:
        if self.rasters:
            return "random crops of " + ", ".join(os.path.basename(ds.name) for ds in self.rasters)
        return f"random crops of the {len(self.chips)} chips (the source raster cannot be read)"

    def _one(self):
        from rasterio.windows import Window
        c, rng = self.crop, self.rng
        if self.rasters:
            ds = self.rasters[int(rng.integers(len(self.rasters)))]
            y, x = int(rng.integers(0, ds.height - c + 1)), int(rng.integers(0, ds.width - c + 1))
            window = Window(x, y, c, c)
            raw = ds.read(indexes=list(self.data.bands), window=window)
            valid = valid_in(ds, raw, window)
        else:
            chip = self.chips[int(rng.integers(len(self.chips)))]
            h, w = chip.shape[1:]
            ch, cw = min(c, h), min(c, w)
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            raw, valid = chip.read_image((y, x, ch, cw))
        image = self.transform.apply(raw, valid)
        image, _ = flip_and_turn(image, None, AUGMENTATION_NAMES, rng)
        out = np.zeros((image.shape[0], c, c), np.float32)
        out[:, :image.shape[1], :image.shape[2]] = image
        return out

    def batch(self, size: int) -> np.ndarray:
        return np.stack([self._one() for _ in range(size)])

    def masks(self, size: int) -> np.ndarray:
        """(size, 1, crop, crop) float: 1 where a square is masked."""
        n = -(-self.crop // MASK_SQUARE)
        squares = (self.rng.random((size, 1, n, n)) < MASK_SHARE).astype(np.float32)
        return squares.repeat(MASK_SQUARE, 2).repeat(MASK_SQUARE, 3)[:, :, :self.crop, :self.crop]

    def close(self) -> None:
        for ds in self.rasters:
            ds.close()


def pretrain_network(run) -> None:
    """PRETRAIN_ON_RASTER: self-supervised pretraining (rank 0; its weights shared), then its encoder and decoder
    into the network (pretrain.py)."""
    minutes = run.options.pretrain_on_raster
    if not minutes:
        return
    run.pretrained_until = 0.03 + 0.9 * minutes / (minutes + (run.options.time_limit or minutes))
    state = pretrain(run, minutes, run.progress.sub(0.03, run.pretrained_until)) if run.dist.main else None
    run.pretrained_state = distributed.share(run.dist, state)         # later members start from it too
    load_matching(run.model, run.pretrained_state, "self-supervised pretraining", run.progress)
    run.t_start = run.t_all = time.monotonic()   # TIME_LIMIT covers supervised training (of every member)


def pretrain(run, minutes: float, progress) -> dict:
    """The pretext network's encoder and decoder weights after ``minutes`` of pretraining."""
    import torch
    options, channels = run.options, run.transform.channels
    params = {k: v for k, v in run.params.items() if k != "pixel_branch"}
    net = build_model(run.model_type, run.backbone, channels, channels, **params).to(run.device).train()
    step = _Step(net, torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=options.arg("weight_decay")),
                 run.device, options.batch_size, progress)
    crops = Crops(run.data, run.transform, run.crop, options.seed)
    seconds, t0, losses = minutes * 60.0, time.monotonic(), []
    progress.log(f"Self-supervised pretraining for {minutes:g} min: the network learns to fill in masked "
                 f"{MASK_SQUARE} px squares of {crops.described}.")
    try:
        while not losses or time.monotonic() - t0 < seconds:
            progress.check_cancelled()
            losses.append(step(crops, len(losses)))
            elapsed = time.monotonic() - t0
            left = max(0.0, seconds - elapsed)
            progress.report(min(1.0, elapsed / seconds), f"pretraining step {len(losses)}, masked-pixel loss "
                            f"{np.mean(losses[-20:]):.3f}, ETA {int(left) // 60:02d}:{int(left) % 60:02d}")
    finally:
        crops.close()
    progress.log(f"Pretraining done: {len(losses)} steps, masked-pixel loss {np.mean(losses[:20]):.3f} at the start, "
                 f"{np.mean(losses[-20:]):.3f} at the end (0 would be a perfect fill-in; 1 is the band variance).")
    keep = ("encoder.",) if options.arg("pretrain_parts") == "encoder" else None
    return {k: v.detach().cpu() for k, v in net.state_dict().items()
            if not k.startswith(HEAD_PREFIXES) and (keep is None or k.startswith(keep))}


class _Step:
    """One pretext step: mean squared error on the masked pixels; on CUDA mixed precision with gradient
    scaling, and on out-of-memory the batch is halved and the step retried."""

    def __init__(self, net, optimizer, device, batch: int, progress):
        import torch
        self.net, self.optimizer, self.device, self.batch, self.progress = net, optimizer, device, batch, progress
        self.cuda = device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda)

    def __call__(self, crops, done: int) -> float:
        while True:
            try:
                return self._once(crops, done)
            except RuntimeError as e:
                if not (self.cuda and is_oom(e)) or self.batch <= 1:
                    raise
                import torch
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                self.batch //= 2
                self.progress.warn(f"CUDA out of memory while pretraining: batch halved to {self.batch}.")

    def _once(self, crops, done: int) -> float:
        import torch
        x = torch.from_numpy(crops.batch(self.batch)).to(self.device)
        m = torch.from_numpy(crops.masks(self.batch)).to(self.device)
        for g in self.optimizer.param_groups:       # a short warm-up, then a constant rate
            g["lr"] = LEARNING_RATE * min(1.0, (done + 1) / WARMUP_STEPS)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.cuda):
            out = self.net(x * (1 - m))
        loss = (((out.float() - x) ** 2) * m).sum() / (m.sum() * x.shape[1]).clamp_min(1.0)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())
