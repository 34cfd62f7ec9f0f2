"""The plugin's QGIS code uses spellings that run on QGIS 3.22 (Qt5) and QGIS 4 (Qt6)."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _checker():
    spec = importlib.util.spec_from_file_location("check_qt6", os.path.join(ROOT, "scripts", "check_qt6.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_qt5_only_idioms_in_the_plugin():
    assert list(_checker().findings()) == []


def test_the_checker_catches_qt5_only_spellings():
    problems = _checker().problems
    for line in ("dialog.exec_()", "from PyQt5.QtCore import Qt", "QgsField('a', QVariant.Int)",
                 "QgsProcessingParameterNumber.Integer", "[QgsProcessing.TypeVectorPolygon]",
                 "p.flags() | QgsProcessingParameterDefinition.FlagAdvanced", "Qgis.Warning",
                 "item.setTextAlignment(Qt.AlignRight)"):
        assert problems(line), line
    for line in ("dialog.exec()", "Qt.AlignmentFlag.AlignRight", "number_type('int')", "Qgis.MessageLevel.Warning"):
        assert not problems(line), line


def test_metadata_declares_qt6_support():
    with open(os.path.join(ROOT, "metadata.txt"), encoding="utf-8") as f:
        assert "supportsQt6=True" in f.read()
