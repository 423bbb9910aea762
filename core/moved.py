"""Old import paths of the modules that left the core (docs/migration.md, "A small core").

Each old module (``core/knn.py`` ...) is a two-line shim that calls :func:`forward`: importing it
warns with a :class:`DeprecationWarning` naming the new path and then *is* the new module
(``sys.modules`` points the old name at it), so every attribute, private ones included, and every
monkeypatch reach the one real module. The shims will be removed in a later release.
"""
from __future__ import annotations

import importlib
import sys
import warnings

#: old module -> where it lives now
MOVED = {
    "dreamset.attacking": "dreamset.toolkit.attacking",
    "dreamset.features": "dreamset.toolkit.features",
    "dreamset.knn": "dreamset.toolkit.knn",
    "dreamset.backgrounds": "dreamset.plugins.mixers.backgrounds",
    "dreamset.compositing": "dreamset.plugins.mixers.compositing",
    "dreamset.statistics": "dreamset.plugins.metrics.statistics",
}


def forward(old: str) -> None:
    """Warn that ``old`` moved and make ``sys.modules[old]`` the module it moved to."""
    new = MOVED[old]
    warnings.warn(f"{old} is deprecated: import {new} instead (docs/migration.md)", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
