"""Test setup: headless QGIS, the checkout importable as ``deep_pixel`` and as plugin ``deeppixel``."""
import importlib
import importlib.abc
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
LANDSAT = os.path.join(SHARED_DATA, "landsat_tutorial")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# A temporary folder of this session's own, for the tests and every process they start (TMPDIR is
# inherited: the command line, qgis_process, the external engine), so that check_temporary_files sees
# what this session left, not what another program running beside it has open at that moment.
_SYSTEM_TMP = tempfile.gettempdir()
SESSION_TMP = tempfile.mkdtemp(prefix="pytest-deep-pixel-tmp-", dir=_SYSTEM_TMP)
os.environ["TMPDIR"] = SESSION_TMP
tempfile.tempdir = SESSION_TMP
_state = os.path.join(ROOT, ".qgis")
_plugins = os.path.join(_state, "plugins")
os.makedirs(_plugins, exist_ok=True)
_link = os.path.join(_plugins, "deeppixel")
if not os.path.islink(_link):
    os.symlink(ROOT, _link)
for p in (ROOT, _plugins):
    if p not in sys.path:
        sys.path.insert(0, p)


class OneEngine(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """The plugin's engine, ``deeppixel.deep_pixel.*``, is the module objects of ``deep_pixel.*``.

    Tests import the engine as ``deep_pixel`` and the plugin imports it as ``deeppixel.deep_pixel``;
    without this there would be two engines in one process (two DeepPixelError classes, two
    option classes), and a test could pass against one while the plugin ran the other.
    """
    PREFIX = "deeppixel.deep_pixel"

    def find_spec(self, name, path=None, target=None):
        if name != self.PREFIX and not name.startswith(self.PREFIX + "."):
            return None
        real = importlib.import_module("deep_pixel" + name[len(self.PREFIX):])
        return importlib.util.spec_from_loader(name, self, is_package=hasattr(real, "__path__"))

    def create_module(self, spec):
        real = importlib.import_module("deep_pixel" + spec.name[len(self.PREFIX):])
        self._spec = real.__spec__
        return real

    def exec_module(self, module):
        module.__spec__ = self._spec     # the import system set the alias's spec; the module keeps its own


sys.meta_path.insert(0, OneEngine())


# Kept on purpose: the per-user .dlpk cache (deep_pixel/model/dlpk.py, tidied by each run), the ONNX cache's
# fallback when ~/.cache cannot be written (deep_pixel/model/onnx_file.py), and the Review tab's default
# working folder for an unsaved project (ui/review_rounds.py: the user's rounds and models).
DOCUMENTED_TEMP = (f"deep_pixel_dlpk-{os.getuid() if hasattr(os, 'getuid') else 0}", "deep_pixel_onnx",
                   "deep_pixel_rounds")


def ours_left_behind(folder: str) -> list:
    """Entries of ``folder`` (a temporary folder) that Deep Pixel made and did not remove."""
    return sorted(n for n in os.listdir(folder) if (n.startswith("deep_pixel") or ".partial" in n)
                  and n not in DOCUMENTED_TEMP)


@pytest.fixture(scope="session", autouse=True)
def check_temporary_files(request):
    """After the session the temporary folder (tempfile.gettempdir(), this session's own) holds no
    ``deep_pixel*`` or ``*.partial*`` entry that was not there before, except the documented caches."""
    before = set(ours_left_behind(tempfile.gettempdir()))
    yield
    left = [n for n in ours_left_behind(tempfile.gettempdir()) if n not in before]
    failed = request.session.testsfailed
    if not left and not failed:
        shutil.rmtree(SESSION_TMP, ignore_errors=True)
    assert not left, f"temporary files left behind in {tempfile.gettempdir()}: {left}"


@pytest.fixture(scope="session")
def landsat():
    """Paths of the real Landsat tutorial data; skips when ../shared/data is absent."""
    if not os.path.isdir(LANDSAT):
        pytest.skip(f"real data folder {LANDSAT} is absent (it sits beside the checkout in ../shared/data)")
    return {
        "image": os.path.join(LANDSAT, "LE70220491999322EDC01_stack.gtif"),
        "samples": os.path.join(LANDSAT, "training_data.shp"),
        "labels": os.path.join(LANDSAT, "training_data.gtif"),
    }


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """A 384x384 synthetic 4-band scene with polygons (made by the project's own generator)."""
    from deep_pixel.io.synthetic import make_scene
    return make_scene(str(tmp_path_factory.mktemp("scene")), width=384, height=384, seed=3)


def snapshot(folder):
    """{relative path: sha256} of every file under ``folder`` (inputs intact, nothing new left behind)."""
    import hashlib
    out = {}
    for base, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(base, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def run_qgis_process(*args, timeout=600, check=True, env=None):
    """Run scripts/qgis_process as a user would; returns the CompletedProcess."""
    cmd = [os.path.join(ROOT, "scripts", "qgis_process"), *args]
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def deeppixel_provider(qgis_processing):
    """The plugin's Processing provider, registered in the test QGIS application."""
    from qgis.core import QgsApplication
    registry = QgsApplication.processingRegistry()
    added = None
    if registry.providerById("deeppixel") is None:
        from deeppixel.processing_provider.provider import DeepPixelProvider
        added = DeepPixelProvider()  # this Python reference keeps the provider alive during the test
        registry.addProvider(added)
    yield registry.providerById("deeppixel")
    if added is not None and registry.providerById("deeppixel") is not None:
        registry.removeProvider("deeppixel")  # later tests (the plugin's own load/unload) start clean


@pytest.fixture(scope="session")
def trained_scene_model(scene, tmp_path_factory):
    """A small U-Net trained for real on the synthetic scene (about 20 s on 2 CPU cores): its .emd path.

    Good enough that classifications mean something (checked against the scene's true classes).
    """
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    base = tmp_path_factory.mktemp("scene_model")
    vec = read_vector(scene.samples)
    samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
    export_training_data(scene.image, samples, str(base / "chips"),
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32), scene.schema)
    result = train_model([str(base / "chips")], str(base / "model"), TrainOptions(
        max_epochs=12, backbone="resnet18", batch_size=8, learning_rate=2e-3, device="cpu", validation_percent=10,
        stop_when_not_improving=False, model_arguments={"chip_size": 64, "steps_per_epoch": 14,
                                                        "class_balancing": False}))
    return result.emd_path


@pytest.fixture(scope="session")
def second_scene_model(trained_scene_model, tmp_path_factory):
    """Another model from trained_scene_model's export (another seed, a short training): it disagrees in places
    (ENSEMBLE_MODELS)."""
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    chips = os.path.join(os.path.dirname(os.path.dirname(trained_scene_model)), "chips")
    result = train_model([chips], str(tmp_path_factory.mktemp("second_model") / "model"), TrainOptions(
        max_epochs=2, backbone="resnet18", batch_size=8, learning_rate=2e-3, device="cpu", seed=7,
        validation_percent=10, model_arguments={"chip_size": 64, "steps_per_epoch": 6, "lr_test_steps": 0}))
    return result.emd_path
