"""Run with ``pytest --pyargs dreamset.conformance.suite --dreamset-conformance SELECTOR`` (a registry
pattern or a distribution name; repeatable). See :mod:`dreamset.pytest_plugin`."""


def test_component_conformance(dreamset_component_key, dreamset_conformance):
    dreamset_conformance(dreamset_component_key)


def test_plugin_loads_without_errors(dreamset_plugin_problem):
    raise AssertionError(dreamset_plugin_problem)
