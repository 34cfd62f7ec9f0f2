"""Parameters declared once: an options dataclass field carries everything an interface needs.

``option(default, label, help, ...)`` declares a field with its default, range or choices, label and
help. The command line (``add_cli_arguments``/``from_cli``) and the Processing algorithms
(processing_provider/param_builder.py) are built from these declarations; the Processing name is
the field name in capitals (``tile_size`` -> ``TILE_SIZE``), the command-line flag the field name
with dashes (``--tile-size``; booleans that default to on: ``--no-<name>``).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, Field, dataclass, field, fields

from .errors import DeepPixelError

KINDS = ("int", "float", "bool", "str", "enum", "field", "file", "keyvalues", "vector", "raster_out")


@dataclass(frozen=True)
class Spec:
    label: str
    help: str = ""
    kind: str = ""                  # one of KINDS; "" = from the default's type
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    optional: bool = False          # may be left empty (None)
    advanced: bool = False          # under "Advanced" in the Processing dialog
    parent: str = ""                # kind "field": the Processing layer parameter it belongs to
    strict: bool = True             # False: choices are suggestions (Processing's list), any value passes
    aliases: tuple = ()             # extra command-line flags kept for compatibility
    file_filter: str = ""           # kind "file": the Processing file dialog's filter
    parse: object = None            # kind "keyvalues": text -> value (command line and Processing)
    interfaces: tuple = ("cli", "processing")


def option(default, label: str, help: str = "", **spec) -> Field:
    """A declared options field (see Spec for the keywords); dict/list defaults are copied per instance."""
    metadata = {"spec": Spec(label, help, **spec)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(cls, interface: str | None = None) -> list:
    """[(field, spec)] of ``cls`` in declaration order (only those shown on ``interface``)."""
    out = []
    for f in fields(cls):
        spec = f.metadata.get("spec")
        if spec is not None and (interface is None or interface in spec.interfaces):
            out.append((f, _with_kind(f, spec)))
    return out


def _with_kind(f: Field, spec: Spec) -> Spec:
    if spec.kind:
        return spec
    default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING
                                                           else None)
    kind = {bool: "bool", int: "int", float: "float"}.get(type(default), "str")
    return Spec(**{**spec.__dict__, "kind": kind})


def processing_name(f: Field) -> str:
    return f.name.upper()


def cli_flag(f: Field, spec: Spec) -> str:
    name = f.name.replace("_", "-")
    return f"--no-{name}" if spec.kind == "bool" and f.default is True else f"--{name}"


def describe(spec: Spec) -> str:
    """The help text with the range or choices, as every interface shows it (argparse adds the default)."""
    parts = [spec.help or spec.label]
    if spec.choices:
        parts.append("one of " + ", ".join(map(str, spec.choices)))
    if spec.minimum is not None or spec.maximum is not None:
        parts.append(f"range {'' if spec.minimum is None else spec.minimum}..{'' if spec.maximum is None else spec.maximum}")
    return "; ".join(parts)


def add_cli_arguments(parser: argparse.ArgumentParser, cls) -> None:
    defaults = cls()
    for f, spec in declared(cls, "cli"):
        default = getattr(defaults, f.name)
        flags = [cli_flag(f, spec), *spec.aliases]
        text = describe(spec)
        if spec.kind == "bool":
            action = "store_false" if default is True else "store_true"
            parser.add_argument(*flags, dest=f.name, action=action, default=default, help=text)
        else:
            parser.add_argument(*flags, dest=f.name, type=_cli_type(spec), default=default, help=text,
                                choices=(list(spec.choices) if spec.strict else None) or None)
    parser.add_argument("--options-json", default=None,
                        help="a JSON file of these options (field names as keys; the external engine of the "
                             "Processing algorithms passes them this way)")


def _cli_type(spec: Spec):
    """argparse's converter; an engine error in parsing becomes argparse's one-line usage error."""
    if spec.kind != "keyvalues":
        return {"int": int, "float": float}.get(spec.kind, str)

    def parse(text):
        try:
            return spec.parse(text)
        except DeepPixelError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
    parse.__name__ = "key=value list"
    return parse


def from_cli(cls, args: argparse.Namespace):
    """The options from parsed arguments, or from --options-json when given."""
    if getattr(args, "options_json", None):
        return from_json_file(cls, args.options_json)
    return cls(**{f.name: getattr(args, f.name) for f, _ in declared(cls, "cli")})


def to_json(options) -> dict:
    return {f.name: getattr(options, f.name) for f, _ in declared(type(options))}


def from_json_file(cls, path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    except (OSError, ValueError) as e:
        raise DeepPixelError(f"Cannot read the options file {path}: {e}.") from e
    names = {f.name for f, _ in declared(cls)}
    unknown = sorted(set(values) - names) if isinstance(values, dict) else ["(not a JSON object)"]
    if unknown:
        raise DeepPixelError(f"The options file {path} has unknown options: {', '.join(unknown)}.")
    return cls(**values)


def check_ranges(options) -> None:
    """Every declared number within its range and every choice among its choices (names the parameter)."""
    for f, spec in declared(type(options)):
        value = getattr(options, f.name)
        if value is None:
            continue
        name = processing_name(f)
        _check_type(name, spec.kind, value)
        if spec.choices and spec.strict and value not in spec.choices:
            raise DeepPixelError(f"{name} {value!r} is not one of {', '.join(map(str, spec.choices))}.")
        if spec.kind in ("int", "float"):
            if spec.minimum is not None and value < spec.minimum:
                raise DeepPixelError(f"{name} {value} is below its minimum {spec.minimum} ({spec.label}).")
            if spec.maximum is not None and value > spec.maximum:
                raise DeepPixelError(f"{name} {value} is above its maximum {spec.maximum} ({spec.label}).")


def _check_type(name: str, kind: str, value) -> None:
    """Values from JSON or Python callers have the declared type (a "5" is not the number 5)."""
    import numbers
    flag = isinstance(value, bool) or type(value).__name__ == "bool_"
    wrong = ((kind == "int" and (flag or not isinstance(value, numbers.Integral)))
             or (kind == "float" and (flag or not isinstance(value, numbers.Real)))
             or (kind == "bool" and not flag))
    if wrong:
        expected = {"int": "a whole number", "float": "a number", "bool": "true or false"}[kind]
        raise DeepPixelError(f"{name} {value!r} is not {expected}.")
