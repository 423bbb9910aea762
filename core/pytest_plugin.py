"""pytest plugin for dreamset plugin authors (registered through the ``pytest11`` entry point).

Fixtures
--------
``dreamset_registry``
    ``make(*plugins, builtins=True)`` -> a fresh :class:`~dreamset.registry.Registry` holding the given
    plugin objects (modules or objects with ``@dreamset.hookimpl`` functions) and, unless
    ``builtins=False``, the built-in components. It is installed as the process-wide registry for the
    test and removed afterwards.
``dreamset_plugin_manager``
    A clean pluggy manager with dreamset's hookspecs and no plugins.
``tiny_images``
    A 40-image, 4-class ``1×8×8`` :class:`~dreamset.data.TensorImageSet` (float32 in [0,1]).
``dreamset_conformance``
    ``check(key)``: run the conformance suite on one registered component.

Conformance suite
-----------------
``pytest --pyargs dreamset.conformance.suite --dreamset-conformance "attacker:my-*"`` runs the suite on
every registered component matching the pattern (default ``*``: all of them).
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("dreamset")
    group.addoption(
        "--dreamset-conformance",
        action="store",
        default="*",
        metavar="PATTERN",
        help="registry pattern of the components the dreamset conformance suite checks (default: all)",
    )


def pytest_generate_tests(metafunc):
    if "dreamset_component_key" in metafunc.fixturenames:
        import dreamset.registry as registry

        pattern = metafunc.config.getoption("--dreamset-conformance")
        keys = registry.list(pattern)
        metafunc.parametrize("dreamset_component_key", keys, ids=keys)


@pytest.fixture
def dreamset_plugin_manager():
    from dreamset.plugin_manager import new_plugin_manager

    return new_plugin_manager()


@pytest.fixture
def dreamset_registry():
    import dreamset.registry as registry
    from dreamset.plugin_manager import PluginInfo, load_plugins, new_plugin_manager, register_plugin

    def make(*plugins, builtins: bool = True):
        pm = new_plugin_manager()
        infos = []
        if builtins:
            pm, infos = load_plugins(pm, allow="")
        for i, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"test-plugin-{i}"
            info = PluginInfo(name=name, module=repr(plugin), distribution="<test>", version="0", builtin=False)
            infos.append(info)
            register_plugin(pm, plugin, info)
        return registry.use(pm, infos)

    yield make
    registry.reset()


@pytest.fixture
def tiny_images():
    import torch

    from dreamset.data import TensorImageSet

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
