"""Every built-in component passes the same conformance suite third-party plugins run
(`pytest --pyargs dreamset.conformance.suite`)."""
from __future__ import annotations

import pytest

import dreamset.registry as registry
from dreamset.conformance import check_component

BUILTIN = sorted(k for k in registry.list() if registry.get(k).distribution == "dreamset")


def test_every_builtin_entry_point_loads():
    broken = [(p.name, p.errors) for p in registry.plugins() if p.builtin and p.status != "loaded"]
    assert broken == []


@pytest.mark.parametrize("key", BUILTIN)
def test_builtin_component_conformance(key):
    check_component(key)
