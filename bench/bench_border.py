"""How wide is a tile's unreliable border? (justifies Classify Pixels' default PADDING)

For each real scene, a model trained on it classifies the whole raster as one tile (the reference)
and then 160 px crops placed inside the raster on a grid of the network's multiple. For every crop
pixel we know its distance to the nearest crop border and whether its class differs from the
reference. The table gives the disagreement per distance band: beyond the effective border it
falls to the floor (what remains is the network's sensitivity to far-away context). The default
padding is the smallest multiple of the network's downsampling factor past which the disagreement
is at most 0.5% and within 2x the floor, on every scene. Models train 10 epochs: a briefly trained
Landsat model (4 epochs) disagreed with itself on 20-38% of the pixels at every distance, so no border
can be read off it.
"""
import os
import tempfile

import numpy as np

BANDS = [(0, 8), (8, 16), (16, 24), (24, 32), (32, 48), (48, 64), (64, 80)]
CROP = 160


def border_profile(emd, raster):
    import rasterio
    import torch

    from deep_pixel.classify.runtimes import TorchRuntime
    from deep_pixel.model.package import load_package
    pkg = load_package(emd)
    multiple = 2 ** int(pkg.model_params.get("encoder_depth", 5))
    run = TorchRuntime(pkg.build(torch.device("cpu")), torch.device("cpu"), "float32")
    with rasterio.open(raster) as ds:
        x = pkg.transform.apply(ds.read(pkg.bands))
    h, w = x.shape[1:]
    size = -(-max(h, w) // multiple) * multiple
    whole = np.pad(x, [(0, 0), (0, size - h), (0, size - w)], mode="symmetric")
    reference = run(whole[None])[0].argmax(0)[:h, :w]
    yy, xx = np.mgrid[0:CROP, 0:CROP]
    dist = np.minimum(np.minimum(yy, xx), np.minimum(CROP - 1 - yy, CROP - 1 - xx))
    wrong, count = np.zeros(len(BANDS)), np.zeros(len(BANDS))
    for y0 in range(multiple, h - CROP, 2 * multiple):
        for x0 in range(multiple, w - CROP, 2 * multiple):
            pred = run(x[None, :, y0:y0 + CROP, x0:x0 + CROP])[0].argmax(0)
            diff = pred != reference[y0:y0 + CROP, x0:x0 + CROP]
            for i, (a, b) in enumerate(BANDS):
                sel = (dist >= a) & (dist < b)
                wrong[i] += diff[sel].sum()
                count[i] += sel.sum()
    return wrong / np.maximum(count, 1), multiple


def effective_border(profile, multiple):
    floor = profile[-1]
    for i, (a, _b) in enumerate(BANDS):
        if a % multiple == 0 and all(p <= max(0.005, 2 * floor) for p in profile[i:]):
            return a
    return BANDS[-1][0]


def main():
    import torch
    torch.set_num_threads(2)
    from bench.real_models import SCENES, available, train_scene_model
    if not available():
        print("skipped: the real scenes in ../shared/data are absent")
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"Disagreement with the whole-raster prediction, by distance to a {CROP} px crop's border")
        print(f"{'scene':10s} " + " ".join(f"{f'{a}-{b} px':>9s}" for a, b in BANDS) + "  effective border")
        for name in SCENES:
            emd, raster = train_scene_model(name, os.path.join(tmp, name), epochs=10)
            profile, multiple = border_profile(emd, raster)
            print(f"{name:10s} " + " ".join(f"{100 * p:8.2f}%" for p in profile)
                  + f"  {effective_border(profile, multiple)} px (multiple {multiple})", flush=True)


if __name__ == "__main__":
    main()
