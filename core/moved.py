"""Old import paths of the modules that left the core (docs/migration.md, "A small core").

Each old module (``core/knn.py`` ...) is a two-line shim that calls :func:`forward`: importing it
warns with a :class:`DeprecationWarning` naming the new path and then *is* the new module
(``sys.modules`` points the old name at it), so every attribute, private ones included, and every
monkeypatch reach the one real module. A name that left a module that stayed (``MOVED_NAMES``) is
served by that module's ``__getattr__`` through :func:`moved_attribute`, with the same warning. The
shims will be removed in a later release.
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


#: (module, name) -> the module that name moved to (the module itself stayed)
MOVED_NAMES = {
    ("dreamset.augmenting", "TorchvisionImageAugmentation"): "dreamset.toolkit.augmenting",
    ("dreamset.augmenting", "TorchvisionBatchAugmentation"): "dreamset.toolkit.augmenting",
}


def forward(old: str) -> None:
    """Warn that ``old`` moved and make ``sys.modules[old]`` the module it moved to."""
    new = MOVED[old]
    warnings.warn(f"{old} is deprecated: import {new} instead (docs/migration.md)", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)


def moved_attribute(module: str, name: str):
    """For a module's ``__getattr__``: ``name`` from where it moved, with a :class:`DeprecationWarning`;
    :class:`AttributeError` when it never lived in ``module``."""
    new = MOVED_NAMES.get((module, name))
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(f"{module}.{name} is deprecated: import it from {new} (docs/migration.md)", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(new), name)
