"""The component registry: ``kind:name`` keys -> lazily imported factories.

Filled by calling the registration hooks of the kinds table (:data:`dreamset.contracts.kinds.KINDS`) through
pluggy (a module's ``@dreamset.register`` declarations are one such hook implementation, see
:mod:`dreamset.contracts.declarations`), one plugin at a time and in pluggy's call order (``tryfirst``
first, ``trylast`` last, otherwise built-ins before third-party plugins), so the first registration
of a key wins and a hook that raises is contained and attributed to its plugin. Hook wrappers are refused. Creation validates options with the component's
pydantic ``Options`` model (``extra="forbid"``) and drops ``None`` values first, so CLI defaults
never break a component (timm's ``create_model`` habit).
"""
from __future__ import annotations

import builtins
import difflib
import fnmatch
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from dreamset.contracts.errors import BadInputError, PluginError, UnknownComponentError
from dreamset.contracts.kinds import KIND_HOOKS
from dreamset.contracts.options import format_validation_error
from dreamset.contracts.plugin_manager import PluginInfo, wrapper_error

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")


def normalize_distribution(name: str) -> str:
    """A distribution name as pip compares it (PEP 503): lower case, runs of ``-``, ``_``, ``.`` -> ``-``."""
    return re.sub(r"[-_.]+", "-", str(name)).lower()


@dataclass
class ComponentSpec:
    """What a plugin registered under one key."""

    key: str
    kind: str
    name: str
    factory: Any  # "module:Object" or the object
    plugin: str
    distribution: str
    version: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    _loaded: Any = field(default=None, repr=False)

    def load(self) -> Any:
        """Import and return the component class (cached)."""
        if self._loaded is None:
            if isinstance(self.factory, str):
                module_name, _, attr = self.factory.partition(":")
                try:
                    obj = importlib.import_module(module_name)
                    for part in attr.split(".") if attr else ():
                        obj = getattr(obj, part)
                except Exception as exc:
                    raise PluginError(
                        f"{self.key}: cannot load {self.factory!r} from plugin {self.plugin!r} "
                        f"({self.distribution} {self.version}): {type(exc).__name__}: {exc}"
                    ) from exc
            else:
                obj = self.factory
            from dreamset.contracts.interfaces import KIND_INTERFACES

            interface = KIND_INTERFACES.get(self.kind)
            if interface is not None and not (isinstance(obj, type) and issubclass(obj, interface)):
                raise PluginError(
                    f"{self.key}: {self.factory!r} from plugin {self.plugin!r} ({self.distribution} {self.version}) "
                    f"is not a subclass of dreamset.contracts.interfaces.{interface.__name__}"
                )
            self._loaded = obj
        return self._loaded

    def options_model(self):
        """The component's pydantic options model."""
        return self.load().Options

    @property
    def summary(self) -> str:
        if self.description:
            return self.description
        if isinstance(self.factory, str):
            return ""
        doc = (getattr(self.factory, "__doc__", None) or "").strip().splitlines()
        return doc[0] if doc else ""


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _name_from_class(component_class: Any, kind: str, info: PluginInfo) -> str | None:
    """The ``name`` part of ``component_class.key`` (which must be ``kind:name``, declared on the
    class itself, and the class a subclass of the kind's interface); ``None`` after recording why not."""
    from dreamset.contracts.interfaces import KIND_INTERFACES

    hook = KIND_HOOKS[kind]
    if not isinstance(component_class, type):
        info.fail(f"{hook}: register() takes a component class or (name, factory), got {component_class!r}")
        return None
    label = component_class.__qualname__
    interface = KIND_INTERFACES[kind]
    if not issubclass(component_class, interface):
        info.fail(f"{hook}: {label} is not a subclass of dreamset.contracts.interfaces.{interface.__name__}")
        return None
    key = component_class.__dict__.get("key")
    if not isinstance(key, str) or not key:
        info.fail(f"{hook}: {label} declares no key of its own (class attribute key = \"{kind}:NAME\")")
        return None
    prefix, _, name = key.partition(":")
    if prefix != kind:
        info.fail(f"{hook}: {label}.key {key!r} is not a {kind} key ({kind}:NAME)")
        return None
    return name


class Registry:
    """All registered components, built from a plugin manager."""

    def __init__(self) -> None:
        self.specs: dict[str, ComponentSpec] = {}
        self.aliases: dict[str, str] = {}
        self.plugins: list[PluginInfo] = []

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_plugin_manager(cls, pm, plugins: list[PluginInfo]) -> "Registry":
        registry = cls()
        registry.plugins = plugins
        by_name = {info.name: info for info in plugins}
        for kind, hook_name in KIND_HOOKS.items():
            hook = getattr(pm.hook, hook_name, None)
            if hook is None:  # a plugin manager without this kind's hookspec
                continue
            # pluggy calls implementations in the reverse of get_hookimpls() (tryfirst first, trylast
            # last, otherwise last registered first; load_plugins registers built-ins last). We walk
            # that order and call each plugin's implementations through pluggy on their own, so the
            # first registration of a key wins and an exception is attributed to its plugin. (A plugin
            # may hold two implementations of one hook, its declared components' and a hand-written
            # one: it is called once, at its first implementation's place.)
            impls = list(reversed(hook.get_hookimpls()))
            everyone = [impl.plugin for impl in impls]
            by_plugin: dict[int, list] = {}
            for impl in impls:
                by_plugin.setdefault(id(impl.plugin), []).append(impl)
            for own in by_plugin.values():
                impl = own[0]
                info = by_name.get(impl.plugin_name)
                if info is None:  # registered directly (tests, in-process plugins)
                    info = PluginInfo(impl.plugin_name, repr(impl.plugin), "<in-process>", "", False)
                    by_name[info.name] = info
                    registry.plugins.append(info)
                if any(i.wrapper or i.hookwrapper for i in own):
                    info.fail(wrapper_error(hook_name))
                    continue
                register = registry._register_callback(kind, info)
                caller = pm.subset_hook_caller(hook_name, remove_plugins=[p for p in everyone if p is not impl.plugin])
                try:
                    caller(register=register)
                except Exception as exc:
                    info.fail(f"{hook_name} raised {type(exc).__name__}: {exc}")
        return registry

    def _register_callback(self, kind: str, info: PluginInfo) -> Callable[..., None]:
        def register(name: Any, factory: Any = None, *, description: str = "", aliases=()) -> None:
            if factory is None:  # register(ComponentClass): the key is the class's own ``key``
                component_class = name
                name = _name_from_class(component_class, kind, info)
                if name is None:
                    return
                factory = component_class
                description = description or _first_line(component_class.__doc__)
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                info.fail(f"invalid component name {name!r} (lower-case letters, digits, . _ + -)")
                return
            key = f"{kind}:{name}"
            if key in self.specs or key in self.aliases:
                owner = self.specs[key].plugin if key in self.specs else self.aliases[key]
                info.fail(f"duplicate key {key} (already registered by {owner}); skipped")
                return
            spec = ComponentSpec(
                key=key,
                kind=kind,
                name=name,
                factory=factory,
                plugin=info.name,
                distribution=info.distribution,
                version=info.version,
                description=description,
                aliases=tuple(aliases),
            )
            self.specs[key] = spec
            for alias in spec.aliases:
                alias_key = f"{kind}:{alias}"
                if alias_key in self.specs or alias_key in self.aliases:
                    info.fail(f"duplicate alias {alias_key}; skipped")
                else:
                    self.aliases[alias_key] = key

        return register

    # -- looking up ---------------------------------------------------------------------------
    def resolve_key(self, key: str, kind: str | None = None) -> str:
        """Canonical key for ``key`` (``kind:name``, an alias, or a bare name when ``kind`` is
        given or the name is unique across kinds). Unknown or ambiguous keys are refused."""
        if not isinstance(key, str) or not key:
            raise BadInputError(f"component key must be a non-empty string, got {key!r}")
        if ":" not in key:
            if kind is not None:
                key = f"{kind}:{key}"
            else:
                matches = [k for k in self.specs if k.split(":", 1)[1] == key]
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    raise BadInputError(
                        f"ambiguous component name {key!r}: matches {', '.join(sorted(matches))}; "
                        "write kind:name"
                    )
                every = {k.split(":", 1)[1]: k for k in builtins.list(self.specs) + builtins.list(self.aliases)}
                close = [every[n] for n in difflib.get_close_matches(key, builtins.list(every), n=3, cutoff=0.6)]
                hint = f"; did you mean {', '.join(close)}?" if close else f"; write kind:name (kinds are {', '.join(KIND_HOOKS)})"
                raise UnknownComponentError(f"unknown component {key!r}{hint}")
        elif kind is not None and not key.startswith(kind + ":"):
            raise BadInputError(f"{key!r} is not a {kind} (expected {kind}:NAME)")
        if key in self.specs:
            return key
        if key in self.aliases:
            return self.aliases[key]
        kind, _, name = key.partition(":")  # a bare name that matched nothing has no kind
        same_kind = [k for k in builtins.list(self.specs) + builtins.list(self.aliases) if k.startswith(kind + ":")]
        names = {k.split(":", 1)[1]: k for k in same_kind}
        close = [names[n] for n in difflib.get_close_matches(name, builtins.list(names), n=3, cutoff=0.6)]
        if close:
            hint = f"; did you mean {', '.join(close)}?"
        elif kind in KIND_HOOKS:
            known = sorted(k for k in self.specs if k.startswith(kind + ":"))
            hint = f"; known {kind} components: {', '.join(known[:12])}" if known else f"; no {kind} components are registered"
        else:
            hint = f"; kinds are {', '.join(KIND_HOOKS)}"
        hint += self._switched_off_hint(kind, name)
        broken = [p.name for p in self.plugins if p.status == "error"]
        if broken:
            hint += f" (plugins with errors: {', '.join(broken)}; see `dreamset plugins`)"
        raise UnknownComponentError(f"unknown component {key!r}{hint}")

    def _switched_off_hint(self, kind: str, name: str) -> str:
        """For an unknown key: the third-party plugins that were not loaded (``DREAMSET_LOAD_PLUGINS``
        or ``--no-plugins``), naming the one whose entry point matches the key (``kind-name``)."""
        skipped = [p for p in self.plugins if p.status == "skipped"]
        if not skipped:
            return ""
        match = next((p for p in skipped if p.name in (f"{kind}-{name}", name)), None)
        if match is not None:
            return (f"; it is provided by plugin {match.name!r} ({match.distribution} {match.version}), which is "
                    f"switched off ({'; '.join(match.errors)})")
        names = ", ".join(f"{p.name} ({p.distribution})" for p in skipped)
        return f"; switched-off plugins that may provide it: {names} ({'; '.join(skipped[0].errors)})"

    def get(self, key: str, kind: str | None = None) -> ComponentSpec:
        return self.specs[self.resolve_key(key, kind)]

    def list(self, pattern: str = "*", exclude: str | None = None, kind: str | None = None) -> builtins.list[str]:
        """Sorted keys matching the shell-style ``pattern`` (``attacker:*pgd*``; a pattern without
        a colon matches names across kinds) and not matching ``exclude``."""
        keys = []
        for key in sorted(self.specs):
            k, name = key.split(":", 1)
            if kind is not None and k != kind:
                continue
            target = key if ":" in pattern else name
            if not fnmatch.fnmatchcase(target, pattern):
                continue
            if exclude is not None and fnmatch.fnmatchcase(key if ":" in exclude else name, exclude):
                continue
            keys.append(key)
        return keys

    def of_distribution(self, name: str) -> tuple[builtins.list[str], builtins.list[PluginInfo]]:
        """What the installed distribution ``name`` provides: the sorted keys its plugins registered,
        and its plugins (every entry point of its, loaded, skipped or failed). Names compare the way
        pip compares them (PEP 503: case-insensitive, runs of ``-``, ``_`` and ``.`` alike). Both lists
        are empty when no installed distribution of that name has a ``dreamset`` entry point."""
        wanted = normalize_distribution(name)
        keys = sorted(k for k, spec in self.specs.items() if normalize_distribution(spec.distribution) == wanted)
        return keys, [info for info in self.plugins if normalize_distribution(info.distribution) == wanted]

    def distributions(self) -> builtins.list[str]:
        """The distributions that have a ``dreamset`` entry point (sorted)."""
        names = {spec.distribution for spec in self.specs.values()} | {info.distribution for info in self.plugins}
        return sorted(d for d in names if d not in {"-", "?"})

    def validate_options(self, key: str, options: dict[str, Any] | None = None, *, kind: str | None = None, field_path: str = ""):
        """Validated options model instance for ``key``; errors are one line naming the field."""
        spec = self.get(key, kind)
        model = spec.options_model()
        cleaned = {k: v for k, v in (options or {}).items() if v is not None}
        try:
            return model(**cleaned)
        except ValidationError as exc:
            prefix = field_path or spec.key
            raise BadInputError(format_validation_error(exc, prefix)) from None

    def create(self, key: str, /, *, kind: str | None = None, field_path: str = "", **options: Any):
        """Create the component ``key`` with validated ``options``."""
        spec = self.get(key, kind)
        opts = self.validate_options(spec.key, options, field_path=field_path)
        cls = spec.load()
        try:
            component = cls(opts)
        except (BadInputError, PluginError):
            raise
        except Exception as exc:
            raise PluginError(
                f"{spec.key} (plugin {spec.plugin}, {spec.distribution} {spec.version}) failed to "
                f"initialise: {type(exc).__name__}: {exc}"
            ) from exc
        component.key = spec.key
        return component
