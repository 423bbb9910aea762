"""The trainer: one classifier trained on a mixer's stream with a training objective, with
checkpoints that make a killed run resumable.

* Loss: the ``objective:*`` component's ``loss(model, x, y, attacker=..., mask=...)`` (standard,
  PGD-AT — Madry et al. 2018 —, TRADES — Zhang et al. 2019 —, MART — Wang et al. 2020 — or a
  plugin's); the trainer knows none by name. Without one, :func:`dreamset.training.objectives.objective_for`
  picks it from the attacker the old way (docs/migration.md).
* SGD (Nesterov momentum) or AdamW; per-step cosine / one-cycle / constant learning rate; label
  smoothing; an exponential moving average of the weights (Gowal et al., 2021), returned instead of
  the raw weights when ``ema_decay`` is set; bf16 autocast only on CUDA; optional ``channels_last``.
* Determinism: every random draw of epoch ``e`` comes from ``(seed, e)`` (the mixer's order, the
  attack's random start, dropout; augmentations from ``(seed, e, step)``), so a run killed after
  epoch ``e`` and resumed from its checkpoint ends with the same weights as an uninterrupted run (CPU).
* Augmentation (``augment``, :mod:`dreamset.training.augmenting`): per-image transforms of the real and the
  synthetic set before the mixer mixes them, then a batch-level mix (CutMix/MixUp) whose soft labels
  (``float32 B×K``) the loss takes as they are (cross-entropy with probability targets). The
  training attack is made against the mixed image's dominant label (``argmax``), the attackers'
  ``int64`` contract; TRADES' attack needs no label, its clean term uses the soft label (as
  Rebuffi et al. 2021, arXiv:2103.01946, train TRADES with CutMix).
* Checkpoints: ``checkpoint_dir/last.safetensors`` after every epoch (model, optimizer, EMA, epoch),
  ``final.safetensors`` at the end; a finished run is loaded, not retrained. Each records the
  settings that made it (:mod:`dreamset.files.digests`); one made with other settings is refused (or, with
  ``--fresh``, moved aside), never silently reused.
* Training runs on a fork of torch's global random state: the caller's state is the same afterwards
  whether the model was trained or loaded (:mod:`dreamset.orchestration.seeding`).
* Input pipeline: the mixer's next batch is prepared on a background thread while the current one
  trains (:mod:`dreamset.training.prefetch`).
* Distributed: under ``torchrun`` with an initialised process group, the model is wrapped in
  ``DistributedDataParallel`` and rank ``r`` of ``W`` trains on rows ``r::W`` of every global batch
  (so the real/synthetic ratio of each batch holds on every rank); rank 0 writes the checkpoints.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dreamset.contracts.interfaces import Attacker, ImageSource, Mixer, Objective
from dreamset.files.atomic import atomic_write_text
from dreamset.files.checkpoints import load_checkpoint, save_checkpoint
from dreamset.orchestration.recipe import TrainStage

log = logging.getLogger("dreamset")


def learning_rate(settings: TrainStage, step: int, total: int) -> float:
    """The learning rate at optimizer step ``step`` of ``total``."""
    base = settings.lr
    t = step / max(total, 1)
    if settings.schedule == "constant":
        return base
    if settings.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    warm = 0.3  # one-cycle: linear warm-up over 30% of the steps, cosine annealing after
    if t < warm:
        return base * (0.04 + 0.96 * t / warm)
    return base * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def _optimizer(settings: TrainStage, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr)
    return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum, nesterov=settings.momentum > 0)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2**63)


class _EMA:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)


def _state_tensors(model, optimizer, ema) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value
    return tensors


def _restore(tensors, model, optimizer, ema) -> None:
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        ema.model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state = optimizer.state_dict()
    restored: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            restored.setdefault(int(index), {})[name] = value
    state["state"] = restored
    optimizer.load_state_dict(state)


class _TrainingAttacker:
    """The training attacker as an objective sees it: ``attack`` runs on the plain module (not a
    DistributedDataParallel wrapper) and its forward passes are counted into the arm's cost."""

    def __init__(self, attacker: Attacker, attack_model, calls, cost) -> None:
        self.attacker, self.attack_model, self.calls, self.cost = attacker, attack_model, calls, cost

    def __getattr__(self, name):  # key, options, eps, takes_mask ... of the wrapped attacker
        return getattr(self.attacker, name)

    def attack(self, model, x, y, **kwargs):
        before = self.calls[0] if self.calls is not None else 0
        y = y.argmax(dim=1) if y.is_floating_point() else y  # soft labels (CutMix/MixUp): the dominant class
        x_adv = self.attacker.attack(self.attack_model if self.attack_model is not None else model, x, y, **kwargs)
        if self.calls is not None and self.cost is not None:
            self.cost["attack_forward_backward_passes"] += self.calls[0] - before
        return x_adv


def _loss(model, x, y, objective: Objective, settings: TrainStage, attacker: Attacker | None = None,
          attack_model=None, mask=None, calls=None, cost=None) -> torch.Tensor:
    """The training loss: ``objective.loss``. ``model`` may be a DistributedDataParallel wrapper,
    ``attack_model`` the plain module the attacker differentiates through (default: ``model``);
    ``mask`` the batch's context mask from a compositing mixer (the objective passes it on to
    attackers that declare ``takes_mask``). ``calls`` (a one-element forward counter on the model)
    and ``cost`` record the attacker's forward passes."""
    training_attacker = _TrainingAttacker(attacker, attack_model, calls, cost) if attacker is not None else None
    return objective.loss(model, x, y, attacker=training_attacker, mask=mask, label_smoothing=settings.label_smoothing)


def _rows_backward(train_model, model, x, y, mask, objective, settings, attacker, use_amp, calls, cost, optimizer,
                   rank: int, world: int, device):
    """This rank's rows ``r::W`` of the global batch: forward, backward (DDP averages the ranks'
    gradients); returns the loss and the rows' labels."""
    share = 1.0
    if world > 1:  # this rank's rows; the loss is rescaled so DDP's mean of the
        share = len(y[rank::world]) * world / len(y)  # ranks' gradients is the global batch's
        x, y = x[rank::world], y[rank::world]
        mask = mask[rank::world] if mask is not None else None
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    mask = mask.to(device, non_blocking=True) if mask is not None else None
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
        loss = _loss(train_model, x, y, objective, settings, attacker, attack_model=model, mask=mask,
                     calls=calls, cost=cost) * share
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return loss, y


def _group_loss(model, x, y, mask, objective, settings, attacker, use_amp, calls, cost):
    """One row group's loss (:mod:`dreamset.training.row_groups`), autocast and ``channels_last`` as the step's."""
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_amp):
        return _loss(model, x, y, objective, settings, attacker, mask=mask, calls=calls, cost=cost)


def _on_forked_rng(train):
    """Run ``train`` on a fork of the global random state (what it draws is seeded inside)."""
    import functools

    @functools.wraps(train)
    def wrapper(context, *args, **kwargs):
        from dreamset.orchestration.seeding import forked_rng

        with forked_rng(context.device if context is not None else None):
            return train(context, *args, **kwargs)
    return wrapper


@_on_forked_rng
def train_classifier(
    context,
    model: torch.nn.Module,
    *,
    mixer: Mixer,
    real: ImageSource | None,
    synthetic: ImageSource | None,
    attacker: Attacker | None,
    settings: TrainStage,
    seed: int,
    checkpoint_dir: Path,
    description: str = "train",
    total_steps: int | None = None,
    record: dict[str, Any] | None = None,
    augment=None,
    objective: Objective | None = None,
    arm: str | None = None,
    schedule_steps: tuple[int, int] | None = None,
) -> torch.nn.Module:
    """Train ``model`` on ``mixer``'s batches of ``real``/``synthetic``; return it (or its EMA) in
    eval mode. Resumes from ``checkpoint_dir``.

    ``total_steps`` fixes the number of optimizer steps (default: ``settings.epochs`` mixer epochs);
    the learning-rate schedule spans exactly those steps, and the last epoch stops early where the
    budget ends. ``record``, when given, is filled with what the training cost
    (:func:`training_record`): kept in the checkpoint, so a reused or resumed arm reports it too.
    ``augment``: an :class:`~dreamset.training.augmenting.AugmentationPlan` (``None`` = no augmentation).
    ``objective`` (an ``objective:*`` component) gives the loss; ``None`` derives it from
    ``attacker`` and ``settings`` (:func:`dreamset.training.objectives.objective_for`). ``arm`` (with a
    context and a record) turns on the training curves (:mod:`dreamset.training.curves`). ``schedule_steps``
    ``(offset, span)``: these steps are steps ``offset ..`` of a learning-rate schedule spanning ``span``
    (the rounds of :mod:`dreamset.orchestration.closed_loop` continue one schedule)."""
    if objective is None:
        from dreamset.training.objectives import objective_for

        objective = objective_for(attacker, settings)
    if objective.uses_attacker != (attacker is not None):
        from dreamset.contracts.errors import BadInputError

        raise BadInputError(f"train.attacker: {objective.key} " + (
            "needs an attacker (train.attacker)" if objective.uses_attacker else "trains without an attacker"))
    device = context.device if context is not None else torch.device("cpu")
    checkpoint_dir = Path(checkpoint_dir)
    torch.manual_seed(_epoch_seed(seed, -1))
    model = model.to(device)
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(settings, model)
    ema = _EMA(model, settings.ema_decay) if settings.ema_decay else None
    steps = mixer.steps_per_epoch(real, synthetic, settings.batch_size)
    total = int(total_steps) if total_steps is not None else steps * settings.epochs
    epochs = math.ceil(total / steps)
    final = checkpoint_dir / "final.safetensors"
    last = checkpoint_dir / "last.safetensors"
    from dreamset.files.digests import reuse_or_refuse, training_settings

    made_by = training_settings(settings, model, mixer, attacker, real, synthetic, seed, total, objective)
    if augment:  # an arm's own augmentations (train.augment is in settings already)
        made_by["augment"] = augment.describe()
    offset, span = schedule_steps if schedule_steps is not None else (0, total)
    if schedule_steps is not None:
        made_by["schedule_steps"] = [int(offset), int(span)]
    reuse_or_refuse(checkpoint_dir, made_by, context)
    start_epoch = 0
    # counters live in the checkpoints' metadata (deterministic, so a resumed checkpoint stays
    # byte-identical); the wall time beside them in wall.json
    cost = {"optimizer_steps": 0, "images_seen": 0, "attack_forward_backward_passes": 0}
    wall_file = checkpoint_dir / "wall.json"
    wall = [_read_wall(wall_file)]
    curves = None
    if arm is not None and context is not None and record is not None:
        from dreamset.training.curves import CurveRecorder

        curves = CurveRecorder(context, arm, seed, attacker, checkpoint_dir / "curves.json")
    if final.exists():
        tensors, meta = load_checkpoint(final)
        _restore(tensors, model, optimizer, ema)
        log.info("%s: reusing finished checkpoint %s", description, final)
        _fill_record(record, {**cost, **(meta.get("cost") or {}), "wall_seconds": wall[0]}, mixer, real, synthetic,
                     settings.batch_size, steps, total, curves)
        return _finish(model, ema)
    if last.exists():
        tensors, meta = load_checkpoint(last)
        _restore(tensors, model, optimizer, ema)
        start_epoch = int(meta["epoch"]) + 1
        cost.update(meta.get("cost") or {})
        log.info("%s: resuming after epoch %d from %s", description, start_epoch - 1, last)
    else:
        wall[0] = 0.0
    use_amp = settings.mixed_precision and device.type == "cuda"
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
    train_model = model
    groups = getattr(settings, "batch_groups", None)  # world-size-independent weights (dreamset.training.row_groups)
    if distributed:
        from dreamset.orchestration.distributed import barrier

        if groups is not None:
            from dreamset.training.row_groups import broadcast_from_rank0, check_groups

            check_groups(groups, world)
            broadcast_from_rank0(model)
        else:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if groups is not None:
        from dreamset.training.row_groups import grouped_backward, sync_buffers
    # buffers (BatchNorm statistics) are rank 0's after each step under row groups; none: nothing to send
    sync_buffers_after_step = groups is not None and distributed and next(model.buffers(), None) is not None
    from dreamset.orchestration.progress import progress
    from dreamset.training.prefetch import prefetched

    attack_calls = [0]
    counter = model.register_forward_pre_hook(lambda *_: attack_calls.__setitem__(0, attack_calls[0] + 1)) if attacker is not None else None
    watcher = curves.watch(model) if curves is not None and rank == 0 else None
    if curves is not None and curves.check is not None and curves.check.stop and curves.overfitting is not None:
        epochs = start_epoch  # killed after the epoch that stopped it: nothing left to train
    try:
        with progress(context, description, total) as advance:
            advance(start_epoch * steps)
            for epoch in range(start_epoch, epochs):
                started = time.perf_counter()
                torch.manual_seed(_epoch_seed(seed, epoch) + rank)
                model.train()
                epoch_real, epoch_synthetic = augment.sources(real, synthetic, seed, epoch) if augment else (real, synthetic)
                batches = mixer.batches(epoch_real, epoch_synthetic, settings.batch_size, epoch, seed)
                # the next batch is prepared on a thread while this one trains; leaving the loop stops it.
                # Per-source augmentation draws from torch's global generator, so those reads stay here.
                per_source = augment is not None and bool(augment.real or augment.synthetic)
                for step, batch in enumerate(batches if per_source else prefetched(batches, pin=device.type == "cuda")):
                    if epoch * steps + step >= total:
                        break  # the budget ends inside this epoch
                    x, y, mask = batch[0], batch[1], (batch[2] if len(batch) > 2 else None)
                    if augment:
                        x, y = augment.mix(x, y, (real if real is not None else synthetic).num_classes, seed, epoch, step)
                    cost["images_seen"] += len(y)
                    for group in optimizer.param_groups:
                        group["lr"] = learning_rate(settings, offset + epoch * steps + step, span)
                    if groups is not None:  # world-size-independent gradient (dreamset.training.row_groups)
                        grouped_backward(model, x, y, mask, groups=groups, rank=rank, world=world, seed=seed, epoch=epoch,
                                         step=step, device=device, on_group=curves.step if watcher is not None else None,
                                         loss_of=lambda xg, yg, mg, first: _group_loss(model, xg, yg, mg, objective, settings,
                                                                                     attacker, use_amp, attack_calls,
                                                                                     cost if first else None))
                        loss = None
                    else:
                        loss, y = _rows_backward(train_model, model, x, y, mask, objective, settings, attacker, use_amp,
                                                 attack_calls, cost, optimizer, rank, world, device)
                    optimizer.step()
                    if sync_buffers_after_step:
                        sync_buffers(model)
                    cost["optimizer_steps"] += 1
                    if ema is not None:
                        ema.update(model)
                    if watcher is not None and loss is not None:
                        curves.step(loss, y)
                    advance(1)
                wall[0] += time.perf_counter() - started
                stop = False
                if watcher is not None:
                    curves.end_epoch(epoch, ema.model if ema is not None else model, cost["optimizer_steps"],
                                     optimizer.param_groups[0]["lr"])
                    stop = curves.check is not None and curves.check.stop and curves.overfitting is not None
                if distributed and curves is not None and curves.check is not None and curves.check.stop:
                    flag = torch.tensor([int(stop)], device=device)  # rank 0 alone validates: its verdict
                    torch.distributed.broadcast(flag, 0)
                    stop = bool(flag.item())
                if rank == 0:
                    save_checkpoint(last, _state_tensors(model, optimizer, ema), {"epoch": epoch, "seed": seed, "cost": cost,
                                                                                   "settings": made_by})
                    atomic_write_text(wall_file, json.dumps({"wall_seconds": wall[0]}))
                if distributed:
                    barrier(f"the checkpoint of epoch {epoch}")
                if stop:
                    log.warning("%s: stopped after epoch %d (catastrophic overfitting)", description, epoch)
                    epochs = epoch + 1
                    break
    finally:
        if counter is not None:
            counter.remove()
        if watcher is not None:
            watcher.remove()
    if rank == 0:
        save_checkpoint(final, _state_tensors(model, optimizer, ema), {"epoch": epochs - 1, "seed": seed, "cost": cost,
                                                                                 "settings": made_by})
        last.unlink(missing_ok=True)
    if distributed:
        barrier("the final checkpoint")
    _fill_record(record, {**cost, "wall_seconds": wall[0]}, mixer, real, synthetic, settings.batch_size, steps, total, curves)
    return _finish(model, ema)


def _read_wall(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _fill_record(record, cost, mixer, real, synthetic, batch_size: int, steps_per_epoch: int, total: int,
                 curves=None) -> None:
    if record is not None:
        record.update(training_record(cost, mixer, real, synthetic, batch_size, steps_per_epoch, total))
        if curves is not None:
            record["curves"] = curves.epochs
            if curves.overfitting is not None:
                record["catastrophic_overfitting"] = {**curves.overfitting, "stopped": bool(curves.check.stop)}


def training_record(cost: dict[str, Any], mixer: Mixer, real, synthetic, batch_size: int, steps_per_epoch: int,
                    total: int) -> dict[str, Any]:
    """What one arm's training cost, as report.json records it: ``optimizer_steps``, ``epochs``
    (mixer epochs, fractional when the budget ends inside one), ``steps_per_epoch``,
    ``images_seen`` (``total``, and ``real``/``synthetic`` split by the mixer's
    :meth:`~dreamset.contracts.interfaces.Mixer.composition`), ``attack_forward_backward_passes`` (batched
    forward passes through the model made by the training attacker, each followed by a backward for
    gradient attacks: PGD-7 makes 7 per optimizer step) and ``wall_seconds`` (summed over resumes)."""
    split = mixer.composition(real, synthetic, batch_size)
    seen = int(cost["images_seen"])
    return {
        "optimizer_steps": int(cost["optimizer_steps"]),
        "planned_steps": int(total),
        "steps_per_epoch": int(steps_per_epoch),
        "epochs": total / steps_per_epoch,
        "images_seen": {"total": seen, "real": round(seen * split[0]) if split else None,
                        "synthetic": round(seen * split[1]) if split else None},
        "attack_forward_backward_passes": int(cost["attack_forward_backward_passes"]),
        "wall_seconds": float(cost["wall_seconds"]),
    }


def _finish(model, ema):
    result = ema.model if ema is not None else model
    return result.eval()


def train_reference_classifier(context) -> torch.nn.Module:
    """Standard training on the real training split only (the run's reference classifier), with the
    recipe's ``train.model`` and ``reference`` settings; cached in ``run_dir/reference``."""
    recipe = context.recipe
    settings = recipe.train.model_copy(update={
        "epochs": recipe.reference.epochs, "lr": recipe.reference.lr, "ema_decay": None, "label_smoothing": 0.0,
    })
    factory = context.registry.create(recipe.train.model.key, kind="model", **recipe.train.model.options)
    from dreamset.orchestration.seeding import build_model

    model = build_model(factory, context.real_train.image_shape, context.real_train.num_classes,
                        seed=recipe.seeds[0], purpose="reference")
    mixer = context.registry.create("mixer:ratio", real_fraction=1.0)
    return train_classifier(context, model, mixer=mixer, real=context.real_train, synthetic=None, attacker=None,
                            settings=settings, seed=recipe.seeds[0], checkpoint_dir=context.run_dir / "reference",
                            description="reference classifier (real only)")
