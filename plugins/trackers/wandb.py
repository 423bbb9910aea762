"""``tracker:wandb`` — the run as one Weights & Biases run: the resolved recipe as its config, the
training curves per arm and seed, the final numbers and paired comparisons in its summary, and
report.html / report.json as an artifact.

Card
----
* What: one W&B run per dreamset run (Weights & Biases, no paper; Biewald, "Experiment Tracking with
  Weights and Biases", 2020) through the ``wandb`` SDK: ``wandb.init`` (named after the recipe, its
  files under ``<run>/<dir>``, config = the resolved recipe flattened to ``train.epochs`` ...,
  console capture off so dreamset's own log stays as it is), ``run.log``, ``run.summary``,
  ``run.log_artifact`` and ``run.finish`` (exit code 1 when the dreamset run raised).
* Input shapes: none (no tensors); it reads the numbers the :class:`~dreamset.contracts.interfaces.Tracker`
  hooks hand it, plain Python floats. Per epoch ``<arm>/seed<s>/<name>`` for ``loss``,
  ``train_accuracy``, ``lr``, ``val_clean_accuracy``, ``val_robust_accuracy``, each arm and seed
  plotted against its own x-axis ``<arm>/seed<s>/optimizer_step`` (``define_metric``: the arms'
  step counts restart at 0, W&B's own step may only grow). At the end, in the summary:
  ``final/<arm>/clean_accuracy`` ... ``final/metrics/<m>/<key>``, and every paired difference of
  report.json as ``comparisons/<arm> - <baseline>/<quantity>/{mean,low,high,verdict}``; the files
  ``recipe.json``, ``report.json`` and ``report.html`` as one artifact of type ``dreamset-report``.
* Where: ``options.mode`` (``online``, ``offline``, ``disabled``), else ``$WANDB_MODE``, else W&B's
  default (online: needs ``wandb login``). ``WANDB_MODE=offline`` works without a network; the run
  is kept in ``<run>/wandb/offline-run-*/`` for ``wandb sync`` later, and ``wandb leet inspect
  <run>/wandb`` shows it.
* Optional dependency: ``pip install 'dreamset[wandb]'``; a missing ``wandb`` is refused before
  the run starts, naming this tracker and the command.

Example::

    report: {trackers: [wandb]}
    report: {trackers: [{key: wandb, options: {project: digits, mode: offline}}]}
"""
from __future__ import annotations

import json
import os
import re
from typing import Literal

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Tracker


class WandbOptions(dreamset.Options):
    project: str = Field(default="dreamset", min_length=1, description="W&B project the run is logged under")
    entity: str | None = Field(default=None, description="W&B team or user (null: your default entity)")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        default=None, description="null: $WANDB_MODE, else W&B's default (online)")
    dir: str = Field(default="wandb", min_length=1, pattern=r"^[^/\\]+$",
                     description="folder inside the run folder that receives W&B's files")
    group: str | None = Field(default=None, description="W&B group of the run (e.g. a sweep's name)")
    tags: list[str] = Field(default_factory=list, description="W&B tags of the run")


@dreamset.register
class WandbTracker(Tracker):
    """One W&B run (``tracker:wandb``): recipe as config, curves per arm and seed, final numbers."""

    key = "tracker:wandb"
    Options = WandbOptions
    requires = (("wandb", "pip install 'dreamset[wandb]'"),)
    #: the conformance suite runs it offline: no network, no account
    conformance_options = {"mode": "offline"}

    def __init__(self, options=None):
        super().__init__(options)
        self.run = None
        self.name = "dreamset"
        self._axes: set[str] = set()

    def start(self, run_dir, name, params):
        import wandb

        o = self.options
        folder = run_dir / o.dir
        folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        settings = wandb.Settings(console="off", silent=True, save_code=False, disable_git=True)
        # the mode read now: wandb reads $WANDB_MODE once per process, maybe before this run set it
        mode = o.mode or os.environ.get("WANDB_MODE") or None
        self.run = wandb.init(project=o.project, entity=o.entity, name=name, dir=str(folder), mode=mode,
                              group=o.group, tags=list(o.tags) or None, config=params, settings=settings,
                              reinit="create_new")

    def log(self, metrics, step):
        final = {k: v for k, v in metrics.items() if k.startswith("final/")}
        if final:
            self.run.summary.update(final)
        by_axis: dict[str, dict[str, float]] = {}
        for name, value in metrics.items():
            if name in final:
                continue
            axis = name.rsplit("/", 1)[0]  # <arm>/seed<s>
            by_axis.setdefault(axis, {})[name] = value
        for axis, values in by_axis.items():
            if axis not in self._axes:
                self.run.define_metric(f"{axis}/optimizer_step", hidden=True)
                self.run.define_metric(f"{axis}/*", step_metric=f"{axis}/optimizer_step")
                self._axes.add(axis)
            self.run.log({**values, f"{axis}/optimizer_step": step})

    def log_files(self, paths):
        import wandb

        report = next((p for p in paths if p.name == "report.json"), None)
        if report is not None:
            self.run.summary.update(comparison_summary(json.loads(report.read_text())))
        if paths:
            artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", f"{self.name}-report"), type="dreamset-report")
            for path in paths:
                artifact.add_file(str(path), policy="immutable")  # referenced in place, not copied to a staging folder
            self.run.log_artifact(artifact)

    def close(self, failed=False):
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


def comparison_summary(report: dict) -> dict[str, float | str]:
    """``comparisons/<arm> - <baseline>/<quantity>/{mean,low,high,verdict}`` for every paired
    difference of ``report`` (:func:`dreamset.report.tables.all_comparisons`)."""
    from dreamset.report.tables import all_comparisons

    out: dict[str, float | str] = {}
    for arm, entry in all_comparisons(report):
        for quantity, d in entry.items():
            if not isinstance(d, dict) or "mean" not in d:
                continue
            prefix = f"comparisons/{arm} - {entry.get('baseline')}/{quantity}"
            for key in ("mean", "low", "high"):
                if isinstance(d.get(key), (int, float)):
                    out[f"{prefix}/{key}"] = float(d[key])
            if d.get("verdict") is not None:
                out[f"{prefix}/verdict"] = str(d["verdict"])
    return out
