"""Weights & Biases tracker for dreamset, as a third party would write it.

Install (``pip install ./docs/examples/dreamset-wandb``) and name it in a recipe::

    report: {trackers: [wandb]}

It implements dreamset's two tracker hooks: ``after_epoch`` logs each epoch's numbers under
``<arm>/seed<s>/<name>``, ``log_metrics`` the final numbers under ``final/...`` and finishes the
W&B run. The run is offline unless ``WANDB_MODE`` says otherwise (files under ``<run>/wandb``;
``wandb sync <run>/wandb/offline-run-*`` uploads them later). Not tested in dreamset's CI (wandb is
not a dependency); the built-in TensorBoard tracker is the tested model it follows.
"""
from __future__ import annotations

import os

import dreamset

NAME = "wandb"
_runs: dict[str, object] = {}


def _run(context):
    if NAME not in context.recipe.report.trackers:
        return None
    key = str(context.run_dir)
    if key not in _runs:
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        _runs[key] = wandb.init(project="dreamset", name=context.recipe.name, dir=str(context.run_dir),
                                config={"run_dir": str(context.run_dir)}, reinit=True)
    return _runs[key]


@dreamset.hookimpl
def after_epoch(context, arm, seed, epoch, metrics):
    run = _run(context)
    if run is not None:
        run.log({f"{arm}/seed{seed}/{k}": v for k, v in metrics.items() if k not in ("epoch", "step")},
                step=int(metrics.get("step", epoch)))


@dreamset.hookimpl
def log_metrics(context, metrics, step):
    run = _run(context)
    if run is not None:
        run.summary.update({f"final/{k}": v for k, v in metrics.items()})
        run.finish()
        _runs.pop(str(context.run_dir), None)
