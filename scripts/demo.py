"""``make demo``: the whole workflow on a bundled default scene, through scripts/qgis_process.

A realistic synthetic landscape (made by deep_pixel.io.synthetic) with polygons digitised on its left
half; export -> train -> classify -> compute accuracy on the held-out right half. Outputs go to
demo_output/ (or the folder given as the first argument).
"""
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deep_pixel.io.synthetic import make_scene  # noqa: E402

QGIS_PROCESS = os.path.join(ROOT, "scripts", "qgis_process")


def qgis_process(alg, **params):
    args = [QGIS_PROCESS, "run", alg, "--json", "--"] + [f"{k}={v}" for k, v in params.items()]
    print(f"\n$ scripts/qgis_process run {alg} -- " + " ".join(f"{k}={v}" for k, v in params.items()), flush=True)
    t = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{alg} failed (exit {proc.returncode})")
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    print(f"  done in {time.monotonic() - t:.1f} s", flush=True)
    return out["results"]


def available():
    out = subprocess.run([QGIS_PROCESS, "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip().startswith("deeppixel:")}


def main():
    out_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "demo_output"))
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    scene = make_scene(os.path.join(out_dir, "scene"), width=512, height=512, seed=7, train_fraction=0.5)
    print(f"Scene: {scene.image} (512 x 512 px, 4 bands), samples: {scene.samples}")
    algs = available()
    chips = os.path.join(out_dir, "chips")
    schema_path = os.path.join(out_dir, "scene", "classes.json")
    scene.schema.save(schema_path)            # class names and colours for the chips, model and output
    res = qgis_process("deeppixel:exporttrainingdata", INPUT_RASTER=scene.image, INPUT_SAMPLES=scene.samples,
                       CLASS_FIELD="Classvalue", CLASS_SCHEMA=schema_path, TILE_SIZE_X=64, TILE_SIZE_Y=64, STRIDE_X=32, STRIDE_Y=32,
                       OUTPUT_FOLDER=chips)
    print(f"  {res['NUM_CHIPS']} chips in {chips}")
    summary = {"chips": chips}
    if "deeppixel:trainmodel" in algs:
        model_dir = os.path.join(out_dir, "model")
        res = qgis_process("deeppixel:trainmodel", INPUT_TRAINING_DATA=chips, OUTPUT_MODEL=model_dir,
                           MAX_EPOCHS=int(os.environ.get("DEMO_EPOCHS", 12)), BACKBONE="resnet18",
                           BATCH_SIZE=16, LEARNING_RATE=0.002, SEED=0, MODEL_ARGUMENTS="steps_per_epoch=12")
        emd = os.path.join(model_dir, "model.emd")
        summary["model"] = emd
        print(f"  model: {emd}")
        if "deeppixel:classifypixels" in algs:
            classified = os.path.join(out_dir, "classified.tif")
            qgis_process("deeppixel:classifypixels", INPUT_RASTER=scene.image, MODEL_DEFINITION=emd,
                         OUTPUT_RASTER=classified)
            summary["classified"] = classified
            write_quicklook(scene, classified, os.path.join(out_dir, "quicklook.png"))
            summary["quicklook"] = os.path.join(out_dir, "quicklook.png")
            if "deeppixel:computeaccuracy" in algs:
                held_out = held_out_reference(scene, os.path.join(out_dir, "held_out_truth.tif"))
                res = qgis_process("deeppixel:computeaccuracy", INPUT_CLASSIFIED=classified,
                                   REFERENCE_RASTER=held_out,
                                   OUTPUT_REPORT=os.path.join(out_dir, "accuracy.html"))
                summary["accuracy_report"] = os.path.join(out_dir, "accuracy.html")
                print(f"\nHeld-out accuracy (right half, never labelled): overall accuracy "
                      f"{res['OVERALL_ACCURACY']:.3f}, kappa {res['KAPPA']:.3f}, mIoU {res['MEAN_IOU']:.3f}")
    print("\nOutputs:")
    for k, v in summary.items():
        print(f"  {k:16s} {v}")


def held_out_reference(scene, path):
    """The true classes on the right part of the scene only (0 on the part used for training)."""
    import rasterio
    with rasterio.open(scene.truth) as ds:
        truth = ds.read(1)
        profile = ds.profile
    truth[:, : int(truth.shape[1] * scene.train_fraction)] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(truth[None])
    return path


def write_quicklook(scene, classified, path):
    import rasterio

    from deep_pixel.io.pngimage import colorize, encode_png, side_by_side, stretch_rgb
    with rasterio.open(scene.image) as a, rasterio.open(scene.truth) as b, rasterio.open(classified) as c:
        image = stretch_rgb(a.read(), (2, 1, 0))
        truth = colorize(b.read(1), scene.schema)
        pred = colorize(c.read(1), scene.schema)
    with open(path, "wb") as f:
        f.write(encode_png(side_by_side([image, truth, pred])))


if __name__ == "__main__":
    main()
