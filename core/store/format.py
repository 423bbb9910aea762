"""The synthetic store: generated (or imported) images on disk, sharded, checksummed, resumable.

Layout of a store folder::

    store.json                      manifest: format version, image_shape [C,H,W], class_names,
                                    count (planned images), shard_size, labels mode, seed, generator
    shards/shard-000000/            one committed shard (images [s*shard_size, (s+1)*shard_size))
        images.npy                  uint8 N×C×H×W (opened with ``np.load(mmap_mode="r")``)
        labels.npy                  int64 N
        meta.jsonl                  one provenance dict per image (generator, label, class_name,
                                    prompt, seed, steps, guidance, scheduler, width, height, index)
        checksums.json              {file: {"sha256": ..., "bytes": ...}}
    shards/.tmp-shard-000003-...    a shard being written (ignored by readers, removed on resume)

A shard is written into a temporary folder, every file fsynced, then renamed into place and the
parent folder fsynced: a reader (or a resumed run) sees a whole shard or none of it. The plan is
deterministic (image ``i`` has label ``i % K`` or a seeded hash label, and seed
``seed * 10**9 + i``), so a run killed at any moment and re-run produces a store byte-identical to
an uninterrupted run's. Under ``torchrun`` rank ``r`` of ``w`` writes the shards ``s`` with
``s % w == r`` into the same folder.

Tensor contract: images are ``uint8 N×C×H×W`` on disk; :meth:`~dreamset.store.reader.SyntheticStore.get` returns
``float32 B×C×H×W`` in [0,1] and ``int64 B`` labels, like every :class:`~dreamset.contracts.interfaces.ImageSource`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamset.contracts.errors import BadInputError, DiskFullError, StoreError

FORMAT = "dreamset-store"
VERSION = 1
MANIFEST = "store.json"
SHARDS = "shards"
TMP_PREFIX = ".tmp-"
SHARD_FILES = ("images.npy", "labels.npy", "meta.jsonl")
#: provenance keys every image's record carries (``None`` where a generator has no such notion)
PROVENANCE_KEYS = ("generator", "label", "class_name", "prompt", "seed", "steps", "guidance", "scheduler", "width", "height")
#: seed of image ``i`` is ``seed * SEED_STRIDE + i`` (no overlap between plans for count <= 10**9)
SEED_STRIDE = 10**9
_SHARD_RE = re.compile(r"^shard-(\d{6,})$")


class StoreFullError(StoreError, DiskFullError):
    """The disk filled up while writing a shard. Earlier shards stay valid; free space and re-run."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


# -- the plan --------------------------------------------------------------------------------------

def plan_labels(indices: np.ndarray, mode: str, seed: int, num_classes: int) -> np.ndarray:
    """Labels (``int64``) of plan images ``indices``: ``i % K`` (balanced) or a splitmix64 hash of
    ``(seed, i)`` modulo ``K`` (random; independent of batch and shard sizes)."""
    indices = np.asarray(indices, dtype=np.int64)
    if mode == "balanced":
        return indices % num_classes
    if mode != "random":
        raise BadInputError(f"generate.labels: expected 'balanced' or 'random', got {mode!r}")
    with np.errstate(over="ignore"):
        z = indices.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(num_classes)).astype(np.int64)


def plan_seeds(indices: np.ndarray, seed: int) -> list[int]:
    return [seed * SEED_STRIDE + int(i) for i in indices]


def _shard_range(shard: int, count: int, shard_size: int) -> tuple[int, int]:
    return shard * shard_size, min((shard + 1) * shard_size, count)


# -- records and the manifest ----------------------------------------------------------------------

def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"provenance value {value!r} is not JSON-serialisable")


def _dumps(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, default=_json_default).encode("utf-8")


def _provenance(record: dict[str, Any], *, generator: str, index: int, label: int, class_names, seed, image_shape) -> dict[str, Any]:
    out = {key: None for key in PROVENANCE_KEYS}
    out.update(generator=generator, width=int(image_shape[2]), height=int(image_shape[1]))
    out.update(record)
    out.update(index=int(index), label=int(label), class_name=class_names[int(label)], seed=seed)
    return out


def _manifest(*, image_shape, class_names, count, shard_size, labels, seed, generator) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "image_shape": [int(v) for v in image_shape],
        "class_names": [str(c) for c in class_names],
        "count": int(count),
        "shard_size": int(shard_size),
        "labels": labels,
        "seed": int(seed),
        "generator": generator,
    }


#: the ``made_by`` entries of a manifest, as a change of them is named
_ORIGIN_NAMES = {"made_by.real_data": "real data changed", "made_by.generator_checkpoint": "generator checkpoint changed",
                 "generator.sha256": "source file content changed"}


def manifest_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``"generator.options.train_steps: 1 -> 2; real data changed"``: what differs between two
    manifests, in a few words (the first four changes)."""
    from dreamset.files.digests import changes, flatten

    a, b = flatten(old), flatten(new)
    out = [_ORIGIN_NAMES[key] for key in sorted(_ORIGIN_NAMES) if key in a.keys() | b.keys() and a.get(key) != b.get(key)]
    out += changes({k: v for k, v in a.items() if k not in _ORIGIN_NAMES},
                   {k: v for k, v in b.items() if k not in _ORIGIN_NAMES})
    return "; ".join(out[:4]) + (f"; and {len(out) - 4} more" if len(out) > 4 else "")


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise BadInputError(f"{root}: not a dreamset store (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path}: not a dreamset store manifest")
    if manifest.get("version") != VERSION:
        raise StoreError(f"{path}: store format version {manifest.get('version')!r}, this dreamset reads version {VERSION}")
    return manifest


# -- .npy headers ----------------------------------------------------------------------------------

def _read_npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from an open ``.npy`` stream positioned at its start."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, byte offset of the data)`` of a C-ordered ``.npy`` file."""
    try:
        with open(path, "rb") as handle:
            shape, fortran, dtype = _read_npy_header(handle)
            offset = handle.tell()
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: corrupt .npy header ({exc})") from exc
    if fortran:
        raise StoreError(f"{path}: Fortran-ordered array, expected C order")
    return tuple(shape), dtype, offset
