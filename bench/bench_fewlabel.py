"""The few-label loop, measured (``make bench-quality``; ``python -m bench fewlabel``).

A simulated user (an oracle that labels a window from the truth raster) runs ROUNDS rounds on two scenes,
adding the same number of labelled pixels per round from (a) Suggest Samples' windows (the model's most
uncertain, spread out, away from the labels) and (b) random windows (Suggest Samples on a flat uncertainty
raster: the same window rules, the order drawn from the seed), from the same starting labels and seeds.
Each round fine-tunes the previous round's package (TrainOptions.pretrained_model) for the dock's Retrain
default of 100 steps at learning rate 0.001 (in one epoch: each epoch costs an evaluation and a package
write; no time limit, so a busy machine gives the same numbers) and scores held-out pixels (mIoU) the
oracle never labels. About 8 minutes on a 2-core CPU.

- synthetic: the demo's scene generator (384 x 384 px, dense truth); the oracle labels only the left half
  (MASK_POLYGONS), the right half is scored; 2 starting squares per class.
- landsat: ../shared/data/landsat_tutorial; the truth is its labels raster (sparse: 718 px in 30 polygons).
  Per class, its patches (connected pixels of the labels raster) furthest east, a third of its pixels, are
  held out; the oracle labels only truth pixels of the other patches; the westernmost patch of each class
  is the start. Both strategies pick windows near those pixels (MASK_POLYGONS: the pool grown by 1.5
  windows); windows without unlabelled truth pixels give the oracle nothing and are passed over, by both;
  windows without any truth join the samples the next suggestions keep away from (a user would have
  labelled them), and suggestions are asked for again until the round's pixels are labelled.
  The scene is small: 382 px held out, 88 px to start, and of the pool's other 248 px only about 60-75 can be
  added in all (the rest lies next to labelled pixels or between windows, where no suggestion goes): 12 px
  a round, so both strategies end up labelling much the same pixels, and the start is already 59% of the
  final labels.

Writes docs/fewlabel.png (held-out mIoU against labelled pixels, both strategies, both scenes).
"""
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLOT = os.path.join(ROOT, "docs", "fewlabel.png")
ROUNDS = int(os.environ.get("FEWLABEL_ROUNDS", 5))
SCENES = os.environ.get("FEWLABEL_SCENES", "synthetic,landsat").split(",")
SEED = 0
TARGET = 0.6                  # uncertainty reaches random's final mIoU with at most this share of its pixels
# One epoch per training run: every epoch evaluates the chips and writes a package (seconds each on a CPU).
FIRST = dict(steps=150, lr=2e-3)    # the starting model: U-Net/resnet18, 150 steps of 8 x 64 px crops
ROUND = dict(steps=100, lr=1e-3)    # each round fine-tunes the previous package as the dock's Retrain does by
                                    # default (5 epochs x 20 steps at 0.001): 100 steps
SUGGESTIONS = 64                    # windows asked for at a time (picking is greedy: the first ones never change)


@dataclass
class Setup:
    name: str
    image: str
    truth: np.ndarray             # class values, 0 = unknown
    pool: np.ndarray              # bool: pixels the oracle may label
    heldout: np.ndarray           # bool: pixels scored, never labelled
    start: np.ndarray             # bool: labelled before the first round
    schema: object
    transform: object
    crs_wkt: str
    window: int                   # suggested window side, pixels
    budget: int                   # labelled pixels added per round
    mask: str | None = None       # polygons the windows must lie in
    flat: str = ""                # a constant uncertainty raster (random windows)


@dataclass
class Learner:
    strategy: str
    labelled: np.ndarray
    model: str
    history: list = field(default_factory=list)     # (labelled pixels, held-out mIoU)
    visited: np.ndarray | None = None               # windows the oracle looked at and found no truth in
    uncertainty: str = ""                           # the latest model's uncertainty raster


def _raster(path):
    import rasterio
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.crs.to_wkt(), ds.profile


def _rect_polygon(transform, c0, r0, c1, r1):
    from shapely.geometry import box
    x0, y0 = transform * (c0, r1)
    x1, y1 = transform * (c1, r0)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def synthetic_setup(tmp) -> Setup:
    from deep_pixel.io.synthetic import make_scene, write_samples_gpkg
    from deep_pixel.io.vector import read_vector
    scene = make_scene(os.path.join(tmp, "synthetic"), width=384, height=384, seed=11)
    truth, transform, crs, _ = _raster(scene.truth)
    half = truth.shape[1] // 2
    pool = np.zeros(truth.shape, bool)
    pool[:, :half] = True
    vec = read_vector(scene.samples)
    picked, seen = [], {}
    for g, v in zip(vec.geometries, vec.attributes["Classvalue"]):
        if seen.get(v, 0) < 2:
            seen[v] = seen.get(v, 0) + 1
            picked.append(g)
    start = _burn(picked, truth.shape, transform) & pool
    mask = os.path.join(tmp, "synthetic_left.gpkg")
    write_samples_gpkg(mask, [(_rect_polygon(transform, 0, 0, half, truth.shape[0]), 1)], crs)
    return Setup("synthetic", scene.image, truth, pool, ~pool, start, scene.schema, transform, crs, window=16,
                 budget=4 * 16 * 16, mask=mask)


def landsat_setup(tmp) -> Setup | None:
    from bench.real_models import DATA
    from deep_pixel.core.schema import ClassSchema
    folder = os.path.join(DATA, "landsat_tutorial")
    image, labels = os.path.join(folder, "LE70220491999322EDC01_stack.gtif"), os.path.join(folder, "training_data.gtif")
    if not os.path.isfile(labels):
        return None
    truth, transform, crs, _ = _raster(labels)
    train, test = patch_split(truth, transform)
    heldout = _burn(test, truth.shape, transform)
    pool = (truth > 0) & ~heldout
    start = _burn(list(train.values()), truth.shape, transform) & pool
    # The labels raster's values: 1 forest, 2 water, 3 herbaceous, 4 barren, 5 urban (checked against the polygons).
    schema = ClassSchema.from_records([{"Value": v, "Name": n} for v, n in
                                       enumerate(("forest", "water", "herbaceous", "barren", "urban"), 1)])
    setup = Setup("landsat", image, truth, pool, heldout & (truth > 0), start, schema, transform, crs, window=4,
                  budget=12)
    setup.mask = pool_mask(setup, os.path.join(tmp, "landsat_pool.gpkg"))
    return setup


def patch_split(truth, transform, held_out=1 / 3):
    """({class: its westernmost patch}, [held-out patches]): a patch is a class's connected pixels; per class the
    patches furthest east are held out until they hold a third of its pixels (the westernmost one never)."""
    from rasterio.features import shapes
    from shapely.geometry import shape
    patches = {}
    for g, v in shapes(truth, mask=truth > 0, transform=transform, connectivity=8):
        patches.setdefault(int(v), []).append(shape(g))
    first, test = {}, []
    for v, geoms in sorted(patches.items()):
        geoms.sort(key=lambda g: g.centroid.x)
        first[v] = geoms[0]
        total, held = sum(g.area for g in geoms), 0.0
        for g in reversed(geoms[1:]):
            if held >= held_out * total:
                break
            test.append(g)
            held += g.area
    return first, test


def pool_mask(setup, path):
    """Where the oracle can answer: the pool's pixels grown by 1.5 windows, so that the windows inside are near
    pool pixels (both strategies pick from it: the sparse truth knows nothing elsewhere)."""
    from rasterio.features import shapes
    from shapely.geometry import shape
    from shapely.ops import unary_union

    from deep_pixel.io.synthetic import write_samples_gpkg
    grow = 1.5 * setup.window * abs(setup.transform.a)
    parts = [shape(g).buffer(grow) for g, _ in shapes(setup.pool.astype(np.uint8), mask=setup.pool,
                                                      transform=setup.transform)]
    union = unary_union(parts)
    write_samples_gpkg(path, [(p, 1) for p in getattr(union, "geoms", [union])], setup.crs_wkt)
    return path


def _burn(geoms, shape, transform, touched=False):
    from rasterio.features import rasterize
    from shapely.geometry import mapping
    return rasterize([mapping(g) for g in geoms], out_shape=shape, transform=transform, all_touched=touched) > 0


def write_labels(setup, labelled, path):
    """The labelled truth pixels as polygons (one per connected patch of a class), as a user would draw them."""
    from rasterio.features import shapes
    from shapely.geometry import shape

    from deep_pixel.io.synthetic import write_samples_gpkg
    values = np.where(labelled, setup.truth, 0).astype(np.uint8)
    polygons = [(shape(g), int(v)) for g, v in shapes(values, mask=values > 0, transform=setup.transform)]
    write_samples_gpkg(path, polygons, setup.crs_wkt, setup.schema)
    return path


def train(setup, labelled, folder, pretrained=None) -> str:
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    vec = read_vector(write_labels(setup, labelled, os.path.join(folder, "labels.gpkg")))
    samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
    export_training_data(setup.image, samples, os.path.join(folder, "chips"),
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32), setup.schema)
    s = ROUND if pretrained else FIRST
    options = TrainOptions(max_epochs=1, time_limit=0, batch_size=8, learning_rate=s["lr"], device="cpu", seed=SEED,
                           validation_percent=0, stop_when_not_improving=False, pretrained_model=pretrained,
                           freeze_backbone=False, model_arguments={"chip_size": 64, "steps_per_epoch": s["steps"]},
                           **({} if pretrained else {"model_type": "UNET", "backbone": "resnet18"}))
    return train_model([os.path.join(folder, "chips")], os.path.join(folder, "model"), options).emd_path


def score(setup, model, folder) -> tuple:
    """(held-out mIoU, the uncertainty raster of the whole scene)."""
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    from deep_pixel.core.metrics import ConfusionMatrix
    out, unc = os.path.join(folder, "classes.tif"), os.path.join(folder, "uncertainty.tif")
    classify(setup.image, model, out, ClassifyOptions(device="cpu", output_uncertainty=unc))
    predicted = _raster(out)[0]
    cm = ConfusionMatrix(setup.schema.values)
    cm.add(np.where(setup.heldout, setup.truth, 0), predicted)
    return cm.summary()["mean_iou"], unc


def windows(setup, learner, draw, folder) -> list:
    """The windows (row, col, size) in the order the strategy offers them to the oracle (``draw``: the random
    strategy's seed)."""
    from deep_pixel.suggest.options import SuggestOptions
    from deep_pixel.suggest.run import suggest
    samples = write_seen(setup, learner, os.path.join(folder, f"seen_{draw}.gpkg"))
    flat = learner.strategy == "random"
    r = suggest(setup.image, input_uncertainty=setup.flat if flat else learner.uncertainty, input_samples=samples,
                options=SuggestOptions(number_of_suggestions=SUGGESTIONS, window_size=setup.window, mask_polygons=setup.mask,
                                       seed=SEED + draw if flat else SEED))
    return [(s.row, s.col, s.size) for s in r.suggestions]


def write_seen(setup, learner, path):
    """What the next suggestions keep away from: the labelled pixels and the windows where the oracle found no
    truth (a user would have labelled them; with sparse truth the oracle cannot)."""
    from rasterio.features import shapes
    from shapely.geometry import shape

    from deep_pixel.io.synthetic import write_samples_gpkg
    seen = (learner.labelled | learner.visited).astype(np.uint8)
    write_samples_gpkg(path, [(shape(g), 1) for g, _ in shapes(seen, mask=seen > 0, transform=setup.transform)],
                       setup.crs_wkt)
    return path


def label(setup, learner, offered, budget) -> int:
    """The oracle labels the pool pixels of the offered windows, in order, up to ``budget`` pixels."""
    added = 0
    for row, col, size in offered:
        if not setup.pool[row:row + size, col:col + size].any():
            learner.visited[row:row + size, col:col + size] = True      # nothing the oracle can label there
            continue
        new = setup.pool[row:row + size, col:col + size] & ~learner.labelled[row:row + size, col:col + size]
        take = np.flatnonzero(new)[:budget - added]
        if not take.size:
            continue
        rr, cc = np.unravel_index(take, new.shape)
        learner.labelled[row + rr, col + cc] = True
        added += take.size
        if added >= budget:
            break
    return added


def run_scene(setup, tmp) -> dict:
    """Both strategies' (labelled pixels, held-out mIoU) after the start and each round, from one starting model."""
    write_flat(setup, os.path.join(tmp, setup.name + "_flat.tif"))
    t0 = time.perf_counter()
    base = os.path.join(tmp, setup.name, "start")
    os.makedirs(base)
    model = train(setup, setup.start, base)
    miou, unc = score(setup, model, base)
    pixels = int(setup.start.sum())
    print(f"  {setup.name}: start {pixels} px, held-out mIoU {miou:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    learners = [Learner(s, setup.start.copy(), model, [(pixels, miou)], np.zeros_like(setup.start), unc)
                for s in ("uncertainty", "random")]
    for n in range(1, ROUNDS + 1):
        for lr in learners:
            added = play_round(setup, lr, n, os.path.join(tmp, setup.name, f"{lr.strategy}_{n}"))
            print(f"  {setup.name} round {n} {lr.strategy:11s}: +{added} px -> {lr.history[-1][0]} px, "
                  f"mIoU {lr.history[-1][1]:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {lr.strategy: lr.history for lr in learners} | {"seconds": time.perf_counter() - t0}


def play_round(setup, lr, n, folder) -> int:
    """Round ``n``: the oracle labels the strategy's windows, the model is fine-tuned and scored; pixels added."""
    os.makedirs(folder)
    added = 0
    for ask in range(20):               # sparse truth: ask again, past the windows seen, until the budget is met
        offered = windows(setup, lr, n * 100 + ask, folder)
        added += label(setup, lr, offered, setup.budget - added)
        if added >= setup.budget or not offered:
            break
    lr.model = train(setup, lr.labelled, folder, pretrained=lr.model)
    miou, lr.uncertainty = score(setup, lr.model, folder)
    lr.history.append((int(lr.labelled.sum()), miou))
    return added


def write_flat(setup, path):
    import rasterio
    _, _, _, profile = _raster(setup.image)
    profile.update(count=1, dtype="float32", nodata=-1, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, profile["height"], profile["width"]), 0.5, np.float32))
    setup.flat = path


def verdict(result) -> tuple:
    """(random's final mIoU, its pixels, uncertainty's first point reaching it or None, pixel ratio or None)."""
    pixels, final = result["random"][-1]
    reached = next(((p, m) for p, m in result["uncertainty"] if m >= final), None)
    return final, pixels, reached, (reached[0] / pixels if reached else None)


def verdict_line(r) -> str:
    final, pixels, reached, ratio = verdict(r)
    start = r["random"][0][1]
    if final <= start:
        return (f"random's final mIoU {final:.3f} ({pixels} px) is no better than the start's {start:.3f}: its labels "
                "did not help the model, so reaching it says nothing and the target cannot be judged on this scene")
    if reached is None:
        return (f"uncertainty did not reach random's final mIoU {final:.3f} ({pixels} px) within {ROUNDS} rounds "
                f"(best {max(m for _, m in r['uncertainty']):.3f}): target not met")
    met = "met" if ratio <= TARGET else "not met"
    return (f"uncertainty reached random's final mIoU {final:.3f} ({pixels} px) with {reached[0]} px: "
            f"{ratio:.0%} of its pixels (target <= {TARGET:.0%}: {met})")


def report(results):
    for name, r in results.items():
        print(f"\n{name} ({r['seconds']:.0f} s): held-out mIoU against labelled pixels")
        print(f"{'round':>5s} {'labelled px':>11s} {'uncertainty':>11s} {'random':>8s}")
        for n, ((p, mu), (_, mr)) in enumerate(zip(r["uncertainty"], r["random"])):
            print(f"{n:5d} {p:11d} {mu:11.3f} {mr:8.3f}")
        print(verdict_line(r))


def plot(results, path=PLOT):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not importable: no plot written to {path}")
        return
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.9), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items()):
        panel(ax, name, r)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nplot: {os.path.relpath(path, ROOT)}")


def panel(ax, name, r):
    """One scene: both strategies' mIoU against labelled pixels, random's final mIoU and the target's pixels."""
    for strategy, style in (("uncertainty", "o-"), ("random", "s--")):
        xs, ys = zip(*r[strategy])
        ax.plot(xs, ys, style, label=strategy)
    pixels, final = r["random"][-1]
    ax.axhline(final, color="grey", lw=0.7, ls=":", label="random's final mIoU")
    ax.axvline(TARGET * pixels, color="grey", lw=0.7, ls="-.", label=f"{TARGET:.0%} of random's pixels")
    ax.set_title(f"{name}: held-out mIoU")
    ax.set_xlabel("labelled pixels")
    ax.set_ylabel("mIoU")
    ax.grid(alpha=0.3)


def main():
    import torch
    # One thread: these small batches gain little from a second one, and with two a round took 10-20x longer
    # whenever another process shared the 2 cores (measured: 20 steps in 38 s against 4 s with one thread).
    torch.set_num_threads(1)
    results = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in SCENES:
            setup = {"synthetic": synthetic_setup, "landsat": landsat_setup}[name](tmp)
            if setup is None:
                print("landsat skipped: ../shared/data/landsat_tutorial is absent")
                continue
            print(f"{setup.name}: {ROUNDS} rounds of {setup.budget} px in {setup.window} px windows", flush=True)
            results[setup.name] = run_scene(setup, tmp)
    report(results)
    plot(results)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
