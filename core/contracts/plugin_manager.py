"""Plugin discovery through ``importlib.metadata`` entry points (group ``dreamset``).

Why not the ``entrypoints`` package: it is in maintenance-only mode (its README says so) and the
standard library has provided the same since Python 3.8 (``importlib.metadata.entry_points``), with
``EntryPoint.dist`` for the distribution name and version since 3.10. See docs/architecture.md.

Discovery never crashes: a plugin that fails to import, misspells a hook (``check_pending``) or
has a duplicate name, implements a registration hook as a wrapper, or declares a component
(``@dreamset.register``) whose key disagrees with its entry point's name (``attacker-pgd`` for
``attacker:pgd``) is recorded in :class:`PluginInfo` with its distribution and the error, and
skipped. Built-in plugins (distribution ``dreamset``) always load; ``DREAMSET_LOAD_PLUGINS=a,b``
restricts third-party ones to the named entry points or distributions (empty string: none).
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from dreamset.contracts import hookspecs
from dreamset.contracts.declarations import entry_point_problem

ENTRY_POINT_GROUP = "dreamset"
BUILTIN_DISTRIBUTION = "dreamset"
ALLOWLIST_ENV = "DREAMSET_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    """One plugin (entry point) and what happened when it was loaded."""

    name: str
    module: str
    distribution: str
    version: str
    builtin: bool
    status: str = "loaded"  # loaded | error | skipped
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.status = "error"
        self.errors.append(message)


def wrapper_error(hook_name: str) -> str:
    return (f"{hook_name}: hook wrappers (wrapper=True / hookwrapper=True) are not allowed on registration "
            "hooks; implement it as a plain @dreamset.hookimpl that calls register()")


def _one_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _allowlist(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        # The same distribution can be visible twice (an egg-info in the working directory next to
        # the installed one): keep the first of each (name, module).
        if (ep.name, ep.value) in seen:
            continue
        seen.add((ep.name, ep.value))
        unique.append(ep)
    # Built-ins first, so they own their keys; then third-party plugins in a stable order.
    return sorted(unique, key=lambda ep: (_dist_name(ep) != BUILTIN_DISTRIBUTION, ep.name))


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "?"


def _dist_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else "?"


def new_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with dreamset's hookspecs and no plugins."""
    pm = pluggy.PluginManager("dreamset")
    pm.add_hookspecs(hookspecs)
    return pm


def register_plugin(pm: pluggy.PluginManager, plugin: object, info: PluginInfo) -> bool:
    """Register ``plugin`` under ``info.name``; on failure (duplicate name, unknown hook) record
    the error on ``info``, leave the manager as it was and return False."""
    try:
        pm.register(plugin, name=info.name)
    except Exception as exc:  # ValueError for duplicate names, pluggy errors for bad hookimpls
        info.fail(f"could not register: {_one_line(exc)}")
        return False
    try:
        pm.check_pending()
    except Exception as exc:  # a misspelt hook implementation
        pm.unregister(name=info.name)
        info.fail(_one_line(exc))
        return False
    registration_hooks = set(hookspecs.KIND_HOOKS.values())
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.name in registration_hooks and any(
                impl.plugin is plugin and (impl.wrapper or impl.hookwrapper) for impl in caller.get_hookimpls()):
            pm.unregister(name=info.name)
            info.fail(wrapper_error(caller.name))
            return False
    return True


def load_plugins(
    pm: pluggy.PluginManager | None = None,
    allow: str | None = None,
    no_plugins: bool = False,
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Discover and register every ``dreamset`` entry point.

    ``allow`` defaults to the ``DREAMSET_LOAD_PLUGINS`` environment variable; ``no_plugins``
    loads built-ins only (the CLI's ``--no-plugins``).
    """
    pm = pm or new_plugin_manager()
    allowed = _allowlist(os.environ.get(ALLOWLIST_ENV) if allow is None else allow)
    if no_plugins:
        allowed = set()
    infos: list[PluginInfo] = []
    loaded: list[tuple[object, PluginInfo]] = []
    names = {name for name, _ in pm.list_name_plugin()}
    for ep in _entry_points():
        dist = _dist_name(ep)
        info = PluginInfo(
            name=ep.name,
            module=ep.value,
            distribution=dist,
            version=_dist_version(ep),
            builtin=dist == BUILTIN_DISTRIBUTION,
        )
        infos.append(info)
        if not info.builtin and allowed is not None and not ({ep.name, dist} & allowed):
            info.status = "skipped"
            info.errors.append("--no-plugins" if no_plugins else f"not in {ALLOWLIST_ENV}={','.join(sorted(allowed))}")
            continue
        if ep.name in names:
            info.fail(f"duplicate plugin name {ep.name!r}")
            continue
        names.add(ep.name)
        try:
            module = ep.load()
        except BaseException as exc:  # a plugin raising SystemExit at import must not end the CLI
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.fail(f"import failed: {_one_line(exc)}")
            continue
        problem = entry_point_problem(ep.name, module)
        if problem is not None:  # the entry point and the key it declares disagree
            info.fail(problem)
            continue
        loaded.append((module, info))
    # pluggy calls hook implementations last-registered-first: registering in reverse discovery
    # order makes its call order the discovery order (built-ins first, then third-party plugins by
    # entry-point name), so built-ins keep their keys unless a plugin's hookimpl says tryfirst=True.
    for module, info in reversed(loaded):
        register_plugin(pm, module, info)
    _check_allowlist(allowed, infos)
    return pm, infos


def _check_allowlist(allowed: set[str] | None, infos: list[PluginInfo]) -> None:
    """A name in ``DREAMSET_LOAD_PLUGINS`` that matches no third-party entry point or distribution
    (a typo) is recorded as an error line of its own."""
    if not allowed:
        return
    known = {name for info in infos if not info.builtin for name in (info.name, info.distribution)}
    for name in sorted(allowed - known):
        builtin = any(info.builtin and name in (info.name, info.distribution) for info in infos)
        reason = ("names a built-in plugin (built-ins always load)" if builtin else
                  "matches no installed plugin (entry point or distribution)")
        info = PluginInfo(name=name, module="-", distribution="-", version="-", builtin=False)
        info.fail(f"{ALLOWLIST_ENV}: {name!r} {reason}"
                  + (f"; installed: {', '.join(sorted(known))}" if known and not builtin else ""))
        infos.append(info)
