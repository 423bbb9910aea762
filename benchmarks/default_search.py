"""The search behind the default recipe (issue 26): which cheap setting shows the robust gain of
generated data at equal compute within the time budget — every configuration tried, with its numbers
and its time, as a generated table.

Each configuration is the shipped ``digits-robust`` recipe with a few ``--set`` overrides (the training
attack, the optimizer steps per arm, the real-set size), run on the *search seeds* (0, 1, 2, fixed before
the search) by ``dreamset run`` in a child process. Configurations that share the real data and the
generator reuse the first one's generator checkpoint and store (copied into their run folder); their
time then adds that run's ``generate`` stage, so every row's time is what a fresh run of it costs.
The baseline of every row is the same run's ``real`` arm (real data only, the same optimizer steps):
the table shows ``real+synthetic − real`` as a paired 95% interval over seeds with its verdict.

    python benchmarks/default_search.py --out /tmp/search                     # run every configuration
    python benchmarks/default_search.py --out /tmp/search --only nfgsm-840    # one of them
    python benchmarks/default_search.py --out /tmp/search --report --write    # table -> docs/recipes.md
    python benchmarks/default_search.py --out /tmp/confirm --only nfgsm-840 --seeds 10 11 12 \\
        --block digits-robust-confirm --report --write                       # fresh-seed confirmation

The machine's load average is recorded beside each run's time: a row measured beside other work is
slower than on an idle machine, and the table says so.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "registry" / "recipes" / "digits-robust.yaml"
#: name -> (what it is, --set overrides of the shipped digits-robust). Fixed before the search.
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "pgd7-240": ("PGD-7 training, 240 steps per arm (the previous default's schedule)",
                 ["train.attacker={key: pgd, options: {eps: 0.15, steps: 7}}", "train.budget=240"]),
    "nfgsm-240": ("N-FGSM training, 240 steps", ["train.attacker={key: n-fgsm, options: {eps: 0.15}}", "train.budget=240"]),
    "nfgsm-480": ("N-FGSM training, 480 steps", ["train.attacker={key: n-fgsm, options: {eps: 0.15}}", "train.budget=480"]),
    "nfgsm-840": ("N-FGSM training, 840 steps", ["train.attacker={key: n-fgsm, options: {eps: 0.15}}", "train.budget=840"]),
    "fgsmrs-840": ("FGSM-RS training (Wong et al. 2020, step 1.25ε), 840 steps",
                   ["train.attacker={key: fgsm-rs, options: {eps: 0.15}}", "train.budget=840"]),
    "pgd2-840": ("PGD-2 training, 840 steps", ["train.attacker={key: pgd, options: {eps: 0.15, steps: 2}}", "train.budget=840"]),
    "nfgsm-840-n250": ("N-FGSM training, 840 steps, 250 real training digits (DDPM fitted on them)",
                       ["train.attacker={key: n-fgsm, options: {eps: 0.15}}", "train.budget=840",
                        "data.dataset.options.train_size=250"]),
}
#: overrides that change what the generate stage makes (configurations agreeing on these share a store)
GENERATE_KEYS = ("data.", "generate.")
QUANTITIES = [("robust", "robust_accuracy"), ("shifted robust", "shifted_robust_mean"), ("clean", "clean_accuracy")]


def generate_signature(overrides: list[str]) -> tuple[str, ...]:
    return tuple(sorted(o for o in overrides if o.startswith(GENERATE_KEYS)))


def run_config(name: str, out: Path, seeds: list[int], done: dict[tuple, Path]) -> None:
    """``dreamset run`` of one configuration into ``out/name`` (skipped when its report exists)."""
    folder = out / name
    if (folder / "report.json").exists():
        print(f"{name}: already run ({folder})")
        return
    _, overrides = CONFIGS[name]
    source = done.get(generate_signature(overrides))
    meta: dict = {"generate_from": None}
    if source is not None:  # the same data and generator: reuse its checkpoint and store
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("generator", "synthetic"):
            if (source / part).exists() and not (folder / part).exists():
                shutil.copytree(source / part, folder / part)
        meta["generate_from"] = source.name
    command = [sys.executable, "-m", "dreamset", "run", str(RECIPE), "--out", str(folder), "-q",
               "--set", f"seeds={json.dumps(seeds)}", *(a for o in overrides for a in ("--set", o))]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    meta.update(wall_seconds=time.perf_counter() - started, load_average=os.getloadavg()[0], cpus=os.cpu_count(),
                command=" ".join(["dreamset", *command[3:]]))
    (folder / "search.json").write_text(json.dumps(meta, indent=2))


def row(name: str, out: Path) -> list[str] | None:
    folder = out / name
    if not (folder / "report.json").exists():
        return None
    report = json.loads((folder / "report.json").read_text())
    meta = json.loads((folder / "search.json").read_text()) if (folder / "search.json").exists() else {}
    timings = dict(report.get("timings", {}))
    if meta.get("generate_from"):  # what making the reused store cost
        source = json.loads((out / meta["generate_from"] / "report.json").read_text())
        timings["generate"] = source["timings"].get("generate", 0.0)
    arms = report["arms"]
    comparison = report["comparisons"]["real+synthetic"]
    from dreamset.report.claims import difference_cell
    from dreamset.report.tables import arm_steps

    steps = int(round(arm_steps(arms["real"])))

    cells = [f"`{name}`", CONFIGS[name][0], str(steps),
             f"{100 * arms['real']['robust_accuracy']:.1f}", f"{100 * arms['real+synthetic']['robust_accuracy']:.1f}"]
    cells += [difference_cell(comparison[key]) if key in comparison else "–" for _, key in QUANTITIES]
    cells += [f"{sum(timings.values()) / 60:.1f}", f"{timings.get('generate', 0.0) / 60:.1f}",
              f"{timings.get('train', 0.0) / 60:.1f}", f"{meta.get('load_average', float('nan')):.1f}"]
    return cells


def table(out: Path, names: list[str], seeds: list[int], command: str) -> str:
    from dreamset.report.claims import machine, markdown_table

    header = ["configuration", "what", "steps per arm", "real robust %", "real+synthetic robust %",
              *(f"Δ {label} (points)" for label, _ in QUANTITIES), "stages (min)", "generate (min)",
              "train (min)", "load average"]
    rows = [r for r in (row(n, out) for n in names) if r is not None]
    lines = markdown_table(header, rows)
    lines += ["", f"Seeds {', '.join(map(str, seeds))}; Δ = `real+synthetic − real`, the mean of the per-seed paired "
              "differences with its 95% Student-t interval (**bold** where it excludes 0); robust = PGD-20 "
              "(ε 0.15), per-sample worst case, on the recipe's stratified subset of 500 test digits; both arms "
              "train for the same optimizer steps. Stage minutes are report.json's `timings` summed (the "
              "generate stage of the run whose store a row reused is added); the load average is the machine's "
              "(2 cores) when the run ended: above 2, other work shared the machine and the minutes are inflated.",
              "", f"*Generated by `{command}` on {date.today().isoformat()}, {machine()}. Do not edit by hand.*"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the configurations' run folders")
    parser.add_argument("--only", nargs="*", default=None, choices=list(CONFIGS), help="these configurations only")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2], help="seeds (the search's: 0 1 2)")
    parser.add_argument("--report", action="store_true", help="print the table of what --out holds (no runs)")
    parser.add_argument("--write", action="store_true", help="with --report: splice it into docs/recipes.md")
    parser.add_argument("--block", default="digits-robust-search", help="the docs block's name")
    args = parser.parse_args()
    names = args.only or list(CONFIGS)
    if not args.report:
        done: dict[tuple, Path] = {}
        for name in CONFIGS:  # earlier runs' stores, for reuse
            if (args.out / name / "report.json").exists():
                done.setdefault(generate_signature(CONFIGS[name][1]), args.out / name)
        for name in names:
            run_config(name, args.out, args.seeds, done)
            done.setdefault(generate_signature(CONFIGS[name][1]), args.out / name)
    command = (f"python benchmarks/default_search.py --out {args.out} --report"
               + (f" --only {' '.join(args.only)}" if args.only else "")
               + (f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds != [0, 1, 2] else "")
               + (f" --block {args.block}" if args.block != "digits-robust-search" else ""))
    block = table(args.out, names, args.seeds, command)
    print(block)
    if args.write:
        from dreamset.report.claims import splice

        path = ROOT / "docs" / "recipes.md"
        path.write_text(splice(path.read_text(), args.block, block))
        print(f"wrote claims:{args.block} into docs/recipes.md")


if __name__ == "__main__":
    main()
