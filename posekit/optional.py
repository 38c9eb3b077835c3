"""Optional dependencies: a missing one is a message that says which extra to install, not an ImportError
traceback from deep inside a command."""
from __future__ import annotations

import importlib

__all__ = ["MissingExtra", "import_extra"]


class MissingExtra(ImportError):
    """An optional package a feature needs is not installed; the message names the pip extra."""


def import_extra(module: str, extra: str, feature: str):
    """``import module``, or MissingExtra: ``<feature> needs <module>: pip install 'posekit[<extra>]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{feature} needs the optional package {module!r}, which is not installed: "
                           f"pip install 'posekit[{extra}]'") from None
