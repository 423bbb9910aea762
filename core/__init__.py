"""dreamset: turn generative models into better, more robust classifiers.

The package is deliberately light to import: nothing here imports torch, diffusers or timm.
A component is declared once with :func:`register` (its class carries the key); hand-written hook
implementations are marked with :data:`hookimpl`; components declare their options with
:class:`Options`.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from dreamset.contracts.declarations import hookimpl, hookspec, register  # noqa: E402
from dreamset.contracts.errors import BadInputError, DreamsetError  # noqa: E402
from dreamset.contracts.options import Options  # noqa: E402

__all__ = ["hookimpl", "hookspec", "register", "Options", "DreamsetError", "BadInputError", "__version__", "run", "load_run",
           "RunReport"]


def __getattr__(name: str):
    # `import dreamset; dreamset.registry.list()` works without importing every submodule eagerly.
    if name in {"run", "load_run", "RunReport"}:  # the Python API (dreamset.api); torch only once run
        return getattr(importlib.import_module("dreamset.api"), name)
    if name in {"registry", "plugins", "toolkit", "conformance", "cli", "api", "contracts", "orchestration", "training",
                "files", "store", "report", "commands"}:
        return importlib.import_module(f"dreamset.{name}")
    raise AttributeError(f"module 'dreamset' has no attribute {name!r}")
