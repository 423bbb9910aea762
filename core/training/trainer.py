"""The trainer: one classifier trained on a mixer's stream with a training objective, with
checkpoints that make a killed run resumable.

* Loss: the ``objective:*`` component's ``loss(model, x, y, attacker=..., mask=...)`` (standard,
  PGD-AT — Madry et al. 2018 —, TRADES — Zhang et al. 2019 —, MART — Wang et al. 2020 — or a
  plugin's); the trainer knows none by name. Without one, :func:`dreamset.training.objectives.objective_for`
  picks it from the attacker the old way (docs/migration.md).
* SGD (Nesterov momentum), AdamW or Adam (L2 weight decay); per-step cosine / one-cycle / constant learning rate; label
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
import functools
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from dreamset.files.atomic import atomic_write_text
from dreamset.files.checkpoints import load_checkpoint, save_checkpoint
from dreamset.contracts.interfaces import Attacker, ImageSource, Mixer, Objective
from dreamset.contracts.progress import progress
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
    if settings.optimizer == "adam":  # L2: the decay is added to the gradient (Jin & Rinard's optimizer)
        return torch.optim.Adam(groups, lr=settings.lr)
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
        from dreamset.orchestration.guards import checked_attack

        y = y.argmax(dim=1) if y.is_floating_point() else y  # soft labels (CutMix/MixUp): the dominant class
        # a failure or an output outside the contract is named (dreamset.orchestration.guards)
        x_adv = checked_attack(self.attacker, self.attack_model if self.attack_model is not None else model, x, y, **kwargs)
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
    from dreamset.contracts.checks import loss_problem
    from dreamset.orchestration.guards import calling, check

    training_attacker = _TrainingAttacker(attacker, attack_model, calls, cost) if attacker is not None else None
    with calling(objective, "loss"):
        loss = objective.loss(model, x, y, attacker=training_attacker, mask=mask, label_smoothing=settings.label_smoothing)
    check(objective, loss_problem, loss)  # 0-dim and finite (dreamset.orchestration.guards)
    return loss


@dataclass(frozen=True)
class TrainingPlan:
    """Everything one classifier's training depends on. ``total_steps`` fixes the number of optimizer
    steps (default: ``settings.epochs`` mixer epochs; the last epoch stops where the budget ends);
    ``objective`` gives the loss (``None``: :func:`dreamset.training.objectives.objective_for` derives it from
    ``attacker`` and ``settings``); ``augment`` is an :class:`~dreamset.training.augmenting.AugmentationPlan`
    (``None`` = none); ``schedule_steps`` ``(offset, span)``: these steps are steps ``offset ..`` of a
    learning-rate schedule spanning ``span`` (the rounds of :mod:`dreamset.orchestration.closed_loop`)."""

    mixer: Mixer
    real: ImageSource | None
    synthetic: ImageSource | None
    settings: TrainStage
    seed: int
    checkpoint_dir: Path
    attacker: Attacker | None = None
    objective: Objective | None = None
    augment: Any = None
    total_steps: int | None = None
    schedule_steps: tuple[int, int] | None = None
    description: str = "train"


@dataclass(frozen=True)
class Trained:
    """A trained classifier (its EMA when ``ema_decay`` is set), in eval mode, and :attr:`record`,
    what training it cost (:func:`training_record`, made on first read)."""

    model: torch.nn.Module
    make_record: Callable[[], dict[str, Any]]

    @functools.cached_property
    def record(self) -> dict[str, Any]:
        return self.make_record()


class Trainer:
    """Trains one classifier as its :class:`TrainingPlan` says, resuming from the plan's checkpoint
    folder. Its collaborators: :class:`_Distribution` (DDP or row groups under ``torchrun``),
    :class:`_EMA`, :class:`_Cost` (counters and wall time), :class:`_Checkpoints` and the optional
    ``curves`` (a :class:`dreamset.training.curves.CurveRecorder`). ``services``
    (:class:`dreamset.contracts.inputs.Services`): device, progress bars and ``fresh``."""

    def __init__(self, plan: TrainingPlan, services=None, curves=None) -> None:
        from dreamset.training.counting import SOURCES, counted

        self.plan, self.services, self.curves = plan, services, curves
        # the sets the mixer reads, counting the rows it reads (made once: compositing mixers cache by source)
        self.tally = dict.fromkeys(SOURCES, 0)
        self.counted_real = counted(plan.real, self.tally, "real")
        self.counted_synthetic = counted(plan.synthetic, self.tally, "synthetic")
        device = getattr(services, "device", None)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def train(self, model: torch.nn.Module) -> Trained:
        """Train ``model`` on a fork of the global random state (what it draws is seeded inside)."""
        from dreamset.orchestration.seeding import forked_rng

        with forked_rng(self.device if self.services is not None else None):
            return self._train(model)

    def _train(self, model: torch.nn.Module) -> Trained:
        plan, settings = self.plan, self.plan.settings
        objective = _checked_objective(plan)
        torch.manual_seed(_epoch_seed(plan.seed, -1))
        model = model.to(self.device)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = _optimizer(settings, model)
        ema = _EMA(model, settings.ema_decay) if settings.ema_decay else None
        steps = plan.mixer.steps_per_epoch(plan.real, plan.synthetic, settings.batch_size)
        total = int(plan.total_steps) if plan.total_steps is not None else steps * settings.epochs
        offset, span = plan.schedule_steps if plan.schedule_steps is not None else (0, total)
        checkpoints = _Checkpoints(plan, model, objective, total, self.services)
        cost = _Cost(checkpoints.folder)
        if checkpoints.finished(model, optimizer, ema, cost):
            return self._trained(model, ema, cost, steps, total)
        start_epoch = checkpoints.resume(model, optimizer, ema, cost)
        run = _Step(model, objective, settings, plan.attacker, self.device, cost, plan.seed, self.curves)
        epochs = math.ceil(total / steps)
        if self._stops(run):  # killed after the epoch that stopped it: nothing left to train
            epochs = start_epoch
        try:
            with progress(self.services, plan.description, total, unit="steps", done=min(start_epoch * steps, total)) as advance:
                for epoch in range(start_epoch, epochs):
                    started = time.perf_counter()
                    torch.manual_seed(_epoch_seed(plan.seed, epoch) + run.distribution.rank)
                    model.train()
                    for step, (x, y, mask, rows) in enumerate(self._batches(epoch, total - epoch * steps)):
                        cost.add_rows(rows)
                        for group in optimizer.param_groups:
                            group["lr"] = learning_rate(settings, offset + epoch * steps + step, span)
                        run(optimizer, x, y, mask, epoch, step)
                        if ema is not None:
                            ema.update(model)
                        advance(1)
                    cost.wall += time.perf_counter() - started
                    if run.watching:
                        self.curves.end_epoch(epoch, ema.model if ema is not None else model,
                                              cost.counts["optimizer_steps"], optimizer.param_groups[0]["lr"])
                    checkpoints.save_epoch(epoch, model, optimizer, ema, cost, run.distribution)
                    if self._stops(run):
                        log.warning("%s: stopped after epoch %d (catastrophic overfitting)", plan.description, epoch)
                        epochs = epoch + 1
                        break
        finally:
            run.close()
        checkpoints.save_final(epochs - 1, model, optimizer, ema, cost, run.distribution)
        return self._trained(model, ema, cost, steps, total)

    def _stops(self, run: "_Step") -> bool:
        """Whether ``train.catastrophic_overfitting.stop`` ends the arm now: the curve recorder found
        catastrophic overfitting (:mod:`dreamset.training.curves`). Rank 0 alone validates; under
        torchrun its verdict is broadcast, so every rank stops at the same epoch."""
        check = getattr(self.curves, "check", None)
        if check is None or not check.stop:
            return False
        stop = self.curves.overfitting is not None if run.distribution.rank == 0 else False
        if run.distribution.active:
            flag = torch.tensor([int(stop)], device=self.device)
            torch.distributed.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    def _batches(self, epoch: int, limit: int):
        """``(x, y, mask, rows)`` of one epoch, at most ``limit`` (the budget may end inside the epoch):
        the mixer's batches of the (per-image augmented) sets, then the batch-level mix; ``rows`` are the
        rows the mixer read from each set for the batch (:mod:`dreamset.training.counting`). The next
        batch is prepared on a thread while this one trains — unless a per-source augmentation draws
        from torch's global generator (one without ``draws_from_generator``): those reads then stay on
        this thread."""
        from dreamset.orchestration.guards import iterate
        from dreamset.training.counting import counted_batches
        from dreamset.training.prefetch import prefetched

        plan = self.plan
        augment, real, synthetic = plan.augment, self.counted_real, self.counted_synthetic
        epoch_real, epoch_synthetic = augment.sources(real, synthetic, plan.seed, epoch) if augment else (real, synthetic)
        batches = counted_batches(plan.mixer.batches(epoch_real, epoch_synthetic, plan.settings.batch_size, epoch, plan.seed),
                                  self.tally)
        global_draws = augment is not None and not augment.per_source_thread_safe
        batches = batches if global_draws else prefetched(batches, pin=self.device.type == "cuda")
        for step, batch in enumerate(iterate(plan.mixer, "batches", batches)):  # a failure names the mixer
            if step >= limit:
                break  # the budget ends inside this epoch
            *batch, rows = batch
            x, y, mask = batch[0], batch[1], (batch[2] if len(batch) > 2 else None)
            if augment:
                x, y = augment.mix(x, y, (real if real is not None else synthetic).num_classes, plan.seed, epoch, step)
            yield x, y, mask, rows

    def _trained(self, model, ema, cost: "_Cost", steps: int, total: int) -> Trained:
        plan, counts = self.plan, {**cost.counts, "wall_seconds": cost.wall}

        def record() -> dict[str, Any]:
            out = training_record(counts, plan.mixer, plan.real, plan.synthetic, plan.settings.batch_size, steps, total)
            if self.curves is None:
                return out
            out["curves"] = self.curves.epochs
            if self.curves.overfitting is not None:
                out["catastrophic_overfitting"] = {**self.curves.overfitting, "stopped": bool(self.curves.check.stop)}
            return out
        return Trained(_finish(model, ema), record)


def _checked_objective(plan: TrainingPlan) -> Objective:
    objective = plan.objective
    if objective is None:
        from dreamset.training.objectives import objective_for

        objective = objective_for(plan.attacker, plan.settings)
    if objective.uses_attacker != (plan.attacker is not None):
        from dreamset.contracts.errors import BadInputError

        raise BadInputError(f"train.attacker: {objective.key} " + (
            "needs an attacker (train.attacker)" if objective.uses_attacker else "trains without an attacker"))
    return objective


class _Cost:
    """What training costs: counters (kept in the checkpoints' metadata: deterministic, so a resumed
    checkpoint stays byte-identical) and the wall time beside them in ``wall.json``."""

    def __init__(self, folder: Path) -> None:
        self.counts = {"optimizer_steps": 0, "images_seen": 0, "attack_forward_backward_passes": 0,
                       # rows of the trained batches read from each set (dreamset.training.counting)
                       "images_seen_real": 0, "images_seen_synthetic": 0}
        self.wall_file = folder / "wall.json"
        self.wall = _read_wall(self.wall_file)
        #: forward passes through the model so far (counted while an attacker trains)
        self.calls = [0]

    def count_forwards(self, model: torch.nn.Module, attacker):
        """Count ``model``'s forward passes (the training attacker's cost); returns the hook handle."""
        if attacker is None:
            return None
        return model.register_forward_pre_hook(lambda *_: self.calls.__setitem__(0, self.calls[0] + 1))

    def restore(self, saved: dict[str, Any] | None) -> None:
        """The counters of a checkpoint; one written before the split was counted leaves it unknown."""
        saved = saved or {}
        self.counts.update(saved)
        if "images_seen" in saved and "images_seen_real" not in saved:
            self.counts["images_seen_real"] = self.counts["images_seen_synthetic"] = None

    def add_rows(self, rows: dict[str, int]) -> None:
        """Count a trained batch's rows per source (unless a resumed checkpoint left them unknown)."""
        for name, n in rows.items():
            key = f"images_seen_{name}"
            if self.counts[key] is not None:
                self.counts[key] += int(n)

    def save_wall(self) -> None:
        atomic_write_text(self.wall_file, json.dumps({"wall_seconds": self.wall}))


class _Checkpoints:
    """The plan's checkpoint folder: ``last.safetensors`` after every epoch, ``final.safetensors`` at
    the end, each with the settings that made it (a folder made with others is refused or, with
    ``fresh``, moved aside); rank 0 writes."""

    def __init__(self, plan: TrainingPlan, model, objective, total: int, services) -> None:
        from dreamset.files.digests import reuse_or_refuse, training_settings

        self.plan, self.folder = plan, Path(plan.checkpoint_dir)
        self.final, self.last = self.folder / "final.safetensors", self.folder / "last.safetensors"
        self.made_by = training_settings(plan.settings, model, plan.mixer, plan.attacker, plan.real, plan.synthetic,
                                         plan.seed, total, objective)
        if plan.augment:  # an arm's own augmentations (train.augment is in settings already)
            self.made_by["augment"] = plan.augment.describe()
        if plan.schedule_steps is not None:
            self.made_by["schedule_steps"] = [int(s) for s in plan.schedule_steps]
        reuse_or_refuse(self.folder, self.made_by, services)

    def finished(self, model, optimizer, ema, cost: _Cost) -> bool:
        """Load a finished checkpoint (and its cost) when there is one."""
        if not self.final.exists():
            return False
        tensors, meta = load_checkpoint(self.final)
        _restore(tensors, model, optimizer, ema)
        log.info("%s: reusing finished checkpoint %s", self.plan.description, self.final)
        cost.restore(meta.get("cost"))
        return True

    def resume(self, model, optimizer, ema, cost: _Cost) -> int:
        """Load the last epoch's checkpoint when there is one; the epoch to start at."""
        if not self.last.exists():
            cost.wall = 0.0
            return 0
        tensors, meta = load_checkpoint(self.last)
        _restore(tensors, model, optimizer, ema)
        cost.restore(meta.get("cost"))
        log.info("%s: resuming after epoch %d from %s", self.plan.description, int(meta["epoch"]), self.last)
        return int(meta["epoch"]) + 1

    def _meta(self, epoch: int, cost: _Cost) -> dict[str, Any]:
        return {"epoch": epoch, "seed": self.plan.seed, "cost": cost.counts, "settings": self.made_by}

    def save_epoch(self, epoch: int, model, optimizer, ema, cost: _Cost, distribution: "_Distribution") -> None:
        if distribution.rank == 0:
            save_checkpoint(self.last, _state_tensors(model, optimizer, ema), self._meta(epoch, cost))
            cost.save_wall()
        distribution.barrier(f"the checkpoint of epoch {epoch}")

    def save_final(self, epoch: int, model, optimizer, ema, cost: _Cost, distribution: "_Distribution") -> None:
        if distribution.rank == 0:
            save_checkpoint(self.final, _state_tensors(model, optimizer, ema), self._meta(epoch, cost))
            self.last.unlink(missing_ok=True)
        distribution.barrier("the final checkpoint")


class _Distribution:
    """How this process takes part in a step: alone; under ``torchrun`` with
    ``DistributedDataParallel`` on rows ``r::W`` of every global batch; or with world-size-independent
    row groups (``train.batch_groups``, :mod:`dreamset.training.row_groups`)."""

    def __init__(self, model: torch.nn.Module, settings: TrainStage, device: torch.device) -> None:
        self.active = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank, self.world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if self.active else (0, 1)
        self.groups = getattr(settings, "batch_groups", None)
        self.train_model = model
        if self.active and self.groups is not None:
            from dreamset.training.row_groups import broadcast_from_rank0, check_groups

            check_groups(self.groups, self.world)
            broadcast_from_rank0(model)
        elif self.active:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        # buffers (BatchNorm statistics) are rank 0's after each step under row groups; none: nothing to send
        self.sync_buffers = self.groups is not None and self.active and next(model.buffers(), None) is not None

    def after_step(self, model: torch.nn.Module) -> None:
        if self.sync_buffers:
            from dreamset.training.row_groups import sync_buffers

            sync_buffers(model)

    def barrier(self, what: str) -> None:
        if self.active:
            from dreamset.orchestration.distributed import barrier

            barrier(what)


class _Step:
    """One optimizer step: this rank's share of the loss (the objective's, through
    :class:`_TrainingAttacker`), backward, ``optimizer.step()``, counting and curves."""

    def __init__(self, model, objective, settings, attacker, device, cost: _Cost, seed: int, curves) -> None:
        self.model, self.objective, self.settings, self.attacker = model, objective, settings, attacker
        self.device, self.cost, self.seed = device, cost, seed
        self.use_amp = settings.mixed_precision and device.type == "cuda"
        self.distribution = _Distribution(model, settings, device)
        self.counter = cost.count_forwards(model, attacker)
        self.curves = curves if self.distribution.rank == 0 else None
        self.watcher = self.curves.watch(model) if self.curves is not None else None
        self.watching = self.watcher is not None

    def __call__(self, optimizer, x, y, mask, epoch: int, step: int) -> None:
        self.cost.counts["images_seen"] += len(y)
        if self.distribution.groups is not None:  # world-size-independent gradient (dreamset.training.row_groups)
            from dreamset.training.row_groups import grouped_backward

            d = self.distribution
            grouped_backward(self.model, x, y, mask, groups=d.groups, rank=d.rank, world=d.world, seed=self.seed,
                             epoch=epoch, step=step, device=self.device,
                             on_group=self.curves.step if self.watching else None,
                             loss_of=lambda xg, yg, mg, first: self._group_loss(xg, yg, mg, first))
            loss = None
        else:
            loss, y = self._rows_backward(optimizer, x, y, mask)
        optimizer.step()
        self.distribution.after_step(self.model)
        self.cost.counts["optimizer_steps"] += 1
        if self.watching and loss is not None:
            self.curves.step(loss, y)

    def _loss(self, model, x, y, mask, cost) -> torch.Tensor:
        """:func:`_loss` under autocast and ``channels_last``; ``model`` may be a DistributedDataParallel
        wrapper, the attacker differentiates through the plain module (its passes counted into ``cost``)."""
        if self.settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            return _loss(model, x, y, self.objective, self.settings, self.attacker, attack_model=self.model,
                         mask=mask, calls=self.cost.calls, cost=cost)

    def _rows_backward(self, optimizer, x, y, mask):
        """This rank's rows ``r::W`` of the global batch: forward, backward (DDP averages the ranks'
        gradients); returns the loss and the rows' labels."""
        rank, world = self.distribution.rank, self.distribution.world
        share = 1.0
        if world > 1:  # this rank's rows; the loss is rescaled so DDP's mean of the
            share = len(y[rank::world]) * world / len(y)  # ranks' gradients is the global batch's
            x, y = x[rank::world], y[rank::world]
            mask = mask[rank::world] if mask is not None else None
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        mask = mask.to(self.device, non_blocking=True) if mask is not None else None
        loss = self._loss(self.distribution.train_model, x, y, mask, self.cost.counts) * share
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss, y

    def _group_loss(self, x, y, mask, first: bool) -> torch.Tensor:
        """One row group's loss (:mod:`dreamset.training.row_groups`); the attacker's passes counted once."""
        return self._loss(self.model, x, y, mask, self.cost.counts if first else None)

    def close(self) -> None:
        if self.counter is not None:
            self.counter.remove()
        if self.watcher is not None:
            self.watcher.remove()


def train_classifier(context, model: torch.nn.Module, *, record: dict[str, Any] | None = None, arm: str | None = None,
                     **plan: Any) -> torch.nn.Module:
    """Train one classifier: the :class:`Trainer` of the :class:`TrainingPlan` whose fields are
    ``plan`` (a caller holding a plan passes ``**vars(plan)``), with ``context`` its services
    (:class:`dreamset.contracts.inputs.Services`, a run context, or ``None``). Every model dreamset trains goes
    through here: the kill-point tests wrap it, count the models and read its keyword arguments.
    ``record``, when given, is filled with what the training cost; ``arm`` (with a run context and a
    record) turns on the training curves (:mod:`dreamset.training.curves`). Returns the trained model (its
    EMA when ``ema_decay`` is set) in eval mode."""
    plan = TrainingPlan(**plan)
    curves = None
    if arm is not None and context is not None and record is not None:
        from dreamset.training.curves import CurveRecorder

        curves = CurveRecorder(context, arm, plan.seed, plan.attacker, Path(plan.checkpoint_dir) / "curves.json")
    trained = Trainer(plan, context, curves).train(model)
    if record is not None:
        record.update(trained.record)
    return trained.model


def _read_wall(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def training_record(cost: dict[str, Any], mixer: Mixer, real, synthetic, batch_size: int, steps_per_epoch: int,
                    total: int) -> dict[str, Any]:
    """What one arm's training cost, as report.json records it: ``optimizer_steps``, ``epochs``
    (mixer epochs, fractional when the budget ends inside one), ``steps_per_epoch``,
    ``images_seen`` (``total``, and the ``real``/``synthetic`` rows counted as the mixer read them,
    :mod:`dreamset.training.counting`; ``split`` says ``counted``, or ``planned`` — the mixer's
    :meth:`~dreamset.contracts.interfaces.Mixer.composition` — for a checkpoint from before counting), ``attack_forward_backward_passes`` (batched
    forward passes through the model made by the training attacker, each followed by a backward for
    gradient attacks: PGD-7 makes 7 per optimizer step) and ``wall_seconds`` (summed over resumes)."""
    seen = int(cost["images_seen"])
    if cost.get("images_seen_real") is not None and cost.get("images_seen_synthetic") is not None:
        images = {"total": seen, "real": int(cost["images_seen_real"]), "synthetic": int(cost["images_seen_synthetic"]),
                  "split": "counted"}
    else:  # a checkpoint from before the split was counted: the mixer's planned composition
        split = mixer.composition(real, synthetic, batch_size)
        images = {"total": seen, "real": round(seen * split[0]) if split else None,
                  "synthetic": round(seen * split[1]) if split else None, "split": "planned"}
    return {
        "optimizer_steps": int(cost["optimizer_steps"]),
        "planned_steps": int(total),
        "steps_per_epoch": int(steps_per_epoch),
        "epochs": total / steps_per_epoch,
        "images_seen": images,
        "attack_forward_backward_passes": int(cost["attack_forward_backward_passes"]),
        "wall_seconds": float(cost["wall_seconds"]),
    }


def _finish(model, ema):
    result = ema.model if ema is not None else model
    return result.eval()


def train_reference_classifier(recipe, real: ImageSource, services) -> torch.nn.Module:
    """Standard training on the real training split ``real`` only (the run's reference classifier),
    with ``recipe``'s ``train.model`` and ``reference`` settings; cached in ``services.run_dir/reference``."""
    settings = recipe.train.model_copy(update={
        "epochs": recipe.reference.epochs, "lr": recipe.reference.lr, "ema_decay": None, "label_smoothing": 0.0,
    })
    factory = services.registry.create(recipe.train.model.key, kind="model", **recipe.train.model.options)
    from dreamset.orchestration.seeding import build_model

    model = build_model(factory, real.image_shape, real.num_classes, seed=recipe.seeds[0], purpose="reference")
    mixer = services.registry.create("mixer:ratio", real_fraction=1.0)
    return train_classifier(services, model, mixer=mixer, real=real, synthetic=None, attacker=None, settings=settings,
                            seed=recipe.seeds[0], checkpoint_dir=services.run_dir / "reference",
                            description="reference classifier (real only)")
