"""The plugin object against the real QGIS interface: toolbar, provider, diagnostics, unload."""
import os

from qgis.core import QgsApplication


def test_plugin_load_and_unload(qgis_iface):
    import deeppixel
    from deeppixel.processing_provider import base

    import deep_pixel.core.errors
    from conftest import ROOT
    assert os.path.dirname(os.path.realpath(deeppixel.__file__)) == os.path.realpath(ROOT)  # this checkout
    assert base.DeepPixelError is deep_pixel.core.errors.DeepPixelError                       # one engine
    plugin = deeppixel.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert QgsApplication.processingRegistry().providerById("deeppixel") is not None
        names = [a.objectName() for a in plugin.actions]
        assert "DeepPixelDockAction" in names and "DeepPixelDiagnostics" in names
        assert "DeepPixelExportTrainingData" in names
    finally:
        plugin.unload()
    assert QgsApplication.processingRegistry().providerById("deeppixel") is None
    assert plugin.actions == []


def test_plugin_without_iface_registers_provider_only(qgis_app):
    import deeppixel
    plugin = deeppixel.classFactory(None)
    plugin.initProcessing()
    assert QgsApplication.processingRegistry().providerById("deeppixel") is not None
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById("deeppixel") is None


def test_diagnostics_report_names_versions(qgis_app):
    from deeppixel.ui.diagnostics_dialog import DiagnosticsDialog
    dialog = DiagnosticsDialog()
    text = dialog.text.toPlainText()
    for word in ("QGIS 3.", "torch", "gdal", "proj", "device_auto", "engine_mode"):
        assert word in text
    import torch
    assert ("CUDA available" if torch.cuda.is_available() else "CUDA not available") in text   # this machine's
