"""``dreamset.registry``: the component registry and the recipe catalogue.

>>> import dreamset.registry as reg
>>> reg.list("attacker:*pgd*")          # doctest: +SKIP
['attacker:masked-pgd', 'attacker:pgd']
>>> reg.create("sampler:uniform", count=100)   # doctest: +SKIP

The registry is built on first use by discovering plugins (``importlib.metadata`` entry points of
group ``dreamset``); discovery does not import torch. :func:`reset` forgets it (tests, or after
installing a plugin in-process).
"""
from __future__ import annotations

import builtins
import threading
from typing import Any

from dreamset.registry.catalogue import recipe_names, recipe_path
from dreamset.registry.components import ComponentSpec, Registry

__all__ = [
    "ComponentSpec", "Registry", "get_registry", "reset", "use", "list", "get", "create",
    "plugins", "recipe_names", "recipe_path",
]

_lock = threading.Lock()
_current: Registry | None = None
_plugin_manager = None
_no_plugins = False


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _current, _plugin_manager
    with _lock:
        if _current is None:
            from dreamset.contracts.plugin_manager import load_plugins

            _plugin_manager, infos = load_plugins(no_plugins=_no_plugins)
            _current = Registry.from_plugin_manager(_plugin_manager, infos)
        return _current


def plugin_manager():
    """The plugin manager behind the registry (for the pipeline's lifecycle hooks)."""
    get_registry()
    return _plugin_manager


def reset(no_plugins: bool | None = None) -> None:
    """Forget the registry; the next use rediscovers plugins. ``no_plugins=True`` loads built-ins only."""
    global _current, _plugin_manager, _no_plugins
    with _lock:
        _current = None
        _plugin_manager = None
        if no_plugins is not None:
            _no_plugins = no_plugins


def loads_built_ins_only() -> bool:
    """Whether discovery currently skips third-party plugins (``--no-plugins``)."""
    return _no_plugins


def use(pm, infos) -> Registry:
    """Install a registry built from an explicit plugin manager (used by the test fixtures)."""
    global _current, _plugin_manager
    with _lock:
        _plugin_manager = pm
        _current = Registry.from_plugin_manager(pm, infos)
        return _current


def list(pattern: str = "*", exclude: str | None = None, kind: str | None = None) -> builtins.list[str]:  # noqa: A001
    """Registered keys matching a wildcard pattern, e.g. ``list("attacker:*pgd*")``."""
    return get_registry().list(pattern, exclude=exclude, kind=kind)


def get(key: str, kind: str | None = None) -> ComponentSpec:
    """The :class:`ComponentSpec` for ``key``; unknown keys raise with close matches."""
    return get_registry().get(key, kind)


def create(key: str, /, **options: Any):
    """Create a component with validated options: ``create("sampler:uniform", count=100)``."""
    return get_registry().create(key, **options)


def plugins():
    """:class:`dreamset.contracts.plugin_manager.PluginInfo` for every discovered plugin."""
    return get_registry().plugins
