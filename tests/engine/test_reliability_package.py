"""Untrusted model files: .emd, .pth and .dlpk readers give our clear error and never crash."""
import copy
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deep_pixel.classify.checks import bands_to_read, check_grid
from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.core.tiles import TileParams
from deep_pixel.model import dlpk
from deep_pixel.model.onnx_file import deepness_metadata
from deep_pixel.model.package import load_package, read_emd, safe_extract, write_package
from deep_pixel.model.registry import build_model

EMD = {
    "Framework": "PyTorch", "ModelType": "ImageClassification", "ImageHeight": 32, "ImageWidth": 32,
    "ExtractBands": [1, 2], "Classes": [{"Value": 1, "Name": "a", "Color": [1, 2, 3]},
                                        {"Value": 4, "Name": "b", "Color": [4, 5, 6]}],
    "ModelParameters": {"architecture": "UNET", "backbone": "resnet18", "in_channels": 2, "classes": 2,
                        "encoder_depth": 3, "decoder_channels": [16, 8, 8]},
    "InputTransform": {"mean": [0, 0], "std": [1, 1], "indices": []},
}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pkg") / "m"
    model = build_model("UNET", "resnet18", 2, 2, encoder_depth=3, decoder_channels=[16, 8, 8])
    emd_path = write_package(str(folder), "m", model.state_dict(), EMD)
    return folder, emd_path


def test_package_round_trip(package):
    folder, emd_path = package
    for path in (emd_path, str(folder), str(folder / "m.dlpk")):
        pkg = load_package(path)
        assert pkg.schema.values == [1, 4] and pkg.in_channels == 2
    model = load_package(emd_path).build("cpu")
    assert model(torch.zeros(1, 2, 32, 32)).shape == (1, 2, 32, 32)


def test_weights_hash_mismatch_is_refused(package, tmp_path):
    folder, _ = package
    copy_dir = tmp_path / "m"
    copy_dir.mkdir()
    for f in ("m.emd", "m.pth"):
        (copy_dir / f).write_bytes((folder / f).read_bytes())
    other = build_model("UNET", "resnet18", 2, 2, encoder_depth=3, decoder_channels=[16, 8, 8])
    torch.save(other.state_dict(), copy_dir / "m.pth")
    with pytest.raises(DeepPixelError, match="do not match the hash"):
        load_package(str(copy_dir / "m.emd"))


def test_missing_and_truncated_weights(package, tmp_path):
    folder, _ = package
    d = tmp_path / "m"
    d.mkdir()
    emd = json.loads((folder / "m.emd").read_text())
    emd.pop("WeightsSHA256")
    (d / "m.emd").write_text(json.dumps(emd))
    with pytest.raises(DeepPixelError, match="missing"):
        load_package(str(d / "m.emd"))
    (d / "m.pth").write_bytes((folder / "m.pth").read_bytes()[:1000])
    with pytest.raises(DeepPixelError, match="truncated, corrupt"):
        load_package(str(d / "m.emd")).build("cpu")


def test_pickled_objects_are_not_loaded(package, tmp_path):
    """weights_only=True: a .pth holding arbitrary Python objects is refused, not executed."""
    folder, _ = package
    d = tmp_path / "m"
    d.mkdir()
    emd = json.loads((folder / "m.emd").read_text())
    emd.pop("WeightsSHA256")
    (d / "m.emd").write_text(json.dumps(emd))
    torch.save({"x": os.system}, d / "m.pth")  # a pickled callable
    with pytest.raises(DeepPixelError, match="not a plain state dict|truncated, corrupt"):
        load_package(str(d / "m.emd")).build("cpu")


@pytest.mark.parametrize("key, value, words", [
    ("ModelParameters", None, "'ModelParameters' is missing"),
    ("Classes", "abc", "should be list"),
    ("ExtractBands", [0], "1-based band"),
    ("ImageHeight", "32", "should be int"),
    ("InputTransform", {"mean": [0], "std": [1]}, "InputTransform has 1 bands"),
    ("ModelFile", "../../etc/passwd", "file name beside"),
])
def test_bad_emd_keys(package, tmp_path, key, value, words):
    _, emd_path = package
    emd = json.loads(open(emd_path).read())
    if value is None:
        emd.pop(key)
    else:
        emd[key] = value
    path = os.path.join(os.path.dirname(emd_path), f"bad_{key}.emd")  # beside the weights
    with open(path, "w") as f:
        json.dump(emd, f)
    with pytest.raises(DeepPixelError, match=words):
        read_emd(path)


def _zip_with(entries, symlink=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize("entries, link", [
    ({"../evil.txt": "x"}, None), ({"/abs/evil.txt": "x"}, None), ({"a/../../evil.txt": "x"}, None),
    ({"ok.emd": "{}"}, "link.pth"),
])
def test_dlpk_escapes_are_refused(tmp_path, entries, link):
    (tmp_path / "bad.dlpk").write_bytes(_zip_with(entries, link))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(DeepPixelError, match="refused"):
        safe_extract(str(tmp_path / "bad.dlpk"), str(target))
    assert os.listdir(target) == [] and not (tmp_path / "evil.txt").exists()


def test_corrupt_dlpk(tmp_path):
    (tmp_path / "c.dlpk").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DeepPixelError, match="not a readable .dlpk"):
        load_package(str(tmp_path / "c.dlpk"))


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True)
                           | st.text(max_size=8), lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(EMD) + ["ModelFile", "CRS", "CellSize", "WeightsSHA256"]), value=json_values,
       drop=st.booleans())
def test_fuzzed_emd_gives_our_error_or_a_valid_package(package, tmp_path, key, value, drop):
    _, emd_path = package
    emd = copy.deepcopy(json.loads(open(emd_path).read()))
    if drop:
        emd.pop(key, None)
    else:
        emd[key] = value
    path = os.path.join(os.path.dirname(emd_path), "fuzz.emd")
    with open(path, "w") as f:
        json.dump(emd, f)
    try:
        read_emd(path)
    except DeepPixelError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(data=b"", names=["\x00"])        # found by CI: zipfile itself fails to build this archive
@given(data=st.binary(max_size=300), names=st.lists(st.text(min_size=1, max_size=12), max_size=4))
def test_fuzzed_archives_give_our_error(tmp_path, data, names):
    path = tmp_path / "f.dlpk"
    if names:
        try:
            path.write_bytes(_zip_with({n: data for n in names}))
        except (ValueError, UnicodeEncodeError, IndexError):
            return      # Python's zipfile cannot write such a name (e.g. "\x00" becomes ""): no archive to test
    else:
        path.write_bytes(data)
    target = tmp_path / "x"
    if target.exists():
        import shutil
        shutil.rmtree(target)
    target.mkdir()
    try:
        safe_extract(str(path), str(target))
    except DeepPixelError:
        pass
    for dirpath, _, files in os.walk(target):
        for f in files:
            assert os.path.realpath(os.path.join(dirpath, f)).startswith(str(target.resolve()))


# -- .dlpk archives: limits, the one .emd, several runs at once, the cache (issue 14) ----------------

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def temp(tmp_path, monkeypatch):
    """The temporary folder the cache lives in, empty at the start, so leftovers can be listed."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _files(weights=b"w" * 1000, **changes):
    """m.emd and m.pth: small stand-in weights are enough, nothing here builds the network."""
    emd = dict(EMD, ModelFile="m.pth", WeightsSHA256=hashlib.sha256(weights).hexdigest(), **changes)
    return {"m.emd": json.dumps(emd), "m.pth": weights}


def _dlpk(path, files, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return str(path)


def _contents(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, ds, fs in os.walk(folder) for n in ds + fs)


def _patch_declared_size(data: bytes, size: int) -> bytes:
    """The archive with its one entry's uncompressed size rewritten (local header and central directory)."""
    data = bytearray(data)
    struct.pack_into("<I", data, 22, size)                        # local file header
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, size)  # central directory entry
    return bytes(data)


@pytest.mark.parametrize("case", ["ratio", "entries", "total", "declared"])
def test_zip_bombs_are_refused_before_anything_is_unpacked(tmp_path, temp, monkeypatch, case):
    path = tmp_path / "bomb.dlpk"
    if case == "ratio":      # 64 MiB of zeros in about 64 KiB: a real, modest zip bomb
        _dlpk(path, _files(bytes(64 << 20)), zipfile.ZIP_DEFLATED)
        words = "zip bomb"
    elif case == "entries":
        _dlpk(path, {**_files(), **{f"x/{i}.txt": "" for i in range(300)}})
        words = "302 files"
    elif case == "total":
        monkeypatch.setattr(dlpk, "MAX_TOTAL_BYTES", 1 << 20)
        _dlpk(path, _files(os.urandom(2 << 20)))
        words = "would unpack to 2.0 MiB"
    else:                    # declares 1000 bytes but holds 64 KiB: never read past what it declares
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("m.emd", "{" + " " * 65536 + "}")
        path.write_bytes(_patch_declared_size(buf.getvalue(), 1000))
        words = "damaged"
    with pytest.raises(DeepPixelError, match=words) as e:
        load_package(str(path))
    assert "Train Model" in str(e.value)
    assert _contents(temp) == [os.path.basename(dlpk.cache_root())]      # the empty cache folder only


def test_three_processes_open_one_new_dlpk_at_once(tmp_path, temp):
    """Before the fix two of the three crashed (OSError: Directory not empty) on every try."""
    weights = os.urandom(32 << 20)        # big enough for the three extractions to overlap
    path = _dlpk(tmp_path / "m.dlpk", {**_files(weights), "report.html": "<html>"})
    script = ("import sys\nfrom deep_pixel.model.package import load_package\nprint('ready', flush=True)\n"
              "sys.stdin.readline()\np = load_package(sys.argv[1])\nprint(p.emd_path, p.weights_hash)\n")
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", script, path], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:                       # all three wake up together: a blocking read, no polling
        p.stdin.write("go\n")
    for p in procs:
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0 and "Traceback" not in err, err
    assert len({out for out, _ in results}) == 1
    emd_path, digest = results[0][0].split()
    assert digest == hashlib.sha256(weights).hexdigest()
    entry = os.path.relpath(os.path.dirname(emd_path), temp)
    assert _contents(temp) == sorted([os.path.dirname(entry), entry] + [
        os.path.join(entry, f) for f in (dlpk.MANIFEST, "m.emd", "m.pth")])   # no report, no temporary folder


@pytest.mark.parametrize("layout, loaded", [
    ({"m.emd": "emd", "m.pth": "pth", "old/x.emd": "emd", "report.html": None, "pics/a.png": None}, "m.emd"),
    ({"model/m.emd": "emd", "model/m.pth": "pth", "notes.txt": None}, "m.emd"),
    ({"esri_model_definition.emd": "emd", "m.emd": "emd", "m.pth": "pth"}, "m.emd"),
])
def test_the_emd_at_the_root_is_preferred_and_only_what_it_needs_is_unpacked(tmp_path, temp, layout, loaded):
    content = {"emd": _files()["m.emd"], "pth": _files()["m.pth"], None: b"extra"}
    pkg = load_package(_dlpk(tmp_path / "p.dlpk", {m: content[role] for m, role in layout.items()}))
    assert os.path.basename(pkg.emd_path) == loaded and pkg.emd["ModelFile"] == "m.pth"
    assert sorted(os.listdir(pkg.folder)) == sorted([dlpk.MANIFEST, "m.emd", "m.pth"])


@pytest.mark.parametrize("names", [["a.emd", "b.emd"], ["x/a.emd", "y/b.emd"]])
def test_several_emd_candidates_are_an_error_that_lists_them(tmp_path, temp, names):
    files = {n: json.dumps(dict(EMD, ModelFile="m.pth")) for n in names}
    with pytest.raises(DeepPixelError, match="holds 2 model definitions") as e:
        load_package(_dlpk(tmp_path / "two.dlpk", {**files, "m.pth": b"w"}))
    assert all(n in str(e.value) for n in names)
    assert _contents(temp) == [os.path.basename(dlpk.cache_root())]


def test_cache_is_tidied_and_a_damaged_entry_is_replaced(tmp_path, temp):
    root = dlpk.cache_root()
    old = time.time() - dlpk.STALE_SECONDS - 60
    for folder in (".extract-old", ".extract-running", ".trash-x", "0123abcd", "../deep_pixel_dlpk/0123abcd"):
        os.makedirs(os.path.join(root, folder))
        if folder != ".extract-running":
            os.utime(os.path.join(root, folder), (old, old))
    folders = []
    for i in range(dlpk.KEEP_PACKAGES + 2):
        folders.append(load_package(_dlpk(tmp_path / f"{i}.dlpk", _files(bytes([i]) * 100))).folder)
        os.utime(folders[-1], (old + i, old + i))
    last = load_package(_dlpk(tmp_path / "last.dlpk", _files(b"last")))
    kept = sorted(os.listdir(root))
    assert ".extract-running" in kept and not {".extract-old", ".trash-x", "0123abcd"} & set(kept)
    assert len(kept) == dlpk.KEEP_PACKAGES + 2 and os.path.basename(folders[-1]) in kept
    assert os.path.basename(folders[0]) not in kept and not (temp / "deep_pixel_dlpk").exists()  # and the old cache
    with open(last.weights_path, "wb") as f:                  # damaged after unpacking
        f.write(b"changed")
    again = load_package(str(tmp_path / "last.dlpk"))
    assert again.weights_hash == hashlib.sha256(b"last").hexdigest()
    assert not [n for n in os.listdir(root) if n.startswith((".trash", ".extract-old"))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6))
def test_damaged_dlpk_gives_our_error_and_leaves_no_temporary_files(tmp_path, temp, flips):
    _dlpk(tmp_path / "ok.dlpk", _files(os.urandom(3000)), zipfile.ZIP_DEFLATED)
    data = bytearray((tmp_path / "ok.dlpk").read_bytes())
    for at, byte in flips:
        data[at % len(data)] = byte
    (tmp_path / "bad.dlpk").write_bytes(bytes(data))
    try:
        load_package(str(tmp_path / "bad.dlpk"))
    except DeepPixelError:
        pass
    assert not [n for n in _contents(temp) if os.path.basename(n).startswith((".extract-", ".trash-"))]


# -- the .emd fields Classify uses (issue 14) --------------------------------------------------------

@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """An .emd beside small stand-in weights: read_emd checks the weights' hash, never loads them."""
    from rasterio.crs import CRS
    folder = tmp_path_factory.mktemp("light")
    for name, data in _files(CRS=CRS.from_epsg(32633).to_wkt(), CellSize=[10, 10], BandNames=["red", "green"]).items():
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


DROP = object()


def _write_changed(light, path, value, name="bad.emd"):
    emd = json.loads((light / "m.emd").read_text())
    *parents, last = path
    holder = emd
    for key in parents:
        holder = holder[key]
    if value is DROP:
        del holder[last]
    else:
        holder[last] = value
    (light / name).write_text(json.dumps(emd))
    return str(light / name)


@pytest.mark.parametrize("path, value", [
    (("CellSize",), 0), (("CellSize",), [0, 10]), (("CellSize",), [-10, 10]), (("CellSize",), "10"),
    (("CellSize",), [10]), (("CellSize",), [10, float("nan")]), (("CRS",), "garbage"), (("CRS",), 32633),
    (("CRS",), "PROJCS["), (("ImageHeight",), 0), (("ImageWidth",), -32), (("ImageHeight",), 100000),
    (("ExtractBands",), [True, 2]), (("ExtractBands",), []), (("BandNames",), [1, 2]),
    (("InputTransform", "mean"), [0, "x"]), (("InputTransform", "std"), [1, float("inf")]),
    (("InputTransform", "std"), [1, -1]), (("InputTransform", "indices"), [[0, 5]]),
    (("InputTransform", "indices"), [[-1, 0]]), (("InputTransform", "indices"), "01"),
    (("Classes",), [{"Value": 1, "Name": "a"}, {"Value": 1, "Name": "b"}]), (("Classes",), []),
    (("Classes", 0, "Color"), [1, 2]), (("ModelParameters", "architecture"), "Transformer"),
    (("ModelParameters", "encoder_depth"), "3"), (("ModelParameters", "encoder_depth"), 9),
    (("ModelParameters", "decoder_channels"), [16, 0, 8]), (("ModelParameters", "backbone"), " "),
    (("WeightsSHA256",), 12),
])
def test_malformed_fields_classify_uses_are_refused(light, path, value):
    bad = _write_changed(light, path, value)
    with pytest.raises(DeepPixelError) as e:
        read_emd(bad)
    message = str(e.value)
    assert "bad.emd" in message and path[0] in message and "Train Model" in message, message
    shown = repr(value)[:20]
    assert shown in message or path[0] == "Classes", message


def test_valid_crs_and_cell_size_are_read(light):
    pkg = read_emd(_write_changed(light, ("CRS",), "EPSG:4326", "ok.emd"))
    assert "WGS 84" in pkg.crs_wkt and pkg.cell_size == (10, 10)
    pkg = read_emd(_write_changed(light, ("CellSize",), [10, 10.5], "ok.emd"))
    assert pkg.cell_size == (10, 10.5) and "UTM zone 33N" in pkg.crs_wkt
    assert read_emd(_write_changed(light, ("CRS",), None, "ok.emd")).crs_wkt is None
    assert read_emd(_write_changed(light, ("CellSize",), None, "ok.emd")).cell_size is None


class _Quiet:
    def log(self, *a):
        pass

    warn = log


CLASSIFY_FIELDS = [("CRS",), ("CellSize",), ("CellSize", 0), ("ImageHeight",), ("ImageWidth",), ("ExtractBands",),
                   ("BandNames",), ("InputTransform",), ("InputTransform", "mean"), ("InputTransform", "std"),
                   ("InputTransform", "indices"), ("Classes",), ("Classes", 0, "Value"), ("Classes", 0, "Color"),
                   ("ModelParameters",), ("ModelParameters", "encoder_depth"), ("ModelParameters", "in_channels"),
                   ("ModelParameters", "decoder_channels"), ("ModelParameters", "architecture"), ("ModelFile",)]
NEAR_VALID = st.sampled_from([0, -1, 0.0, 1e308, "10", [0, 1], [1.0, -2.0], [10, 10], [[0, 1]], [[1, 0]], [[2, 0]],
                              "EPSG:4326", "PROJCS[\"x\"]", "+proj=longlat", 8192, 9000, 7, 32, [1, 2], [2, 1], [3]])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(CLASSIFY_FIELDS), value=json_values | NEAR_VALID, drop=st.booleans())
def test_fuzzed_classify_fields_give_our_error_or_a_package_classify_can_use(light, path, value, drop):
    """What read_emd accepts, Classify's checks, tiling, normalisation and ONNX metadata can use."""
    try:
        pkg = read_emd(_write_changed(light, path, DROP if drop else value, "fuzz.emd"))
    except DeepPixelError:
        return
    from rasterio.crs import CRS
    info = SimpleNamespace(path="r.tif", crs_wkt=CRS.from_epsg(32633).to_wkt(), is_geographic=False, count=3,
                           band_names=("red", "green", "nir"), pixel_size=(10.0, 10.0),
                           transform=(10.0, 0.0, 5e5, 0.0, -10.0, 5e6))
    try:
        bands_to_read(info, pkg)
        check_grid(info, pkg, _Quiet())
    except DeepPixelError:
        pass
    depth = int(pkg.model_params.get("encoder_depth", 5))
    assert TileParams.resolve(ClassifyOptions(), pkg.tile_size[0], 2 ** depth, (500, 700)).tile > 0
    out = pkg.transform.apply(np.ones((len(pkg.bands), 4, 4), dtype=np.uint16))
    assert out.shape == (pkg.in_channels, 4, 4) and np.isfinite(out).all()
    deepness_metadata(pkg)
