"""Screenshots of the labeling dock in the real QGIS desktop (run by ``make screenshots``).

Starts Xvfb, runs ``qgis`` with this checkout enabled as plugin ``deeppixel`` in an isolated
profile under .qgis/, loads a generated raster, samples and schema, opens the dock, runs an export
from it, then on the Review tab classifies the view with a small model trained beforehand, suggests
windows, retrains one round and suggests again, and saves PNGs under docs/: dock.png (Samples tab),
dock_schema.png, dock_export.png, dock_review.png, main_window.png and main_window_review.png.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.path.join(ROOT, ".qgis", "screenshots")
# The scene and the dock's output folder live in a neutral, home-like folder: the pictures show this
# path, not the developer's checkout, home or temporary folder. It is created for the run (with
# /home/user itself when that is missing, removed again afterwards).
NEUTRAL_HOME = "/home/user"
DEMO = os.path.join(NEUTRAL_HOME, "deep_pixel_demo")
DOCS = os.path.join(ROOT, "docs")
sys.path.insert(0, ROOT)

# Runs inside the QGIS desktop's Python (qgis --code). Paths arrive through the environment.
QGIS_CODE = r'''
import os, sys, traceback
# torch imports triton (a CUDA kernel compiler) when it is installed; triton's own LLVM crashes a QGIS
# desktop that has Mesa's libLLVM loaded (the llvmpipe OpenGL of Xvfb) on its first import. Nothing
# here needs triton: keep it out of this process (sys.modules None = "not installed" for torch).
sys.modules.setdefault("triton", None)
from qgis.core import QgsApplication, QgsContrastEnhancement, QgsProject, QgsRasterMinMaxOrigin
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

OUT = os.environ["DP_SHOT_OUT"]
SCENE = os.environ["DP_SHOT_SCENE"]
MODEL = os.environ["DP_SHOT_MODEL"]
STEP = [None]


def log(text):
    with open(os.path.join(OUT, "screenshots.log"), "a") as f:
        f.write(text + "\n")


def guarded(fn):
    def run():
        try:
            fn()
        except Exception:
            log(traceback.format_exc())
            finish()
    return run


def finish():
    open(os.path.join(OUT, "done"), "w").close()
    if STEP[0] is not None:
        STEP[0].samples_panel.deactivate_tools()
    # QGIS 3.22 can crash in its destructor when layers are still loaded at quit: unload them first.
    QgsProject.instance().removeAllMapLayers()
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(300, QgsApplication.instance().quit)


@guarded
def setup():
    win = iface.mainWindow()
    win.resize(1500, 940)
    raster = iface.addRasterLayer(os.path.join(SCENE, "scene.tif"), "scene (synthetic 4-band)")
    r = raster.renderer()
    r.setRedBand(4); r.setGreenBand(3); r.setBlueBand(2)  # false colour: vegetation in red
    raster.setContrastEnhancement(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum,
                                  QgsRasterMinMaxOrigin.Limits.CumulativeCut)
    samples = iface.addVectorLayer(os.path.join(SCENE, "samples.gpkg") + "|layername=samples", "samples", "ogr")
    plugin = plugins["deeppixel"]
    plugin.show_dock()
    dock = plugin.dock
    dock.setMinimumWidth(430)
    dock.set_raster(raster)
    dock.schema_panel.open_schema(os.path.join(SCENE, "schema.json"))
    dock.samples_panel.set_layer(samples, "Classvalue")
    dock.schema_panel.select_value(2)
    iface.setActiveLayer(samples)
    dock.tabs.setCurrentWidget(dock.samples_panel)
    dock.samples_panel.activate_tool("polygon")
    STEP[0] = dock
    QTimer.singleShot(1500, guarded(lambda: zoom(raster)))
    QTimer.singleShot(5000, shoot_samples)


def zoom(raster):
    # After QGIS's own zoom to the first layer: a closer look, so the sample polygons are visible.
    e = raster.extent()
    iface.mapCanvas().setExtent(e.buffered(-0.2 * e.width()))
    iface.mapCanvas().refresh()


def sketch(tool):
    """A polygon being drawn (three clicks, the cursor at the fourth), as a user would see it."""
    from qgis.gui import QgsMapMouseEvent
    from qgis.PyQt.QtCore import QEvent, QPoint, Qt
    canvas = iface.mapCanvas()
    w, h = canvas.width(), canvas.height()
    pts = [(0.58, 0.30), (0.72, 0.34), (0.70, 0.50), (0.57, 0.47)]
    for i, (fx, fy) in enumerate(pts):
        p = QPoint(int(fx * w), int(fy * h))
        tool.canvasMoveEvent(QgsMapMouseEvent(canvas, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton))
        if i < len(pts) - 1:
            tool.canvasReleaseEvent(QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, p,
                                                     Qt.MouseButton.LeftButton))


@guarded
def shoot_samples():
    dock = STEP[0]
    dock.samples_panel.table.selectRow(1)
    sketch(dock.samples_panel.tools["polygon"])
    dock.grab().save(os.path.join(OUT, "dock.png"))
    iface.mainWindow().grab().save(os.path.join(OUT, "main_window.png"))
    dock.tabs.setCurrentWidget(dock.schema_panel)
    QTimer.singleShot(500, shoot_schema)


@guarded
def shoot_schema():
    dock = STEP[0]
    dock.grab().save(os.path.join(OUT, "dock_schema.png"))
    dock.tabs.setCurrentWidget(dock.export_panel)
    export = dock.export_panel
    export.output.setFilePath(os.path.join(SCENE, "chips"))
    export.finished.connect(lambda ok, results: QTimer.singleShot(800, shoot_export))
    if not export.start():
        log("export did not start: " + export.status.text())
        shoot_export()


@guarded
def shoot_export():
    dock = STEP[0]
    log("export: " + dock.export_panel.status.text())
    dock.grab().save(os.path.join(OUT, "dock_export.png"))
    dock.samples_panel.deactivate_tools()
    # The Review tab: classify the view with the model trained beforehand, suggest, retrain a round
    # (tiny settings), suggest again with the new model, go to the first suggestion.
    review = dock.review_panel
    dock.tabs.setCurrentWidget(review)
    review.folder.setFilePath(os.path.join(SCENE, "rounds"))
    review.model.setFilePath(MODEL)
    review.count.setValue(6)
    review.epochs.setValue(2)
    review.steps.setValue(10)
    plan = [review.classify_view, review.suggest, review.retrain, review.suggest]

    def next_action(action="", ok=True):
        if action:
            log(f"review {action}: {'ok' if ok else 'FAILED'}: {review.status.text()}")
        if not ok:
            finish()
        elif plan:
            QTimer.singleShot(300, guarded(lambda: plan.pop(0)() or log("review: did not start")))
        else:
            QTimer.singleShot(800, shoot_review)
    review.finished.connect(lambda action, ok: next_action(action, ok))
    next_action()


@guarded
def shoot_review():
    dock = STEP[0]
    iface.mainWindow().grab().save(os.path.join(OUT, "main_window_review.png"))
    dock.review_panel.suggestion_table.cellClicked.emit(0, 0)
    QTimer.singleShot(300, guarded(lambda: (dock.grab().save(os.path.join(OUT, "dock_review.png")), finish())))


QTimer.singleShot(1500, setup)
'''


def free_display() -> int:
    for n in range(99, 140):
        if not os.path.exists(f"/tmp/.X{n}-lock") and not os.path.exists(f"/tmp/.X11-unix/X{n}"):
            return n
    raise RuntimeError("no free X display number between :99 and :139")


def make_inputs(folder: str) -> str:
    """The scene, its schema and a small model trained on it (the Review tab's starting model): its .emd."""
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.synthetic import make_scene
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    scene = make_scene(folder, width=512, height=512, seed=5, per_class=6)
    scene.schema.save(os.path.join(folder, "schema.json"))
    vec = read_vector(scene.samples)
    samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
    # Half the polygons: a first model that is unsure in places, as at the start of the loop.
    half = Samples(vec.geometries[::2], samples.values[::2], vec.crs_wkt)
    work = tempfile.mkdtemp(prefix="dp-shot-")
    try:
        export_training_data(scene.image, half, os.path.join(work, "chips"),
                             ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32), scene.schema)
        result = train_model([os.path.join(work, "chips")], os.path.join(folder, "first_model"), TrainOptions(
            max_epochs=6, backbone="resnet18", batch_size=8, learning_rate=2e-3, device="cpu",
            stop_when_not_improving=False, model_arguments={"chip_size": 64, "steps_per_epoch": 12}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result.emd_path


def profile(state: str) -> str:
    plugins = os.path.join(ROOT, ".qgis", "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "deeppixel")
    if not os.path.islink(link):
        os.symlink(ROOT, link)
    prof = os.path.join(state, "profile")
    qgis_dir = os.path.join(prof, "profiles", "default", "QGIS")
    os.makedirs(qgis_dir, exist_ok=True)
    with open(os.path.join(qgis_dir, "QGIS3.ini"), "w") as f:
        # Plugin on; no welcome/news/version check popups in front of the window.
        f.write("[PythonPlugins]\ndeeppixel=true\n\n"
                "[qgis]\ncheckVersion=false\nshowTips=false\nallowVersionCheck=false\n"
                "\n[core]\nNewsFeed\\httpsfeedqgisorg\\disabled=true\n")
    return prof


def main() -> int:
    if shutil.which("Xvfb") is None or shutil.which("qgis") is None:
        print("screenshots need Xvfb and qgis (make setup installs them)", file=sys.stderr)
        return 2
    shutil.rmtree(STATE, ignore_errors=True)
    made_home = not os.path.isdir(NEUTRAL_HOME)
    try:
        shutil.rmtree(DEMO, ignore_errors=True)
        os.makedirs(DEMO)
    except OSError as e:
        print(f"cannot create the neutral demo folder {DEMO} ({e.strerror}): run as a user who can create "
              f"it (the pictures would otherwise show a local path)", file=sys.stderr)
        return 2
    try:
        return shoot(DEMO)
    finally:
        shutil.rmtree(NEUTRAL_HOME if made_home else DEMO, ignore_errors=True)


def shoot(scene_dir: str) -> int:
    """Inputs into ``scene_dir``, QGIS under Xvfb, the PNGs copied to docs/ (0: all written)."""
    out = os.path.join(STATE, "out")
    os.makedirs(out)
    model = make_inputs(scene_dir)
    prof = profile(STATE)
    code = os.path.join(STATE, "shoot.py")
    with open(code, "w") as f:
        f.write(QGIS_CODE)
    display = free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qgis = None
    try:
        time.sleep(1.0)
        site = next((os.path.join(ROOT, ".venv", "lib", d, "site-packages")
                     for d in sorted(os.listdir(os.path.join(ROOT, ".venv", "lib")))
                     if d.startswith("python3")), "") if os.path.isdir(os.path.join(ROOT, ".venv", "lib")) else ""
        runtime = tempfile.mkdtemp(prefix="dp-xdg-")
        env = dict(os.environ, DISPLAY=f":{display}", QT_QPA_PLATFORM="xcb",
                   QGIS_PLUGINPATH=os.path.join(ROOT, ".qgis", "plugins"), QGIS_CUSTOM_CONFIG_PATH=prof,
                   PYTHONPATH=os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH", "")) if p),
                   XDG_RUNTIME_DIR=runtime, DP_SHOT_OUT=out, DP_SHOT_SCENE=scene_dir,
                   DP_SHOT_MODEL=model)
        log = open(os.path.join(STATE, "qgis.log"), "w")
        qgis = subprocess.Popen(["qgis", "--nologo", "--noversioncheck", "--code", code],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600      # the Review tab retrains a round on the CPU
        while time.monotonic() < deadline and qgis.poll() is None and not os.path.exists(os.path.join(out, "done")):
            time.sleep(0.5)
        if qgis.poll() is None:
            try:
                qgis.wait(timeout=15)
            except subprocess.TimeoutExpired:
                qgis.terminate()
                try:
                    qgis.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    qgis.kill()
    finally:
        if qgis is not None and qgis.poll() is None:
            qgis.kill()
        xvfb.terminate()
        try:
            xvfb.wait(timeout=10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
    notes = os.path.join(out, "screenshots.log")
    if os.path.exists(notes):
        print(open(notes).read())
    os.makedirs(DOCS, exist_ok=True)
    names = ("dock.png", "dock_schema.png", "dock_export.png", "dock_review.png", "main_window.png",
             "main_window_review.png")
    missing = [n for n in names if not os.path.exists(os.path.join(out, n))]
    for n in names:
        if n not in missing:
            shutil.copyfile(os.path.join(out, n), os.path.join(DOCS, n))
            print("wrote", os.path.join(DOCS, n))
    if missing:
        print(f"missing screenshots: {missing}; see {os.path.join(STATE, 'qgis.log')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
