"""Registry: kind:name keys, wildcard listing, validated creation, unknown/ambiguous keys."""
from __future__ import annotations

import pytest
from pydantic import Field

import dreamset
from dreamset.contracts.errors import BadInputError, UnknownComponentError
from dreamset.contracts.interfaces import Attacker, Sampler, Selection


class NoiseOptions(dreamset.Options):
    eps: float = Field(default=0.1, gt=0, le=1)
    steps: int = Field(default=3, ge=1)


class NoiseAttacker(Attacker):
    """test attacker"""

    Options = NoiseOptions

    def attack(self, model, x, y):
        return x


class FirstOptions(dreamset.Options):
    count: int = Field(ge=0)


class FirstSampler(Sampler):
    Options = FirstOptions

    def select(self, synthetic, real, context, seed):
        import numpy as np

        return Selection(np.arange(self.options.count))


class Plugin:
    @dreamset.hookimpl
    def register_attackers(self, register):
        register("pgd-test", NoiseAttacker, aliases=("linf-test",))
        register("masked-pgd-test", NoiseAttacker)
        register("fgsm-test", NoiseAttacker)

    @dreamset.hookimpl
    def register_samplers(self, register):
        register("first", FirstSampler)
        register("fgsm-test", FirstSampler)  # same name, other kind: allowed


@pytest.fixture
def reg(dreamset_registry):
    return dreamset_registry(Plugin(), builtins=False)


def test_wildcard_listing(reg):
    assert dreamset.registry.list("attacker:*pgd*") == ["attacker:masked-pgd-test", "attacker:pgd-test"]
    assert reg.list("*pgd*") == ["attacker:masked-pgd-test", "attacker:pgd-test"]
    assert reg.list("attacker:*", exclude="*masked*") == ["attacker:fgsm-test", "attacker:pgd-test"]
    assert reg.list(kind="sampler") == ["sampler:fgsm-test", "sampler:first"]


def test_create_validates_and_drops_none(reg):
    attacker = dreamset.registry.create("attacker:pgd-test", eps=0.2, steps=None)
    assert attacker.key == "attacker:pgd-test"
    assert attacker.options.eps == 0.2 and attacker.options.steps == 3
    assert attacker.describe() == {"key": "attacker:pgd-test", "options": {"eps": 0.2, "steps": 3}}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"eps": 2.0}, "attacker:pgd-test.eps: Input should be less than or equal to 1 (got 2.0)"),
        ({"steps": 0}, "attacker:pgd-test.steps: Input should be greater than or equal to 1 (got 0)"),
        ({"epss": 0.1}, "attacker:pgd-test.epss: Extra inputs are not permitted"),
        ({"eps": "big"}, "attacker:pgd-test.eps: Input should be a valid number"),
    ],
)
def test_invalid_options_give_one_line_naming_the_field(reg, options, message):
    with pytest.raises(BadInputError) as info:
        reg.create("attacker:pgd-test", **options)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text


def test_required_option_missing(reg):
    with pytest.raises(BadInputError, match=r"sampler:first.count: Field required"):
        reg.create("sampler:first")


def test_unknown_key_lists_close_matches(reg):
    with pytest.raises(UnknownComponentError, match=r"did you mean attacker:pgd-test"):
        reg.get("attacker:pgd-tset")
    with pytest.raises(UnknownComponentError, match=r"known attacker components: attacker:fgsm-test"):
        reg.get("attacker:zzzzzzzz")


def test_aliases_bare_names_and_ambiguity(reg):
    assert reg.get("attacker:linf-test").key == "attacker:pgd-test"
    assert reg.get("pgd-test").key == "attacker:pgd-test"  # unique bare name
    assert reg.get("first", kind="sampler").key == "sampler:first"
    with pytest.raises(BadInputError, match="ambiguous component name 'fgsm-test'"):
        reg.get("fgsm-test")
    with pytest.raises(BadInputError, match="is not a sampler"):
        reg.get("attacker:pgd-test", kind="sampler")


def test_lazy_string_factory_that_fails_to_import_names_the_plugin(dreamset_registry):
    class Broken:
        @dreamset.hookimpl
        def register_metrics(self, register):
            register("ghost", "no_such_module_anywhere:Ghost")

    reg = dreamset_registry(Broken(), builtins=False)
    assert reg.list() == ["metric:ghost"]  # registration is lazy: nothing imported yet
    with pytest.raises(dreamset.contracts.errors.PluginError,
                       match="metric:ghost: cannot load 'no_such_module_anywhere:Ghost'"):
        reg.create("metric:ghost")
