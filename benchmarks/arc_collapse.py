"""ARC's discriminators on the default recipe's data, per schedule: does adversarial training at
eps > 0 collapse to a constant (exactly 50% held-out accuracy)?

    nice -n 10 python benchmarks/arc_collapse.py                              # no store: blurred real digits as the proxy
    nice -n 10 python benchmarks/arc_collapse.py --write                      # ... and splice the table into docs/metrics.md
    nice -n 10 python benchmarks/arc_collapse.py --store RUN_DIR/synthetic   # the default recipe's store

Real side: dataset:digits (train_size 500), as digits-robust. ARC options: those of digits-robust's
evaluate.metrics (eps_max 0.15, points 4, epochs 10, max_samples 500), then each row's own. Prints,
per row, the per-eps held-out robust/clean accuracy and the fraction predicted real (0 or 1 =
collapsed) as one JSON line, then the markdown table; ``--write`` puts the table between
``<!-- claims:arc-collapse -->`` and ``<!-- /claims:arc-collapse -->`` of docs/metrics.md
(:func:`dreamset.report.claims.splice`), with the command that produced it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parent.parent
#: the rows of docs/metrics.md's table: (label, ARC options over digits-robust's)
ROWS = [
    ("independent, 0.01 (old default)", {"schedule": "independent", "lr": 0.01}),
    ("curriculum, 0.01", {"schedule": "curriculum", "lr": 0.01}),
    ("independent, 0.002", {"schedule": "independent", "lr": 0.002}),
    ("curriculum, 0.002 (new default)", {"schedule": "curriculum", "lr": 0.002}),
    ("curriculum, 0.002, 20 epochs", {"schedule": "curriculum", "lr": 0.002, "epochs": 20}),
]


def cell(point: dict) -> str:
    """``robust / clean, predicts real X%`` in percent; bold and marked when the discriminator collapsed."""
    text = (f"{100 * point['robust_accuracy']:.1f} / {100 * point['clean_accuracy']:.1f}, "
            f"predicts real {100 * point['predicted_real_fraction']:.1f}%")
    return f"**{text}** (collapsed)" if point["predicted_real_fraction"] in (0.0, 1.0) else text


def table(results: list[tuple[str, dict]]) -> str:
    """The markdown table: one row per configuration, one column per radius, then ARC."""
    eps = [p["eps"] for p in results[0][1]["curve"]]
    header = ["schedule, lr"] + [f"eps {e:.4g}" for e in eps] + ["ARC"]
    rows = [[label] + [cell(p) for p in result["curve"]] + [f"{result['arc']:.3f}"] for label, result in results]
    return harness.markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--store", help="synthetic store folder (default: blurred real test digits)")
    parser.add_argument("--rows", default=None, help="comma-separated row numbers of ROWS to run (default all)")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="override an ARC option in every row (JSON value)")
    parser.add_argument("--write", action="store_true", help="splice the table into docs/metrics.md")
    args = parser.parse_args()

    import torch

    import dreamset.registry as registry
    from dreamset.report.claims import splice
    from dreamset.orchestration.context import RunContext
    from dreamset.contracts.data import TensorImageSet
    from dreamset.orchestration.recipe import load_recipe
    from dreamset.store.reader import SyntheticStore

    took = harness.Stopwatch.started()
    recipe, _ = load_recipe("digits-robust")
    dataset = registry.create(recipe.data.dataset.key, **recipe.data.dataset.options)
    real_train, real_test = dataset.load("train"), dataset.load("test")
    if args.store:
        synthetic, what = SyntheticStore.open(Path(args.store)), f"store {args.store}"
    else:
        x, y = real_test.get(range(len(real_test)))
        blurred = registry.create("shift:blur", severity=2).apply(x, seed=0)
        synthetic, what = TensorImageSet(blurred, y, real_test.class_names, name="blurred test digits"), "proxy: blurred real test digits"
    base = dict(next(m.options for m in recipe.evaluate.metrics if m.key in ("arc", "metric:arc")))
    base.update({k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)})
    print(f"real: digits train ({len(real_train)}), synthetic: {what} ({len(synthetic)}); ARC options {base}")
    chosen = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    results = []
    for label, row in chosen:
        options = {**base, **row}
        with tempfile.TemporaryDirectory() as tmp:
            context = RunContext(recipe=recipe, run_dir=Path(tmp), registry=registry.get_registry(),
                                 real_train=real_train, real_test=real_test, synthetic=synthetic)
            torch.manual_seed(0)
            result = registry.create("metric:arc", **options).compute(context)
        results.append((label, result))
        print(json.dumps({"row": label, "options": row, "arc": round(result["arc"], 4), "warnings": result["warnings"],
                          "curve": [{k: round(v, 4) for k, v in p.items()} for p in result["curve"]]}), flush=True)
    command = "python " + " ".join(["benchmarks/arc_collapse.py", *sys.argv[1:]])
    block = (table(results) + "\n\n" + f"*Generated by `nice -n 10 {command}` on {harness.machine()}; "
             f"took {took.seconds / 60:.1f} min. Held-out robust / clean accuracy (%) and the fraction "
             f"the discriminator calls real; real digits (train_size 500) against {what}. Do not edit by hand.*")
    print(block)
    if args.write:
        path = ROOT / "docs" / "metrics.md"
        path.write_text(splice(path.read_text(), "arc-collapse", block))
        print("wrote claims:arc-collapse into docs/metrics.md")


if __name__ == "__main__":
    main()
