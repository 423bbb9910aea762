"""Row groups: training whose weights do not depend on the number of processes, bit for bit.

Why (issue 17): under ``torchrun`` every rank draws the same global batch and trains on its rows,
and ``DistributedDataParallel`` averages the ranks' gradients. The averaged gradient equals the
1-process gradient only up to float32 rounding (a batch of 20 rows and two of 10 sum their
per-row contributions in another order), and adversarial training turns such a 1-ulp difference into
a different model: PGD steps along ``sign(∇x)``, so an input gradient near 0 that changes sign moves
a pixel by ``2·alpha``; a few steps later the weights differ in the third digit and the report by a
few evaluation images. The random draws inside a step (PGD's random start, dropout) come from each
rank's own seed too. Neither can be fixed by seeding: the unit of computation and of randomness has
to be independent of the world size.

How: with ``train.batch_groups: G`` the global batch is processed as ``G`` row groups (rows
``g::G``), in every process count. Rank ``r`` of ``W`` (``W`` must divide ``G``) computes groups
``g ≡ r (mod W)`` — exactly its rows ``r::W`` — one forward/backward per group, each on a fork of the
random state seeded from ``(seed, epoch, step, g)`` (attack starts and dropout per group, not per
rank), with the loss weighted by the group's share of the batch. The per-group gradients are
gathered (``all_gather``) and summed in group order ``0..G-1`` on every rank, the same float
operations a single process does, so the weights after every step are identical for ``W = 1`` and
any ``W`` dividing ``G`` (CPU; on CUDA as far as its kernels are deterministic). Cost: ``G/W``
smaller backward passes per rank instead of one, and an all-gather of ``G`` gradients instead of an
all-reduce of one — choose ``G`` as the largest world size the recipe will run on.

Not covered: BatchNorm running statistics (updated group by group on each rank; rank 0's are
broadcast after every step, as DDP does, so ranks agree but differ from a single process's).

Example (``train`` section of a recipe)::

    train:
      batch_size: 128
      batch_groups: 8     # same weights on 1, 2, 4 or 8 processes
"""
from __future__ import annotations

from typing import Callable

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.lazy import lazy_module
from dreamset.orchestration.seeding import seeded

torch = lazy_module("torch")


def check_groups(groups: int, world: int) -> None:
    """Refuse a world size that does not divide the number of row groups (one line, exit 2)."""
    if groups % world:
        raise BadInputError(f"train.batch_groups: {groups} row groups cannot be split evenly across "
                            f"{world} processes; use a multiple of the world size")


def broadcast_from_rank0(model) -> None:
    """Every rank takes rank 0's parameters and buffers (what DDP does when it wraps a model)."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, 0)


def grouped_backward(model, x, y, mask, *, groups: int, rank: int, world: int, seed: int, epoch: int, step: int,
                     device, loss_of: Callable, on_group: Callable | None = None) -> None:
    """Set ``model``'s ``.grad`` to the global batch's gradient, computed by row groups.

    ``x``, ``y``, ``mask``: the whole global batch (every rank passes the same); ``loss_of(x, y,
    mask, first)`` returns a group's mean loss (``first`` is true for this rank's first group, so the
    caller counts its attack passes once per step); ``on_group(loss, y)`` is called after each of this
    rank's groups (training curves)."""
    params = [p for p in model.parameters() if p.requires_grad]
    total_rows = len(y)
    local = []
    for g in range(rank, groups, world):
        xg, yg = x[g::groups], y[g::groups]
        mg = mask[g::groups] if mask is not None else None
        for p in params:
            p.grad = None
        if len(yg):
            with seeded(device, seed, f"batch-group e{epoch} s{step}", g):
                loss = loss_of(xg.to(device, non_blocking=True), yg.to(device, non_blocking=True),
                               mg.to(device, non_blocking=True) if mg is not None else None, g == rank)
                (loss * (len(yg) / total_rows)).backward()
            if on_group is not None:
                on_group(loss, yg)
        local.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]))
    local = torch.stack(local)
    if world > 1:
        import torch.distributed as dist

        gathered = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(gathered, local)
    else:
        gathered = [local]
    total = None
    for g in range(groups):  # group order, the same additions in every process count
        part = gathered[g % world][g // world]
        total = part.clone() if total is None else total.add_(part)
    offset = 0
    for p in params:
        p.grad = total[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def sync_buffers(model) -> None:
    """Rank 0's buffers (BatchNorm running statistics) to every rank, after a step."""
    import torch.distributed as dist

    with torch.no_grad():
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
