"""Model quality on real data: the Deep Pixel workflow vs a per-pixel random forest (``make bench-quality``).

Data: ../shared/data/landsat_tutorial (Landsat 7, 250 x 250 px, 30 polygons in 5 classes).
Split: per class, the polygons are ordered west to east and the eastern third is held out (a spatial
split: no held-out pixel is next to a training pixel of the same polygon). Both methods train on the
same training-polygon pixels and are scored on the same held-out pixels with the same metric code.

- network: Export Training Data -> Train Model (the engine's defaults) -> Classify Pixels, scored by
  Compute Accuracy against the held-out polygons;
- random forest (scikit-learn, 200 trees) on the raw bands of each pixel (the SCP/dzetsaka-style
  baseline), and on the bands plus 5x5 local mean and standard deviation (a stronger baseline).
"""
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "landsat_tutorial")
IMAGE = os.path.join(DATA, "LE70220491999322EDC01_stack.gtif")
POLYGONS = os.path.join(DATA, "training_data.shp")


def spatial_split(vec, class_field="class", held_out=1 / 3):
    """(train indices, test indices): per class, the eastern third of its polygons is held out."""
    train, test = [], []
    classes = {}
    for i, v in enumerate(vec.attributes[class_field]):
        classes.setdefault(v, []).append(i)
    for _name, idx in sorted(classes.items()):
        idx = sorted(idx, key=lambda i: vec.geometries[i].centroid.x)
        n_test = max(1, round(len(idx) * held_out)) if len(idx) > 1 else 0
        train += idx[: len(idx) - n_test]
        test += idx[len(idx) - n_test:]
    return sorted(train), sorted(test)


def write_subset(vec, indices, path, class_field="class"):
    from osgeo import ogr, osr
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromWkt(vec.crs_wkt)
    layer = ds.CreateLayer("polygons", srs, ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn(class_field, ogr.OFTString))
    for i in indices:
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField(class_field, str(vec.attributes[class_field][i]))
        f.SetGeometry(ogr.CreateGeometryFromWkb(vec.geometries[i].wkb))
        layer.CreateFeature(f)
    ds = None
    return path


def burn(vec, indices, schema, shape, transform, crs_wkt):
    from deep_pixel.export.samples import LabelBurner, Samples
    values = [schema.by_name(str(vec.attributes["class"][i])).value for i in indices]
    burner = LabelBurner(Samples([vec.geometries[i] for i in indices], values, vec.crs_wkt), crs_wkt)
    from rasterio.transform import array_bounds
    b = array_bounds(shape[0], shape[1], transform)
    return burner.burn(transform, shape, (b[0], b[1], b[2], b[3])).astype(np.int64)


def texture(bands, size=5):
    """Local mean and standard deviation of every band in a size x size window."""
    from numpy.lib.stride_tricks import sliding_window_view
    pad = size // 2
    x = np.pad(bands.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    win = sliding_window_view(x, (size, size), axis=(1, 2))
    return np.concatenate([win.mean(axis=(-1, -2)), win.std(axis=(-1, -2))])


def random_forest(features, train_labels, test_labels, seed=0):
    from sklearn.ensemble import RandomForestClassifier
    f = features.reshape(features.shape[0], -1).T
    tr = train_labels.ravel() > 0
    t0 = time.perf_counter()
    rf = RandomForestClassifier(n_estimators=200, n_jobs=2, random_state=seed)
    rf.fit(f[tr], train_labels.ravel()[tr])
    seconds = time.perf_counter() - t0
    te = test_labels.ravel() > 0
    return rf.predict(f[te]), test_labels.ravel()[te], seconds


def score(values, reference, predicted):
    from deep_pixel.core.metrics import ConfusionMatrix
    cm = ConfusionMatrix(values)
    cm.add(reference, predicted)
    s = cm.summary()
    return s["mean_iou"], s["overall_accuracy"]


def network(tmp, train_gpkg, test_gpkg, options):
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    from deep_pixel.evaluate.accuracy import EvaluateOptions, evaluate
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples, resolve_class_values
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.loop import train_model
    vec = read_vector(train_gpkg)
    values, schema, _ = resolve_class_values(vec.attributes["class"])
    export_training_data(IMAGE, Samples(vec.geometries, values, vec.crs_wkt), os.path.join(tmp, "chips"),
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32), schema)
    t0 = time.perf_counter()
    result = train_model([os.path.join(tmp, "chips")], os.path.join(tmp, "model"), options)
    seconds = time.perf_counter() - t0
    out = os.path.join(tmp, "classified.tif")
    classify(IMAGE, result.emd_path, out, ClassifyOptions(device="cpu", test_time_augmentation=True))
    r = evaluate(out, test_gpkg, options=EvaluateOptions(class_field="class"))
    return r.summary["mean_iou"], r.summary["overall_accuracy"], seconds, result


def main():
    if not os.path.isfile(IMAGE):
        print(f"skipped: the real data folder {DATA} is absent (../shared/data beside the checkout)")
        return
    import rasterio

    from deep_pixel.export.samples import resolve_class_values
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.options import TrainOptions
    vec = read_vector(POLYGONS)
    _, schema, _ = resolve_class_values(vec.attributes["class"])
    train_idx, test_idx = spatial_split(vec)
    with rasterio.open(IMAGE) as ds:
        bands = ds.read().astype(np.float64)
        shape, transform, crs = ds.shape, ds.transform, ds.crs.to_wkt()
    train_lab = burn(vec, train_idx, schema, shape, transform, crs)
    test_lab = burn(vec, test_idx, schema, shape, transform, crs)
    print(f"Landsat tutorial scene 250 x 250 px, 8 bands; {len(train_idx)} training polygons "
          f"({int((train_lab > 0).sum())} px), {len(test_idx)} held-out polygons ({int((test_lab > 0).sum())} px)")
    rows = []
    pred, ref, secs = random_forest(bands, train_lab, test_lab)
    rows.append(("random forest, raw bands", *score(schema.values, ref, pred), secs))
    pred, ref, secs = random_forest(np.concatenate([bands, texture(bands)]), train_lab, test_lab)
    rows.append(("random forest, bands + 5x5 mean/std", *score(schema.values, ref, pred), secs))
    with tempfile.TemporaryDirectory() as tmp:
        train_gpkg = write_subset(vec, train_idx, os.path.join(tmp, "train.gpkg"))
        test_gpkg = write_subset(vec, test_idx, os.path.join(tmp, "test.gpkg"))
        options = TrainOptions(device="cpu", seed=0)
        miou, oa, secs, result = network(tmp, train_gpkg, test_gpkg, options)
        rows.append((f"Deep Pixel (defaults: {'/'.join(options.network())}, {result.epochs_run} epochs, "
                     "TTA)", miou, oa, secs))
    base = rows[0][3]
    print(f"{'method':58s} {'mIoU':>6s} {'OA':>6s} {'train s':>8s} {'time / RF':>9s}")
    for name, miou, oa, secs in rows:
        print(f"{name:58s} {miou:6.3f} {oa:6.3f} {secs:8.1f} {secs / base:9.1f}")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
