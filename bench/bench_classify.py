"""Classify Pixels speed and memory: bare runtimes vs the whole pipeline, and peak RSS vs raster size.

Model: U-Net with a resnet34 encoder and smp's default decoder (the network the peer plugins are
compared on), briefly trained so its package is real (.emd, .pth, .onnx).
(a) Bare runtime megapixels/s on non-overlapping tiles of the size Classify Pixels picks for a
    4096 x 4096 raster, batch as Classify Pixels uses it on CPU: torch eager float32, torch
    optimised (channels_last, inference mode), torch bfloat16 (CPUs with BF16 only), ONNX Runtime.
(b) Classify Pixels on a dense 4096 x 4096 raster (a VRT mosaic of a 1024 px real GeoTIFF), default
    settings, with each runtime: raster megapixels/s (raster pixels / wall time, reading, blending,
    writing and overviews included) and the overlap factor. Target: defaults >= 0.8 x the fastest
    bare runtime.
(c) Peak RSS classifying 2048, 4096 and 8192 px square rasters (sparse diagonal VRT mosaics, each
    in its own process, defaults). Target: 8192 <= 1.1 x 4096.
All on CPU with 2 torch threads (the CI machines' cores).
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
THREADS = 2


def tiny_model(folder, decoder="default"):
    """A real package of U-Net/resnet34 (smp's default decoder unless told), briefly trained."""
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.synthetic import make_scene
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    scene = make_scene(os.path.join(folder, "scene"), 256, 256, seed=2)
    vec = read_vector(scene.samples)
    samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
    export_training_data(scene.image, samples, os.path.join(folder, "chips"),
                         ExportOptions(tile_size_x=128, tile_size_y=128, stride_x=128, stride_y=128), scene.schema)
    r = train_model([os.path.join(folder, "chips")], os.path.join(folder, "model"), TrainOptions(
        max_epochs=1, learning_rate=2e-3, device="cpu", validation_percent=0,
        model_arguments={"steps_per_epoch": 2, "decoder": decoder}))
    return r.emd_path


def mosaic(src, path, times, dense=False, tall=1):
    """A VRT of ``src`` repeated on a grid of times columns x times * tall rows: every cell (dense) or the
    diagonal only (sparse: nodata elsewhere, read and written like the rest but skipped by the network)."""
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
            for i in range(times) for j in range(times * tall) if dense or i == j % times)
        bands.append(f'<VRTRasterBand dataType="{gdal_type}" band="{b}"><NoDataValue>0</NoDataValue>'
                     f'{sources}</VRTRasterBand>')
    from xml.sax.saxutils import escape  # nosec B406 (escaping our own text, no parsing)
    with open(path, "w") as f:
        f.write(f'<VRTDataset rasterXSize="{w * times}" rasterYSize="{h * times * tall}"><SRS>{escape(crs)}</SRS>'
                f'<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>{"".join(bands)}</VRTDataset>')
    return path


def bare_runtimes(emd, tile, batch, tiles=6):
    """{name: MP/s} of each runtime's forward pass alone on ``tiles`` tiles of ``tile`` px."""
    import torch

    from deep_pixel.classify.runtime_choice import cpu_bf16, cpu_threads
    from deep_pixel.classify.runtimes import OnnxRuntime, TorchRuntime
    from deep_pixel.model.onnx_file import onnx_for
    from deep_pixel.model.package import load_package
    pkg = load_package(emd)
    cpu = torch.device("cpu")
    eager = pkg.build(cpu)
    candidates = {"torch eager float32": lambda x: torch.softmax(eager(torch.from_numpy(x)), 1).numpy()}
    candidates["torch optimised float32"] = TorchRuntime(pkg.build(cpu), cpu, "float32")
    if cpu_bf16():
        candidates["torch optimised bfloat16"] = TorchRuntime(pkg.build(cpu), cpu, "bfloat16")
    try:
        candidates["ONNX Runtime float32"] = OnnxRuntime(onnx_for(pkg)[0], False, cpu_threads())
    except Exception as e:  # reported, not fatal: the bench still measures torch
        print(f"ONNX Runtime not measured: {e}")
    x = np.random.default_rng(0).normal(size=(batch, pkg.in_channels, tile, tile)).astype(np.float32)
    out = {}
    for name, run in candidates.items():
        with torch.inference_mode():
            run(x)
            t0 = time.perf_counter()
            for _ in range(max(1, tiles // batch)):
                run(x)
        out[name] = max(1, tiles // batch) * batch * tile * tile / 1e6 / (time.perf_counter() - t0)
    return out


def classify_once(image, emd, out, **kw):
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    t0 = time.perf_counter()
    r = classify(image, emd, out, ClassifyOptions(device="cpu", **kw))
    return time.perf_counter() - t0, r


def vm_hwm_mib() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from
    the parent across fork and exec, so a child started by a big parent reports the parent's size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(image, emd, out):
    """Run in a subprocess: classify with the defaults, print peak RSS (MiB) and seconds as JSON."""
    import torch
    torch.set_num_threads(THREADS)
    seconds, r = classify_once(image, emd, out)
    peak = vm_hwm_mib()
    print(json.dumps({"peak_mib": peak, "seconds": seconds, "tiles": r.tiles, "tile": r.tile.tile,
                      "runtime": f"{r.runtime} {r.precision}", "accumulator_mib": r.accumulator_bytes / 2**20}))


def peak_rss(image, emd, out):
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); from bench.bench_classify import memory_child; "
            f"memory_child({image!r}, {emd!r}, {out!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(title, header, rows):
    print(title)
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(f"{str(v):{w}s}" if i == 0 else f"{str(v):>{w}s}" for i, (v, w) in enumerate(zip(r, widths))))
    print()


def main():
    import torch

    from deep_pixel.classify.options import ClassifyOptions, cpu_batch
    from deep_pixel.classify.runtime_choice import cpu_bf16
    from deep_pixel.core.tiles import TileParams
    from deep_pixel.io.synthetic import make_scene
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        emd = tiny_model(tmp)
        scene = make_scene(os.path.join(tmp, "big"), 1024, 1024, seed=4)
        dense = mosaic(scene.image, os.path.join(tmp, "d4096.vrt"), 4, dense=True)
        tile = TileParams.resolve(ClassifyOptions(), 256, 32, (4096, 4096))
        batch = cpu_batch(ClassifyOptions().batch_size, tile.tile)
        bare = bare_runtimes(emd, tile.tile, batch)
        fastest = max(bare.values())
        runs = [("defaults (auto)", {})]
        runs += [("torch float32", {"runtime": "torch", "precision": "float32"}),
                 ("ONNX Runtime float32", {"runtime": "onnxruntime", "precision": "float32"})]
        if cpu_bf16():
            runs.append(("torch bfloat16", {"runtime": "torch", "precision": "bfloat16"}))
        pipeline = []
        for name, kw in runs:
            seconds, r = classify_once(dense, emd, os.path.join(tmp, f"c{len(pipeline)}.tif"), **kw)
            mps = 4096 * 4096 / 1e6 / seconds
            pipeline.append((name, f"{r.runtime} {r.precision}", f"{mps:.3f}", f"{r.overlap_factor:.3f}",
                             f"{seconds:.1f}", f"{mps / fastest:.2f}"))
        mem = {}
        for size, times in (("2048", 2), ("4096", 4), ("8192", 8)):
            mem[size] = peak_rss(mosaic(scene.image, os.path.join(tmp, f"m{size}.vrt"), times), emd,
                                 os.path.join(tmp, f"m{size}.tif"))
    print(f"Classify Pixels on CPU ({torch.get_num_threads()} torch threads), U-Net/resnet34, smp default decoder; "
          f"tile {tile.tile} px, padding {tile.padding}, batch {batch}")
    table("(a) bare runtimes, non-overlapping tiles", ["runtime", "MP/s"],
          [[k, f"{v:.3f}"] for k, v in bare.items()])
    table("(b) Classify Pixels, 4096 x 4096 dense raster (target: defaults >= 0.80 x fastest bare)",
          ["settings", "ran on", "raster MP/s", "overlap", "seconds", "x fastest bare"], [list(p) for p in pipeline])
    rows = [[f"{s} x {s}", m["runtime"], f"{m['tile']}", f"{m['peak_mib']:.0f}", f"{m['accumulator_mib']:.0f}",
             f"{m['seconds']:.1f}"] for s, m in mem.items()]
    table(f"(c) peak RSS, defaults (target: 8192 <= 1.10 x 4096; measured "
          f"{mem['8192']['peak_mib'] / mem['4096']['peak_mib']:.3f})",
          ["raster", "ran on", "tile", "peak RSS MiB", "blend buffer MiB", "seconds"], rows)


if __name__ == "__main__":
    main()
