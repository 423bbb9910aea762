"""Lazy module proxies, so plugin modules can be imported (for discovery) without importing torch.

A component file writes ``torch = lazy_module("torch")`` at its top and uses ``torch.xxx`` in
function bodies as usual; the real import happens at the first attribute access. Defining a class
that *subclasses* ``torch.nn.Module`` at module level would defeat this: build such modules inside
a function instead.
"""
from __future__ import annotations

import importlib
import types


class _LazyModule(types.ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = None

    def _load(self) -> types.ModuleType:
        target = self.__dict__["_lazy_target"]
        if target is None:
            target = importlib.import_module(self.__name__)
            self.__dict__["_lazy_target"] = target
        return target

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def lazy_module(name: str) -> types.ModuleType:
    """Return a proxy for module ``name`` that imports it on first attribute access."""
    return _LazyModule(name)
