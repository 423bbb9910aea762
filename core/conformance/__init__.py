"""The conformance suite: checks any registered component (built-in or third-party) against its
kind's contract.

:func:`check_component` runs the generic checks (an ``Options`` model that forbids unknown keys, a
JSON-serialisable description, creation with default options) and then the kind's behavioural check
from ``dreamset.conformance.<kind>s`` (``check_<kind>``). Components whose options have required
fields (a dataset path, a model id) cannot be created blind: the generic checks still run and the
behavioural check is skipped with the reason.
"""
from __future__ import annotations

import importlib
import json

from pydantic import ValidationError

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import KIND_INTERFACES
from dreamset.contracts.options import Options


class NeedsOptions(Exception):
    """The component cannot be created with default options (required fields)."""


def check_options_model(spec) -> None:
    model = spec.options_model()
    assert isinstance(model, type) and issubclass(model, Options), f"{spec.key}: Options must subclass dreamset.Options"
    assert model.model_config.get("extra") == "forbid", f"{spec.key}: Options must forbid unknown keys"
    try:
        model(**{"__no_such_option__": 1})
    except ValidationError:
        pass
    else:  # pragma: no cover - guarded by the assert above
        raise AssertionError(f"{spec.key}: unknown option accepted")


def create_default(registry, key: str):
    """Create ``key`` with its class's ``conformance_options`` (small settings a component may
    declare so the suite runs in seconds, e.g. a DDPM with a few training steps) or its defaults;
    raise :class:`NeedsOptions` when that is not enough."""
    options = dict(getattr(registry.get(key).load(), "conformance_options", {}) or {})
    try:
        return registry.create(key, **options)
    except BadInputError as exc:
        raise NeedsOptions(str(exc)) from exc


def check_component(key: str, registry=None) -> None:
    """Run the conformance suite on one registered component (raises AssertionError on failure;
    calls ``pytest.skip`` for behavioural checks that need options)."""
    import dreamset.registry as registry_module

    registry = registry or registry_module.get_registry()
    spec = registry.get(key)
    check_options_model(spec)
    cls = spec.load()
    interface = KIND_INTERFACES[spec.kind]
    assert isinstance(cls, type) and issubclass(cls, interface), (
        f"{key}: must subclass dreamset.contracts.interfaces.{interface.__name__}")
    try:
        component = create_default(registry, key)
    except NeedsOptions as exc:
        import pytest

        pytest.skip(f"{key} needs options to be created: {exc}")
    assert component.key == spec.key
    json.dumps(component.describe())
    module = importlib.import_module(f"dreamset.conformance.{spec.kind}s")
    check = getattr(module, "check_default", None)
    if check is not None:
        check(component)
