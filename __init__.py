"""QGIS entry point of the Deep Pixel plugin (installed as plugin folder ``deeppixel``)."""
import glob
import os
import sys


def _use_checkout_venv():
    """Let QGIS's Python see the packages of a ``.venv`` beside the plugin (``make setup`` makes it).

    Only a venv built for this same Python version is used, and only after QGIS's own paths,
    so the system's GDAL, rasterio and Qt bindings keep priority.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for site in glob.glob(os.path.join(here, ".venv", "lib", version, "site-packages")):
        if site not in sys.path:
            sys.path.append(site)


def _without_triton():
    """torch (through torchvision's torch._dynamo) imports triton when it is installed; its bundled
    LLVM clashes with the Mesa LLVM that the QGIS desktop has loaded for OpenGL and kills QGIS
    (signal 11 inside libtriton's start-up). The engine never compiles kernels, so triton is marked
    absent in QGIS's Python before torch can be imported; the command line is not affected."""
    sys.modules.setdefault("triton", None)


def classFactory(iface):  # noqa: N802 - name required by QGIS
    """Called by QGIS with the interface, and by qgis_process with ``None``."""
    _use_checkout_venv()
    _without_triton()
    from .plugin import DeepPixelPlugin
    return DeepPixelPlugin(iface)
