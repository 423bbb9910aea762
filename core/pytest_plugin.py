"""pytest plugin for dreamset plugin authors (registered through the ``pytest11`` entry point).

Fixtures
--------
``dreamset_registry``
    ``make(*plugins, builtins=True, strict=True)`` -> a fresh :class:`~dreamset.registry.Registry`
    holding the given plugin objects (modules declaring components with ``@dreamset.register``, or
    modules and objects with ``@dreamset.hookimpl`` functions) and,
    unless ``builtins=False``, the built-in components. It is installed as the process-wide registry
    for the test and removed afterwards. With ``strict=True`` (the default) a problem of one of the
    given plugins — a misspelt hook, a duplicate key, a hook that raised, a wrapper — fails the test
    with :class:`dreamset.contracts.errors.PluginError` naming it; ``strict=False`` leaves it recorded on
    ``registry.plugins`` for the test to inspect.
``dreamset_plugin_manager``
    A clean pluggy manager with dreamset's hookspecs and no plugins.
``tiny_images``
    A 40-image, 4-class ``1×8×8`` :class:`~dreamset.contracts.data.TensorImageSet` (float32 in [0,1]).
``dreamset_conformance``
    ``check(key)``: run the conformance suite on one registered component.

Conformance suite
-----------------
``pytest --pyargs dreamset.conformance.suite --dreamset-conformance SELECTOR`` runs the suite on
every registered component a selector picks (default ``*``: all of them). A selector is a registry
pattern (``attacker:my-*``, ``*noise*``) or a distribution name (``dreamset-example-plugin``: every
component it supplies, and its plugins' loading errors become failing tests). Give several by
repeating the option or separating them with commas. A selector that picks nothing is a usage error
(exit code 4), so a plugin's CI cannot pass by testing nothing.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("dreamset")
    group.addoption(
        "--dreamset-conformance",
        action="append",
        default=None,
        metavar="SELECTOR",
        help="registry pattern (attacker:my-*) or distribution name of the components the dreamset "
             "conformance suite checks; repeatable or comma-separated (default: all). Selecting "
             "nothing is an error.",
    )


def conformance_selection(selectors, registry) -> tuple[list[str], list[str]]:
    """``(keys, problems)`` picked by ``selectors`` (patterns or distribution names; ``None``: all):
    the sorted component keys, and one line per loading error of the plugins involved. A selector
    that picks nothing raises ``pytest.UsageError``."""
    values = [part.strip() for value in (selectors or ["*"]) for part in value.split(",") if part.strip()]
    if not values:
        raise pytest.UsageError("--dreamset-conformance: empty selector")
    keys: set[str] = set()
    chosen_distributions: set[str] = set()
    for value in values:
        provided, infos = registry.of_distribution(value) if not any(ch in value for ch in ":*?[") else ([], [])
        if infos:  # a distribution name (registry.of_distribution, as `dreamset plugins --dist` lists it)
            picked = set(provided)
            chosen_distributions |= {info.distribution for info in infos}
        else:
            picked = set(registry.list(value))
        broken = any(info.status == "error" for info in infos)
        if not picked and not broken:  # a distribution whose plugins all failed: its errors are the tests
            raise pytest.UsageError(
                f"--dreamset-conformance {value!r} selects no registered component "
                f"(a registry pattern such as 'attacker:my-*', or a distribution: {', '.join(registry.distributions())}); "
                "run `dreamset plugins` to see what is registered")
        keys |= picked
    chosen_distributions |= {registry.specs[k].distribution for k in keys}
    everything = values == ["*"]
    problems = [f"plugin {info.name!r} ({info.distribution} {info.version}): {'; '.join(info.errors)}"
                for info in registry.plugins
                if info.status == "error" and (everything or info.distribution in chosen_distributions)]
    return sorted(keys), problems


def pytest_generate_tests(metafunc):
    wanted = {"dreamset_component_key", "dreamset_plugin_problem"} & set(metafunc.fixturenames)
    if not wanted:
        return
    import dreamset.registry as registry

    keys, problems = conformance_selection(metafunc.config.getoption("--dreamset-conformance"),
                                           registry.get_registry())
    if "dreamset_component_key" in wanted:
        metafunc.parametrize("dreamset_component_key", keys, ids=keys)
    if "dreamset_plugin_problem" in wanted:
        metafunc.parametrize("dreamset_plugin_problem", problems, ids=[p.split(":")[0] for p in problems])


@pytest.fixture
def dreamset_plugin_manager():
    from dreamset.contracts.plugin_manager import new_plugin_manager

    return new_plugin_manager()


@pytest.fixture
def dreamset_registry():
    import dreamset.registry as registry
    from dreamset.contracts.errors import PluginError
    from dreamset.contracts.plugin_manager import PluginInfo, load_plugins, new_plugin_manager, register_plugin

    def make(*plugins, builtins: bool = True, strict: bool = True):
        pm = new_plugin_manager()
        infos = []
        # registered first (in reverse), so pluggy calls them after the built-ins and in the given
        # order: a test plugin does not take a built-in's key unless its hookimpl says tryfirst=True
        for i, plugin in reversed(list(enumerate(plugins))):
            name = getattr(plugin, "__name__", None) or f"test-plugin-{i}"
            info = PluginInfo(name=name, module=repr(plugin), distribution="<test>", version="0", builtin=False)
            infos.insert(0, info)
            register_plugin(pm, plugin, info)
        ours = list(infos)
        if builtins:
            pm, builtin_infos = load_plugins(pm, allow="")
            infos = builtin_infos + infos
        reg = registry.use(pm, infos)
        problems = [f"{info.name}: {'; '.join(info.errors)}" for info in ours if info.errors]
        if strict and problems:
            raise PluginError("dreamset_registry: plugin errors: " + " | ".join(problems))
        return reg

    yield make
    registry.reset()


@pytest.fixture
def tiny_images():
    import torch

    from dreamset.contracts.data import TensorImageSet

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    images = torch.rand(40, 1, 8, 8, generator=generator) * 0.3
    for c in range(4):  # a class-specific bright quadrant, so a classifier can learn it
        rows = slice(0, 4) if c < 2 else slice(4, 8)
        cols = slice(0, 4) if c % 2 == 0 else slice(4, 8)
        images[labels == c, :, rows, cols] += 0.7
    return TensorImageSet(images.clamp(0, 1), labels, [f"class{c}" for c in range(4)], name="tiny")


@pytest.fixture
def dreamset_conformance():
    from dreamset.conformance import check_component

    return check_component
