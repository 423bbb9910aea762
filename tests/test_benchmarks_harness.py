"""benchmarks/harness.py on trivial functions (timing, ratios, JSON and markdown output, memory in a
fresh process), and every script in benchmarks/ imported with its ``--help`` parsed, so none of them
rots unnoticed. The benchmarks themselves are not run here (docs/performance.md runs them)."""
from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "harness")
#: scripts that do not measure against a baseline (they render documents' blocks or probe a setting),
#: or that the harness does not serve yet, so they keep their own options
OWN_OPTIONS = {"claims", "docs_blocks", "adversarial_training", "arc_collapse", "generator_table", "glyph_probe", "default_search",
               "thread_effect", "report_identity", "reliability_doc", "gan_probe", "generator_probe", "paper_glyphs"}


@pytest.fixture(scope="module")
def benchmarks():
    """Import benchmark modules as a script would see them (their folder first on ``sys.path``);
    forget them afterwards (their names are generic: ``harness``, ``claims``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(str(BENCHMARKS))
        for name in [*SCRIPTS, "harness"]:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def harness(benchmarks):
    return benchmarks("harness")


def test_measure_warms_up_then_times_the_contenders_alternating(harness):
    calls, synced = [], []
    timings = harness.measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              repeats=3, warmup=1, sync=lambda: synced.append(len(calls)))
    assert calls == ["a", "b"] * 4
    assert synced == [2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]  # before the clock starts and before it stops
    assert set(timings) == {"a", "b"}
    for timing in timings.values():
        assert len(timing.seconds) == 3
        assert 0 <= timing.best <= timing.median <= timing.worst
    with pytest.raises(ValueError):
        harness.measure({"a": lambda: None}, repeats=0)


def test_stopwatch_accumulates_its_blocks(harness):
    watch = harness.Stopwatch()
    for _ in range(2):
        with watch:
            time.sleep(0.01)
    assert 0.02 <= watch.seconds < 1
    running = harness.Stopwatch.started()
    time.sleep(0.01)
    assert running.seconds >= 0.01


def test_results_print_each_measurement_beside_its_baseline_as_a_ratio(harness, tmp_path, capsys):
    timings = harness.measure({"sleep": lambda: time.sleep(0.004), "nothing": lambda: None}, repeats=3, warmup=1)
    results = harness.Results("a trivial benchmark", {"repeats": 3})
    section = results.section("100 items per call")
    ours = section.rate("nothing", timings["nothing"], 100, "items/s", baseline="sleep")  # baseline added after
    base = section.rate("sleep", timings["sleep"], 100, "items/s")
    section.memory("peak", 2048, baseline="peak before")
    section.memory("peak before", 1024)
    section.note("a note")
    assert ours.value == pytest.approx(100 / timings["nothing"].median)
    assert (ours.low, ours.high) == (pytest.approx(100 / timings["nothing"].worst), pytest.approx(100 / timings["nothing"].best))
    assert section.ratio(ours) == pytest.approx(ours.value / base.value) and section.ratio(ours) > 1
    assert section.ratio(base) is None

    path = tmp_path / "out.json"
    results.emit(argparse.Namespace(json=path, markdown=False))
    text = capsys.readouterr().out
    assert text.splitlines()[0] == "# a trivial benchmark" and date.today().isoformat() in text.splitlines()[1]
    assert f"{section.ratio(ours):.3f} x sleep" in text and "sleep (baseline)" in text
    assert "2.000 x peak before" in text and "a note" in text

    data = json.loads(path.read_text())
    assert data["title"] == "a trivial benchmark" and data["settings"] == {"repeats": 3}
    rows = {row["name"]: row for row in data["sections"][0]["rows"]}
    assert rows["nothing"]["ratio"] == pytest.approx(rows["nothing"]["value"] / rows["sleep"]["value"])
    assert rows["nothing"]["baseline"] == "sleep" and rows["sleep"]["ratio"] is None
    assert len(rows["sleep"]["samples"]) == 3
    assert (rows["peak"]["value"], rows["peak"]["unit"], rows["peak"]["ratio"]) == (2.0, "MiB", 2.0)
    assert data["sections"][0]["notes"] == ["a note"]

    markdown = results.render(markdown=True).splitlines()
    assert "| measurement | value | unit | range | ratio to baseline |" in markdown
    assert any(line.startswith("| nothing |") and line.endswith(f"| {section.ratio(ours):.3f} x sleep |") for line in markdown)
    assert harness.markdown_table(["a"], [["max |d|"]]).splitlines()[-1] == "| max \\|d\\| |"  # a cell's | escaped


def test_a_missing_baseline_is_named(harness):
    section = harness.Results("t").section("s")
    section.add("x", 1.0, baseline="nowhere")
    with pytest.raises(KeyError, match="nowhere"):
        section.ratio(section.row("x"))


def test_parser_has_the_shared_options(harness):
    args = harness.parser("Doc line.\n\nMore.", repeats=5, warmup=0).parse_args(["--json", "r.json", "--markdown"])
    assert (args.repeats, args.warmup, args.json, args.markdown) == (5, 0, Path("r.json"), True)
    untimed = harness.parser("Doc.", repeats=None).parse_args([])
    assert not hasattr(untimed, "repeats") and untimed.json is None


def test_peak_memory_and_run_child_in_a_fresh_process(harness, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(BENCHMARKS)!r})\nimport harness\n"
                      "with harness.PeakMemory() as m:\n    block = b'x' * (64 << 20)\n"
                      "harness.child_result({'growth_kib': m.growth_kib, 'rss_kib': harness.rss_kib()})\n")
    out = harness.run_child(script)
    assert out["growth_kib"] >= 60 * 1024 and out["rss_kib"] > 0
    script.write_text("raise SystemExit('no')\n")
    with pytest.raises(RuntimeError, match="exited 1"):
        harness.run_child(script)


def test_machine_line_names_date_cpu_and_torch(harness):
    line = harness.machine()
    assert line.startswith(date.today().isoformat()) and "cores" in line and "torch" in line and "thread" in line


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_imports_and_parses_help(benchmarks, name, monkeypatch, capsys):
    source = (BENCHMARKS / f"{name}.py").read_text()
    assert "from test_" not in source and "import test_" not in source, "benchmarks import nothing from tests/"
    module = benchmarks(name)  # importing runs nothing: every script has a main()
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage:")
    if name not in OWN_OPTIONS:
        assert "--json PATH" in usage and "--markdown" in usage


def documented_commands() -> list[tuple[str, str]]:
    """``(script, arguments)`` of every ``python benchmarks/SCRIPT.py ARGS`` in README.md and docs/*.md
    (fenced blocks, with ``\\`` continuations, and inline code, which may wrap a line)."""
    found = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        spans = [line for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
                 for line in block.replace("\\\n", " ").splitlines()]
        spans += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
        for span in spans:
            match = re.search(r"python benchmarks/(\w+)\.py(.*)", span)
            if match:
                found.add((match.group(1), match.group(2).replace(" ...", "").strip()))
    return sorted(found)


class Parsed(Exception):
    """Raised in place of running a benchmark once its command line has parsed."""


@pytest.mark.parametrize("name, arguments", documented_commands())
def test_documented_command_lines_parse(benchmarks, name, arguments, monkeypatch):
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *shlex.split(arguments, comments=True)])
    with pytest.raises(Parsed):
        benchmarks(name).main()


def test_every_benchmark_block_has_its_markers_and_its_command(benchmarks):
    """benchmarks/docs_blocks.py can write every block it lists, and every perf-* block in the docs is
    one it lists (a block no script writes would be typed by hand)."""
    blocks = benchmarks("docs_blocks").BLOCKS
    for name, (document, command, _) in blocks.items():
        text = (ROOT / document).read_text()
        assert f"<!-- claims:{name} -->" in text and f"<!-- /claims:{name} -->" in text, (name, document)
        assert (ROOT / command.split()[0]).is_file(), command
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = {m for doc in docs for m in re.findall(r"<!-- claims:(perf-[\w-]+) -->", doc.read_text())}
    assert found == set(blocks), found ^ set(blocks)


def test_generator_table_source_line_is_generated_from_the_report(benchmarks):
    """The generator-comparison block's last line comes from report.json's timings; the old ``--wall``
    option spliced free text into the block marked "Do not edit by hand"."""
    import subprocess

    report = {"recipe": {"name": "generator-comparison"}, "timings": {"generate": 600.0, "train": 300.0, "report": 1.0}}
    line = benchmarks("generator_table").source_line(report, Path("/tmp/gc"))
    assert "the run's stages took 15.0 min by report.json's timings (generate 10.0, train 5.0 min)" in line
    assert line.endswith("Do not edit by hand.*")
    done = subprocess.run([sys.executable, str(BENCHMARKS / "generator_table.py"), "--from-run", "/nonexistent",
                           "--wall", "41 min wall"], capture_output=True, text=True)
    assert done.returncode == 2 and "--wall" in done.stderr
