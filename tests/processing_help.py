"""qgis_process's own description of an algorithm (``help <alg> --json``) checked against the engine's
declarations (deep_pixel/core/params.py): every parameter, with the engine's label, default and flags."""
import json

from conftest import run_qgis_process

from deep_pixel.core.params import declared, processing_name

SCALAR_KINDS = ("int", "float", "bool", "str", "enum")


def help_json(algorithm):
    """The parsed ``scripts/qgis_process help <algorithm> --json``."""
    return json.loads(run_qgis_process("help", algorithm, "--json").stdout)


def assert_help_matches_declarations(algorithm, cls, own=(), outputs=()):
    """Every Processing parameter of ``algorithm`` is one of ``cls``'s declarations (same label, default,
    optional and advanced flags) or one of the algorithm's ``own`` parameters (inputs and destinations
    that are not options: no default); no other parameter; ``outputs`` among its outputs. Returns the help."""
    described = help_json(algorithm)
    parameters = described["parameters"]
    defaults = cls()
    expected = set(own)
    for f, spec in declared(cls, "processing"):
        name = processing_name(f)
        expected.add(name)
        assert name in parameters, f"{algorithm}: {name} is declared but not a Processing parameter"
        p = parameters[name]
        default = getattr(defaults, f.name)
        assert p["description"].startswith(spec.label), (name, p["description"], spec.label)
        if spec.kind in SCALAR_KINDS:
            assert p["default_value"] == default, (name, p["default_value"], default)
        else:
            assert p["default_value"] in (None, ""), (name, p["default_value"])
        optional = spec.optional or (bool(spec.choices) and spec.kind == "str")
        assert p["optional"] == optional, (name, p["optional"], optional)
        assert p["is_advanced"] == spec.advanced, (name, p["is_advanced"], spec.advanced)
        if spec.choices and spec.kind == "enum":
            assert p["available_options"] and list(p["available_options"].values()) == list(spec.choices), name
    for name in own:
        assert name in parameters and parameters[name]["default_value"] is None, name
    assert set(parameters) == expected, f"{algorithm}: parameters not checked: {sorted(set(parameters) - expected)}"
    assert set(outputs) <= set(described["outputs"]), (algorithm, sorted(described["outputs"]))
    return described
