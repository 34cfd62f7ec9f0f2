"""The plugin zip in a fresh QGIS profile, without torch, and with an external engine Python."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory):
    """dist zip unpacked into a new plugins folder with a new profile enabling it."""
    base = tmp_path_factory.mktemp("fresh")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_zip.py"), str(base / "dist")],
                          capture_output=True, text=True, check=True)
    zip_path = proc.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        assert all(n.startswith("deeppixel/") for n in names)
        assert not [n for n in names if "/tests/" in n or "__pycache__" in n or ".venv" in n]
        zf.extractall(base / "plugins")
    ini = base / "profile" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\ndeeppixel=true\n")
    return base


def qgis_process(base, *args, extra_env=None):
    """qgis_process.bin with only Debian's Python packages (no venv: no torch, no smp)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DEEP_PIXEL_PYTHON")}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(base / "plugins"),
               QGIS_CUSTOM_CONFIG_PATH=str(base / "profile"), **(extra_env or {}))
    return subprocess.run(["qgis_process.bin", *args], capture_output=True, text=True, env=env, timeout=600)


def test_zip_lists_every_algorithm_without_torch(fresh_install):
    check = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True)
    if check.returncode == 0:
        pytest.skip("torch is installed in the system Python; this test needs a Python without it")
    out = qgis_process(fresh_install, "list").stdout
    for alg in ("exporttrainingdata", "trainmodel", "classifypixels", "computeaccuracy"):
        assert f"deeppixel:{alg}" in out


def test_zip_export_runs_in_qgis_python(fresh_install, landsat, tmp_path):
    proc = qgis_process(fresh_install, "run", "deeppixel:exporttrainingdata", "--json", "--",
                        f"INPUT_RASTER={landsat['image']}", f"INPUT_SAMPLES={landsat['samples']}",
                        "TILE_SIZE_X=64", "TILE_SIZE_Y=64", f"OUTPUT_FOLDER={tmp_path / 'a'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout[proc.stdout.index("{"):])["results"]["NUM_CHIPS"] > 0


def test_external_engine_gives_the_same_export(fresh_install, landsat, tmp_path):
    args = ["run", "deeppixel:exporttrainingdata", "--json", "--", f"INPUT_RASTER={landsat['image']}",
            f"INPUT_SAMPLES={landsat['samples']}", "CLASS_FIELD=class", "TILE_SIZE_X=64", "TILE_SIZE_Y=64",
            "STRIDE_X=48", "STRIDE_Y=48"]
    inproc = qgis_process(fresh_install, *args, f"OUTPUT_FOLDER={tmp_path / 'in'}")
    external = qgis_process(fresh_install, *args, f"OUTPUT_FOLDER={tmp_path / 'ext'}",
                            extra_env={"DEEP_PIXEL_PYTHON": VENV_PYTHON})
    assert external.returncode == 0, external.stdout + external.stderr
    assert "External engine" in external.stdout + external.stderr
    a = json.load(open(tmp_path / "in" / "deep_pixel_export.json"))
    b = json.load(open(tmp_path / "ext" / "deep_pixel_export.json"))
    assert a["chips"] == b["chips"] and a["labelled_pixels_per_class"] == b["labelled_pixels_per_class"]
    assert inproc.returncode == 0


def test_external_engine_errors_are_reported(fresh_install, landsat, tmp_path):
    proc = qgis_process(fresh_install, "run", "deeppixel:exporttrainingdata", "--",
                        f"INPUT_RASTER={landsat['image']}", f"INPUT_SAMPLES={landsat['samples']}",
                        "TILE_SIZE_X=999", f"OUTPUT_FOLDER={tmp_path / 'x'}",
                        extra_env={"DEEP_PIXEL_PYTHON": VENV_PYTHON})
    assert proc.returncode != 0 and "larger than the raster" in proc.stdout + proc.stderr
    bad = qgis_process(fresh_install, "run", "deeppixel:exporttrainingdata", "--",
                       f"INPUT_RASTER={landsat['image']}", f"INPUT_SAMPLES={landsat['samples']}",
                       f"OUTPUT_FOLDER={tmp_path / 'y'}", extra_env={"DEEP_PIXEL_PYTHON": "/no/such/python"})
    assert bad.returncode != 0 and "does not exist" in bad.stdout + bad.stderr


def test_without_torch_classify_names_what_is_missing_and_the_external_engine_classifies(
        fresh_install, scene, trained_scene_model, tmp_path):
    """A QGIS whose Python lacks torch: a clear message; with DEEP_PIXEL_PYTHON the same run classifies,
    and gives exactly what the in-process engine gives (scripts/qgis_process with the venv)."""
    from conftest import run_qgis_process
    args = ["run", "deeppixel:classifypixels", "--json", "--", f"INPUT_RASTER={scene.image}",
            f"MODEL_DEFINITION={trained_scene_model}", "DEVICE=cpu"]
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode != 0:
        refused = qgis_process(fresh_install, *args, f"OUTPUT_RASTER={tmp_path / 'no.tif'}")
        assert refused.returncode != 0
        text = refused.stdout + refused.stderr
        assert "torch" in text and "pip install" in text and "DEEP_PIXEL_PYTHON" in text
        assert not os.path.exists(tmp_path / "no.tif")
    external = qgis_process(fresh_install, *args, f"OUTPUT_RASTER={tmp_path / 'ext.tif'}",
                            extra_env={"DEEP_PIXEL_PYTHON": VENV_PYTHON})
    assert external.returncode == 0, external.stdout + external.stderr
    assert "External engine" in external.stdout + external.stderr
    run_qgis_process(*args, f"OUTPUT_RASTER={tmp_path / 'in.tif'}")
    import rasterio
    with rasterio.open(tmp_path / "ext.tif") as a, rasterio.open(tmp_path / "in.tif") as b:
        assert (a.read(1) == b.read(1)).all() and a.read(1).any()
