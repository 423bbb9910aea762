"""What every script in benchmarks/ shares: timing, memory, the machine line, the command line and the
results table. A script keeps only its measurement; it imports this module as ``harness`` (the
script's folder is on ``sys.path`` when Python runs a script).

- **Timing.** :func:`measure` runs each contender ``warmup`` times untimed, then ``repeats`` times
  timed, alternating the contenders (a load that comes and goes on a shared machine then hits them
  all alike); a :class:`Timing` keeps every repeat's wall seconds and gives their median and range.
  :class:`Stopwatch` times code that is not one call (accumulated over several ``with`` blocks).
- **Memory.** :func:`rss_kib` reads the current (``VmRSS``) or peak (``VmHWM``) resident memory from
  ``/proc/self/status`` (Linux). Not ``resource.getrusage().ru_maxrss``: on Linux it keeps the
  parent's peak across fork+exec, so a fresh child would report the parent's. :class:`PeakMemory`
  is the peak's growth over a ``with`` block. A peak is only meaningful in a fresh process:
  :func:`run_child` runs the script again with arguments and returns the JSON object that the child
  printed with :func:`child_result`.
- **Machine line.** :func:`machine`: date, CPU model and cores, torch version and threads, GPU.
- **Command line.** :func:`parser` adds ``--repeats``, ``--warmup`` (where the script times
  something), ``--json PATH`` and ``--markdown`` to a script's own options.
- **Results.** :class:`Results` holds sections of rows; each row is a measurement with its unit, its
  range over the repeats and the name of its **baseline** row, and prints beside it the ratio
  ``this value ÷ the baseline's value`` (in the row's unit, so a rate ratio > 1 and a time or memory
  ratio < 1 both mean dreamset does better than the baseline). :meth:`Results.emit` prints the
  table as text (or markdown with ``--markdown``) and writes it as JSON with ``--json PATH``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable, Mapping, Sequence


# --- timing ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """Wall seconds of each timed repeat of one contender."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def worst(self) -> float:
        return max(self.seconds)


def measure(contenders: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 0,
            sync: Callable[[], None] | None = None) -> dict[str, Timing]:
    """``{name: Timing}``: each contender called ``warmup`` times untimed, then ``repeats`` times timed,
    the contenders alternating within each round. ``sync`` (e.g. ``torch.cuda.synchronize``) runs
    before the clock starts and before it stops, so queued device work is counted."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    wait = sync or (lambda: None)
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            wait()
            start = time.perf_counter()
            fn()
            wait()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(tuple(values)) for name, values in times.items()}


class Stopwatch:
    """Wall seconds accumulated over the ``with`` blocks it times (``seconds`` includes a running one)."""

    def __init__(self) -> None:
        self._done = 0.0
        self._start: float | None = None

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._done += time.perf_counter() - self._start
        self._start = None

    @classmethod
    def started(cls) -> Stopwatch:
        """A stopwatch already running: for a span that is not one ``with`` block (it never stops)."""
        return cls().__enter__()

    @property
    def seconds(self) -> float:
        return self._done + (time.perf_counter() - self._start if self._start is not None else 0.0)


# --- memory ---------------------------------------------------------------------------------------

def rss_kib(field_name: str = "VmRSS") -> int:
    """Current (``VmRSS``) or peak (``VmHWM``) resident memory of this process, in KiB (0 if unknown)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    for line in status.read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """``growth_kib``: how far the peak RSS rose above the RSS at the start of the ``with`` block
    (``before_kib``); ``peak_kib``: the process's peak at its end."""

    def __enter__(self) -> PeakMemory:
        self.before_kib = rss_kib()
        return self

    def __exit__(self, *exc) -> None:
        self.peak_kib = rss_kib("VmHWM")
        self.growth_kib = self.peak_kib - self.before_kib


def run_child(script: str | Path, *args: str) -> dict:
    """Run ``python SCRIPT ARGS`` in a fresh process; return the JSON object of its last stdout line."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{Path(script).name} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_result(result: dict) -> None:
    """Print ``result`` as the one JSON line :func:`run_child` reads."""
    print(json.dumps(result), flush=True)


# --- machine line ---------------------------------------------------------------------------------

def log_result(path: str | Path, result: dict) -> None:
    """Print ``result`` as one JSON line and append it to the probe log ``path`` (a ``.jsonl`` file;
    its folder is made)."""
    line = json.dumps(result)
    print(line)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log:
        log.write(line + "\n")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    """``2026-12-07, AMD EPYC (x86_64), 2 cores, torch 2.5.1 with 1 thread(s), no GPU``: where and when
    the numbers were measured."""
    try:
        import torch
    except ImportError:
        software, gpu = "no torch", "no GPU"
    else:
        software = f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)"
        gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    return f"{date.today().isoformat()}, {cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, {software}, {gpu}"


# --- command line ---------------------------------------------------------------------------------

def parser(doc: str, *, repeats: int | None = 3, warmup: int = 1) -> argparse.ArgumentParser:
    """The script's parser (described by its docstring's first line) with the shared options; the script
    adds its own. ``repeats``/``warmup`` are this script's defaults (``repeats=None``: it times nothing,
    so it has neither option)."""
    out = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    shared = out.add_argument_group("measurement (benchmarks/harness.py)")
    if repeats is not None:
        shared.add_argument("--repeats", type=int, default=repeats,
                            help=f"timed runs of each contender; the median and the range are reported (default {repeats})")
        shared.add_argument("--warmup", type=int, default=warmup, help=f"untimed runs before them (default {warmup})")
    shared.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON here")
    shared.add_argument("--markdown", action="store_true", help="print the results table as markdown")
    return out


# --- results --------------------------------------------------------------------------------------

@dataclass
class Row:
    """One measurement: ``value`` in ``unit``, over the repeats ``low``..``high``, compared with the row
    named ``baseline`` of the same section (``None``: this row is a baseline or a reference figure)."""

    name: str
    value: float
    unit: str = ""
    baseline: str | None = None
    low: float | None = None
    high: float | None = None
    samples: list[float] | None = None


@dataclass
class Section:
    """A titled group of rows (baselines are looked up by name within it) and free-text notes."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str = "", baseline: str | None = None,
            low: float | None = None, high: float | None = None, samples: Sequence[float] | None = None) -> Row:
        """Append a row (``baseline``: the name of a row of this section, added before or after)."""
        row = Row(name, float(value), unit, baseline, low, high, list(samples) if samples is not None else None)
        self.rows.append(row)
        return row

    def ratio(self, row: Row) -> float | None:
        """``row.value`` ÷ its baseline's value (``None`` for a row without a baseline)."""
        if row.baseline is None:
            return None
        reference = self.row(row.baseline).value
        return row.value / reference if reference else float("nan")

    def time(self, name: str, timing: Timing, baseline: str | None = None, unit: str = "s", scale: float = 1.0) -> Row:
        """A time row: the median of ``timing`` × ``scale`` (e.g. ``1000 / images`` for ms per image)."""
        return self.add(name, timing.median * scale, unit, baseline, timing.best * scale, timing.worst * scale,
                        timing.seconds)

    def rate(self, name: str, timing: Timing, count: float, unit: str, baseline: str | None = None) -> Row:
        """A throughput row: ``count`` items per median second (its range from the slowest to the fastest repeat)."""
        return self.add(name, count / timing.median, unit, baseline, count / timing.worst, count / timing.best,
                        timing.seconds)

    def memory(self, name: str, kib: float, baseline: str | None = None) -> Row:
        """A memory row in MiB."""
        return self.add(name, kib / 1024, "MiB", baseline)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row {name!r} in section {self.title!r} (rows: {[r.name for r in self.rows]})")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def _range(row: Row) -> str:
    return f"{_number(row.low)}..{_number(row.high)}" if row.low is not None else ""


HEADER = ("measurement", "value", "unit", "range", "ratio to baseline")
NUMBER_COLUMNS = (1, 3)


def _cells(section: Section, row: Row, baselines: set[str]) -> list[str]:
    name = f"{row.name} (baseline)" if row.name in baselines else row.name
    ratio = f"{section.ratio(row):.3f} x {row.baseline}" if row.baseline is not None else ""
    return [name, _number(row.value), row.unit, _range(row), ratio]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table, one line per row (a ``|`` inside a cell, as in ``max |difference|``, escaped)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = (), indent: str = "  ") -> str:
    """A plain-text table with aligned columns (those numbered in ``right`` right-aligned)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]

    def line(cells):
        return indent + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(header), *(line(r) for r in rows)])


class Results:
    """A benchmark's results: a title, the machine line and sections of rows.

    ``results = Results("store reads"); s = results.section("random batches"); s.rate(...)``, then
    ``results.emit(args)``."""

    def __init__(self, title: str, settings: Mapping[str, object] | None = None) -> None:
        self.title = title
        self.settings = dict(settings or {})
        self.machine = machine()
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        self.sections.append(Section(title))
        return self.sections[-1]

    def to_json(self) -> dict:
        """The results as JSON-safe data; each row also holds its ``ratio``."""
        return {"title": self.title, "machine": self.machine, "settings": self.settings,
                "sections": [{"title": s.title, "notes": s.notes,
                              "rows": [{**asdict(r), "ratio": s.ratio(r)} for r in s.rows]} for s in self.sections]}

    def render(self, markdown: bool = False) -> str:
        out = [f"{'##' if markdown else '#'} {self.title}", f"{'' if markdown else '# '}{self.machine}"]
        for s in self.sections:
            baselines = {r.baseline for r in s.rows if r.baseline is not None}
            cells = [_cells(s, r, baselines) for r in s.rows]
            if markdown:  # blocks apart, notes as a list
                out += ["", f"{s.title}:", *(["", markdown_table(HEADER, cells)] if cells else []),
                        *([""] + [f"- {n}" for n in s.notes] if s.notes else [])]
            else:
                out += ["", f"{s.title}:", *([text_table(HEADER, cells, NUMBER_COLUMNS)] if cells else []),
                        *(f"  {n}" for n in s.notes)]
        return "\n".join(out)

    def emit(self, args: argparse.Namespace) -> None:
        """Print the table (markdown with ``--markdown``); write the JSON to ``--json PATH`` if given."""
        print(self.render(markdown=getattr(args, "markdown", False)), flush=True)
        path = getattr(args, "json", None)
        if path is not None:
            Path(path).write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
