"""Classify Pixels on a Dask cluster: blocks of tile rows, the same output as one process.

The raster's strips of tiles (the single-process tile grid) are cut into blocks of consecutive
strips. A block also computes the strips above it whose tiles reach into its rows (the halo) and
drops their rows, so each of its rows sees exactly the tiles, in the same order and batches, that
the single-process run blends there: the assembled output is identical pixel for pixel. Each worker
loads the model once and writes its block as a GeoTIFF in ``<output>.shards/``; a manifest there
records finished blocks, so running the same command again after a crash does only what is
missing. The client then assembles one tiled GeoTIFF (overviews, colour table, .qml) and removes
the shards folder. A folder of images is one task per image.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, replace

import rasterio

from ..core.errors import Cancelled, DeepPixelError
from ..core.progress import Progress
from ..io.raster import open_raster
from ..io.staging import staged_file
from .names import CLASSIFIED, CONFIDENCE
from .options import BLOCK_ROWS, MIN_BLOCK_STRIPS
from .outputs import ClassOutputs

MANIFEST = "manifest.json"
ASSEMBLY_ROWS = 1024
_WORKER_MODELS: dict = {}          # per worker process: the package and runtime, loaded once


def blocks_of(rows: list, strips: int = 0) -> list:
    """[(first strip, end strip)] covering every strip; ``strips`` per block (0: automatic). Automatic blocks
    are as even as the strips allow (workers that take them finish together)."""
    n = len(rows)
    step = rows[1] - rows[0] if n > 1 else 1
    if strips:
        return [(a, min(n, a + strips)) for a in range(0, n, strips)]
    count = math.ceil(n / max(MIN_BLOCK_STRIPS, BLOCK_ROWS // step))
    edges = [round(k * n / count) for k in range(count + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]


def classify_sharded(input_path, model_path, output_path, options, progress, package) -> dict:
    """Classify ``input_path`` on the Dask cluster of ``options``; returns a summary for ClassifyResult."""
    from .job import prepare_job
    from .value_check import check_values
    progress = progress or Progress()
    folder = output_path + ".shards"
    with open_raster(input_path) as ds:
        job = prepare_job(ds, package, options, _cpu(), Progress(), runtime=_NoRuntime())
        check_values(ds, job.bands, package.transform, progress)     # once, here: the shards' jobs say nothing
    blocks = blocks_of(job.rows, options.block_strips)
    key = _manifest_key(input_path, package, options, job, blocks)
    done = _resume(folder, key, progress)
    todo = [i for i in range(len(blocks)) if i not in done]
    progress.log(f"{len(blocks)} blocks of about {blocks[0][1] - blocks[0][0]} strips ({len(job.rows)} strips, "
                 f"halo {job.halo()} strip(s)); {len(done)} already finished, {len(todo)} to run.")
    started = time.monotonic()
    with _client(options, progress) as client:
        specs = [_spec(input_path, model_path, options, job, blocks, i, folder) for i in todo]
        _run(client, specs, folder, key, done, len(blocks), progress)
    _assemble(input_path, package, options, job, blocks, folder, output_path, progress)
    shutil.rmtree(folder, ignore_errors=True)
    return dict(tiles=job.total, seconds=time.monotonic() - started, tile=job.tile, overlap=job.overlap,
                runtime=options.runtime, precision=options.precision)


def classify_images_on_dask(images, stems, model_path, options, progress) -> list:
    """A folder: one task per image, each a whole single-process classification on a worker.

    Returns [(class raster, confidence raster or None)] in the images' order."""
    os.makedirs(os.path.dirname(stems[0]) or ".", exist_ok=True)
    serial = replace(options, dask_scheduler=None, workers=0)
    specs = [dict(input=os.path.abspath(image), model=os.path.abspath(model_path), options=replace(
        serial, output_confidence=stem + CONFIDENCE if options.output_confidence else None),
        output=stem + CLASSIFIED) for image, stem in zip(images, stems)]
    with _client(options, progress) as client:
        futures = [client.submit(run_image, s, pure=False, retries=2) for s in specs]
        from distributed import as_completed
        for n, future in enumerate(as_completed(futures), start=1):
            progress.check_cancelled()
            _result(future)
            progress.report(n / len(futures), f"image {n}/{len(futures)} done")
    return [(s["output"], s["options"].output_confidence) for s in specs]


def run_image(spec: dict) -> str:
    """On a worker: one image of a folder, classified as one process would."""
    from .run import classify_raster
    package, _runtime, _device = _worker_model(spec["model"], spec["options"])
    return classify_raster(spec["input"], package, spec["output"], spec["options"], Progress()).output_raster


def run_block(spec: dict) -> int:
    """On a worker: classify one block's strips (plus its halo) into its block GeoTIFF(s)."""
    from .job import prepare_job
    options, first, end = spec["options"], spec["first"], spec["end"]
    package, runtime, device = _worker_model(spec["model"], options)
    with rasterio.Env(GDAL_CACHEMAX=64 * 2**20), open_raster(spec["input"]) as ds:
        job = prepare_job(ds, package, options, device, Progress(), runtime=runtime)
        rows = job.rows[max(0, first - spec["halo"]):end]
        stop = job.rows[end] if end < len(job.rows) else job.info.height
        outputs = ClassOutputs(spec["path"], spec["confidence"], ds, job.info, package,
                               row_range=(job.rows[first], stop))
        try:
            job.run(ds, rows, outputs, Progress(), next_row=stop)
            for staged in (outputs.out, outputs.conf):
                if staged is not None:
                    staged.finish(overviews=False)
                    staged.commit()
        except BaseException:
            outputs.discard()
            raise
    return spec["index"]


def _worker_model(model_path, options):
    from ..core.device import select_device
    from ..model.package import load_package
    from .runtime_choice import choose_runtime
    from .ensemble import with_members
    key = (model_path, options.device, options.runtime, options.precision, options.ensemble_models)
    if key not in _WORKER_MODELS:
        package = load_package(model_path)
        device, _ = select_device(options.device)
        runtime, why = choose_runtime(package, device, options.runtime, options.precision, Progress())
        runtime, _ = with_members(runtime, why, package, options, device)
        _WORKER_MODELS.clear()
        _WORKER_MODELS[key] = (package, runtime, device)
    return _WORKER_MODELS[key]


def _spec(input_path, model_path, options, job, blocks, i, folder) -> dict:
    first, end = blocks[i]
    serial = replace(options, dask_scheduler=None, workers=0)
    return dict(index=i, input=os.path.abspath(input_path), model=os.path.abspath(model_path), options=serial,
                first=first, end=end, halo=job.halo(), path=_block_path(folder, i),
                confidence=_block_path(folder, i, "_confidence") if options.output_confidence else None)


def _block_path(folder, i, suffix=""):
    return os.path.join(folder, f"block_{i:05d}{suffix}.tif")


def _run(client, specs, folder, key, done, total, progress) -> None:
    from distributed import as_completed
    futures = [client.submit(run_block, s, key=f"deep-pixel-block-{key[:12]}-{s['index']}", pure=False,
                             retries=2) for s in specs]
    t0 = time.monotonic()
    try:
        for n, future in enumerate(as_completed(futures), start=1):
            progress.check_cancelled()
            done.add(_result(future))
            _write_manifest(folder, key, done)
            left = (time.monotonic() - t0) / n * (len(specs) - n)
            progress.report(len(done) / total * 0.9, f"block {len(done)}/{total} done, ETA {left:.0f} s")
    except Cancelled:
        client.cancel(futures)
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _result(future) -> int:
    try:
        return future.result()
    except DeepPixelError:
        raise
    except Exception as e:                     # a worker's failure, after Dask's retries
        raise DeepPixelError(f"A Dask worker failed on a block after retries: {type(e).__name__}: {e}. The "
                             "finished blocks are kept: run the same command again to do only the rest.") from e


def _assemble(input_path, package, options, job, blocks, folder, output_path, progress) -> None:
    """The blocks, top to bottom, into the one styled output (and confidence) raster."""
    progress.report(0.9, "assembling the blocks")
    with open_raster(input_path) as ds:
        outputs = ClassOutputs(output_path, options.output_confidence, ds, job.info, package)
        try:
            for i, (first, _end) in enumerate(blocks):
                progress.check_cancelled()
                _copy(_block_path(folder, i), outputs.out, job.rows[first])
                if outputs.conf is not None:
                    _copy(_block_path(folder, i, "_confidence"), outputs.conf, job.rows[first])
            outputs.finish(package, options, job.tile, progress)
        except BaseException:
            outputs.discard()
            raise


def _copy(block_path, staged, row0) -> None:
    with open_raster(block_path) as src:
        for r in range(0, src.height, ASSEMBLY_ROWS):
            h = min(ASSEMBLY_ROWS, src.height - r)
            staged.write_rows(row0 + r, src.read(1, window=((r, r + h), (0, src.width))))


def _manifest_key(input_path, package, options, job, blocks) -> str:
    st = os.stat(input_path)
    fields = {k: v for k, v in asdict(options).items() if k not in ("dask_scheduler", "workers", "block_strips")}
    text = json.dumps([os.path.abspath(input_path), st.st_size, st.st_mtime_ns, package.weights_hash, fields,
                       job.tile.tile, job.tile.padding, job.rows, job.cols, blocks], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _resume(folder, key, progress) -> set:
    """Finished blocks of an earlier run of the same command (same inputs, model and options), else none."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("key") == key:
        done = {i for i in manifest.get("done", []) if os.path.exists(_block_path(folder, i))}
        if done:
            progress.log(f"Resuming: {len(done)} block(s) finished by an earlier run are kept.")
        return done
    shutil.rmtree(folder, ignore_errors=True)       # another command's blocks: start afresh
    os.makedirs(folder)
    _write_manifest(folder, key, set())
    return set()


def _write_manifest(folder, key, done) -> None:
    with staged_file(os.path.join(folder, MANIFEST)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": key, "done": sorted(done)}, f)


class _client:
    """A Client on options.dask_scheduler, or on a LocalCluster of options.workers processes."""

    def __init__(self, options, progress):
        self.options, self.progress = options, progress

    def __enter__(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            from ..core.diagnostics import missing_message
            raise DeepPixelError("DASK_SCHEDULER and WORKERS run Classify Pixels on Dask. "
                                 + missing_message(["dask", "distributed"])) from e
        self.cluster = None
        if self.options.dask_scheduler:
            self.client = _connect(Client, self.options.dask_scheduler)
        else:
            _engine_importable()
            _python_for_workers()
            threads = max(1, (os.cpu_count() or 1) // self.options.workers)
            self.cluster = LocalCluster(n_workers=self.options.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, env={"OMP_NUM_THREADS": str(threads)})
            self.client = Client(self.cluster)
        self.progress.log(f"Dask: {len(self.client.scheduler_info()['workers'])} worker(s) at "
                          f"{self.client.scheduler.address}.")
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _connect(client_cls, address):
    try:
        return client_cls(address, timeout="20s")
    except (OSError, TimeoutError) as e:
        raise DeepPixelError(f"Cannot reach the Dask scheduler at {address}: {e}. Start it (dask scheduler, or "
                             "dask-jobqueue / dask-kubernetes) or correct DASK_SCHEDULER.") from e


def _engine_importable() -> None:
    """Worker processes import this engine by the name it has here: put its folder on their path."""
    top = __name__.split(".")[0]
    parent = os.path.dirname(os.path.dirname(os.path.abspath(__import__(top).__file__)))
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if parent not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([parent] + [p for p in paths if p])


def _python_for_workers() -> None:
    """Inside QGIS, sys.executable is QGIS itself: worker processes must start a Python instead."""
    import multiprocessing
    import sys

    from ..core.diagnostics import python_command
    if not os.path.basename(sys.executable or "").lower().startswith("python"):
        multiprocessing.set_executable(python_command())


def _cpu():
    import torch
    return torch.device("cpu")


class _NoRuntime:
    """The client plans the blocks without loading the network."""
    name = precision = "none"

    def __call__(self, x):
        raise AssertionError("the client does not run the network")
