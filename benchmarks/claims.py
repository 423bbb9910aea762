"""Regenerate the claims tables of README.md and docs/recipes.md by running the recipes behind them.

Every number those documents show for a catalogue recipe sits between ``<!-- claims:NAME -->`` and
``<!-- /claims:NAME -->`` and is written here from the run's report.json
(:func:`dreamset.report.claims.claims_markdown`), with the command, date, machine and wall time — never typed.

    python benchmarks/claims.py                      # run digits-robust, print its block
    python benchmarks/claims.py --write              # ... and splice it into README.md and docs/recipes.md
    python benchmarks/claims.py --from-run runs/x    # re-render from an existing run folder (no training)
    python benchmarks/claims.py --from-run runs/digits-robust --made-by "dreamset run" --keep --write
        # README's block from the run README's own command made; --keep copies its report.json to
        # docs/runs/<block>/report.json, which the block names and tests/test_fair_comparison.py
        # re-renders the block from (every number must equal the named run's)
    python benchmarks/claims.py digits-robust --set seeds=[0] --out /tmp/c   # any recipe, any override

The baseline of every claim is named in the run itself: each arm is compared with the recipe's
baseline arm (``evaluate.baseline_arm``; default the real-only arm), paired by seed, at equal optimizer
steps unless the block says otherwise.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: recipe -> (documents its block goes into, whether the block lists the distribution metrics)
DOCUMENTS = {"digits-robust": {"README.md": False, "docs/recipes.md": True},
             "context-agnostic-mnist": {"docs/recipes.md": False}, "digits-shift": {"docs/recipes.md": True},
             # Jin & Rinard's protocol, short (issue 28), and the font probe (benchmarks/paper_glyphs.py, --block)
             "context-agnostic-mnist-short": {"docs/recipes.md": False},
             "context-agnostic-mnist-font-probe": {"docs/recipes.md": False},
             # the recipe context-agnostic-mnist was before issue 28 (--block)
             "context-agnostic-mnist-biregular": {"docs/recipes.md": False},
             "closed-loop-digits": {"docs/recipes.md": False}, "mnist-robust": {"docs/recipes.md": True},
             # digits-robust with --set name=digits-robust-long: the longer-schedule search of docs/recipes.md
             "digits-robust-long": {"docs/recipes.md": False},
             # the default run's saved models re-evaluated with APGD-CE/-DLR and PGD-100 x 3 (tests/test_claims_slow.py)
             "digits-robust-strong": {"docs/recipes.md": False},
             # context-agnostic-mnist-biregular on the plain small CNN (--block): the plateau run of docs/recipes.md
             "context-agnostic-mnist-biregular-plain-cnn": {"docs/recipes.md": False},
             # ... with font: [DejaVu Sans, cmti10] (--block): two renderings per class
             "context-agnostic-mnist-biregular-two-fonts": {"docs/recipes.md": False},
             # the sampler sweep (issue 33), and the same recipe on fresh seeds (--set seeds=[...] --block)
             "digits-data-efficiency": {"docs/recipes.md": True},
             "digits-data-efficiency-fresh": {"docs/recipes.md": True}}
#: recipes whose blocks also list the clean accuracy on every shifted and generated evaluation set
PER_SET = {"digits-shift"}


def run(recipe_name: str, out: Path, overrides: list[str]) -> tuple[dict, float]:
    import dreamset.registry as registry
    from dreamset.orchestration.pipeline import run_recipe
    from dreamset.orchestration.recipe import load_recipe

    recipe, resolved = load_recipe(recipe_name, overrides, registry=registry.get_registry())
    start = time.perf_counter()
    report = run_recipe(recipe, resolved, out)
    return report, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="digits-robust")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/claims-RECIPE)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--from-run", type=Path, default=None, help="use this run folder's report.json instead of running")
    parser.add_argument("--write", action="store_true", help="splice the block into the recipe's documents")
    parser.add_argument("--made-by", default=None, help="with --from-run: the command that made the run "
                                                         "(e.g. 'dreamset run', README's), named in the source line")
    parser.add_argument("--keep", action="store_true", help="with --from-run: copy the run's report.json to "
                                                            "docs/runs/<block>/report.json and name that file")
    parser.add_argument("--block", default=None, help="the block's name (default: the run's recipe name), for a "
                                                       "second block of one recipe, e.g. a run with other settings")
    args = parser.parse_args()

    from dreamset.report.claims import claims_markdown, machine, splice

    if args.from_run is not None:
        report = json.loads((args.from_run / "report.json").read_text())
        # the stages' seconds (timings.contract_guards is part of them: the guards' own share)
        wall = sum(v for k, v in report.get("timings", {}).items() if k != "contract_guards")
        folder = args.from_run
    else:
        folder = args.out or ROOT / "runs" / f"claims-{args.recipe}"
        report, wall = run(args.recipe, folder, args.overrides)
    name = args.block or report["recipe"]["name"]
    if args.from_run is not None:
        command = (f"python benchmarks/claims.py --from-run {args.from_run}" + (f" --block {args.block}" if args.block else "")
                   + (f" --made-by '{args.made_by}'" if args.made_by else "") + (" --keep" if args.keep else ""))
    else:
        command = f"python benchmarks/claims.py {args.recipe}" + "".join(f" --set '{o}'" for o in args.overrides)
    how = "the run's stages took" if args.from_run is not None else "the whole run took"
    if args.made_by:
        how = f"the run was made by `{args.made_by}` ({threads_note(report)}); its stages took"
    where = f"`{folder}`"
    if args.keep and args.from_run is not None:
        kept = ROOT / "docs" / "runs" / name / "report.json"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text((args.from_run / "report.json").read_text())
        where = f"report.json kept as `{kept.relative_to(ROOT)}`"
    source = (f"*Generated by `{command}` on {date.today().isoformat()}, {machine()}; "
              f"{how} {wall / 60:.1f} min ({where}; its resolved recipe is in report.json). Do not edit by hand.*")
    documents = DOCUMENTS.get(name, {})
    for doc, with_metrics in (documents.items() or [("(stdout)", True)]):
        block = claims_markdown(report, source=source, metrics=with_metrics, per_set=report["recipe"]["name"] in PER_SET)
        print(f"--- {doc}\n{block}\n")
        if args.write and doc != "(stdout)":
            path = ROOT / doc
            path.write_text(splice(path.read_text(), name, block))
            print(f"wrote claims:{name} into {doc}")


def threads_note(report: dict) -> str:
    """The torch thread count the run used (report.json ``threads``, recorded since issue 26)."""
    threads = report.get("threads")
    return f"torch {threads} thread{'s' if threads != 1 else ''}" if threads else "torch threads not recorded"


if __name__ == "__main__":
    main()
