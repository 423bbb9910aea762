"""Probe a generator's settings on a recipe's real data: fit the generator on the real training split,
sample class-balanced images, and measure them with the repo's own metrics (``metric:prdc``
recall/coverage, ``metric:vendi``, ``metric:label-agreement``) through ``dreamset evaluate``'s
:func:`evaluate_sources`, in one process. Two probe sets are in docs/recipes.md: the GAN of
``generator-comparison`` (mode collapse; ``benchmarks/gan_probe.py`` is this script with its defaults)
and the DDPM of ``mnist-robust`` (label agreement)::

    nice -n 10 python benchmarks/gan_probe.py --tag old '{"train_steps": 800, "width": 16, "disc_width": 16}'
    python benchmarks/gan_probe.py --write      # the log's table spliced into docs/recipes.md (claims:gan-probe)
    nice -n 10 python benchmarks/generator_probe.py --generator ddpm --dataset mnist --train-size 1000 \
        --log runs/mnist_ddpm_probe.jsonl --tag s1000 '{"train_steps": 1000, ...}'
    python benchmarks/generator_probe.py --log runs/mnist_ddpm_probe.jsonl --block mnist-ddpm-probe --write

Each probe prints one JSON line (options, recall, coverage, precision, density, Vendi score,
per-class Vendi score, label agreement, distinct-image count, CPU and wall seconds) and appends it to ``--log``. One torch
thread. The same images would come out of ``dreamset generate`` up to the per-image seeds (here
``0..499``, labels ``i mod 10``); claims come from ``dreamset run generator-comparison``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dreamset.registry as R


def _class_vendi(result: dict, column: int) -> float:
    """Mean per-class Vendi score (column 2: real, 3: synthetic): collapse within a class shows here."""
    (table,) = result["tables"].values()
    return round(float(np.mean([row[column] for row in table["rows"]])), 2)


def probe(generator: str, options: dict, dataset: str, train_size: int, count: int, work: Path,
          reference_cache: Path) -> dict:
    from dreamset.commands.compare import evaluate_sources
    from dreamset.contracts.data import to_uint8_images

    real = R.create(f"dataset:{dataset}", train_size=train_size).load("train")
    gen = R.create(f"generator:{generator}", **options)
    cpu, wall = time.process_time(), time.perf_counter()
    gen.fit(real, work)
    labels = torch.arange(count) % len(real.class_names)
    batch = gen.generate(labels, list(range(count)), list(real.class_names))
    fit_cpu, fit_wall = time.process_time() - cpu, time.perf_counter() - wall
    images = to_uint8_images(batch.images)
    npz = work / "samples.npz"
    np.savez(npz, image=images.permute(0, 2, 3, 1).numpy(), label=batch.labels.numpy())
    distinct = len({bytes(row) for row in images.reshape(len(images), -1).numpy()})
    # the real side: the same training split the generator was fitted on
    results = evaluate_sources(f"dataset:{dataset}", str(npz), ["metric:prdc", "metric:vendi", "metric:label-agreement"],
                               work_dir=reference_cache, real_options={"train_size": train_size})
    prdc, vendi, agree = results["prdc"], results["vendi"], results["label_agreement"]
    return {"recall": round(prdc["recall"], 3), "coverage": round(prdc["coverage"], 3),
            "precision": round(prdc["precision"], 3), "density": round(prdc["density"], 3),
            "vendi": round(vendi["vendi_synthetic"], 2), "vendi_real": round(vendi["vendi_real"], 2),
            "class_vendi": _class_vendi(vendi, 3), "class_vendi_real": _class_vendi(vendi, 2),
            "label_agreement": round(agree["agreement"], 3), "distinct": distinct,
            "fit_cpu_s": round(fit_cpu), "fit_wall_s": round(fit_wall)}


def table(log: str, command: str, probe_command: str = "") -> str:
    """The markdown table of the result lines in ``log``, with the line saying how it was made
    (``command``: the script that writes the block; ``probe_command``: the one that made every row,
    default: each setting's ``generator_probe.py`` command)."""
    import harness

    rows = [json.loads(line) for line in open(log)]
    what = {(r.get("generator", "gan"), r.get("dataset", "digits"), r.get("train_size", 500), r.get("count", 500)) for r in rows}
    lines = ["| tag | options | recall | coverage | precision | density | Vendi | per-class Vendi (real) | label agreement | "
             "distinct images | fit CPU s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tag']} | `{json.dumps(r['options'])}` | {r['recall']} | {r['coverage']} | {r['precision']} | "
                     f"{r['density']} | {r['vendi']} | {r['class_vendi']} ({r['class_vendi_real']}) | {r['label_agreement']} | "
                     f"{r['distinct']} | {r['fit_cpu_s']} |")
    setting = "; ".join(f"generator:{g} fitted on {n} real training images of dataset:{d}, {c} images sampled"
                        for g, d, n, c in sorted(what))
    commands = [probe_command] if probe_command else [
        f"generator_probe.py --generator {g} --dataset {d} --train-size {n} --count {c} --log {log}" for g, d, n, c in sorted(what)]
    made = " or ".join(f"`nice -n 10 python benchmarks/{c} --tag TAG 'OPTIONS'`" for c in commands)
    lines += ["", f"*Generated by `python benchmarks/{command} --write` on {harness.machine()} from {log}; each row is "
              f"{made} (one torch thread; {setting}; metrics against that training split; fit CPU seconds measured on the "
              "shared machine). Do not edit by hand.*"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, *, generator: str = "ddpm", dataset: str = "digits", train_size: int = 500,
         log: str = "runs/generator_probe.jsonl", block: str = "", command: str = "") -> None:
    """The command line; ``benchmarks/gan_probe.py`` calls it with the GAN probe's defaults."""
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("options", nargs="?", default="{}", help="the generator's options as JSON")
    p.add_argument("--tag", default="")
    p.add_argument("--generator", default=generator, help="generator key without 'generator:' (default %(default)s)")
    p.add_argument("--dataset", default=dataset, help="dataset key without 'dataset:' (default %(default)s)")
    p.add_argument("--train-size", type=int, default=train_size, help="real training images (default %(default)s)")
    p.add_argument("--count", type=int, default=500, help="images sampled, class-balanced")
    p.add_argument("--log", default=log, help="append the result line here")
    p.add_argument("--reference", default="", help="folder caching the reference classifier (default: beside --log)")
    p.add_argument("--block", default=block, help="with --write: the docs/recipes.md block (claims:BLOCK)")
    p.add_argument("--table", action="store_true", help="print the markdown table of --log and exit")
    p.add_argument("--write", action="store_true", help="... and splice it into docs/recipes.md (claims:BLOCK)")
    a = p.parse_args(argv)
    if a.table or a.write:
        shown = command or f"generator_probe.py --log {a.log}" + (f" --block {a.block}" if a.block else "")
        out = table(a.log, shown, command)
        print(out)
        if a.write:
            from dreamset.report.claims import splice

            if not a.block:
                p.error("--write needs --block")
            path = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
            path.write_text(splice(path.read_text(), a.block, out))
            print(f"wrote claims:{a.block} into {path}")
        return
    torch.set_num_threads(1)
    options = json.loads(a.options)
    reference = Path(a.reference or f"{os.path.splitext(a.log)[0]}_reference")
    with tempfile.TemporaryDirectory(prefix="generator-probe-") as work:
        res = {"tag": a.tag, "generator": a.generator, "dataset": a.dataset, "train_size": a.train_size, "count": a.count,
               "options": options, **probe(a.generator, options, a.dataset, a.train_size, a.count, Path(work), reference)}
    res["argv"] = sys.argv[1:]
    import harness

    harness.log_result(a.log, res)


if __name__ == "__main__":
    main()
