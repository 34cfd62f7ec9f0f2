"""Classify Pixels: pipeline vs bare model, peak memory vs raster size, megapixels/s with and without TTA.

(a) Pipeline time (read, normalise, forward, blend, write, overviews) divided by the bare model's
    forward time on the same number of tiles of the same size. Target <= 1.15.
(b) Peak resident memory classifying a 2048x2048 and an 8192x8192 raster (sparse VRT mosaics of a
    1024x1024 GeoTIFF along the diagonal, nodata elsewhere) with the same model, each in its own
    process. Target: larger <= 1.2x smaller.
(c) Megapixels per second, plain and with test-time augmentation (8 flips/rotations).
All on CPU with torch's threads as configured (2 on the CI machines).
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_model(folder):
    """A real package of the CPU default network (U-Net/resnet34, light decoder), briefly trained."""
    from deep_pixel.export import ExportOptions, export_training_data
    from deep_pixel.samples import Samples
    from deep_pixel.synthetic import make_scene
    from deep_pixel.train import train_model
    from deep_pixel.train_options import TrainOptions
    from deep_pixel.vector_io import read_vector
    scene = make_scene(os.path.join(folder, "scene"), 256, 256, seed=2)
    vec = read_vector(scene.samples)
    samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
    export_training_data(scene.image, samples, os.path.join(folder, "chips"),
                         ExportOptions(tile_size_x=128, tile_size_y=128, stride_x=128, stride_y=128), scene.schema)
    r = train_model([os.path.join(folder, "chips")], os.path.join(folder, "model"), TrainOptions(
        max_epochs=1, learning_rate=2e-3, device="cpu", validation_percent=0,
        model_arguments={"steps_per_epoch": 2}))
    return r.emd_path


def mosaic(src, path, times):
    """A sparse VRT: ``src`` repeated along the diagonal of a times x times grid, nodata elsewhere.

    A large raster without large files; the nodata blocks are read and written like the rest (only
    the network skips them), so memory is exercised at full width and height in less time."""
    import rasterio
    with rasterio.open(src) as ds:
        w, h, n, dtype = ds.width, ds.height, ds.count, ds.dtypes[0]
        t = ds.transform
        crs = ds.crs.to_wkt()
    gdal_type = {"uint16": "UInt16", "uint8": "Byte", "int16": "Int16", "float32": "Float32"}[dtype]
    bands = []
    for b in range(1, n + 1):
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{src}</SourceFilename><SourceBand>{b}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
            f'<DstRect xOff="{i * w}" yOff="{j * h}" xSize="{w}" ySize="{h}"/></SimpleSource>'
            for i in range(times) for j in range(times) if i == j)
        bands.append(f'<VRTRasterBand dataType="{gdal_type}" band="{b}"><NoDataValue>0</NoDataValue>'
                     f'{sources}</VRTRasterBand>')
    from xml.sax.saxutils import escape
    with open(path, "w") as f:
        f.write(f'<VRTDataset rasterXSize="{w * times}" rasterYSize="{h * times}"><SRS>{escape(crs)}</SRS>'
                f'<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>{"".join(bands)}</VRTDataset>')
    return path


def bare_forward_seconds(emd, tiles, tile, batch):
    import torch

    from deep_pixel.package import load_package
    pkg = load_package(emd)
    model = pkg.build(torch.device("cpu"))
    x = torch.randn(batch, pkg.in_channels, tile, tile)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        done = 0
        while done < tiles:
            n = min(batch, tiles - done)
            torch.softmax(model(x[:n]), dim=1)
            done += n
    return time.perf_counter() - t0


def classify_once(image, emd, out, **kw):
    from deep_pixel.classify import classify
    from deep_pixel.classify_options import ClassifyOptions
    t0 = time.perf_counter()
    r = classify(image, emd, out, ClassifyOptions(device="cpu", **kw))
    return time.perf_counter() - t0, r


THREADS = 2          # the CI machines' cores; set explicitly so runs compare


def memory_child(image, emd, out):
    """Run in a subprocess: classify, print peak RSS (MiB) and seconds as JSON."""
    import torch
    torch.set_num_threads(THREADS)
    seconds, r = classify_once(image, emd, out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak, "seconds": seconds, "tiles": r.tiles,
                      "accumulator_mib": r.accumulator_bytes / 2**20}))


def main():
    from deep_pixel.synthetic import make_scene
    import torch
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        emd = tiny_model(tmp)
        scene = make_scene(os.path.join(tmp, "big"), 1024, 1024, seed=4)
        # (a) pipeline vs bare model, and (c) throughput
        classify_once(scene.image, emd, os.path.join(tmp, "warm.tif"))
        seconds, r = classify_once(scene.image, emd, os.path.join(tmp, "c.tif"))
        bare = bare_forward_seconds(emd, r.tiles - r.skipped_tiles, r.tile.tile, 4)
        tta_seconds, _ = classify_once(scene.image, emd, os.path.join(tmp, "tta.tif"), test_time_augmentation=True)
        mp = 1024 * 1024 / 1e6
        # (b) peak memory, each size in its own process
        small = mosaic(scene.image, os.path.join(tmp, "m2048.vrt"), 2)
        large = mosaic(scene.image, os.path.join(tmp, "m8192.vrt"), 8)
        mem = {}
        for name, image in (("2048 x 2048", small), ("8192 x 8192", large)):
            code = (f"import sys; sys.path.insert(0, {ROOT!r}); from bench.bench_classify import memory_child; "
                    f"memory_child({image!r}, {emd!r}, {os.path.join(tmp, name[:4] + '.tif')!r})")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            mem[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b = mem["2048 x 2048"], mem["8192 x 8192"]
    rows = [
        ("pipeline time / bare forward time (1024 x 1024, same tiles)", f"{seconds / bare:.3f}", "<= 1.15"),
        ("  pipeline s / bare forward s", f"{seconds:.2f} / {bare:.2f}", ""),
        ("peak RSS 8192 x 8192 / 2048 x 2048", f"{b['peak_mib'] / a['peak_mib']:.3f}", "<= 1.2"),
        ("  peak RSS MiB: 2048 / 8192", f"{a['peak_mib']:.0f} / {b['peak_mib']:.0f}", ""),
        ("  blending buffer MiB: 2048 / 8192", f"{a['accumulator_mib']:.1f} / {b['accumulator_mib']:.1f}", ""),
        ("  8192 x 8192: seconds, tiles", f"{b['seconds']:.0f} s, {b['tiles']} tiles", ""),
        ("megapixels/s plain", f"{mp / seconds:.3f}", ""),
        ("megapixels/s with TTA x8", f"{mp / tta_seconds:.3f}", ""),
        ("TTA time / plain time", f"{tta_seconds / seconds:.2f}", "about 8"),
    ]
    print(f"Classify Pixels on CPU, {torch.get_num_threads()} torch threads, tile {r.tile.tile} px, "
          f"padding {r.tile.padding}, batch 4, model U-Net/resnet34 (CPU light decoder)")
    width = max(len(k) for k, _, _ in rows)
    print(f"{'measure':{width}s}  {'value':>22s}  target")
    for k, v, t in rows:
        print(f"{k:{width}s}  {v:>22s}  {t}")
    return np.nan


if __name__ == "__main__":
    main()
