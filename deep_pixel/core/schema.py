"""Class schema: names, integer values and colours of the classes a model knows.

Value 0 is reserved for "no class" (unlabelled pixels, nodata in outputs). The JSON form is::

    {"schema_version": 1, "classes": [{"value": 1, "name": "water", "color": [0, 0, 255]}, ...]}

The ``Classes`` array of an ``.emd`` model definition (``Value``/``Name``/``Color``) is read too.
"""
from __future__ import annotations

import colorsys
import json
import os
from dataclasses import dataclass, field

from .errors import DeepPixelError

SCHEMA_VERSION = 1
MAX_UINT8_VALUE = 254


@dataclass(frozen=True)
class ClassInfo:
    value: int
    name: str
    color: tuple = (128, 128, 128)

    def to_json(self) -> dict:
        return {"value": self.value, "name": self.name, "color": list(self.color)}

    def to_emd(self) -> dict:
        return {"Value": self.value, "Name": self.name, "Color": list(self.color)}


def default_color(index: int) -> tuple:
    """A distinct, saturated colour for the index-th class (golden-angle hues)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.9)
    return (int(r * 255), int(g * 255), int(b * 255))


def _color(value, where: str) -> tuple:
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
    if (isinstance(value, (list, tuple)) and len(value) >= 3
            and all(isinstance(c, (int, float)) and 0 <= c <= 255 for c in value[:3])):
        return tuple(int(c) for c in value[:3])
    raise DeepPixelError(f"{where}: colour {value!r} is not [r, g, b] with 0-255 values or '#rrggbb'.")


@dataclass
class ClassSchema:
    classes: list = field(default_factory=list)
    max_value: int = MAX_UINT8_VALUE

    def __post_init__(self):
        self.validate()

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        seen_values, seen_names = set(), set()
        for c in self.classes:
            if not isinstance(c.value, int) or isinstance(c.value, bool):
                raise DeepPixelError(f"Class {c.name!r}: value {c.value!r} is not an integer.")
            if c.value <= 0:
                raise DeepPixelError(
                    f"Class {c.name!r} has value {c.value}: class values must be 1 or more "
                    "(0 is reserved for unlabelled pixels). Give the class a positive value.")
            if c.value > self.max_value:
                raise DeepPixelError(
                    f"Class {c.name!r} has value {c.value}, above {self.max_value}, the largest "
                    "value an 8-bit label raster can hold. Renumber the classes from 1.")
            if not str(c.name).strip():
                raise DeepPixelError(f"Class with value {c.value} has an empty name.")
            if c.value in seen_values:
                raise DeepPixelError(f"Class value {c.value} is used twice; each class needs its own value.")
            if c.name.lower() in seen_names:
                raise DeepPixelError(f"Class name {c.name!r} is used twice; each class needs its own name.")
            seen_values.add(c.value)
            seen_names.add(c.name.lower())

    # -- queries --------------------------------------------------------------------------
    def __len__(self):
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    @property
    def values(self) -> list:
        return [c.value for c in self.classes]

    def by_value(self, value: int) -> ClassInfo | None:
        return next((c for c in self.classes if c.value == value), None)

    def by_name(self, name: str) -> ClassInfo | None:
        key = str(name).strip().lower()
        return next((c for c in self.classes if c.name.lower() == key), None)

    def with_class(self, info: ClassInfo) -> "ClassSchema":
        return ClassSchema(self.classes + [info], self.max_value)

    def without_value(self, value: int) -> "ClassSchema":
        return ClassSchema([c for c in self.classes if c.value != value], self.max_value)

    def next_value(self) -> int:
        return max(self.values, default=0) + 1

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_names(cls, names) -> "ClassSchema":
        """Values 1..n for the distinct names, in sorted order (reproducible)."""
        unique = sorted({str(n).strip() for n in names if n is not None and str(n).strip()},
                        key=str.lower)
        return cls([ClassInfo(i + 1, n, default_color(i)) for i, n in enumerate(unique)])

    @classmethod
    def from_values(cls, values) -> "ClassSchema":
        unique = sorted({int(v) for v in values})
        return cls([ClassInfo(v, f"Class {v}", default_color(i)) for i, v in enumerate(unique)])

    @classmethod
    def from_records(cls, records, where: str = "schema") -> "ClassSchema":
        """From a list of dicts with value/name/color (ours) or Value/Name/Color (.emd)."""
        if not isinstance(records, list):
            raise DeepPixelError(f"{where}: the class list must be a JSON array.")
        classes = []
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise DeepPixelError(f"{where}: class entry {i} is not an object.")
            value = r.get("value", r.get("Value"))
            name = r.get("name", r.get("Name"))
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise DeepPixelError(f"{where}: class entry {i} has no integer value (got {value!r}).")
            if not isinstance(name, str):
                raise DeepPixelError(f"{where}: class entry {i} has no text name (got {name!r}).")
            color = r.get("color", r.get("Color"))
            color = default_color(i) if color is None else _color(color, f"{where}, class {name!r}")
            classes.append(ClassInfo(value, name, color))
        return cls(classes)

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "classes": [c.to_json() for c in self.classes]}

    def to_emd_classes(self) -> list:
        return [c.to_emd() for c in self.classes]

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=2)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "ClassSchema":
        """Read our schema JSON, or the ``Classes`` of an .emd / esri_model_definition.emd."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as e:
            raise DeepPixelError(f"Cannot read class schema {path}: {e.strerror}.") from e
        except ValueError as e:
            raise DeepPixelError(f"Class schema {path} is not valid JSON ({e}).") from e
        if isinstance(data, dict) and "classes" in data:
            return cls.from_records(data["classes"], path)
        if isinstance(data, dict) and "Classes" in data:
            return cls.from_records(data["Classes"], path)
        raise DeepPixelError(f"{path} holds no 'classes' (schema) or 'Classes' (.emd) array.")
