"""Run with ``pytest --pyargs dreamset.conformance.suite --dreamset-conformance "PATTERN"``."""


def test_component_conformance(dreamset_component_key, dreamset_conformance):
    dreamset_conformance(dreamset_component_key)
