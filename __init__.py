"""QGIS entry point of the Deep Pixel plugin (installed as plugin folder ``deeppixel``)."""


def classFactory(iface):  # noqa: N802 - name required by QGIS
    """Called by QGIS with the interface, and by qgis_process with ``None``."""
    from .plugin import DeepPixelPlugin
    return DeepPixelPlugin(iface)
