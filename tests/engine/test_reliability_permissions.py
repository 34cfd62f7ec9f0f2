"""Unreadable inputs, unwritable destinations and bugs give one clear line, through the command line (and
Processing for bugs), even when the tests run as root (CI does): permission failures are simulated where
the system would raise them (os.access, GDAL's open, creating the staging file), so these tests run
everywhere. Also: classified values outside the raster's class list, band order, and temporary files.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import rasterio
from conftest import snapshot
from gis_files import write_raster, write_vector
from shapely.geometry import box

import deep_pixel.io.destinations as destinations
from deep_pixel.cli.main import main
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.evaluate.accuracy import evaluate


def run_cli(capsys, *args):
    """``python -m deep_pixel --progress json <args>`` in this process: (exit status, JSON lines, stderr)."""
    code = main(["--progress", "json", *map(str, args)])
    out, err = capsys.readouterr()
    return code, [json.loads(x) for x in out.splitlines() if x.startswith("{")], err


def one_error_line(code, lines, err):
    """Exit status 1, exactly one final line of type error, no traceback; its message."""
    assert code == 1, (lines, err)
    final = [x for x in lines if x["type"] in ("error", "cancelled", "result")]
    assert len(final) == 1 and final[0]["type"] == "error", final
    assert "\n" not in final[0]["message"] and "Traceback" not in err
    return final[0]["message"]


@pytest.fixture
def files(tmp_path, scene, request):
    """Inputs for each command: a raster with samples (export), a class raster and a reference (evaluate)."""
    raster = write_raster(tmp_path / "r.tif", np.random.default_rng(0).integers(1, 200, (3, 64, 64), np.uint16))
    vector = write_vector(tmp_path / "s.gpkg", [box(1000, 1940, 1030, 2000), box(1030, 1940, 1064, 2000)], [1, 2])
    classes = write_raster(tmp_path / "c.tif", np.full((1, 64, 64), 2, np.uint8))
    return tmp_path, raster, vector, classes


def _commands(tmp_path, raster, vector, classes, scene_image, model, out):
    return {"export": ["export", "--input-raster", raster, "--input-samples", vector, "--class-field", "cls",
                       "--tile-size-x", 32, "--tile-size-y", 32, "--output-folder", out / "chips"],
            "classify": ["classify", "--input-raster", scene_image, "--model-definition", model,
                         "--output-raster", out / "classes.tif"],
            "evaluate": ["evaluate", "--input-classified", classes, "--reference-raster", classes,
                         "--output-report", out / "r.html"]}


COMMANDS = ["export", "classify", "evaluate"]


def _setup(files, scene, request, command, out):
    tmp_path, raster, vector, classes = files
    model = request.getfixturevalue("trained_scene_model") if command == "classify" else ""
    return _commands(tmp_path, raster, vector, classes, scene.image, model, out)[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_unwritable_destination_is_refused_first(files, scene, request, capsys, monkeypatch, command):
    tmp_path = files[0]
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(destinations.os, "access",
                        lambda p, mode, **kw: False if str(p).startswith(str(locked)) else real(p, mode, **kw))
    before = snapshot(tmp_path)
    message = one_error_line(*run_cli(capsys, *_setup(files, scene, request, command, locked)))
    assert "cannot be written: no permission to write in" in message and str(locked) in message
    assert snapshot(tmp_path) == before and os.listdir(locked) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_that_refuses_the_staging_file_is_one_clear_error(files, scene, request, capsys, monkeypatch,
                                                                      command):
    """Permission to write is refused only when the file is made (a read-only mount, an ACL)."""
    tmp_path = files[0]
    out = tmp_path / "out"
    out.mkdir()
    for name in ("mkstemp", "mkdtemp"):
        real = getattr(tempfile, name)

        def refuse(*a, _real=real, **kw):
            if str(kw.get("dir", "")).startswith(str(out)):
                raise PermissionError(13, "Permission denied", kw["dir"])
            return _real(*a, **kw)
        monkeypatch.setattr(tempfile, name, refuse)
    before = snapshot(tmp_path)
    message = one_error_line(*run_cli(capsys, *_setup(files, scene, request, command, out)))
    assert "Permission denied" in message and str(out) in message and "Unexpected error" not in message
    assert snapshot(tmp_path) == before and os.listdir(out) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_unreadable_raster_names_the_file_and_the_reason(files, scene, request, capsys, monkeypatch, command):
    """GDAL's own message for a file without read permission (root reads everything, so it is simulated)."""
    tmp_path, raster, _, classes = files
    unreadable = {"export": raster, "classify": scene.image, "evaluate": classes}[command]
    real = rasterio.open

    def open_(path, *a, **kw):
        if str(path) == unreadable and (not a or a[0] == "r") and kw.get("mode", "r") == "r":
            raise rasterio.errors.RasterioIOError(f"{path}: Permission denied")
        return real(path, *a, **kw)
    monkeypatch.setattr(rasterio, "open", open_)
    before = snapshot(tmp_path)
    message = one_error_line(*run_cli(capsys, *_setup(files, scene, request, command, tmp_path / "out")))
    assert unreadable in message and "Permission denied" in message and "Unexpected error" not in message
    assert snapshot(tmp_path) == before


def test_an_unexpected_exception_is_one_line_without_a_traceback(files, capsys, monkeypatch):
    import deep_pixel.cli.evaluate as command

    def bug(*a, **kw):
        raise RuntimeError("a bug (simulated)")
    monkeypatch.setattr(command, "evaluate", bug)
    monkeypatch.delenv("DEEP_PIXEL_DEBUG", raising=False)
    tmp_path, _, _, classes = files
    args = ["evaluate", "--input-classified", classes, "--reference-raster", classes]
    message = one_error_line(*run_cli(capsys, *args))
    assert message.startswith("Unexpected error (RuntimeError: a bug (simulated)). This is a bug in Deep Pixel")
    assert main(args) == 1                                    # the progress bar form: one line on stderr
    err = capsys.readouterr().err
    assert [x for x in err.splitlines() if x.strip()] == [f"error: {message}"] and "Traceback" not in err
    monkeypatch.setenv("DEEP_PIXEL_DEBUG", "1")               # the traceback only when asked for
    with pytest.raises(RuntimeError, match="simulated"):
        main(args)


def test_an_unexpected_exception_in_processing_is_one_line(deeppixel_provider, files, monkeypatch):
    import processing
    from qgis.core import QgsProcessingException

    import deep_pixel.cli.evaluate as command

    def bug(*a, **kw):
        raise RuntimeError("a bug (simulated)")
    monkeypatch.setattr(command, "evaluate", bug)
    tmp_path, _, _, classes = files
    with pytest.raises(QgsProcessingException) as e:
        processing.run("deeppixel:computeaccuracy", {"INPUT_CLASSIFIED": classes, "REFERENCE_RASTER": classes,
                                                     "OUTPUT_REPORT": str(tmp_path / "r.html")})
    assert str(e.value).startswith("Unexpected error (RuntimeError: a bug (simulated)). This is a bug")
    assert "\n" not in str(e.value) and not os.path.exists(tmp_path / "r.html")


def test_classified_values_outside_the_rasters_class_list_are_refused(tmp_path):
    data = np.full((1, 32, 32), 1, np.uint8)
    data[0, :3] = 3
    classified = write_raster(tmp_path / "c.tif", data)
    with rasterio.open(classified, "r+") as ds:
        ds.update_tags(DEEP_PIXEL_CLASSES=json.dumps([{"value": 1, "name": "water"}, {"value": 2, "name": "land"}]))
    reference = write_raster(tmp_path / "ref.tif", np.full((1, 32, 32), 1, np.uint8))
    with pytest.raises(DeepPixelError, match=r"INPUT_CLASSIFIED .*c\.tif holds class value\(s\) \[3\] that its own "
                                             r"class list \(\[1, 2\]\) does not have"):
        evaluate(classified, reference_raster=reference)


def test_bands_in_another_order_than_the_models_are_refused(scene, trained_scene_model, tmp_path):
    from deep_pixel.classify.run import classify
    model = tmp_path / "model"
    shutil.copytree(os.path.dirname(trained_scene_model), model)
    emd_path = model / os.path.basename(trained_scene_model)
    emd = json.load(open(emd_path))
    emd["BandNames"] = ["blue", "green", "red", "nir"]
    json.dump(emd, open(emd_path, "w"))
    with rasterio.open(scene.image) as src:
        profile, data = src.profile, src.read(window=((0, 64), (0, 64)))
        profile.update(width=64, height=64, transform=src.window_transform(((0, 64), (0, 64))))
    with rasterio.open(tmp_path / "swapped.tif", "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = ("green", "blue", "red", "nir")
    with pytest.raises(DeepPixelError, match=r"in another order \(green, blue, red, nir\) than the model's "
                                             r"\(blue, green, red, nir\)\. Reorder them \(e\.g\. gdal_translate -b"):
        classify(str(tmp_path / "swapped.tif"), str(emd_path), str(tmp_path / "out.tif"))
    assert not os.path.exists(tmp_path / "out.tif")


def test_suggest_removes_its_work_folder_and_what_killed_runs_left(scene, trained_scene_model):
    from deep_pixel.suggest.options import SuggestOptions
    from deep_pixel.suggest.run import WORK_PREFIX, suggest
    temp = tempfile.gettempdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = os.path.join(temp, f"{WORK_PREFIX}{int(dead.stdout)}-old")     # a run that was killed
    running = os.path.join(temp, f"{WORK_PREFIX}{os.getppid()}-busy")       # a run still going (pytest's parent)
    for folder in (killed, running):
        os.makedirs(os.path.join(folder, "sub"))
    try:
        suggest(scene.image, trained_scene_model, options=SuggestOptions(number_of_suggestions=2, device="cpu"))
        left = sorted(n for n in os.listdir(temp) if n.startswith(WORK_PREFIX))
        assert left == [os.path.basename(running)]
    finally:
        shutil.rmtree(running, ignore_errors=True)
        shutil.rmtree(killed, ignore_errors=True)
