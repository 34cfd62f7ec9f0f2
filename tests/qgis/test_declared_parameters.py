"""Parameters are declared once in the engine: Processing, the command line and the README agree."""
import os
import re

import pytest
from qgis.core import QgsApplication

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.cli.main import build_parser
from deep_pixel.core.params import cli_flag, declared, processing_name
from deep_pixel.evaluate.accuracy import EvaluateOptions
from deep_pixel.export.run import ExportOptions
from deep_pixel.suggest.options import SuggestOptions
from deep_pixel.train.options import TrainOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DECLARED = [("deeppixel:classifypixels", "classify", ClassifyOptions, "## Classify Pixels"),
            ("deeppixel:computeaccuracy", "evaluate", EvaluateOptions, "## Compute Accuracy"),
            ("deeppixel:exporttrainingdata", "export", ExportOptions, "## Export Training Data"),
            ("deeppixel:trainmodel", "train", TrainOptions, "## Train Model"),
            ("deeppixel:suggestsamples", "suggest", SuggestOptions, "## Suggest Samples")]


def _subparser(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command]


def _readme_section(title):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end]


def _readme_defaults(section_text, name):
    """The default shown for ``name`` in a README parameter list: the text of the first [bracket] after
    each mention (``NAME`` [256] or ``A`` and ``B`` [256]), up to its first ';' or ':' (the rest explains)."""
    names = r"`[A-Z_]+`"
    found = re.finditer(rf"`{name}`(?:\s+and\s+{names})*\s*\[([^\]]*)\]", section_text)
    return [re.split(r"[;:]", m.group(1))[0].strip() for m in found]


def _same_default(text, default):
    """README words for a default: 'empty' for none, yes/no for booleans, the number (a unit may follow)."""
    if default in (None, "", {}):
        return text == "empty"
    if isinstance(default, bool):
        return text == ("yes" if default else "no")
    if isinstance(default, (int, float)):
        first = re.split(r"[\s,=]", text)[0]
        return re.fullmatch(r"-?[0-9.]+", first) is not None and float(first) == default
    return text == str(default)


def test_readme_default_parser():
    text = "`A` [256], `B` and `C` [128; equal to the tile] `D` (optional) `E` [empty: automatic] `F` [5 minutes]"
    assert _readme_defaults(text, "A") == ["256"] and _readme_defaults(text, "B") == ["128"]
    assert _readme_defaults(text, "C") == ["128"] and _readme_defaults(text, "D") == []
    assert _readme_defaults(text, "E") == ["empty"] and _same_default("5 minutes", 5.0)
    assert not _same_default("yes", False) and not _same_default("12", 1) and _same_default("no", False)


@pytest.mark.parametrize("algorithm, command, cls, section", DECLARED)
def test_every_declared_parameter_is_in_processing_cli_and_readme(deeppixel_provider, algorithm, command, cls,
                                                                   section):
    alg = QgsApplication.processingRegistry().algorithmById(algorithm)
    cli = {a.dest: a for a in _subparser(command)._actions}
    readme = _readme_section(section)
    defaults = cls()
    for f, spec in declared(cls):
        name, default = processing_name(f), getattr(defaults, f.name)
        definition = alg.parameterDefinition(name)
        assert definition is not None, name
        assert definition.description().startswith(spec.label), name
        if spec.kind in ("int", "float", "bool", "str", "enum"):
            assert definition.defaultValue() == default, (name, definition.defaultValue(), default)
        optional = spec.optional or (bool(spec.choices) and spec.kind == "str")
        assert bool(definition.flags() & definition.FlagOptional) == optional, name
        assert f.name in cli and cli[f.name].default == default, name
        assert cli_flag(f, spec) in cli[f.name].option_strings, name
        assert re.search(rf"`{name}`", readme), f"{name} is missing from the README's {section} section"
        shown = _readme_defaults(readme, name)
        assert all(_same_default(text, default) for text in shown), (section, name, shown, default)
        assert shown or default in (None, "", {}), f"the README's {section} section shows no default for {name}"


def test_processing_names_are_the_stable_ones(deeppixel_provider):
    """The qgis_process and modeler interface: these names never change."""
    alg = QgsApplication.processingRegistry().algorithmById("deeppixel:classifypixels")
    names = {p.name() for p in alg.parameterDefinitions()}
    assert {"INPUT_RASTER", "MODEL_DEFINITION", "OUTPUT_RASTER", "TILE_SIZE", "PADDING", "BATCH_SIZE",
            "PREDICT_BACKGROUND", "TEST_TIME_AUGMENTATION", "MASK_POLYGONS", "OUTPUT_CONFIDENCE", "DEVICE",
            "RUNTIME", "PRECISION", "OUTPUT_UNCERTAINTY", "UNCERTAINTY_MEASURE"} <= names
    suggest = QgsApplication.processingRegistry().algorithmById("deeppixel:suggestsamples")
    assert {p.name() for p in suggest.parameterDefinitions()} >= {
        "INPUT_RASTER", "MODEL_DEFINITION", "INPUT_UNCERTAINTY", "INPUT_SAMPLES", "NUMBER_OF_SUGGESTIONS",
        "WINDOW_SIZE", "MASK_POLYGONS", "SEED", "OUTPUT"}
