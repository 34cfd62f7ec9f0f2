"""Model quality on the three real scenes: Deep Pixel's defaults vs per-pixel random forests (``make bench-quality``).

Scenes (../shared/data; its README): the Landsat tutorial (30 m, 8 bands, 30 polygons), the Sentinel-2
Aberystwyth scene (10 m, 10 bands, 40 polygons) and the New Brunswick aerial clips (0.5 m RGB, 42 polygons).
Spatial splits: Landsat and Sentinel-2, per class the eastern third of the polygons is held out (no held-out
pixel is next to a training pixel of the same polygon); aerial, the source project's split: train on tile
1of2, score on every polygon pixel of tile 2of2. Every method learns from the same training pixels and is
scored on the same held-out pixels with the same metric code.

- random forest (scikit-learn, 200 trees) on the raw bands of each pixel (the SCP/dzetsaka-style baseline),
  and on the bands plus their 5x5 local mean and standard deviation (texture: a stronger baseline);
- Deep Pixel: Export Training Data -> Train Model -> Classify Pixels -> Compute Accuracy, engine defaults
  except the variant's training options (QUALITY_VARIANTS, comma-separated names of VARIANTS; default:
  before,defaults).

QUALITY_SCENES picks scenes (landsat,aber_s2,nb_aerial). Each variant's row gives held-out mIoU, overall
accuracy, training seconds and epochs; the last table compares each variant with ``before`` (the defaults
before issue 16) per scene.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the real scenes: ../shared/data beside the checkout, or DEEP_PIXEL_DATA (a copy carried to a GPU machine)
DATA = os.environ.get("DEEP_PIXEL_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")
DEVICE = os.environ.get("QUALITY_DEVICE", "cpu")    # cuda: the same defaults on a GPU (mixed precision, whole chips)

# Training options of each variant (TrainOptions keyword arguments; model_arguments as a dict).
VARIANTS = {
    "before": dict(max_epochs=20, time_limit=0, pretrain_on_raster=0, model_arguments={"anneal_epochs": 0, "min_improvement": 0,
                                                                 "semi_supervised": False, "pixel_branch": 0,
                                                                 "patience": 5, "normalise": "chips",
                                                                 "ndvi": False, "ndwi": False}),
    "schedule": dict(pretrain_on_raster=0, model_arguments={"semi_supervised": False}),
    # the defaults of stop 19 (TIME_LIMIT 5, patience 5, no per-pixel branch, no pretraining)
    "semi_only": dict(time_limit=5, pretrain_on_raster=0, model_arguments={"pixel_branch": 0, "patience": 5}),
    "defaults": {},
}
# Step-based variants (the same steps on any machine, so a busy machine does not change them): ablations.
ABLATIONS = {
    "long": dict(max_epochs=40, time_limit=0, model_arguments={"semi_supervised": False}),
    "long_semi": dict(max_epochs=40, time_limit=0),
    "no_indices": dict(model_arguments={"ndvi": False, "ndwi": False}),
    "chip_stats": dict(model_arguments={"normalise": "chips"}),
    "tta": {},                    # defaults, classified with test-time augmentation
    "average": dict(model_arguments={"average_epochs": 1.0}),      # the running average of the weights
    "pretrain": dict(pretrain_on_raster=2.0),                      # 2 min of self-supervised pretraining
    "members3": dict(model_arguments={"members": 3}),              # 3 networks averaged, TIME_LIMIT shared
}
VARIANTS.update(ABLATIONS)
MINUTES = os.environ.get("QUALITY_MINUTES")       # TIME_LIMIT of the variants that do not set it (default: the engine's)
# Training seeds of each variant (QUALITY_SEEDS=0,1,2): single runs on these small scenes differ by up to
# 0.1 mIoU from seed to seed, so comparisons use the mean over seeds.
SEEDS = [int(x) for x in os.environ.get("QUALITY_SEEDS", "0").split(",") if x.strip()]
SEED_MIOU = {}                # (scene, variant) -> held-out mIoU of each seed


def variant_options(name, seed=0):
    from deep_pixel.train.options import TrainOptions
    kw = dict(VARIANTS[name])
    if MINUTES and "time_limit" not in kw:
        kw["time_limit"] = float(MINUTES)
    return TrainOptions(device=DEVICE, seed=seed, **kw)


@dataclass
class Scene:
    name: str
    train_image: str
    test_image: str
    polygons: str
    class_field: str
    tile: int                     # Export's chip size (stride half of it)
    split: str                    # "east": eastern third per class held out; "tiles": train/test images


SCENES = {
    "landsat": Scene("landsat", *[os.path.join(DATA, "landsat_tutorial", "LE70220491999322EDC01_stack.gtif")] * 2,
                     os.path.join(DATA, "landsat_tutorial", "training_data.shp"), "class", 64, "east"),
    "aber_s2": Scene("aber_s2", *[os.path.join(DATA, "aber_s2", "sen2_20210527_aber.tif")] * 2,
                     os.path.join(DATA, "aber_s2", "training_polygons.gpkg"), "Classvalue", 256, "east"),
    "nb_aerial": Scene("nb_aerial", os.path.join(DATA, "nb_aerial", "23322E759967N_clipped_1m_1of2.tif"),
                       os.path.join(DATA, "nb_aerial", "23322E759967N_clipped_1m_2of2.tif"),
                       os.path.join(DATA, "nb_aerial", "training_polygons.gpkg"), "Classvalue", 256, "tiles"),
}


def east_split(vec, class_field, held_out=1 / 3):
    """(train indices, test indices): per class, the eastern third of its polygons is held out."""
    train, test = [], []
    classes = {}
    for i, v in enumerate(vec.attributes[class_field]):
        classes.setdefault(v, []).append(i)
    for _name, idx in sorted(classes.items(), key=lambda kv: str(kv[0])):
        idx = sorted(idx, key=lambda i: vec.geometries[i].centroid.x)
        n_test = max(1, round(len(idx) * held_out)) if len(idx) > 1 else 0
        train += idx[: len(idx) - n_test]
        test += idx[len(idx) - n_test:]
    return sorted(train), sorted(test)


def write_subset(vec, indices, path, class_field):
    from osgeo import ogr, osr
    values = [vec.attributes[class_field][i] for i in indices]
    numeric = all(isinstance(v, int) for v in values)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(vec.crs_wkt)
    layer = ds.CreateLayer("polygons", srs, ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn(class_field, ogr.OFTInteger if numeric else ogr.OFTString))
    for i, v in zip(indices, values):
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField(class_field, v if numeric else str(v))
        f.SetGeometry(ogr.CreateGeometryFromWkb(vec.geometries[i].wkb))
        layer.CreateFeature(f)
    ds = None
    return path


def burn(path, class_field, image, schema):
    """The polygons of ``path`` burnt onto ``image``'s grid as class values (0 elsewhere) and the image's bands."""
    import rasterio
    from rasterio.transform import array_bounds

    from deep_pixel.export.samples import LabelBurner, Samples, resolve_class_values
    from deep_pixel.io.vector import read_vector
    vec = read_vector(path)
    values, _, _ = resolve_class_values(vec.attributes[class_field], schema)
    with rasterio.open(image) as ds:
        bands = ds.read().astype(np.float64)
        shape, transform, crs = ds.shape, ds.transform, ds.crs.to_wkt()
    burner = LabelBurner(Samples(vec.geometries, values, vec.crs_wkt), crs)
    labels = burner.burn(transform, shape, tuple(array_bounds(shape[0], shape[1], transform))).astype(np.int64)
    return bands, labels


def texture(bands, size=5):
    """Local mean and standard deviation of every band in a size x size window."""
    from numpy.lib.stride_tricks import sliding_window_view
    pad = size // 2
    x = np.pad(bands.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    win = sliding_window_view(x, (size, size), axis=(1, 2))
    return np.concatenate([win.mean(axis=(-1, -2)), win.std(axis=(-1, -2))])


def random_forest(train, test, seed=0):
    """(predicted, reference, seconds): train = (features, labels) of the training image, test likewise."""
    from sklearn.ensemble import RandomForestClassifier
    (ftr, ltr), (fte, lte) = train, test
    tr, te = ltr.ravel() > 0, lte.ravel() > 0
    t0 = time.perf_counter()
    rf = RandomForestClassifier(n_estimators=200, n_jobs=2, random_state=seed)
    rf.fit(ftr.reshape(ftr.shape[0], -1).T[tr], ltr.ravel()[tr])
    seconds = time.perf_counter() - t0
    return rf.predict(fte.reshape(fte.shape[0], -1).T[te]), lte.ravel()[te], seconds


def score(values, reference, predicted):
    from deep_pixel.core.metrics import ConfusionMatrix
    cm = ConfusionMatrix(values)
    cm.add(reference, predicted)
    s = cm.summary()
    return s["mean_iou"], s["overall_accuracy"]


def prepare(scene, tmp):
    """(training polygons file, held-out polygons file, class schema) of the scene's split."""
    from deep_pixel.export.samples import resolve_class_values
    from deep_pixel.io.vector import read_vector
    vec = read_vector(scene.polygons)
    _, schema, _ = resolve_class_values(vec.attributes[scene.class_field])
    if scene.split == "tiles":
        return scene.polygons, scene.polygons, schema
    train_idx, test_idx = east_split(vec, scene.class_field)
    return (write_subset(vec, train_idx, os.path.join(tmp, "train.gpkg"), scene.class_field),
            write_subset(vec, test_idx, os.path.join(tmp, "test.gpkg"), scene.class_field), schema)


def chips(scene, train_gpkg, schema, tmp):
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples, resolve_class_values
    from deep_pixel.io.vector import read_vector
    vec = read_vector(train_gpkg)
    values, _, _ = resolve_class_values(vec.attributes[scene.class_field], schema)
    folder = os.path.join(tmp, "chips")
    t = scene.tile
    export_training_data(scene.train_image, Samples(vec.geometries, values, vec.crs_wkt), folder,
                         ExportOptions(tile_size_x=t, tile_size_y=t, stride_x=t // 2, stride_y=t // 2), schema)
    return folder


def network(scene, folder, test_gpkg, variant, tmp, seed=0):
    """(mIoU, OA, training seconds, epochs run) of one variant's model (one seed) on the held-out polygons."""
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    from deep_pixel.evaluate.accuracy import EvaluateOptions, evaluate
    from deep_pixel.train.loop import train_model
    out = os.path.join(tmp, f"{variant}-{seed}")
    t0 = time.perf_counter()
    result = train_model([folder], os.path.join(out, "model"), variant_options(variant, seed), Printer())
    seconds = time.perf_counter() - t0
    classified = os.path.join(out, "classified.tif")
    classify(scene.test_image, result.emd_path, classified,
             ClassifyOptions(device=DEVICE, test_time_augmentation=variant == "tta"))
    r = evaluate(classified, test_gpkg, options=EvaluateOptions(class_field=scene.class_field))
    return r.summary["mean_iou"], r.summary["overall_accuracy"], seconds, result.epochs_run


def Printer():
    """Training's log lines on the console when QUALITY_VERBOSE is set."""
    from deep_pixel.core.progress import Progress

    class _Printer(Progress):
        def log(self, message):
            if os.environ.get("QUALITY_VERBOSE"):
                print("   ", message, flush=True)

        warn = log
    return _Printer()


def run_scene(scene, variants) -> list:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_gpkg, test_gpkg, schema = prepare(scene, tmp)
        train = burn(train_gpkg, scene.class_field, scene.train_image, schema)
        test = burn(test_gpkg, scene.class_field, scene.test_image, schema)
        print(f"\n{scene.name}: {int((train[1] > 0).sum())} training px, {int((test[1] > 0).sum())} held-out px",
              flush=True)
        for name, feats in (("random forest, raw bands", lambda b: b),
                            ("random forest, bands + 5x5 mean/std", lambda b: np.concatenate([b, texture(b)]))):
            pred, ref, secs = random_forest((feats(train[0]), train[1]), (feats(test[0]), test[1]))
            rows.append((scene.name, name, *score(schema.values, ref, pred), secs, ""))
            _print(rows[-1])
        folder = chips(scene, train_gpkg, schema, tmp)
        for variant in variants:
            runs = [network(scene, folder, test_gpkg, variant, tmp, seed) for seed in SEEDS]
            for seed, run in zip(SEEDS, runs):
                if len(SEEDS) > 1:
                    _print((scene.name, f"  {variant}, seed {seed}", *run))
            SEED_MIOU[(scene.name, variant)] = [r[0] for r in runs]
            miou, oa, secs = (float(np.mean([r[i] for r in runs])) for i in range(3))
            epochs = "/".join(str(r[3]) for r in runs)
            label = f"Deep Pixel: {variant}" + (f" (mean of {len(SEEDS)} seeds)" if len(SEEDS) > 1 else "")
            rows.append((scene.name, label, miou, oa, secs, epochs))
            _print(rows[-1])
    return rows


def _print(row):
    scene, method, miou, oa, secs, epochs = row
    print(f"{scene:10s} {method:48s} {miou:6.3f} {oa:6.3f} {secs:8.1f} {epochs!s:>9s}", flush=True)


def difference(scene, variant):
    """(variant's mean mIoU - before's, its standard error from the seeds' spread; nan with one seed)."""
    a, b = SEED_MIOU.get((scene, variant), []), SEED_MIOU.get((scene, "before"), [])
    if not a or not b:
        return np.nan, np.nan
    se = np.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)) if min(len(a), len(b)) > 1 else np.nan
    return float(np.mean(a) - np.mean(b)), float(se)


def compare(rows, variants):
    """Each variant's mIoU minus ``before``'s, per scene, with its standard error over the seeds: a
    difference within about two standard errors is not one that the seeds can tell from noise."""
    if "before" not in variants:
        return
    scenes = sorted({r[0] for r in rows})
    print(f"\n{'variant':20s} " + " ".join(f"{s:>16s}" for s in scenes) + "  (mIoU - before, +- standard error)")
    for v in [v for v in variants if v != "before"]:
        cells = [difference(s, v) for s in scenes]
        print(f"{v:20s} " + " ".join(f"{d:+8.3f} +- {se:5.3f}" for d, se in cells))


def main():
    names = [s for s in os.environ.get("QUALITY_SCENES", ",".join(SCENES)).split(",") if s]
    variants = [v for v in os.environ.get("QUALITY_VARIANTS", "before,defaults").split(",") if v]
    scenes = [SCENES[n] for n in names if os.path.isfile(SCENES[n].train_image)]
    if not scenes:
        print(f"skipped: the real data folder {DATA} is absent (../shared/data beside the checkout)")
        return
    print(f"{'scene':10s} {'method':48s} {'mIoU':>6s} {'OA':>6s} {'train s':>8s} {'epochs':>9s}")
    rows = [r for scene in scenes for r in run_scene(scene, variants)]
    compare(rows, variants)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
