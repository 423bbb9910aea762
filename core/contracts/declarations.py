"""How a plugin module declares what it provides: pluggy's markers and the one-line component
declaration.

A component is declared once, by decorating its class::

    @dreamset.register(description="FGSM, L-inf (Goodfellow et al. 2015)")
    class FGSMAttacker(Attacker):
        key = "attacker:fgsm"

The key is written once, as the class's ``key`` (``kind:name``). :func:`register` records the class
in its module and gives the module the kind's registration hook (``register_attackers``), made by
one generic factory (:func:`_collector`) — so the module stays an ordinary pluggy plugin, found
through its ``dreamset`` entry point exactly like a hand-written one, and nothing more is imported
when the registry is built. Discovery checks that the entry point is named after the key
(``attacker-fgsm`` for ``attacker:fgsm``, :func:`entry_point_problem`).

The hand-written form (``@dreamset.hookimpl def register_attackers(register): register(...)``, see
:mod:`dreamset.contracts.hookspecs`) stays a contract: plugins written against it keep working, and it is the
form for registering a ``"module:Object"`` string or taking a built-in's key (``tryfirst=True``).
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from dreamset.contracts.errors import PluginError
from dreamset.contracts.kinds import KIND_HOOKS

__all__ = ["hookimpl", "hookspec", "register", "Declaration", "declarations", "entry_point_name",
           "entry_point_problem"]

#: Marker for hook implementations in plugin modules: ``@dreamset.hookimpl``.
hookimpl = pluggy.HookimplMarker("dreamset")
#: Marker for hook specifications (used by :mod:`dreamset.contracts.hookspecs` only).
hookspec = pluggy.HookspecMarker("dreamset")

#: the module attribute holding a module's declarations (class qualname -> :class:`Declaration`)
DECLARED = "__dreamset_components__"


@dataclass(frozen=True)
class Declaration:
    """One component a module declared with :func:`register`."""

    component: type
    key: str
    description: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.key.partition(":")[0]


def register(component: type | None = None, /, *, description: str = "", aliases: Iterable[str] = ()) -> Any:
    """Declare a component class: ``@dreamset.register`` or ``@dreamset.register(description=...,
    aliases=(...))``. Its key is the class's own ``key`` attribute (``"kind:name"``); the
    description defaults to the first line of its docstring. Returns the class unchanged.

    Raises :class:`~dreamset.contracts.errors.PluginError` at import when the class declares no key of a known
    kind (discovery reports it as the plugin's error and skips the plugin)."""
    if isinstance(component, str):
        raise PluginError(f"@dreamset.register({component!r}): the key is the class attribute "
                          f"key = {component!r}; pass only description= and aliases=")

    def declare(cls: type) -> type:
        key = _own_key(cls)
        module = sys.modules.get(cls.__module__)
        if module is None:
            raise PluginError(f"@dreamset.register: {cls.__qualname__}'s module {cls.__module__!r} is not imported")
        declared = module.__dict__.setdefault(DECLARED, {})
        # keyed by qualname, so re-running the module (importlib.reload) replaces, not repeats
        declared[cls.__qualname__] = Declaration(cls, key, description, tuple(aliases))
        kind = key.partition(":")[0]
        attribute = f"_dreamset_{KIND_HOOKS[kind]}"
        if attribute not in module.__dict__:
            setattr(module, attribute, _collector(declared, kind))
        return cls

    return declare if component is None else declare(component)


def _own_key(cls: Any) -> str:
    if not isinstance(cls, type):
        raise PluginError(f"@dreamset.register decorates a component class, got {cls!r}")
    key = cls.__dict__.get("key")
    kind, _, name = key.partition(":") if isinstance(key, str) else ("", "", "")
    if kind not in KIND_HOOKS or not name:
        raise PluginError(f"@dreamset.register: {cls.__qualname__} declares no key of its own "
                          f"(class attribute key = \"KIND:NAME\", KIND one of {', '.join(KIND_HOOKS)}), got {key!r}")
    return key


def _collector(declared: dict[str, Declaration], kind: str) -> Callable[..., None]:
    """The hook implementation of ``register_<kind>s`` that registers a module's declared components
    of ``kind`` (one generic implementation; :func:`register` attaches it to the module)."""
    hook = KIND_HOOKS[kind]

    def collect(register):
        for declaration in list(declared.values()):
            if declaration.kind == kind:
                register(declaration.component, description=declaration.description, aliases=declaration.aliases)

    collect.__name__ = collect.__qualname__ = f"_dreamset_{hook}"
    collect.__doc__ = f"Register the {kind} components this module declares with @dreamset.register."
    return hookimpl(specname=hook)(collect)


def declarations(plugin: object) -> list[Declaration]:
    """The components ``plugin`` (a module) declared with :func:`register`, in declaration order."""
    declared = getattr(plugin, DECLARED, None)
    return list(declared.values()) if isinstance(declared, dict) else []


def entry_point_name(key: str) -> str:
    """The entry-point name of a component: its key with ``-`` for ``:`` (``attacker-fgsm-rs``)."""
    return key.replace(":", "-", 1)


def entry_point_problem(entry_point: str, plugin: object) -> str | None:
    """Why the entry point ``entry_point`` and the components its module declares disagree, or
    ``None``: a module that declares a component holds that one component, under the entry point
    named after its key. Modules that only hand-write hooks are not checked."""
    declared = declarations(plugin)
    if not declared:
        return None
    if len(declared) > 1:
        keys = ", ".join(d.key for d in declared)
        return (f"entry point {entry_point!r}: its module declares {len(declared)} components ({keys}); "
                "declare one component per module, each under its own entry point")
    expected = entry_point_name(declared[0].key)
    if entry_point != expected:
        return (f"entry point {entry_point!r} does not match the key its module declares, {declared[0].key}: "
                f"name the entry point {expected!r}")
    return None
