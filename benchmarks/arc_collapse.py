"""ARC's discriminators on the default recipe's data, per schedule: does adversarial training at
eps > 0 collapse to a constant (exactly 50% held-out accuracy)?

    nice -n 10 python benchmarks/arc_collapse.py --store RUN_DIR/synthetic   # the default recipe's store
    nice -n 10 python benchmarks/arc_collapse.py                              # no store: blurred real digits as the proxy

Real side: dataset:digits (train_size 500), as digits-robust. ARC options: those of digits-robust's
evaluate.metrics (eps_max 0.15, points 4, epochs 10, max_samples 500). Prints, per schedule, the
per-eps held-out robust/clean accuracy and the fraction predicted real (0 or 1 = collapsed).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", help="synthetic store folder (default: blurred real test digits)")
    parser.add_argument("--schedules", default="independent,curriculum")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="override an ARC option (JSON value)")
    args = parser.parse_args()

    import torch

    import dreamset.registry as registry
    from dreamset.context import RunContext
    from dreamset.data import TensorImageSet
    from dreamset.recipe import load_recipe
    from dreamset.store import SyntheticStore

    recipe, _ = load_recipe("digits-robust")
    dataset = registry.create(recipe.data.dataset.key, **recipe.data.dataset.options)
    real_train, real_test = dataset.load("train"), dataset.load("test")
    if args.store:
        synthetic, what = SyntheticStore.open(Path(args.store)), f"store {args.store}"
    else:
        x, y = real_test.get(range(len(real_test)))
        blurred = registry.create("shift:blur", severity=2).apply(x, seed=0)
        synthetic, what = TensorImageSet(blurred, y, real_test.class_names, name="blurred test digits"), "proxy: blurred real test digits"
    options = dict(next(m.options for m in recipe.evaluate.metrics if m.key in ("arc", "metric:arc")))
    options.update({k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)})
    print(f"real: digits train ({len(real_train)}), synthetic: {what} ({len(synthetic)}); ARC options {options}")
    for schedule in args.schedules.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            context = RunContext(recipe=recipe, run_dir=Path(tmp), registry=registry.get_registry(),
                                 real_train=real_train, real_test=real_test, synthetic=synthetic)
            torch.manual_seed(0)
            result = registry.create("metric:arc", **options, schedule=schedule).compute(context)
        print(json.dumps({"schedule": schedule, "arc": round(result["arc"], 4), "warnings": result["warnings"],
                          "curve": [{k: round(v, 4) for k, v in p.items()} for p in result["curve"]]}))


if __name__ == "__main__":
    main()
