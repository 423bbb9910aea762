"""What Jin & Rinard's Digit→MNIST protocol costs here (issue 28): seconds per optimizer step of every
arm of a ``context-agnostic-mnist`` run (from its report.json: ``training.wall_seconds`` over
``training.optimizer_steps``, every seed pooled), against the ``naive`` arm, and the training time
the shipped ``context-agnostic-mnist`` recipe (the paper's 300 epochs × 20 steps) would take per seed
and for all of its seeds at that rate. Reads a run; trains nothing.

    python benchmarks/protocol_cost.py --from-run /tmp/i28/short/run --markdown

The rates are the run's own: its thread count and the machine's load while it ran decide them (a
cpuslot run: one torch thread, nice 10, on a shared 2-core machine).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def paper_steps() -> tuple[dict[str, int], int]:
    """Optimizer steps per arm of the shipped ``context-agnostic-mnist`` recipe and its number of seeds."""
    from dreamset import registry
    from dreamset.contracts.data import TensorImageSet
    from dreamset.orchestration.recipe import load_recipe

    recipe, _ = load_recipe("context-agnostic-mnist", [])
    count = recipe.generate.count
    glyphs = TensorImageSet(torch_zeros(count), torch_arange(count), [str(i) for i in range(10)])
    steps = {}
    for name, arm in recipe.arms.items():
        mixer = registry.create(arm.mixer.key, kind="mixer", **arm.mixer.options)
        steps[name] = mixer.steps_per_epoch(None, glyphs, recipe.train.batch_size) * recipe.train.epochs
    return steps, len(recipe.seeds)


def torch_zeros(n):
    import torch

    return torch.zeros(n, 1, 28, 28)


def torch_arange(n):
    import torch

    return torch.arange(n) % 10


def main() -> None:
    parser = harness.parser(__doc__, repeats=None)
    parser.add_argument("--from-run", type=Path, required=True, help="a run folder of context-agnostic-mnist(-short)")
    args = parser.parse_args()
    report = json.loads((args.from_run / "report.json").read_text())
    full, seeds = paper_steps()
    rates = {}
    for name, arm in report["arms"].items():
        runs = [seed["training"] for seed in arm["per_seed"].values()]
        rates[name] = sum(r["wall_seconds"] for r in runs) / sum(r["optimizer_steps"] for r in runs)
    results = harness.Results("context-agnostic-mnist: cost of the paper's schedule",
                              {"run": str(args.from_run), "threads": report.get("threads")})
    step = results.section(f"seconds per optimizer step (5 batches of 10), run {args.from_run}, "
                           f"torch threads {report.get('threads')}")
    for name, rate in rates.items():
        step.add(name, rate, "s/step", None if name == "naive" else "naive")
    whole = results.section(f"training the shipped recipe at these rates: its steps per arm, one seed, in minutes "
                            f"(all {seeds} seeds: {seeds}× as long)")
    for name, rate in rates.items():
        if name in full:
            whole.add(f"{name} ({full[name]:,} steps)", rate * full[name] / 60, "min")
    total = sum(rates[n] * full[n] for n in full if n in rates) / 60
    whole.add("every arm measured here, one seed", total, "min")
    whole.add(f"every arm measured here, {seeds} seeds", total * seeds, "min")
    missing = [n for n in full if n not in rates]
    if missing:
        whole.note(f"not in this run, so not counted: {', '.join(missing)}")
    results.emit(args)


if __name__ == "__main__":
    main()
