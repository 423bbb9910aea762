"""What the progress lines cost a run: the default recipe, shrunk, run with its output in a file.

Issue 35 asks the overhead of progress lines on the default recipe as a ratio (<= 1.01). Two wall
clocks of whole runs differ by more than that on a shared machine, so the cost is timed where it is
spent: every call into the progress-line machinery (:class:`dreamset.contracts.progress.ProgressLines`
— its creation, each ``advance`` and the lines it formats and writes to the console's file and to
``run.log``) is timed with a :class:`harness.Stopwatch`, and set against the stages' own seconds
(report.json ``timings``): ratio = stages ÷ (stages − progress). Each ``--every`` value is one run
into its own folder, the same seeds; ``--every 0`` (no lines) is run last, as the baseline whose
report.json must be identical to the others' (``benchmarks/report_identity.py``: progress is in no
result), and whose wall time is shown beside theirs for what it is worth on a shared machine (the
first run also pays Python's imports, which counts against the lines).

Run: ``python benchmarks/progress_overhead.py`` (``--set KEY=VALUE`` to shrink differently,
``--every 30 --every 0.1`` for the intervals, ``--out DIR`` for the run folders).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import harness
import report_identity

#: the default recipe at a size a shared CPU runs in a few minutes (every stage and metric kept)
SHRINK = [
    "seeds=[0,1]",
    "data.dataset.options.train_size=200",
    "generate.count=300", "generate.batch_size=100", "generate.shard_size=100",
    "generate.generator.options={block_out_channels: [8, 16], train_steps: 50, steps: 4, batch_size: 32}",
    "train.epochs=2", "train.budget=matched", "train.model.options.width=8",
    "evaluate.attackers.0.options.steps=5", "evaluate.robust_samples=200",
    "reference.epochs=1",
    "evaluate.metrics.4.options={eps_max: 0.15, points: 2, epochs: 1, max_samples: 64}",
    "evaluate.metrics.5.options={testbed_sizes: [0.5, 1.0], testbed_epochs: [1]}",
]


def timed_progress_lines(watch: harness.Stopwatch) -> dict[str, int]:
    """Time every call into ProgressLines with ``watch``; returns live counters (advances, lines)."""
    from dreamset.contracts.progress import ProgressLines

    counts = {"advances": 0, "lines": 0, "loops": 0}
    init, advance, line = ProgressLines.__init__, ProgressLines.advance, ProgressLines.line

    def timed_init(self, *args, **kwargs):
        with watch:
            counts["loops"] += 1
            init(self, *args, **kwargs)

    def timed_advance(self, n=1):
        with watch:
            counts["advances"] += 1
            advance(self, n)

    def counted_line(self, now=None):
        counts["lines"] += 1
        return line(self, now)

    ProgressLines.__init__, ProgressLines.advance, ProgressLines.line = timed_init, timed_advance, counted_line
    return counts


def run(every: float, out: Path, overrides: list[str], log: Path) -> tuple[dict, float]:
    """One run of the shrunk default recipe into ``out`` with its console and log lines in ``log``;
    returns (report.json, wall seconds)."""
    import logging

    from rich.console import Console

    import dreamset
    from dreamset.orchestration.runlog import setup_logging

    with open(log, "w") as handle:
        console = Console(file=handle, force_terminal=False, width=200)
        handler = setup_logging(console)
        try:
            start = time.perf_counter()
            dreamset.run(None, out=out, overrides=overrides, console=console, progress_every=every)
            wall = time.perf_counter() - start
        finally:
            logging.getLogger("dreamset").removeHandler(handler)
    return json.loads((out / "report.json").read_text()), wall


def main() -> None:
    parser = harness.parser(__doc__, repeats=None)
    parser.add_argument("--every", type=float, action="append", help="progress intervals in seconds (default: 30, 0.1)")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", help="shrink overrides (default: SHRINK)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the run folders (default: a temporary one)")
    args = parser.parse_args()
    intervals = args.every or [30.0, 0.1]
    overrides = args.set or SHRINK
    root = args.out or Path(tempfile.mkdtemp(prefix="progress-overhead-"))
    root.mkdir(parents=True, exist_ok=True)
    results = harness.Results("progress lines: their cost inside a run of the shrunk default recipe",
                              {"overrides": overrides, "intervals": intervals, "load": os.getloadavg()})
    section = results.section("progress machinery seconds vs the stages' seconds (ratio: stages ÷ (stages − progress); "
                              "10,000 ppm is the issue's limit of 1.01)")
    watch = harness.Stopwatch()
    counts = timed_progress_lines(watch)
    measured = []
    for every in intervals:  # before the baseline: the first run also pays Python's imports (against the lines)
        before, counted = watch.seconds, dict(counts)
        report, wall = run(every, root / f"every-{every:g}", overrides, root / f"every-{every:g}.log")
        measured.append((every, report, wall, watch.seconds - before, {k: counts[k] - counted[k] for k in counts}))
    baseline, base_wall = run(0.0, root / "every-0", overrides, root / "every-0.log")
    section.add("wall seconds, --progress-every 0", base_wall, "s")
    for every, report, wall, spent, counted in measured:
        stages = sum(report["timings"].values())
        name = f"--progress-every {every:g}"
        section.add(f"stages' seconds, {name}", stages, "s")
        section.add(f"progress seconds, {name}", spent, "s")
        section.add(f"overhead ratio − 1, {name} (per million)", 1e6 * (stages / (stages - spent) - 1), "ppm")
        section.add(f"wall seconds, {name}", wall, "s", baseline="wall seconds, --progress-every 0")
        same = not list(report_identity.differences(report_identity.normalised(baseline, str(root / "every-0")),
                                                    report_identity.normalised(report, str(root / f"every-{every:g}"))))
        section.note(f"{name}: {counted['loops']} loops, {counted['advances']:,} advances, {counted['lines']:,} lines; "
                     f"report.json vs --progress-every 0: {'identical' if same else 'DIFFERENT'}")
    section.note(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    results.emit(args)


if __name__ == "__main__":
    main()
