"""What the run-time contract guards cost (issue 31): the default recipe (``digits-robust``), shrunk
by default to one seed and fewer steps so it runs in a few minutes, with its report's
``timings.contract_guards`` — the seconds the guards of :mod:`dreamset.orchestration.guards` spent
checking outputs (attacks of every training and evaluation batch, every loss, every selection and
metric result), timed inside the run — against the stages' seconds. The baseline row is the same run
without the guards' own time; the ratio ``stages ÷ (stages − guards)`` is what keeping them on costs
(the promise: ≤ 1.02). A second section puts the same guard time against the stages that call them
(train, evaluate, metrics, select) alone, leaving out the generator's fitting, which dilutes it.

The guards run on this thread between a component's calls and add no work to them, so their own
time is their cost (on CUDA a check waits for the batch it checks; the figure then includes that wait).

Run: ``python benchmarks/guard_cost.py [--full] [--set KEY=VALUE ...] [--out DIR] [--json PATH] [--markdown]``
(``--from-run DIR``: print the figures of a run folder it made before, without running again)
(``--full``: the recipe as shipped, three seeds, about 5 minutes idle on 2 CPU cores).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import harness

#: the shrink: one seed, a smaller generator and store, a shorter budget; attacks, metrics and batch
#: sizes as shipped, so each training and evaluation batch is checked as in the full run
SHRINK = ["seeds=[0]", "generate.count=1000", "generate.generator.options.train_steps=200",
          "train.budget=200", "train.epochs=10",
          "evaluate.metrics=[{key: fid}, {key: arc, options: {eps_max: 0.15, points: 4, epochs: 10, max_samples: 500}}]"]
GUARDED_STAGES = ("select", "train", "evaluate", "metrics")


def main() -> None:
    parser = harness.parser(__doc__, repeats=None)
    parser.add_argument("--full", action="store_true", help="the recipe as shipped (no shrink)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more override")
    parser.add_argument("--out", help="run folder (default: a temporary one)")
    parser.add_argument("--from-run", metavar="DIR", help="read the figures of a run folder this script already made "
                        "(its report.json) instead of running again")
    args = parser.parse_args()
    import dreamset

    overrides = ([] if args.full else SHRINK) + args.set
    load = None
    if args.from_run:
        report = dreamset.load_run(args.from_run)
    else:
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="guard-cost-")) / "run"
        before = os.getloadavg()[0]
        report = dreamset.run("digits-robust", out=out, overrides=overrides)
        load = (before, os.getloadavg()[1])  # a shared machine: the ratio holds, the seconds do not
    timings = dict(report["timings"])
    guards = timings.pop("contract_guards")
    stages = sum(timings.values())
    guarded = sum(timings.get(name, 0.0) for name in GUARDED_STAGES)
    results = harness.Results("Cost of the run-time contract guards", {**vars(args), "overrides": overrides})
    section = results.section("digits-robust" + ("" if args.full else " (shrunk)") + ": seconds of the whole run")
    section.add("without the guards' own time", stages - guards, "s")
    section.add("with the guards (as run)", stages, "s", baseline="without the guards' own time")
    section.note(f"guards: {guards:.3f} s; stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    if load is not None:
        section.note(f"load average: {load[0]:.1f} (1 min) at the start, {load[1]:.1f} (5 min) at the end")
    section = results.section("the stages that call guarded components (" + ", ".join(GUARDED_STAGES) + ")")
    section.add("without the guards' own time", guarded - guards, "s")
    section.add("with the guards (as run)", guarded, "s", baseline="without the guards' own time")
    results.emit(args)


if __name__ == "__main__":
    main()
