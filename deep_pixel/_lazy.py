"""Public names of a subpackage, imported on first use so that ``import deep_pixel.x`` stays light.

QGIS loads the plugin (and the engine's options) without torch; a subpackage that imported its
run module eagerly would pull torch in with its options.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, names: dict):
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps a public name to its module."""
    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name], package), name)

    def __dir__():
        return sorted(names)
    return __getattr__, __dir__
