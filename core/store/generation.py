"""Filling a store from a generator: the deterministic plan, shard by shard, resumable, split
between ranks under ``torchrun``."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dreamset.contracts.data import to_uint8_images
from dreamset.contracts.errors import BadInputError, StoreError
from dreamset.contracts.interfaces import GeneratedBatch, Generator
from dreamset.store.format import (
    MANIFEST, SHARDS, _SHARD_RE, _dumps, _manifest, _provenance, _read_manifest, _shard_range, manifest_changes,
    plan_labels, plan_seeds)
from dreamset.store.reader import SyntheticStore
from dreamset.store.writer import _clean_tmp, _init_store, _ShardWriter

log = logging.getLogger("dreamset")


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None and world_size is None and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    rank, world_size = (rank or 0), (world_size or 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise BadInputError(f"rank/world_size: need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def _check_batch(generator: Generator, batch: GeneratedBatch, labels: np.ndarray, image_shape) -> None:
    name = getattr(generator, "key", "") or type(generator).__name__
    n = len(labels)
    if not isinstance(batch, GeneratedBatch):
        raise StoreError(f"{name}: generate() must return a GeneratedBatch, got {type(batch).__name__}")
    if tuple(batch.images.shape) != (n, *image_shape):
        raise StoreError(f"{name}: generated images of shape {tuple(batch.images.shape)}, expected {(n, *image_shape)}")
    if not np.array_equal(np.asarray(batch.labels.cpu(), dtype=np.int64), labels):
        raise StoreError(f"{name}: generate() did not return the labels it was asked for")
    if len(batch.provenance) != n:
        raise StoreError(f"{name}: {len(batch.provenance)} provenance records for {n} images")


def _wait_for_peers(root: Path, planned: int, world: int) -> None:
    """Under torchrun: a barrier when a process group exists, else poll until every shard is in;
    both give up after ``dreamset.orchestration.distributed.timeout()`` seconds naming the ranks still missing."""
    from dreamset.orchestration import distributed

    if distributed.initialized():
        distributed.barrier("the end of generation (every rank's shards)")
        return
    shards, deadline = root / SHARDS, time.monotonic() + distributed.timeout()
    log.info("%s: waiting for the other ranks' shards", root)
    while (missing := set(range(planned)) - {int(m.group(1)) for e in shards.iterdir() if (m := _SHARD_RE.match(e.name))}):
        if time.monotonic() > deadline:
            ranks = ", ".join(str(r) for r in sorted({s % world for s in missing}))
            raise distributed.DistributedError(f"{root}: rank {ranks} did not write shard(s) {sorted(missing)[:5]} within "
                             f"{distributed.timeout():.0f} s ({distributed.TIMEOUT_ENV}); re-run to resume")
        time.sleep(0.2)


def store_origin(real, generator_dir: Path) -> dict[str, Any]:
    """What a generator's store is made from besides the generator's settings (the manifest's
    ``made_by``): a sha256 of every real image and label the generator is fitted on and of every
    file of its checkpoint folder (``None`` while it has none)."""
    from dreamset.files.digests import folder_sha256, source_sha256

    return {"real_data": source_sha256(real), "generator_checkpoint": folder_sha256(generator_dir)}


def store_manifest(generator: Generator, *, count: int, shard_size: int, labels: str = "balanced", seed: int = 0,
                   class_names: Sequence[str], image_shape: Sequence[int], plan: dict[str, Any] | None = None,
                   made_by: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest :func:`generate_to_store` writes (and compares with an existing store's): the
    plan, the generator's description (its options, sampling settings included) and ``made_by``."""
    description = generator.describe() if hasattr(generator, "describe") else {"key": type(generator).__name__}
    if plan is not None:
        first, planned_labels = int(plan.get("first_index", 0)), np.asarray(plan["labels"], dtype=np.int64)
        if len(planned_labels) != count or len(plan["requests"]) != count:
            raise ValueError(f"generate: a plan of {len(planned_labels)} labels for {count} images")
        digest = hashlib.sha256(planned_labels.tobytes() + _dumps(plan["requests"])).hexdigest()
        labels = {"plan": digest, "first_index": first}
    manifest = _manifest(image_shape=tuple(int(v) for v in image_shape), class_names=[str(c) for c in class_names],
                         count=count, shard_size=shard_size, labels=labels, seed=seed, generator=description)
    if made_by is not None:
        manifest["made_by"] = made_by
    return manifest


def check_store_origin(store_dir: Path, manifest: dict[str, Any], *, run_dir: Path, fresh: bool,
                       generator_dir: Path | None = None) -> None:
    """Before a generator is fitted or a shard written: a store already at ``store_dir`` whose
    manifest differs from ``manifest`` (other generator settings, sampling settings, real data or
    generator checkpoint) is stale. Refused with one line naming what changed; with ``fresh`` the
    store and ``generator_dir`` are moved to ``run_dir/stale/<time>/`` (never deleted or overwritten)."""
    from dreamset.files.digests import move_aside

    store_dir = Path(store_dir)
    if not (store_dir / MANIFEST).exists():
        return
    existing, wanted = _read_manifest(store_dir), json.loads(_dumps(manifest))
    if "made_by" not in existing:  # a store written before stores recorded what made them: the plan decides
        wanted.pop("made_by", None)
    if existing == wanted:
        return
    changed = manifest_changes(existing, wanted)
    if fresh:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for folder in (store_dir, generator_dir):
            if folder is not None and Path(folder).exists():
                target = move_aside(run_dir, Path(folder), stamp)
                log.info("%s: made by other settings or data (%s); moved to %s", folder, changed, target)
        return
    raise BadInputError(f"{store_dir}: was made by other settings or data ({changed}); use a new --out, or re-run "
                        f"with --fresh to move the old store and generator aside")


def generate_to_store(
    generator: Generator,
    store_dir,
    *,
    count: int,
    batch_size: int,
    shard_size: int,
    labels: str = "balanced",
    seed: int = 0,
    class_names: Sequence[str],
    image_shape: Sequence[int],
    context=None,
    rank: int | None = None,
    world_size: int | None = None,
    plan: dict[str, Any] | None = None,
    made_by: dict[str, Any] | None = None,
) -> SyntheticStore:
    """Fill (or resume) the store at ``store_dir`` with ``count`` images of ``generator``.

    ``plan`` (closed-loop rounds, :mod:`dreamset.orchestration.closed_loop`): ``{"labels": int array of count,
    "requests": one dict per image (why it was asked for; provenance key ``request``), "first_index":
    n}`` — explicit labels instead of ``labels``, and image ``i`` gets the seed of plan index
    ``first_index + i``; the manifest records the plan's digest, so a resume with another plan is refused.

    Image ``i`` gets label ``i % K`` (``labels="balanced"``) or a seeded hash label (``"random"``)
    and seed ``seed * 10**9 + i``; shard ``s`` holds images ``[s*shard_size, (s+1)*shard_size)``.
    Complete shards are skipped, so a killed run re-run gives a byte-identical store. Rank ``r``
    of ``world_size`` (default: ``RANK``/``WORLD_SIZE`` from torchrun, else 0 of 1) writes shards
    ``s % world_size == r`` and waits for the others before returning the opened store.

    ``made_by`` (:func:`store_origin`) is recorded in the manifest: a store made from other real data
    or another generator checkpoint is refused like one of another plan.
    """
    if count <= 0 or batch_size <= 0 or shard_size <= 0:
        raise BadInputError(f"generate: count, batch_size and shard_size must be > 0 (got {count}, {batch_size}, {shard_size})")
    if labels not in ("balanced", "random"):
        raise BadInputError(f"generate.labels: expected 'balanced' or 'random', got {labels!r}")
    root = Path(store_dir)
    rank, world = _rank_world(rank, world_size)
    image_shape = tuple(int(v) for v in image_shape)
    class_names = [str(c) for c in class_names]
    manifest = store_manifest(generator, count=count, shard_size=shard_size, labels=labels, seed=seed,
                              class_names=class_names, image_shape=image_shape, plan=plan, made_by=made_by)
    description, labels = manifest["generator"], manifest["labels"]
    first = int(plan.get("first_index", 0)) if plan is not None else 0
    planned_labels = np.asarray(plan["labels"], dtype=np.int64) if plan is not None else None
    _init_store(root, manifest)
    planned = math.ceil(count / shard_size)
    mine = lambda s: s % world == rank  # noqa: E731
    _clean_tmp(root, mine, alone=world == 1)
    done = set(SyntheticStore.open(root, verify=False)._shards)
    todo = [s for s in range(planned) if mine(s) and s not in done]
    total = sum(min(shard_size, count - s * shard_size) for s in todo)
    if done:
        log.info("%s: resuming, %d of %d shards already complete", root, len(done), planned)
    key = description.get("key") or type(generator).__name__
    label = f"generate {key}" + (f" (rank {rank}/{world})" if world > 1 else "")
    from dreamset.contracts.progress import progress

    with progress(context, label, total, unit="images") as advance, _ShardWriter(root) as writer:
        for shard in todo:
            lo, hi = _shard_range(shard, count, shard_size)
            images = np.empty((hi - lo, *image_shape), dtype=np.uint8)
            shard_labels = (planned_labels[lo:hi].copy() if plan is not None
                            else plan_labels(np.arange(lo, hi), labels, seed, len(class_names)))
            meta: list[dict[str, Any]] = []
            for start in range(lo, hi, batch_size):
                idx = np.arange(start, min(start + batch_size, hi))
                batch_labels = shard_labels[idx - lo]
                seeds = plan_seeds(idx + first, seed)
                batch = generator.generate(torch.from_numpy(batch_labels.copy()), seeds, class_names)
                if generator.assigns_labels:  # e.g. pseudo-labelled unconditional samples
                    batch_labels = np.asarray(batch.labels.cpu(), dtype=np.int64)
                    shard_labels[idx - lo] = batch_labels
                _check_batch(generator, batch, batch_labels, image_shape)
                images[idx - lo] = to_uint8_images(batch.images.detach().cpu()).numpy()
                meta += [_provenance(rec, generator=key, index=i, label=y, class_names=class_names, seed=s, image_shape=image_shape)
                         for rec, i, y, s in zip(batch.provenance, idx, batch_labels, seeds)]
                if plan is not None:
                    for record, i in zip(meta[-len(idx):], idx):
                        record["request"] = plan["requests"][i]
                advance(len(idx))
                if shard == todo[0] and start == lo:  # the first batch: what one image really costs on disk
                    from dreamset.files.verify import check_disk_space

                    check_disk_space(root, count, image_shape, sum(len(_dumps(m)) + 1 for m in meta) / len(meta))
            writer.submit(shard, images, shard_labels, meta)
    if world > 1:
        _wait_for_peers(root, planned, world)
    return SyntheticStore.open(root, verify=False)
