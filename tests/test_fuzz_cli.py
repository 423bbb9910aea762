"""Everything a user types, generated (issue 34): recipe files (YAML and TOML), ``--set`` values and
whole command lines, hostile ones included — deep nesting, huge numbers, alias bombs, wrong types,
odd Unicode, paths. The property, for every case: exit code 0 or 2; on 2 exactly one line
``error: ...`` on stderr; never a traceback; nothing written outside the run folder; at most a few
seconds of CPU.

The command line runs in-process (:func:`dreamset.cli.main`). ``run`` and ``generate`` stop where the
pipeline would start (a recipe that validates is accepted: exit 0); what a real run of an accepted
recipe writes is checked by ``test_accepted_recipes_write_only_into_their_run_folder``. The number of
cases is fixed (``FUZZ_CASES``, derandomized: CI tries the same cases every time); docs/reliability.md
states it in a block generated from ``FUZZ_CASES`` (``benchmarks/reliability_doc.py``)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamset.cli import main

#: cases per property in the default suite (docs/reliability.md states them from here)
FUZZ_CASES = {"recipe files": 150, "--set values": 150, "command lines": 150, "accepted recipes, really run": 6}
#: CPU seconds one case may take (CPU, not wall time: a loaded machine must not fail the property)
CPU_SECONDS = 3.0

BASE = {"name": "fuzz", "seeds": [0], "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1, "batch_size": 32,
                  "mixed_precision": False},
        "evaluate": {"robust_samples": 20, "metrics": []},
        "report": {"html": False}}

PATHS = ["name", "seeds", "device", "data", "data.dataset", "data.dataset.key", "data.dataset.options",
         "data.dataset.options.train_size", "data.shifts", "generate", "generate.count", "generate.source",
         "generate.generator", "generate.generator.options.steps", "generate.labels", "arms", "arms.real",
         "arms.real.real", "arms.real.sampler", "arms.x", "train", "train.model", "train.model.options.width",
         "train.epochs", "train.lr", "train.attacker", "train.attacker.options.eps", "train.optimizer", "evaluate",
         "evaluate.attackers", "evaluate.metrics", "report", "report.samples_per_class", "report.trackers", "unknown"]

#: strings a hostile or careless user may type: paths, device names, control and direction characters
ODD_STRINGS = ["../../etc/passwd", "/proc/self/mem", "/dev/zero", "~/x", "a/b/../../..", ".", "..", "", " ",
               "NUL", "CON", "\x00", "\x1b[31mred", "ｄｉｇｉｔｓ", "digits\u202e", "𝕕𝕚𝕘𝕚𝕥𝕤", "猫", "café crème",
               "a\nb", "a\r\nb", "\t", "%s%s%n", "{0}", "${HOME}", "!!python/object:os.system", "-1", "1e309",
               "0x10", "0o7", "1_000", ".inf", "NaN", "yes", "~", "null"]

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**30, 10**30),
                     st.floats(allow_nan=True, allow_infinity=True), _text, st.sampled_from(ODD_STRINGS))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                       max_leaves=16)


def billion_laughs(levels: int, width: int, key: str = "bomb") -> str:
    lines = [f'{key}0: &{key}0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"{key}{level}: &{key}{level} [{', '.join([f'*{key}{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@st.composite
def hostile_yaml_values(draw) -> str:
    """A YAML value as text: an alias bomb (flow form), a huge integer, deep nesting, or plain YAML."""
    kind = draw(st.sampled_from(["bomb", "int", "deep", "anchor-loop", "plain", "tag"]))
    if kind == "bomb":
        levels, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        items = ["&a0 lol"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
        return "[" + ", ".join(items) + "]"
    if kind == "int":
        return draw(st.sampled_from(["", "-"])) + "9" * draw(st.integers(4000, 20_000))
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        return "[" * depth + "]" * depth if draw(st.booleans()) else "{a: " * depth + "1" + "}" * depth
    if kind == "anchor-loop":
        return "&x [1, *x]"
    if kind == "tag":
        return draw(st.sampled_from(["!!python/object/apply:os.system ['true']", "!!binary aGk=", "!!set {a, b}",
                                     "!!timestamp 2001-12-14", "!!float nan", "!custom x"]))
    return yaml.safe_dump(draw(_values), allow_unicode=True, default_flow_style=True).strip()


@st.composite
def recipe_texts(draw) -> tuple[str, str]:
    """``(suffix, text)`` of a recipe file."""
    kind = draw(st.sampled_from(["mutated", "mutated", "random", "hostile", "toml", "bytes"]))
    if kind == "mutated":
        data = yaml.safe_load(yaml.safe_dump(BASE))
        for path, value in draw(st.lists(st.tuples(st.sampled_from(PATHS), _values), min_size=1, max_size=4)):
            node = data
            parts = path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) and isinstance(node.get(part, {}), dict) else {}
            node[parts[-1]] = value
        return ".yaml", yaml.safe_dump(data, allow_unicode=True)
    if kind == "random":
        return ".yaml", yaml.safe_dump(draw(_values), allow_unicode=True)
    if kind == "hostile":
        where = draw(st.sampled_from(PATHS))
        value = draw(hostile_yaml_values())
        head = yaml.safe_dump(BASE)
        if draw(st.booleans()):  # a block of anchors at the top level
            return ".yaml", head + billion_laughs(draw(st.integers(1, 12)), draw(st.integers(1, 12)))
        return ".yaml", head + f"{where.split('.')[0]}_extra: {value}\n"
    if kind == "toml":
        value = draw(st.sampled_from(["9" * draw(st.integers(4000, 9000)), "[" * 600 + "]" * 600, '"x"', "inf", "nan",
                                      "1979-05-27T07:32:00Z", "{a = 1}", "0x" + "f" * 5000]))
        return ".toml", f'name = "fuzz"\nseeds = [0]\n[train]\nepochs = {value}\n'
    return ".yaml", draw(st.binary(max_size=200)).decode("latin-1")


_set_items = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS), hostile_yaml_values()),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(PATHS), st.sampled_from(ODD_STRINGS)),
    st.builds(lambda k, v: f"{k}={v}", _text, _text),
    _text,
    st.builds(lambda n: ".".join(["a"] * n) + "=1", st.integers(1, 100)),
)


class _Accepted(Exception):
    """Raised where ``run``/``generate`` would start the pipeline: the input was accepted."""


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working folder for the CLI, the pipeline stopped at its start, the cache inside the sandbox."""
    import dreamset.orchestration.pipeline as pipeline

    def accept(*args, **kwargs):
        raise _Accepted

    monkeypatch.setattr(pipeline, "run_recipe", accept)
    monkeypatch.setattr(pipeline, "generate_only", accept)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DREAMSET_CACHE_DIR", str(tmp_path / "cache"))
    # a few real files to point at: a tiny .npz, a text file, a folder, a FIFO
    rng = np.random.default_rng(0)
    np.savez(work / "tiny.npz", image=rng.integers(0, 256, size=(4, 8, 8, 1), dtype=np.uint8), label=np.arange(4))
    (work / "notes.txt").write_text("not a recipe")
    (work / "folder").mkdir()
    os.mkfifo(work / "fifo.yaml")
    return tmp_path


def _snapshot(root: Path) -> dict[str, int]:
    """file -> mtime (folders left out: making the run folder changes its parent's mtime)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def check_case(capsys, sandbox: Path, argv: list[str], allowed: tuple[str, ...] = ()) -> int:
    """Run ``argv``; assert the property; return the exit code. ``allowed``: folders (relative to the
    sandbox's ``work``) the command may write into (its run folder, its output)."""
    before = _snapshot(sandbox)
    cpu = time.process_time()
    try:
        code = main(argv)
    except _Accepted:
        code = 0
    except SystemExit as exc:  # --help, --version
        code = exc.code if isinstance(exc.code, int) else 2
    spent = time.process_time() - cpu
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert spent < CPU_SECONDS, (argv, f"{spent:.2f} s of CPU")
    written = {name for name, stamp in _snapshot(sandbox).items() if before.get(name) != stamp}
    outside = {name for name in written
               if not any(Path(name).is_relative_to(Path("work") / a) for a in allowed)
               and not name.startswith("cache")}
    assert not outside, (argv, sorted(outside)[:5])
    return code


_SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


@settings(max_examples=FUZZ_CASES["recipe files"], **_SETTINGS)
@given(recipe=recipe_texts())
def test_any_recipe_file_is_accepted_or_one_line(sandbox, capsys, recipe):
    suffix, text = recipe
    path = sandbox / "work" / f"recipe{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    check_case(capsys, sandbox, ["run", str(path), "--out", "out"], allowed=("out",))


@settings(max_examples=FUZZ_CASES["--set values"], **_SETTINGS)
@given(items=st.lists(_set_items, min_size=1, max_size=3))
def test_any_set_value_is_accepted_or_one_line(sandbox, capsys, items):
    path = sandbox / "work" / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    argv = ["run", str(path), "--out", "out"]
    for item in items:
        argv += ["--set", item]
    check_case(capsys, sandbox, argv, allowed=("out",))


_VERBS = ["run", "generate", "recipes", "plugins", "export", "import", "grid", "evaluate", "report", "nosuchverb"]
_TOKENS = st.one_of(
    st.sampled_from(["--out", "--set", "--fresh", "--json", "-q", "-v", "--kind", "--format", "--per-class",
                     "--partial", "--metric", "--extractor", "--class-names", "--shard-size", "--no-plugins",
                     "--help", "--version", "-x", "--", "-"]),
    st.sampled_from(["tiny.npz", "notes.txt", "folder", "fifo.yaml", "missing.npz", "missing/x.yaml", "/nonexistent/x",
                     "/proc/self/mem", "/dev/null", "../escape", "out", "digits-robust", "attacker:*", "attacker:pgd",
                     "dataset:nosuch", "npz", "imagefolder", "0", "-1", "99999999999999999999", "generator"]),
    st.sampled_from(ODD_STRINGS), _text, _set_items)


@settings(max_examples=FUZZ_CASES["command lines"], **_SETTINGS)
@given(verb=st.sampled_from(_VERBS), tokens=st.lists(_TOKENS, max_size=6))
def test_any_command_line_is_accepted_or_one_line(sandbox, capsys, verb, tokens):
    argv = [verb, *tokens]
    # what a command may write: its run folder (run/generate), or the output the user named
    # (export --out X, import NPZ STORE, grid --out X)
    allowed = ["out", "runs"] + [t for t in tokens if t not in ("tiny.npz", "notes.txt", "fifo.yaml")]
    check_case(capsys, sandbox, argv, allowed=tuple(a for a in allowed if a and not a.startswith("/")))


# -- accepted recipes really run: nothing outside their run folder -----------------------------------

@settings(max_examples=FUZZ_CASES["accepted recipes, really run"], **_SETTINGS)
@given(items=st.lists(st.sampled_from([
    "train.lr=0.05", "train.optimizer=adamw", "seeds=[1]", "evaluate.robust_samples=10", "name=\"猫 café\"",
    "train.model.options.width=2", "report.samples_per_class=1", "data.dataset.options.train_size=40",
    "train.attacker={key: fgsm, options: {eps: 0.1}}", "train.epochs=2"]), min_size=1, max_size=3, unique=True))
def test_accepted_recipes_write_only_into_their_run_folder(tmp_path_factory, monkeypatch, capsys, items):
    root = tmp_path_factory.mktemp("real")
    work = root / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DREAMSET_CACHE_DIR", str(root / "cache"))
    path = work / "base.yaml"
    path.write_text(yaml.safe_dump(BASE))
    before = _snapshot(root)
    argv = ["run", str(path), "--out", "out"] + [a for item in items for a in ("--set", item)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, (argv, err)
    written = {name for name, stamp in _snapshot(root).items() if before.get(name) != stamp}
    assert written and all(name.startswith(("work/out", "cache")) for name in written), sorted(written)[:5]


def test_the_documented_case_counts_are_the_tests_own():
    """docs/reliability.md's fuzz block is rendered from ``FUZZ_CASES`` (benchmarks/reliability_doc.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reliability_doc", Path(__file__).resolve().parents[1] / "benchmarks" / "reliability_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.fuzz_cases() == FUZZ_CASES
    assert module.render() in module.DOCUMENT.read_text(encoding="utf-8"), "run: python benchmarks/reliability_doc.py --write"
