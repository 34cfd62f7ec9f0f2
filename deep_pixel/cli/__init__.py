"""``python -m deep_pixel <command>``: one small module per command, flags built from the declarations."""
from .main import main

__all__ = ["main"]
