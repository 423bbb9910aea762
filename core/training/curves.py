"""Training curves: per epoch, the mean training loss, the training accuracy and — every
``report.curve_every`` epochs — clean and robust accuracy on a small fixed validation subset.

The trainer owns one :class:`CurveRecorder` per arm and seed and calls it at two points only
(:meth:`CurveRecorder.step`, :meth:`CurveRecorder.end_epoch`); the recorder does the rest:

* training accuracy comes from the logits of the last forward pass of each optimizer step (a
  forward hook on the model), i.e. on the batch the loss was computed on — adversarial examples
  under adversarial training; a batch mixed by CutMix/MixUp counts against each image's dominant
  label (the ``argmax`` of its soft label);
* the validation subset is one seeded class-stratified subset of ``report.curve_samples`` test
  images (:func:`dreamset.orchestration.evaluation.stratified_subset`, seed ``evaluate.subset_seed``), the same
  for every arm and seed; robust accuracy is under the first evaluation attacker (else the training
  attacker, unless it takes a mixer's context mask: then no robust curve), drawn on a forked random state so that recording never changes the training run;
* catastrophic overfitting (Wong, Rice & Kolter 2020, arXiv:2001.03994): when the training attacker
  is single-step (``Attacker.single_step``: FGSM, FGSM-RS, N-FGSM), each validation also measures its
  own accuracy on the validation subset (``val_train_attack_accuracy``). The arm has *overfitted
  catastrophically* at the first validated epoch whose robust accuracy under the (multi-step)
  validation attack collapsed to at most ``train.catastrophic_overfitting.collapse`` × its best
  earlier value (and by at least ``min_drop``) while the single-step accuracy did not fall below its
  value at that best epoch: the model has learnt to defeat its own training attack and nothing
  stronger. :attr:`CurveRecorder.overfitting` then
  names the epoch; the trainer writes a warning into the arm's training record (report.json
  ``warnings`` and the run page) and, with ``stop: true``, stops the arm there (its fewer optimizer
  steps are then flagged by the compute note);
* the curve is saved as ``curves.json`` beside the checkpoints (a resumed or reused arm reports
  the epochs it did before), ends up in ``report.json`` under
  ``arms.<arm>.per_seed.<seed>.training.curves`` and is handed to the ``after_epoch`` hook
  (experiment trackers).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from dreamset.files.atomic import atomic_write_text


class CurveRecorder:
    def __init__(self, context, arm: str, seed: int, attacker, path: Path) -> None:
        self.context, self.arm, self.seed, self.path = context, arm, seed, Path(path)
        settings = context.recipe.report
        self.every = settings.curve_every
        self.validation = None
        self.attacker = None
        #: the single-step training attacker the catastrophic-overfitting check compares with
        self.single_step = None
        self.check = getattr(context.recipe.train, "catastrophic_overfitting", None)
        if settings.curve_samples and context.real_test is not None:
            from dreamset.orchestration.evaluation import stratified_subset

            n = min(settings.curve_samples, len(context.real_test))
            rows = stratified_subset(context.real_test.labels, n, context.recipe.evaluate.subset_seed,
                                     field="report.curve_samples")
            self.validation = context.real_test.subset(rows)
            refs = context.recipe.evaluate.attackers
            # the training attacker only when it needs no mixer's context mask (attacker:masked-pgd in the
            # context-agnostic recipes): validation images come without one
            self.attacker = (context.registry.create(refs[0].key, kind="attacker", field_path="evaluate.attackers.0.options",
                                                     **refs[0].options) if refs
                             else None if getattr(attacker, "takes_mask", False) else attacker)
            if (self.check is not None and attacker is not None and self.attacker is not None
                    and getattr(attacker, "single_step", False) and not getattr(attacker, "takes_mask", False)):
                self.single_step = attacker
        try:
            self.epochs: list[dict[str, Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.epochs = []
        self._logits: torch.Tensor | None = None
        self._reset()

    def _reset(self) -> None:
        self._loss = 0.0
        self._correct = 0
        self._seen = 0
        self._steps = 0

    def watch(self, model: torch.nn.Module):
        """Keep the logits of ``model``'s latest forward pass; returns the hook handle."""
        return model.register_forward_hook(lambda _m, _i, out: setattr(self, "_logits", out))

    def step(self, loss: torch.Tensor, y: torch.Tensor) -> None:
        """After an optimizer step: add its loss and (from the last forward) its correct count. Soft
        labels (``float32 B×K`` from CutMix/MixUp) count against their dominant class, the label the
        training attack uses too."""
        self._loss += float(loss.detach())
        self._steps += 1
        logits = self._logits
        y = y.argmax(dim=1) if y.ndim == 2 else y
        if torch.is_tensor(logits) and logits.ndim == 2 and logits.shape[0] == y.shape[0]:
            self._correct += int((logits.detach().argmax(dim=1) == y).sum())
            self._seen += int(y.shape[0])
        self._logits = None

    def end_epoch(self, epoch: int, model: torch.nn.Module, step: int, lr: float) -> dict[str, Any]:
        """Close epoch ``epoch``: record it (with the periodic validation), save, call the hook."""
        entry: dict[str, Any] = {
            "epoch": epoch, "step": step, "lr": lr,
            "loss": self._loss / self._steps if self._steps else math.nan,
            "train_accuracy": self._correct / self._seen if self._seen else math.nan,
        }
        if self.validation is not None and (epoch + 1) % self.every == 0:
            entry.update(self._validate(model))
        self._reset()
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch] + [entry]
        atomic_write_text(self.path, json.dumps(self.epochs))
        import dreamset.registry as registry_module

        registry_module.plugin_manager().hook.after_epoch(context=self.context, arm=self.arm, seed=self.seed,
                                                          epoch=epoch, metrics=dict(entry))
        return entry

    def _validate(self, model: torch.nn.Module) -> dict[str, float]:
        from dreamset.orchestration.evaluation import _mean, correct
        from dreamset.orchestration.seeding import forked_rng

        device, bs = self.context.device, self.context.recipe.evaluate.batch_size
        with forked_rng(device, self.seed):
            clean = correct(model, self.validation, device, bs, local=True)  # rank 0 alone records curves
            out = {"val_clean_accuracy": _mean(clean)}
            if self.attacker is not None:
                out["val_robust_accuracy"] = _mean(clean & correct(model, self.validation, device, bs, self.attacker, local=True))
            if self.single_step is not None:
                out["val_train_attack_accuracy"] = _mean(
                    clean & correct(model, self.validation, device, bs, self.single_step, local=True))
        return out

    @property
    def overfitting(self) -> dict[str, Any] | None:
        """The first validated epoch with catastrophic overfitting (see the module docstring), or ``None``:
        ``{epoch, step, val_robust_accuracy, best_val_robust_accuracy, best_epoch,
        val_train_attack_accuracy}``. Derived from the recorded curve, so a resumed arm finds the same."""
        if self.single_step is None:
            return None
        return catastrophic_overfitting(self.epochs, self.check.collapse, self.check.min_drop)


def catastrophic_overfitting(epochs: list[dict[str, Any]], collapse: float = 0.5,
                             min_drop: float = 0.1) -> dict[str, Any] | None:
    """The first entry of a training curve (``curves.json``'s list) whose ``val_robust_accuracy`` is at
    most ``collapse`` × the best earlier one and at least ``min_drop`` below it, while its
    ``val_train_attack_accuracy`` is not below the value at that best epoch; ``None`` when there is none."""
    best = None
    for entry in epochs:
        robust, single = entry.get("val_robust_accuracy"), entry.get("val_train_attack_accuracy")
        if robust is None or single is None:
            continue
        peak = best["val_robust_accuracy"] if best is not None else None
        if (best is not None and robust <= collapse * peak and peak - robust >= min_drop
                and single >= best["val_train_attack_accuracy"]):
            return {"epoch": entry["epoch"], "step": entry["step"], "val_robust_accuracy": robust,
                    "best_val_robust_accuracy": best["val_robust_accuracy"], "best_epoch": best["epoch"],
                    "val_train_attack_accuracy": single}
        if best is None or robust > best["val_robust_accuracy"]:
            best = entry
    return None
