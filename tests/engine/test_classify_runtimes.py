"""Fast Classify Pixels: runtimes and precisions agree with float32 torch on the real scenes, tile
grids still do not matter, Train Model's ONNX file carries the Deepness metadata, a missing .onnx is
rebuilt, and torch alone still classifies."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.classify.runtime_choice import cpu_bf16
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.core.tiles import AUTO_PADDING, MAX_AUTO_TILE, MIN_AUTO_TILE, TileParams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENES = ("landsat", "aerial", "sentinel2")


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.fixture(scope="session")
def real_models(tmp_path_factory):
    """{scene: (emd, raster to classify)}: small models trained for real on the three real scenes."""
    sys.path.insert(0, ROOT)
    from bench.real_models import DATA, available, train_scene_model
    if not available():
        pytest.skip(f"the real scenes in {DATA} are absent (../shared/data beside the checkout)")
    base = tmp_path_factory.mktemp("real_models")
    return {name: train_scene_model(name, str(base / name), epochs=3) for name in SCENES}


def runtimes():
    out = [("torch", "float32"), ("onnxruntime", "float32")]
    if cpu_bf16():
        out.append(("torch", "bfloat16"))
    return out


@pytest.mark.parametrize("scene", SCENES)
def test_every_runtime_and_precision_agrees_with_float32_torch(real_models, scene, tmp_path):
    emd, raster = real_models[scene]
    results = {}
    for runtime, precision in runtimes():
        out = str(tmp_path / f"{runtime}_{precision}.tif")
        r = classify(raster, emd, out, ClassifyOptions(device="cpu", runtime=runtime, precision=precision))
        assert (r.runtime, r.precision) == (runtime, precision)
        results[(runtime, precision)] = read(out)
    reference = results[("torch", "float32")]
    assert (reference > 0).all()
    for key, classes in results.items():
        agree = (classes == reference).mean()
        # bfloat16 flips near-ties only (pixels the float32 network itself barely separates): >= 99.9%
        # on the Sentinel-2 scene, 99.8-99.95% on the two small scenes depending on how long the
        # model trained (README, performance; 99.84% on the aerial scene with the issue-16 defaults);
        # float32 runtimes agree on >= 99.9% everywhere.
        bar = 0.998 if key[1] == "bfloat16" and scene != "sentinel2" else 0.999
        assert agree >= bar, (scene, key, agree)


@pytest.mark.parametrize("scene, tile", [("aerial", 256), ("sentinel2", MIN_AUTO_TILE)])
def test_offset_grids_agree_on_real_scenes(real_models, scene, tile, tmp_path):
    """Default padding (the network's border), several tiles each way, grids shifted: same classes.

    Only near-ties may flip: these are small models trained for a few epochs (on the aerial scene most
    pixels have a top probability below 0.6 with 5 classes), and a shifted grid changes the last bits of
    the sums; where the model is sure (top probability >= 0.8) 99.5% must agree (at >= 0.6, 99.66% in one run
    and less in another: a finite padding is not the network's whole receptive field). The Landsat scene
    (250 px) is one tile at any automatic tile size, so it has no grid to shift."""
    emd, raster = real_models[scene]
    outs = []
    for i, offset in enumerate(((0, 0), (48, 80), (96, 32))):
        out = str(tmp_path / f"offset{i}.tif")
        r = classify(raster, emd, out, ClassifyOptions(device="cpu", tile_size=tile, grid_offset=offset,
                                                       runtime="torch", precision="float32",
                                                       output_confidence=str(tmp_path / f"conf{i}.tif")))
        assert r.tiles >= 4
        outs.append(read(out))
    sure = read(str(tmp_path / "conf0.tif")) >= 0.8
    for other in outs[1:]:
        assert (other == outs[0]).mean() >= 0.95
        assert (other == outs[0])[sure].mean() >= 0.995


def test_default_log_names_runtime_reason_and_overlap(real_models, tmp_path):
    emd, raster = real_models["sentinel2"]
    progress = RecordingProgress()
    r = classify(raster, emd, str(tmp_path / "c.tif"), ClassifyOptions(device="cpu"), progress)
    text = "\n".join(progress.messages)
    assert "Runtime: " in text and "overlap factor" in text and "megapixels/s" in text
    expected = "bfloat16" if cpu_bf16() else "float32"
    assert r.precision == expected and expected in text
    assert 1.0 <= r.overlap_factor < 1.2


def test_train_model_writes_onnx_with_deepness_metadata(real_models):
    import onnxruntime as ort

    from deep_pixel.model.package import load_package, sha256_file
    emd, _ = real_models["aerial"]
    pkg = load_package(emd)
    onnx_path = os.path.join(pkg.folder, pkg.emd["OnnxFile"])
    assert pkg.emd["OnnxSHA256"] == sha256_file(onnx_path)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    assert meta["model_type"] == "Segmentor"
    assert [meta["class_names"][str(i)] for i in range(pkg.num_classes)] == [c.name for c in pkg.schema.classes]
    assert meta["tile_size"] == pkg.tile_size[0] and 0 <= meta["tiles_overlap"] < 50
    assert meta["resolution"] == pytest.approx(pkg.cell_size[0] * 100)          # cm per pixel
    std = np.array(pkg.transform.std)
    assert np.allclose(np.array(meta["standardization_std"]) * 255, np.where(std > 1e-6, std, 1e-6), rtol=1e-5)
    shape = session.get_inputs()[0].shape
    assert shape[1] == pkg.in_channels and shape[2] == shape[3]          # square tiles, dynamic size
    x = np.random.default_rng(0).normal(size=(2, pkg.in_channels, 96, 96)).astype(np.float32)
    probs = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert probs.shape == (2, pkg.num_classes, 96, 96)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_missing_onnx_is_rebuilt_outside_the_package(real_models, tmp_path, monkeypatch):
    emd, raster = real_models["landsat"]
    copy = tmp_path / "copy"
    shutil.copytree(os.path.dirname(emd), copy)
    name = os.path.basename(emd)
    os.remove(copy / name.replace(".emd", ".onnx"))
    before = sorted(os.listdir(copy))
    monkeypatch.setenv("DEEP_PIXEL_CACHE", str(tmp_path / "cache"))
    progress = RecordingProgress()
    r = classify(raster, str(copy / name), str(tmp_path / "c.tif"),
                 ClassifyOptions(device="cpu", runtime="onnxruntime", precision="float32"), progress)
    assert r.runtime == "onnxruntime" and "rebuilt" in "\n".join(progress.messages)
    assert sorted(os.listdir(copy)) == before                       # the user's package is not touched
    reference = classify(raster, emd, str(tmp_path / "r.tif"),
                         ClassifyOptions(device="cpu", runtime="onnxruntime", precision="float32"))
    assert (read(r.output_raster) == read(reference.output_raster)).mean() >= 0.999


def test_torch_alone_still_classifies(real_models, tmp_path):
    """Without onnxruntime and onnx installed: classification runs on torch and the log says why."""
    emd, raster = real_models["landsat"]
    out = str(tmp_path / "c.tif")
    code = ("import sys, json; sys.modules['onnxruntime'] = None; sys.modules['onnx'] = None; "
            f"sys.path.insert(0, {ROOT!r}); "
            "from deep_pixel.classify.run import classify; from deep_pixel.classify.options import ClassifyOptions; "
            "from deep_pixel.core.progress import RecordingProgress; p = RecordingProgress(); "
            f"r = classify({raster!r}, {emd!r}, {out!r}, ClassifyOptions(device='cpu', precision='float32'), p); "
            "print(json.dumps([r.runtime, p.messages]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, DEEP_PIXEL_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    runtime, messages = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runtime == "torch"
    assert any("onnxruntime is not installed" in m for m in messages)
    assert (read(out) > 0).all()


@pytest.mark.parametrize("size", [(4096, 4096), (8192, 8192), (2048, 3000), (1000, 5000), (513, 2049)])
def test_auto_tiles_cover_the_raster_with_little_overlap(size):
    tile = TileParams.resolve(ClassifyOptions(), 256, 16, size)
    assert tile.tile <= MAX_AUTO_TILE and tile.tile % 16 == 0 and tile.padding == AUTO_PADDING
    for length in size:
        starts = tile.starts(length)
        assert starts[0] == 0 and starts[-1] + tile.tile >= length
        assert all(s % 16 == 0 for s in starts)
        assert all(b - a <= tile.tile - 2 * tile.padding for a, b in zip(starts, starts[1:]))
    if min(size) >= 2048 and size[0] == size[1]:
        assert tile.overlap_factor(*size) < 1.25


def test_blending_memory_is_a_seam_band_not_a_strip():
    """On a wide raster the blender holds one tile and two seam bands, far below classes x tile x width."""
    from deep_pixel.classify.blend import RollingBlender
    tile = TileParams.resolve(ClassifyOptions(), 256, 16, (8192, 8192))
    blender = RollingBlender(8192, 8192, 6, tile.tile)
    starts = tile.starts(8192)
    blender.start_strip(starts[1], starts[2])
    strip = 6 * 4 * tile.tile * 8192
    assert blender.nbytes < strip / 2


def test_blocks_reassemble_exactly_what_a_full_buffer_would_hold():
    """RollingBlender's final blocks equal the plain sums of weighted tiles over the whole raster."""
    from deep_pixel.classify.blend import RollingBlender, blend_window
    rng = np.random.default_rng(1)
    h, w, t, classes = 200, 230, 64, 3
    grid = TileParams(t, 12, 16)
    rows, cols = grid.starts(h, 16), grid.starts(w, 48)
    full = np.zeros((classes, rows[-1] + t, cols[-1] + t))
    blender = RollingBlender(h, w, classes, t)
    out = np.full((classes, h, w), np.nan)
    for i, r0 in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) else h
        blender.start_strip(r0, nxt)
        blocks = []
        for c0 in cols:
            blocks += blender.move_to(c0)
            if (r0 + c0) % 3:                                  # some tiles skipped
                p = rng.random((classes, t, t)).astype(np.float32)
                blender.add(p)
                full[:, r0:r0 + t, c0:c0 + t] += p * blend_window(t, r0, c0, h, w)
        for col, sums, _weights in blocks + blender.end_strip():
            out[:, r0:r0 + sums.shape[1], col:col + sums.shape[2]] = sums
    assert not np.isnan(out).any()
    assert np.allclose(out, full[:, :h, :w], atol=1e-5)


def test_damaged_cached_onnx_falls_back_to_torch_with_the_reason(real_models, tmp_path, monkeypatch):
    """A cached .onnx that ONNX Runtime cannot load: auto uses torch and says why; onnxruntime asked
    for explicitly is a clear error (no traceback), naming the file to delete."""
    from deep_pixel.core.errors import DeepPixelError
    from deep_pixel.model.onnx_file import cache_folder, onnx_for
    from deep_pixel.model.package import load_package
    emd, raster = real_models["landsat"]
    copy = tmp_path / "copy"
    shutil.copytree(os.path.dirname(emd), copy)
    os.remove(copy / os.path.basename(emd).replace(".emd", ".onnx"))
    monkeypatch.setenv("DEEP_PIXEL_CACHE", str(tmp_path / "cache"))
    package = load_package(str(copy / os.path.basename(emd)))
    path, _ = onnx_for(package)
    assert os.path.dirname(path) == cache_folder()
    with open(path, "wb") as f:
        f.write(b"not an onnx model")
    with pytest.raises(DeepPixelError, match="delete it"):
        classify(raster, str(copy / os.path.basename(emd)), str(tmp_path / "a.tif"),
                 ClassifyOptions(device="cpu", runtime="onnxruntime", precision="float32"))
    progress = RecordingProgress()
    r = classify(raster, str(copy / os.path.basename(emd)), str(tmp_path / "b.tif"),
                 ClassifyOptions(device="cpu", precision="float32"), progress)
    assert r.runtime == "torch" and any("ONNX Runtime cannot load" in m for m in progress.messages)


def test_rgb_colour_interpretation_names_the_bands_and_guards_their_order(real_models, tmp_path):
    """The aerial photo's bands have no description, only GDAL's red/green/blue colour interpretation: the
    model records those names, and a raster whose bands are in another order (BGR) is refused with the fix."""
    from rasterio.enums import ColorInterp

    from deep_pixel.core.errors import DeepPixelError
    from deep_pixel.io.raster import band_names
    emd, raster = real_models["aerial"]
    with open(emd) as f:
        assert json.load(f)["BandNames"] == ["red", "green", "blue"]
    assert band_names((None, None, None, None), ["red", "green", "blue", "undefined"]) == (
        "red", "green", "blue", "nir (assumed)")
    assert band_names((None, None), ["red", "red"]) == ("Band_1", "Band_2")    # repeated colours name nothing
    assert band_names((None, "B4_red"), ["red", "undefined"]) == ("Band_1", "B4_red")   # descriptions rule
    bgr = str(tmp_path / "bgr.tif")
    with rasterio.open(raster) as src:
        profile, image = src.profile, src.read()
    with rasterio.open(bgr, "w", **profile) as dst:
        dst.write(image[::-1])
        dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red]
    with pytest.raises(DeepPixelError, match=r"another order \(blue, green, red\) than the model's \(red, green, blue\)"):
        classify(bgr, emd, str(tmp_path / "c.tif"), ClassifyOptions(device="cpu"))
    assert sorted(os.listdir(tmp_path)) == ["bgr.tif"]
