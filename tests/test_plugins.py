"""Plugin discovery: entry points, allowlist, broken plugins, duplicates, misspelt hooks, no torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


import pytest

import dreamset
import dreamset.registry as registry
from dreamset.contracts.errors import PluginError
from dreamset.contracts.interfaces import Shift
from dreamset.contracts.kinds import KINDS
from dreamset.contracts.plugin_manager import load_plugins

GOOD = '''
import dreamset
from dreamset.contracts.interfaces import Shift

class Identity(Shift):
    """identity shift"""
    def apply(self, images, seed):
        return images

@dreamset.hookimpl
def register_shifts(register):
    register("identity-x", "good_plugin:Identity")
'''


def _plugin(infos, name):
    return next(p for p in infos if p.name == name)


def test_builtins_are_discovered_through_entry_points():
    _, infos = load_plugins(allow="")
    builtins = [p for p in infos if p.builtin]
    assert builtins and all(p.distribution == "dreamset" for p in builtins)
    assert "shift:invert" in registry.list("shift:*")


def test_third_party_plugin_is_discovered(fake_distribution):
    fake_distribution("good-dist", {"good": "good_plugin"}, {"good_plugin": GOOD})
    assert "shift:identity-x" in registry.list()
    spec = registry.get("shift:identity-x")
    assert (spec.plugin, spec.distribution, spec.version) == ("good", "good-dist", "1.0")
    assert registry.create("shift:identity-x").key == "shift:identity-x"


def test_allowlist_restricts_third_party_plugins(fake_distribution, monkeypatch):
    fake_distribution("good-dist", {"good": "good_plugin"}, {"good_plugin": GOOD})
    monkeypatch.setenv("DREAMSET_LOAD_PLUGINS", "")
    registry.reset()
    assert "shift:identity-x" not in registry.list()
    assert "shift:invert" in registry.list()  # built-ins always load
    assert _plugin(registry.plugins(), "good").status == "skipped"
    for allowed in ("good", "good-dist", "other,good-dist"):
        monkeypatch.setenv("DREAMSET_LOAD_PLUGINS", allowed)
        registry.reset()
        assert "shift:identity-x" in registry.list(), allowed
    monkeypatch.setenv("DREAMSET_LOAD_PLUGINS", "something-else")
    registry.reset()
    assert "shift:identity-x" not in registry.list()


def test_no_plugins_flag_loads_built_ins_only(fake_distribution, capsys):
    from dreamset.cli import main

    fake_distribution("good-dist", {"good": "good_plugin"}, {"good_plugin": GOOD})
    registry.reset()
    assert main(["plugins", "--json"]) == 0
    assert "shift:identity-x" in {c["key"] for c in json.loads(capsys.readouterr().out)["components"]}
    try:
        assert main(["--no-plugins", "plugins", "--json"]) == 0
        keys = {c["key"] for c in json.loads(capsys.readouterr().out)["components"]}
        assert "shift:identity-x" not in keys and "attacker:pgd" in keys
        assert main(["plugins", "--json"]) == 0  # the flag does not stick to later invocations
        assert "shift:identity-x" in {c["key"] for c in json.loads(capsys.readouterr().out)["components"]}
    finally:
        registry.reset(no_plugins=False)


def test_plugin_failing_at_import_is_reported_and_skipped(fake_distribution):
    fake_distribution("bad-dist", {"bad": "bad_plugin"}, {"bad_plugin": "raise RuntimeError('boom at import')\n"})
    keys = registry.list()
    assert "shift:invert" in keys
    info = _plugin(registry.plugins(), "bad")
    assert info.status == "error" and info.distribution == "bad-dist"
    assert "boom at import" in info.errors[0]


def test_plugin_raising_systemexit_at_import_is_contained(fake_distribution):
    fake_distribution("exit-dist", {"exiter": "exit_plugin"}, {"exit_plugin": "raise SystemExit(3)\n"})
    assert "shift:invert" in registry.list()
    assert _plugin(registry.plugins(), "exiter").status == "error"


def test_plugin_raising_in_hook_is_reported(fake_distribution):
    source = GOOD + '''
@dreamset.hookimpl
def register_attackers(register):
    raise ValueError("hook exploded")
'''
    fake_distribution("hooky-dist", {"hooky": "hooky_plugin"}, {"hooky_plugin": source.replace("good_plugin", "hooky_plugin")})
    assert "shift:identity-x" in registry.list()  # its other hook still registered
    info = _plugin(registry.plugins(), "hooky")
    assert info.status == "error" and "hook exploded" in " ".join(info.errors)


def test_duplicate_key_is_reported_and_first_registration_kept(fake_distribution):
    source = '''
import dreamset
from dreamset.contracts.interfaces import Shift

class Fake(Shift):
    def apply(self, images, seed):
        return images * 0

@dreamset.hookimpl
def register_shifts(register):
    register("invert", "dup_plugin:Fake")
'''
    fake_distribution("dup-dist", {"dup": "dup_plugin"}, {"dup_plugin": source})
    spec = registry.get("shift:invert")
    assert spec.distribution == "dreamset"  # the built-in kept its key
    info = _plugin(registry.plugins(), "dup")
    assert info.status == "error" and "duplicate key shift:invert" in info.errors[0]


def test_misspelt_hook_is_an_error_not_silence(fake_distribution):
    source = '''
import dreamset

@dreamset.hookimpl
def register_attacker(register):  # missing "s"
    pass
'''
    fake_distribution("typo-dist", {"typo": "typo_plugin"}, {"typo_plugin": source})
    registry.list()
    info = _plugin(registry.plugins(), "typo")
    assert info.status == "error" and "register_attacker" in info.errors[0]


def test_invalid_component_name_is_refused(dreamset_registry):
    import dreamset

    class Plugin:
        @dreamset.hookimpl
        def register_shifts(self, register):
            register("Bad Name", "x:y")

    reg = dreamset_registry(Plugin(), builtins=False, strict=False)
    assert reg.list() == []
    assert any("invalid component name" in e for p in reg.plugins for e in p.errors)


# -- calling the registration hooks through pluggy -----------------------------------------------

class _Twin(Shift):
    """a stand-in for shift:invert"""

    def apply(self, images, seed):
        return images


def _registers(name, **impl):
    class Plugin:
        @dreamset.hookimpl(**impl)
        def register_shifts(self, register):
            register(name, _Twin)

    return Plugin()


def test_builtins_keep_their_keys_but_tryfirst_takes_one(dreamset_registry):
    reg = dreamset_registry(_registers("invert"), strict=False)
    assert reg.get("shift:invert").distribution == "dreamset"
    assert any("duplicate key shift:invert" in e for p in reg.plugins if p.distribution == "<test>" for e in p.errors)
    reg = dreamset_registry(_registers("invert", tryfirst=True))
    assert reg.get("shift:invert").load() is _Twin  # pluggy's order decides the clash
    builtin = next(p for p in reg.plugins if p.name == "shift-invert")
    assert "duplicate key shift:invert" in builtin.errors[0]
    reg = dreamset_registry(_registers("twin", trylast=True), _registers("twin"), builtins=False, strict=False)
    assert reg.get("shift:twin").plugin == "test-plugin-1"  # trylast is called last: it loses


def test_a_wrapper_on_a_registration_hook_is_refused_with_a_clear_error(dreamset_registry):
    class Wrapper:
        @dreamset.hookimpl(wrapper=True)
        def register_shifts(self, register):
            register("wrapped", _Twin)
            return (yield)

    reg = dreamset_registry(Wrapper(), builtins=False, strict=False)
    assert reg.list() == []
    (error,) = [e for p in reg.plugins for e in p.errors]
    assert "register_shifts: hook wrappers (wrapper=True / hookwrapper=True) are not allowed" in error
    with pytest.raises(PluginError, match="hook wrappers"):
        dreamset_registry(Wrapper(), builtins=False)


def test_fixture_surfaces_misspelt_hooks_and_duplicate_keys(dreamset_registry):
    class Misspelt:
        @dreamset.hookimpl
        def register_shift(self, register):
            pass

    with pytest.raises(PluginError, match="register_shift"):
        dreamset_registry(Misspelt())
    with pytest.raises(PluginError, match="duplicate key shift:invert"):
        dreamset_registry(_registers("invert"))


class Keyed(Shift):
    """Keyed shift: the key is written once, on the class."""

    key = "shift:keyed"

    def apply(self, images, seed):
        return images


class Unkeyed(Keyed):
    """inherits a key but declares none"""


def test_key_written_once_on_the_class(dreamset_registry):
    class Plugin:
        @dreamset.hookimpl
        def register_shifts(self, register):
            register(Keyed)
            register(Unkeyed)

        @dreamset.hookimpl
        def register_attackers(self, register):
            register(Keyed)  # a shift registered through the attacker hook

    reg = dreamset_registry(Plugin(), builtins=False, strict=False)
    assert reg.list() == ["shift:keyed"]
    spec = reg.get("shift:keyed")
    assert spec.summary == "Keyed shift: the key is written once, on the class."
    assert reg.create("shift:keyed").key == "shift:keyed"
    errors = " | ".join(e for p in reg.plugins for e in p.errors)
    assert "Unkeyed declares no key of its own" in errors
    assert "register_attackers: Keyed is not a subclass of dreamset.contracts.interfaces.Attacker" in errors


def test_every_builtin_entry_point_is_named_after_its_key():
    """pyproject's entry-point names match the keys they register (``kind-name``), and every built-in
    registers through the class form: the key is written once, on the class."""
    for info in (p for p in registry.plugins() if p.builtin):
        keys = [k for k, spec in registry.get_registry().specs.items() if spec.plugin == info.name]
        assert [k.replace(":", "-", 1) for k in keys] == [info.name], (info.name, keys)
        (key,) = keys
        assert registry.get(key).load().__dict__.get("key") == key


def test_every_builtin_is_declared_once_with_register_and_no_hand_written_hook():
    import importlib

    from dreamset.contracts.declarations import declarations

    for info in (p for p in registry.plugins() if p.builtin):
        module = importlib.import_module(info.module)
        (declared,) = declarations(module)
        assert declared.key.replace(":", "-", 1) == info.name
        assert not [n for n in vars(module) if n.startswith("register_")], info.module  # no hand-written hook


# -- @dreamset.register: the key written once -------------------------------------------------------

DECLARED = '''
import dreamset
from dreamset.contracts.interfaces import Shift

@dreamset.register(description="declared once", aliases=("decl-alias",))
class Declared(Shift):
    """declared shift"""
    key = "shift:declared"

    def apply(self, images, seed):
        return images
'''


def test_a_declared_component_is_discovered_through_its_entry_point(fake_distribution):
    fake_distribution("decl-dist", {"shift-declared": "decl_plugin"}, {"decl_plugin": DECLARED})
    spec = registry.get("shift:declared")
    assert (spec.plugin, spec.distribution, spec.description) == ("shift-declared", "decl-dist", "declared once")
    assert registry.get("shift:decl-alias") is spec
    assert registry.create("shift:declared").key == "shift:declared"
    assert _plugin(registry.plugins(), "shift-declared").errors == []


def test_an_entry_point_that_disagrees_with_the_declared_key_is_reported_and_skipped(fake_distribution, capsys):
    from dreamset.cli import main

    fake_distribution("mis-dist", {"shift-misnamed": "mis_plugin", "good": "mis_good_plugin"},
                      {"mis_plugin": DECLARED, "mis_good_plugin": GOOD.replace("good_plugin", "mis_good_plugin")})
    assert "shift:identity-x" in registry.list() and "shift:invert" in registry.list()  # the others load
    assert "shift:declared" not in registry.list()
    info = _plugin(registry.plugins(), "shift-misnamed")
    assert info.status == "error"
    assert info.errors == ["entry point 'shift-misnamed' does not match the key its module declares, shift:declared: "
                           "name the entry point 'shift-declared'"]
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert "error: plugin shift-misnamed (mis-dist 1.0): entry point 'shift-misnamed' does not match" in out


def test_a_module_declaring_two_components_under_one_entry_point_is_reported(fake_distribution):
    source = DECLARED + '''

@dreamset.register
class Second(Declared):
    key = "shift:second"
'''
    fake_distribution("two-dist", {"shift-declared": "two_plugin"}, {"two_plugin": source})
    assert not {"shift:declared", "shift:second"} & set(registry.list())
    (error,) = _plugin(registry.plugins(), "shift-declared").errors
    assert "declares 2 components (shift:declared, shift:second)" in error


def test_a_declaration_without_a_key_fails_the_plugin_at_import(fake_distribution):
    source = DECLARED.replace('key = "shift:declared"', 'key = "declared"')
    stringly = DECLARED.replace('@dreamset.register(description="declared once", aliases=("decl-alias",))',
                                '@dreamset.register("shift:declared")')
    fake_distribution("nokey-dist", {"shift-declared": "nokey_plugin", "shift-stringly": "stringly_plugin"},
                      {"nokey_plugin": source, "stringly_plugin": stringly})
    assert "shift:invert" in registry.list()
    (error,) = _plugin(registry.plugins(), "shift-declared").errors
    assert error.startswith("import failed: dreamset.contracts.errors.PluginError: @dreamset.register: Declared declares no key of its own")
    (error,) = _plugin(registry.plugins(), "shift-stringly").errors
    assert "the key is the class attribute key = 'shift:declared'" in error


def test_hand_written_hooks_of_third_party_plugins_keep_working(fake_distribution):
    """The hookspecs are a contract: a plugin written against them (class form, under any entry-point
    name) registers as before, and a module may hand-write a hook beside a declared component."""
    legacy = '''
import dreamset
from dreamset.contracts.interfaces import Shift

class Legacy(Shift):
    """legacy shift"""
    key = "shift:legacy"

    def apply(self, images, seed):
        return images

@dreamset.hookimpl
def register_shifts(register):
    register(Legacy, description="hand-written hook")
'''
    mixed = DECLARED.replace("decl-alias", "mixed-alias").replace("shift:declared", "shift:mixed") + '''

@dreamset.hookimpl
def register_shifts(register):
    register("mixed-extra", "mixed_plugin:Declared")
'''
    fake_distribution("legacy-dist", {"my-legacy-plugin": "legacy_plugin", "shift-mixed": "mixed_plugin"},
                      {"legacy_plugin": legacy, "mixed_plugin": mixed})
    spec = registry.get("shift:legacy")
    assert (spec.plugin, spec.description) == ("my-legacy-plugin", "hand-written hook")
    assert registry.create("shift:legacy").key == "shift:legacy"
    assert {"shift:mixed", "shift:mixed-extra"} <= set(registry.list())
    assert registry.get("shift:mixed-alias").key == "shift:mixed"
    assert all(not _plugin(registry.plugins(), name).errors for name in ("my-legacy-plugin", "shift-mixed"))


def test_a_declaring_module_is_a_plugin_object_for_the_fixture_and_survives_a_reload(fake_distribution, dreamset_registry):
    import importlib
    import sys

    fake_distribution("reload-dist", {}, {"reload_plugin": DECLARED})
    module = importlib.import_module("reload_plugin")
    try:
        reg = dreamset_registry(module, builtins=False)
        assert reg.list() == ["shift:declared"]
        importlib.reload(module)  # the class is declared again: replaced, not registered twice
        reg = dreamset_registry(module, builtins=False)
        assert reg.list() == ["shift:declared"] and reg.get("shift:declared").load() is module.Declared
    finally:
        sys.modules.pop("reload_plugin", None)


def test_allowlist_typo_and_switched_off_component_get_a_clear_line(fake_distribution, monkeypatch, capsys):
    from dreamset.cli import main
    from dreamset.contracts.errors import UnknownComponentError

    fake_distribution("good-dist", {"shift-identity-x": "good_plugin"}, {"good_plugin": GOOD})
    monkeypatch.setenv("DREAMSET_LOAD_PLUGINS", "god-dist")
    registry.reset()
    typo = _plugin(registry.plugins(), "god-dist")
    assert typo.status == "error"
    assert typo.errors == ["DREAMSET_LOAD_PLUGINS: 'god-dist' matches no installed plugin (entry point or "
                           "distribution); installed: good-dist, shift-identity-x"]
    with pytest.raises(UnknownComponentError) as info:
        registry.get("shift:identity-x")
    assert ("it is provided by plugin 'shift-identity-x' (good-dist 1.0), which is switched off "
            "(not in DREAMSET_LOAD_PLUGINS=god-dist)") in str(info.value)
    assert main(["plugins"]) == 0
    assert "'god-dist' matches no installed plugin" in capsys.readouterr().out.replace("\n", "")


def test_discovery_does_not_import_torch():
    code = (
        "import sys, dreamset.registry as r; r.list(); "
        "heavy = [m for m in ('torch', 'diffusers', 'timm', 'torchattacks', 'transformers', 'torchvision') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"discovery imported {out.stdout.strip()}"


def test_example_plugin_installs_with_pip_and_is_usable(example_plugin_site):
    """The worked example of docs/plugins.md and docs/kinds/, pip-installed into a target folder, shows
    up in `dreamset plugins` with its distribution and version, and its components work."""
    env = dict(os.environ, PYTHONPATH=str(example_plugin_site))
    out = subprocess.run([sys.executable, "-m", "dreamset", "plugins", "--json"], env=env, capture_output=True, text=True, check=True)
    components = {c["key"]: c for c in json.loads(out.stdout)["components"]}
    ours = {k for k, c in components.items() if c["distribution"] == "dreamset-example-plugin"}
    assert {k.split(":")[0] for k in ours} == {kind.name for kind in KINDS}  # one worked example per kind
    assert components["generator:stripes"]["plugin"] == "generator-stripes"
    assert components["attacker:uniform-noise"]["version"] == "0.1.0"
    code = (
        "import torch, dreamset.registry as r\n"
        "g = r.create('generator:stripes', size=8)\n"
        "b = g.generate(torch.tensor([0, 1]), [1, 2], ['a', 'b'])\n"
        "a = r.create('attacker:uniform-noise', eps=0.1)\n"
        "x = b.images; xa = a.attack(torch.nn.Identity(), x, b.labels)\n"
        "assert b.images.shape == (2, 1, 8, 8) and (xa - x).abs().max() <= 0.1 + 1e-6\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def _suite(env, *selectors):
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "dreamset.conformance.suite"]
    for selector in selectors:
        args += ["--dreamset-conformance", selector]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, cwd=env["PYTHONPATH"])


def test_example_plugin_passes_the_conformance_suite_by_distribution_name(example_plugin_site):
    env = dict(os.environ, PYTHONPATH=str(example_plugin_site))
    result = _suite(env, "dreamset-example-plugin")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"{len(KINDS)} passed" in result.stdout  # one component of every kind, none skipped


def test_conformance_selectors_that_pick_nothing_fail(example_plugin_site):
    env = dict(os.environ, PYTHONPATH=str(example_plugin_site))
    result = _suite(env, "no-such:*")
    assert result.returncode != 0
    assert "--dreamset-conformance 'no-such:*' selects no registered component" in result.stdout + result.stderr
    result = _suite(env, "shift:posterize,model:linear", "shift:no-such")  # one bad selector of several
    assert result.returncode != 0 and "'shift:no-such' selects no registered component" in result.stdout + result.stderr


def test_conformance_selection_takes_several_patterns_and_distributions(dreamset_registry):
    from dreamset.pytest_plugin import conformance_selection

    reg = dreamset_registry()
    keys, problems = conformance_selection(["shift:invert,shift:blur", "objective:*"], reg)
    assert keys == ["objective:greedy-bias-correction", "objective:mart", "objective:pgd-at", "objective:standard",
                    "objective:trades", "shift:blur", "shift:invert"]
    assert problems == []
    keys, _ = conformance_selection(["dreamset"], reg)
    assert keys == reg.list()  # every built-in, by distribution name


def test_conformance_run_surfaces_a_broken_plugin_of_the_selected_distribution(fake_distribution):
    from dreamset.pytest_plugin import conformance_selection

    source = GOOD + "\n@dreamset.hookimpl\ndef register_shift(register):\n    pass\n"
    fake_distribution("broken-dist", {"broken": "broken_plugin"}, {"broken_plugin": source.replace("good_plugin", "broken_plugin")})
    keys, problems = conformance_selection(["broken-dist"], registry.get_registry())
    assert keys == [] and len(problems) == 1  # its only plugin failed: the failure is the test
    assert "plugin 'broken' (broken-dist 1.0)" in problems[0] and "register_shift" in problems[0]
    keys, problems = conformance_selection(["*"], registry.get_registry())
    assert any("broken-dist" in p for p in problems)
    keys, problems = conformance_selection(["shift:invert"], registry.get_registry())
    assert problems == []  # another distribution's problems are not this selection's


def test_plugins_key_shows_options_and_card(capsys):
    from dreamset.cli import main

    assert main(["plugins", "objective:trades", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["key"] == "objective:trades" and info["distribution"] == "dreamset"
    assert info["options"] == [{"name": "beta", "type": "float", "default": "6.0", "bounds": "> 0, <= 1000",
                                "description": "weight β of the KL robustness term"}]
    assert "arXiv:1901.08573" in info["module_docstring"]
    assert main(["plugins", "pgd", "--kind", "attacker"]) == 0  # a bare name with --kind; rich text
    out = capsys.readouterr().out
    assert "attacker:pgd" in out and "restarts" in out and ">= 1" in out and "Madry" in out
    assert main(["plugins", "attacker:pdg"]) == 2  # unknown key: one line, exit 2
    assert "did you mean attacker:pgd" in capsys.readouterr().err


def test_plugins_with_a_name_that_matches_nothing_is_one_line_and_exit_2(capsys):
    from dreamset.cli import main

    assert main(["plugins", "nosuchthing"]) == 2  # was an IndexError in resolve_key
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown component 'nosuchthing'; write kind:name"), err
    assert main(["plugins", "invrt"]) == 2
    assert capsys.readouterr().err == "error: unknown component 'invrt'; did you mean shift:invert?\n"


def test_plugins_dist_lists_the_components_and_problems_of_one_distribution(fake_distribution, capsys):
    from dreamset.cli import main

    fake_distribution("Good_Dist", {"good": "good_plugin", "broken": "broken_plugin"},
                      {"good_plugin": GOOD, "broken_plugin": "raise ImportError('no such library')\n"})
    assert main(["plugins", "--dist", "good-dist", "--json"]) == 0  # pip's spelling rules: case, - and _ alike
    listed = json.loads(capsys.readouterr().out)
    assert [row["key"] for row in listed["components"]] == ["shift:identity-x"]
    assert sorted((p["name"], p["status"]) for p in listed["plugins"]) == [("broken", "error"), ("good", "loaded")]
    assert main(["plugins", "--dist", "good_dist", "--kind", "attacker", "--json"]) == 0  # --kind narrows it
    assert json.loads(capsys.readouterr().out)["components"] == []
    assert main(["plugins", "--dist", "dreamset", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert {row["distribution"] for row in own["components"]} == {"dreamset"}
    assert len(own["components"]) == len([s for s in registry.get_registry().specs.values() if s.distribution == "dreamset"])
    assert main(["plugins", "--dist", "good-dist"]) == 0  # the table, and the broken plugin's line
    out = capsys.readouterr().out
    assert "shift:identity-x" in out and "shift:invert" not in out and "error: plugin broken (Good_Dist 1.0)" in out
    assert main(["plugins", "--dist", "no-such-dist"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'no-such-dist'" in err and "Good_Dist" in err and "dreamset" in err
