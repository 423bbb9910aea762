"""``tracker:wandb-minimal`` — a minimal Weights & Biases tracker for dreamset, as a third party would
write it. dreamset has a built-in ``tracker:wandb`` (``pip install 'dreamset[wandb]'``; per-arm
x-axes, comparisons, an artifact); this example keeps its own key so the two can be installed together.

Card
----
* What: one W&B run per dreamset run (Weights & Biases, no paper; the hosted experiment tracker,
  2017), offline unless ``WANDB_MODE`` says otherwise: files under ``<run>/wandb``;
  ``wandb sync <run>/wandb/offline-run-*`` uploads them later. The resolved recipe is the run's
  config; the final numbers go to the run summary.
* Input shapes: none (no tensors); it reads the numbers :class:`dreamset.contracts.interfaces.Tracker`'s hooks hand it,
  plain Python floats — per epoch ``<arm>/seed<s>/<name>`` at step = optimizer steps so far, at the
  end ``final/...``.
* Install ``pip install ./docs/examples/dreamset-wandb`` (it needs ``wandb``) and name it::

    report: {trackers: [wandb-minimal]}

Tested in dreamset's CI against a fake ``wandb`` module; the built-in ``tracker:wandb`` follows the
same base class and is tested against the real package, offline.
"""
from __future__ import annotations

import os

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Tracker


class WandbOptions(dreamset.Options):
    project: str = Field(default="dreamset", min_length=1, description="W&B project")


@dreamset.register
class WandbTracker(Tracker):
    """Weights & Biases run (``tracker:wandb-minimal``), offline by default."""

    key = "tracker:wandb-minimal"
    Options = WandbOptions
    requires = (("wandb", "pip install wandb"),)

    def __init__(self, options=None):
        super().__init__(options)
        self.run = None

    def start(self, run_dir, name, params):
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        self.run = wandb.init(project=self.options.project, name=name, dir=str(run_dir), config=params, reinit=True)

    def log(self, metrics, step):
        if any(name.startswith("final/") for name in metrics):
            self.run.summary.update(metrics)  # W&B drops a log whose step goes back (final: step 0)
        else:
            self.run.log(metrics, step=step)

    def close(self, failed=False):
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
