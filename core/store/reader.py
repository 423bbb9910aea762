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

Tensor contract: images are ``uint8 N×C×H×W`` on disk; :meth:`SyntheticStore.get` returns
``float32 B×C×H×W`` in [0,1] and ``int64 B`` labels, like every :class:`~dreamset.contracts.interfaces.ImageSource`.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import errno
import hashlib
import io
import json
import logging
import math
import os
import queue
import re
import secrets
import shutil
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from dreamset.files.atomic import atomic_write_bytes, fsync_dir
from dreamset.contracts.data import to_float_images, to_uint8_images
from dreamset.contracts.errors import BadInputError, StoreError
from dreamset.contracts.interfaces import GeneratedBatch, Generator, ImageSource, as_index_tensor

log = logging.getLogger("dreamset")

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
#: how many shards' images.npy a store keeps open for random reads (one file descriptor each)
OPEN_SHARDS = 256
_SHARD_RE = re.compile(r"^shard-(\d{6,})$")


class StoreFullError(StoreError, BadInputError):
    """The disk filled up while writing a shard. Earlier shards stay valid; free space and re-run."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


# -- the plan ----------------------------------------------------------------------------------------

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


# -- writing shards ----------------------------------------------------------------------------------

class _HashingFile:
    """A write-only file wrapper that hashes and counts what goes through it."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(memoryview(data).cast("B"))
        return self.handle.write(data)


def _write_file(path: Path, fill: Callable[[Any], None]) -> dict[str, Any]:
    """Create ``path``, let ``fill(file)`` write it, fsync; return its sha256 and byte size."""
    with open(path, "xb") as handle:
        hashing = _HashingFile(handle)
        fill(hashing)
        handle.flush()
        os.fsync(handle.fileno())
    return {"sha256": hashing.sha.hexdigest(), "bytes": hashing.size}


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


def write_shard(root: Path, index: int, images: np.ndarray, labels: np.ndarray, meta: list[dict[str, Any]]) -> Path:
    """Commit one shard atomically (temp folder, fsync every file, rename, fsync the parent)."""
    shards = Path(root) / SHARDS
    shards.mkdir(parents=True, exist_ok=True)
    final = shards / shard_name(index)
    tmp = shards / f"{TMP_PREFIX}{shard_name(index)}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        sums = {
            "images.npy": _write_file(tmp / "images.npy", lambda f: np.save(f, np.ascontiguousarray(images, dtype=np.uint8))),
            "labels.npy": _write_file(tmp / "labels.npy", lambda f: np.save(f, np.ascontiguousarray(labels, dtype=np.int64))),
            "meta.jsonl": _write_file(tmp / "meta.jsonl", lambda f: [f.write(_dumps(m) + b"\n") for m in meta]),
        }
        _write_file(tmp / "checksums.json", lambda f: f.write(json.dumps(sums, sort_keys=True, indent=1).encode()))
        fsync_dir(tmp)
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and final.is_dir():
            return final  # another process committed this shard first: the plan makes it identical
        if exc.errno == errno.ENOSPC:
            raise StoreFullError(
                f"{final}: no space left on device while writing this shard; earlier shards are intact — free space and re-run to resume"
            ) from exc
        raise StoreError(f"{final}: could not write shard ({exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(shards)
    return final


class _ShardWriter:
    """Writes shards on one background thread fed through a bounded queue, so generation of the
    next shard overlaps the disk writes of the previous one. An error in the thread is raised in
    the caller at the next ``submit`` or at ``close``."""

    def __init__(self, root: Path, max_pending: int = 2) -> None:
        self.root = Path(root)
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="dreamset-store-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    write_shard(self.root, *item)
                except BaseException as exc:  # handed to the caller
                    self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, index: int, images: np.ndarray, labels: np.ndarray, meta: list[dict[str, Any]]) -> None:
        while True:
            self._raise()
            try:
                self.queue.put((index, images, labels, meta), timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def __enter__(self) -> "_ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # let queued (complete) shards land, keep the original exception
            self.queue.put(None)
            self.thread.join()


# -- the manifest ------------------------------------------------------------------------------------

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


def _init_store(root: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest of a new store, or check that an existing one has the same plan."""
    root.mkdir(parents=True, exist_ok=True)
    if (root / MANIFEST).exists():
        existing, wanted = _read_manifest(root), json.loads(_dumps(manifest))
        if existing != wanted:
            diff = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
            raise BadInputError(
                f"{root}: holds a store from a different plan ({', '.join(diff)} differ); use a new folder or delete it"
            )
        return
    atomic_write_bytes(root / MANIFEST, json.dumps(manifest, sort_keys=True, indent=1, default=_json_default).encode())


def _clean_tmp(root: Path, owned: Callable[[int], bool], alone: bool = True) -> None:
    """Remove temp folders left by a crash, for the shards this process owns (and, when no other
    rank may be writing it, a temp file of the manifest)."""
    if alone:
        for entry in root.glob(f".{MANIFEST}.*.tmp"):
            entry.unlink(missing_ok=True)
    shards = root / SHARDS
    if not shards.is_dir():
        return
    for entry in shards.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            match = re.match(rf"^{re.escape(TMP_PREFIX)}shard-(\d+)-", entry.name)
            if match is None or owned(int(match.group(1))):
                log.info("removing a partial shard left by an interrupted run: %s", entry)
                shutil.rmtree(entry, ignore_errors=True)


# -- reading -----------------------------------------------------------------------------------------

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


class SyntheticStore(ImageSource):
    """A sharded on-disk store read as an :class:`~dreamset.contracts.interfaces.ImageSource`.

    Indices run over the complete shards in order (for a complete store, index ``i`` is plan
    image ``i``). Open with :meth:`open`.

    Random reads (:meth:`get`) ``pread`` each requested image from its shard's ``images.npy``:
    memory stays flat however large the store and however many batches are read. (Reading through
    ``np.load(mmap_mode="r")`` instead maps about 64 KiB of page cache into the process per image
    touched — the kernel's fault-around — so RSS creeps up to the store's size over an epoch;
    :meth:`shard_array` still gives that memory-mapped view, used for sequential export.)
    """

    def __init__(self, path: Path, manifest: dict[str, Any], shards: list[int], labels: np.ndarray,
                 data_offsets: list[int]) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.class_names = list(manifest["class_names"])
        self._shards = shards
        sizes = [_shard_range(s, manifest["count"], manifest["shard_size"]) for s in shards]
        self._offsets = np.cumsum([0] + [hi - lo for lo, hi in sizes]).astype(np.int64)
        self._labels_np = labels
        self._data_offsets = np.asarray(data_offsets, dtype=np.int64)
        self._image_files = [str(self.path / SHARDS / shard_name(s) / "images.npy") for s in shards]
        self._fds: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._meta: collections.OrderedDict[int, list[bytes]] = collections.OrderedDict()
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path, verify: bool = True) -> "SyntheticStore":
        """Open the store at ``path``. Every complete shard's file sizes and array shapes are
        checked; with ``verify`` also their sha256. A corrupt shard raises
        :class:`~dreamset.contracts.errors.StoreError` naming the file."""
        root = Path(path)
        manifest = _read_manifest(root)
        count, shard_size = int(manifest["count"]), int(manifest["shard_size"])
        planned = math.ceil(count / shard_size)
        shard_dir = root / SHARDS
        found: list[int] = []
        for entry in sorted(shard_dir.iterdir()) if shard_dir.is_dir() else []:
            if entry.name.startswith("."):
                continue
            match = _SHARD_RE.match(entry.name)
            if match is None or int(match.group(1)) >= planned:
                raise StoreError(f"{entry}: unexpected entry in a store of {planned} shards")
            found.append(int(match.group(1)))
        from dreamset.files.verify import Sha256Cache

        cache = Sha256Cache(root) if verify else None  # sha256 re-read only for files changed since
        checked = [cls._check_shard(root, manifest, s, cache) for s in found]
        if cache is not None:
            cache.save()
        all_labels = np.concatenate([labels for labels, _ in checked]) if checked else np.zeros(0, dtype=np.int64)
        return cls(root, manifest, found, all_labels, [offset for _, offset in checked])

    @staticmethod
    def _check_shard(root: Path, manifest: dict[str, Any], index: int, verify) -> tuple[np.ndarray, int]:
        """Check one shard's files; return its labels and the data offset of its images.npy."""
        folder = root / SHARDS / shard_name(index)
        sums_path = folder / "checksums.json"
        try:
            sums = json.loads(sums_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{sums_path}: missing or corrupt checksums ({exc}); delete {folder} to regenerate it") from exc
        for name in SHARD_FILES:
            path = folder / name
            expected = sums.get(name) if isinstance(sums, dict) else None
            if not isinstance(expected, dict):
                raise StoreError(f"{sums_path}: no checksum for {name}")
            size = path.stat().st_size if path.is_file() else -1
            if size != expected.get("bytes"):
                raise StoreError(f"{path}: truncated or altered ({size} bytes, expected {expected.get('bytes')}); delete {folder} to regenerate it")
            if verify is not None and verify.sha256(path) != expected.get("sha256"):
                raise StoreError(f"{path}: sha256 mismatch (corrupt); delete {folder} to regenerate it")
        lo, hi = _shard_range(index, manifest["count"], manifest["shard_size"])
        shape, dtype, offset = _npy_header(folder / "images.npy")
        if shape != (hi - lo, *manifest["image_shape"]) or dtype != np.uint8:
            raise StoreError(f"{folder / 'images.npy'}: holds {dtype} {shape}, expected uint8 {(hi - lo, *manifest['image_shape'])}")
        labels = np.load(folder / "labels.npy", allow_pickle=False)
        if labels.shape != (hi - lo,) or labels.dtype != np.int64:
            raise StoreError(f"{folder / 'labels.npy'}: holds {labels.dtype} {labels.shape}, expected int64 ({hi - lo},)")
        if labels.size and (labels.min() < 0 or labels.max() >= len(manifest["class_names"])):
            raise StoreError(f"{folder / 'labels.npy'}: labels outside [0, {len(manifest['class_names']) - 1}]")
        return labels, offset

    # -- ImageSource -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest["image_shape"])  # type: ignore[return-value]

    @property
    def labels(self) -> torch.Tensor:
        return torch.from_numpy(self._labels_np)

    @property
    def complete(self) -> bool:
        """All planned shards are present."""
        return len(self._shards) == math.ceil(self.manifest["count"] / self.manifest["shard_size"])

    @property
    def shard_size(self) -> int:
        return int(self.manifest["shard_size"])

    def shard_array(self, position: int) -> np.ndarray:
        """The ``position``-th complete shard's images as a read-only ``np.memmap``."""
        return np.load(self._image_files[position], mmap_mode="r", allow_pickle=False)

    def _fd(self, position: int) -> int:
        """An open descriptor on the shard's images.npy. Call with ``_lock`` held; descriptors
        are only closed by :meth:`_trim_fds`, so they stay valid for the whole read."""
        fd = self._fds.get(position)
        if fd is None:
            fd = self._fds[position] = os.open(self._image_files[position], os.O_RDONLY)
        else:
            self._fds.move_to_end(position)
        return fd

    def _trim_fds(self) -> None:
        """Keep the OPEN_SHARDS most recently used descriptors (call with ``_lock`` held)."""
        while len(self._fds) > OPEN_SHARDS:
            os.close(self._fds.popitem(last=False)[1])

    def close(self) -> None:
        """Close the open shard files (reads reopen them as needed)."""
        with self._lock:
            while self._fds:
                os.close(self._fds.popitem()[1])

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = as_index_tensor(indices).numpy()
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.path}: index out of range for a store of {len(self)} images")
        positions = np.searchsorted(self._offsets, idx, side="right") - 1
        return idx, positions

    def get_uint8(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Images ``uint8 B×C×H×W`` and labels ``int64 B`` at ``indices`` (numpy, no float copy)."""
        idx, positions = self._locate(indices)
        out = np.empty((idx.size, *self.image_shape), dtype=np.uint8)
        if idx.size == 0:
            return out, self._labels_np[idx]
        row_bytes = math.prod(self.image_shape)
        starts = self._data_offsets[positions] + (idx - self._offsets[positions]) * row_bytes
        # one read per run of consecutive images in one shard (a random batch: one per image)
        breaks = np.flatnonzero((np.diff(positions) != 0) | (np.diff(starts) != row_bytes)) + 1
        run_first = np.concatenate([[0], breaks]).astype(np.int64)
        run_end = np.concatenate([breaks, [idx.size]]).astype(np.int64)
        buffer = memoryview(out.reshape(-1))
        with self._lock:
            fds: dict[int, int] = {}
            for first, end, position, start in zip(run_first.tolist(), run_end.tolist(),
                                                   positions[run_first].tolist(), starts[run_first].tolist()):
                fd = fds.get(position)
                if fd is None:
                    fd = fds[position] = self._fd(position)
                size = (end - first) * row_bytes
                if os.preadv(fd, [buffer[first * row_bytes:end * row_bytes]], start) != size:
                    raise StoreError(f"{self._image_files[position]}: short read (file changed since the store was opened)")
            self._trim_fds()
        return out, self._labels_np[idx]

    def get(self, indices):
        images, labels = self.get_uint8(indices)
        return to_float_images(torch.from_numpy(images)), torch.from_numpy(labels)

    def provenance(self, index: int) -> dict[str, Any]:
        """The provenance record (generator, label, class_name, prompt, seed, ...) of image ``index``."""
        _, positions = self._locate([index])
        position = int(positions[0])
        with self._lock:
            lines = self._meta.get(position)
            if lines is None:
                path = self.path / SHARDS / shard_name(self._shards[position]) / "meta.jsonl"
                lines = path.read_bytes().splitlines()
                self._meta[position] = lines
                while len(self._meta) > 4:
                    self._meta.popitem(last=False)
        return json.loads(lines[int(index - self._offsets[position])])

    def iter_shards(self) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(images uint8 memmap, labels, first index)`` per complete shard, in order."""
        for position in range(len(self._shards)):
            lo, hi = int(self._offsets[position]), int(self._offsets[position + 1])
            yield self.shard_array(position), self._labels_np[lo:hi], lo

    def __getstate__(self):  # picklable for DataLoader workers: files are reopened lazily
        state = dict(self.__dict__)
        state.update(_fds=collections.OrderedDict(), _meta=collections.OrderedDict(), _lock=None)
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SyntheticStore({str(self.path)!r}, {len(self)} images, {len(self._shards)} shards, complete={self.complete})"


# -- generation --------------------------------------------------------------------------------------

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


def _provenance(record: dict[str, Any], *, generator: str, index: int, label: int, class_names, seed, image_shape) -> dict[str, Any]:
    out = {key: None for key in PROVENANCE_KEYS}
    out.update(generator=generator, width=int(image_shape[2]), height=int(image_shape[1]))
    out.update(record)
    out.update(index=int(index), label=int(label), class_name=class_names[int(label)], seed=seed)
    return out


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
            raise StoreError(f"{root}: rank {ranks} did not write shard(s) {sorted(missing)[:5]} within "
                             f"{distributed.timeout():.0f} s ({distributed.TIMEOUT_ENV}); re-run to resume")
        time.sleep(0.2)


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
    """
    if count <= 0 or batch_size <= 0 or shard_size <= 0:
        raise BadInputError(f"generate: count, batch_size and shard_size must be > 0 (got {count}, {batch_size}, {shard_size})")
    if labels not in ("balanced", "random"):
        raise BadInputError(f"generate.labels: expected 'balanced' or 'random', got {labels!r}")
    root = Path(store_dir)
    rank, world = _rank_world(rank, world_size)
    image_shape = tuple(int(v) for v in image_shape)
    class_names = [str(c) for c in class_names]
    description = generator.describe() if hasattr(generator, "describe") else {"key": type(generator).__name__}
    first = 0
    if plan is not None:
        first, planned_labels = int(plan.get("first_index", 0)), np.asarray(plan["labels"], dtype=np.int64)
        if len(planned_labels) != count or len(plan["requests"]) != count:
            raise ValueError(f"generate: a plan of {len(planned_labels)} labels for {count} images")
        digest = hashlib.sha256(planned_labels.tobytes() + _dumps(plan["requests"])).hexdigest()
        labels = {"plan": digest, "first_index": first}
    _init_store(root, _manifest(image_shape=image_shape, class_names=class_names, count=count, shard_size=shard_size,
                                labels=labels, seed=seed, generator=description))
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
    from dreamset.orchestration.progress import progress

    with progress(context, label, total) as advance, _ShardWriter(root) as writer:
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


# -- import / export ---------------------------------------------------------------------------------

class _NpzMember:
    """Streams rows of one ``.npy`` member of an ``.npz`` (stored or deflated) without loading it."""

    def __init__(self, zf: zipfile.ZipFile, key: str, path: Path) -> None:
        self.zf, self.key, self.path = zf, key, path
        with zf.open(f"{key}.npy") as handle:
            self.shape, self.fortran, self.dtype = _read_npy_header(handle)
            self.offset = handle.tell()
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def rows(self, chunk: int) -> Iterator[np.ndarray]:
        if self.fortran or self.dtype.hasobject:
            whole = np.load(io.BytesIO(self.zf.read(f"{self.key}.npy")), allow_pickle=False)
            for start in range(0, len(whole), chunk):
                yield np.ascontiguousarray(whole[start:start + chunk])
            return
        with self.zf.open(f"{self.key}.npy") as handle:
            handle.read(self.offset)
            for start in range(0, self.shape[0], chunk):
                n = min(chunk, self.shape[0] - start)
                data = handle.read(n * self.row_bytes)
                if len(data) != n * self.row_bytes:
                    raise BadInputError(f"{self.path}: key '{self.key}' is truncated")
                yield np.frombuffer(data, dtype=self.dtype).reshape(n, *self.shape[1:])


def _image_layout(shape: tuple[int, ...], path: Path) -> str:
    """``"nhwc"``, ``"nchw"`` or ``"nhw"`` for an image array of ``shape``."""
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise BadInputError(f"{path}: key 'image' must be N×H×W×C or N×C×H×W, got shape {shape}")
    if shape[3] in (1, 3, 4):
        return "nhwc"
    if shape[1] in (1, 3, 4):
        return "nchw"
    raise BadInputError(f"{path}: key 'image' has shape {shape}: no channel axis of size 1, 3 or 4 (N×H×W×C or N×C×H×W)")


def _as_nchw_uint8(rows: np.ndarray, layout: str, path: Path) -> np.ndarray:
    if layout == "nhw":
        rows = rows[:, None]
    elif layout == "nhwc":
        rows = rows.transpose(0, 3, 1, 2)
    if rows.dtype == np.uint8:
        return np.ascontiguousarray(rows)
    if not np.issubdtype(rows.dtype, np.floating):
        raise BadInputError(f"{path}: key 'image' must be uint8 (0..255) or float in [0,1], got {rows.dtype}")
    if rows.size and (np.isnan(rows).any() or rows.min() < 0 or rows.max() > 1):
        raise BadInputError(f"{path}: key 'image' holds floats outside [0,1] (or NaN); save uint8 images instead")
    return to_uint8_images(torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))).numpy()


def import_npz(npz_path, store_dir, class_names: Sequence[str] | None = None, shard_size: int = 1024) -> SyntheticStore:
    """Import an ``.npz`` with keys ``image`` (uint8 N×H×W×C as released by DM-Improves-AT /
    Rebuffi et al. 2021, or N×C×H×W) and ``label`` (N integers) into a store, shard by shard.
    Class names default to ``"0".."K-1"`` with ``K = max(label) + 1``. Re-running resumes."""
    path = Path(npz_path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such .npz file")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInputError(f"{path}: not a readable .npz file ({exc})") from exc
    with zf:
        names = set(zf.namelist())
        for key in ("image", "label"):
            if f"{key}.npy" not in names:
                keys = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "none"
                raise BadInputError(f"{path}: missing key '{key}' (found: {keys}); expected 'image' and 'label'")
        from dreamset.files.verify import check_npz_members

        check_npz_members(zf, path, in_memory=("label",))  # the image member is streamed, never read whole
        try:
            images = _NpzMember(zf, "image", path)
            labels = np.load(io.BytesIO(zf.read("label.npy")), allow_pickle=False)
        except ValueError as exc:
            raise BadInputError(f"{path}: unreadable array ({exc})") from exc
        layout = _image_layout(tuple(images.shape), path)
        n = images.shape[0]
        labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
        if labels.ndim != 1 or labels.shape[0] != n:
            raise BadInputError(f"{path}: key 'label' has shape {labels.shape}, expected ({n},) to match key 'image'")
        if not np.issubdtype(labels.dtype, np.integer):
            raise BadInputError(f"{path}: key 'label' must hold integers, got {labels.dtype}")
        labels = labels.astype(np.int64)
        if n == 0:
            raise BadInputError(f"{path}: key 'image' holds no images")
        if class_names is None:
            class_names = [str(k) for k in range(int(labels.max()) + 1)]
        class_names = [str(c) for c in class_names]
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise BadInputError(f"{path}: key 'label' has values in [{labels.min()}, {labels.max()}], outside [0, {len(class_names) - 1}] for {len(class_names)} classes")
        shape = _as_nchw_uint8(np.zeros((0, *images.shape[1:]), dtype=np.uint8), layout, path).shape[1:]
        root = Path(store_dir)
        source = {"key": "import:npz", "source": path.name, "bytes": path.stat().st_size}
        _init_store(root, _manifest(image_shape=shape, class_names=class_names, count=n, shard_size=shard_size,
                                    labels="imported", seed=0, generator=source))
        _clean_tmp(root, lambda s: True)
        done = set(SyntheticStore.open(root, verify=False)._shards)
        with _ShardWriter(root) as writer:
            for shard, rows in enumerate(images.rows(shard_size)):
                if shard in done:
                    continue
                lo = shard * shard_size
                block = _as_nchw_uint8(rows, layout, path)
                meta = [_provenance({"source": path.name}, generator="import:npz", index=lo + j, label=y,
                                    class_names=class_names, seed=None, image_shape=shape)
                        for j, y in enumerate(labels[lo:lo + len(block)])]
                writer.submit(shard, block, labels[lo:lo + len(block)], meta)
    return SyntheticStore.open(root, verify=False)


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[Any]:
    """A binary file written in place of ``path`` only when the block succeeds (streaming
    counterpart of :func:`dreamset.files.atomic.atomic_write_bytes` for outputs too large for memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def export_npz(store: ImageSource, path) -> Path:
    """Write ``store`` as an ``.npz`` with ``image`` (uint8 N×H×W×C, the DM-Improves-AT layout) and
    ``label`` (int64 N), streamed shard by shard and committed atomically."""
    path = Path(path)
    n = len(store)
    c, h, w = store.image_shape
    with _atomic_output(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("image.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": (n, h, w, c)})
            for start, images in _uint8_chunks(store):
                member.write(np.ascontiguousarray(images.transpose(0, 2, 3, 1)).tobytes())
        buffer = io.BytesIO()
        np.save(buffer, store.labels.numpy().astype(np.int64))
        zf.writestr("label.npy", buffer.getvalue())
    return path


def _uint8_chunks(source: ImageSource, chunk: int = 1024) -> Iterator[tuple[int, np.ndarray]]:
    """``(first index, uint8 N×C×H×W)`` blocks of any image source, in order."""
    if isinstance(source, SyntheticStore):
        for images, _, start in source.iter_shards():
            yield start, np.asarray(images)
        return
    for start in range(0, len(source), chunk):
        images, _ = source.get(range(start, min(start + chunk, len(source))))
        yield start, to_uint8_images(images).numpy()


def safe_dirname(name: str) -> str:
    """A folder name for class ``name`` that can neither leave its parent nor be hidden: path
    separators and NULs become ``_``, and so do leading dots (``../x`` -> ``___x``, ``..`` -> ``__``)."""
    safe = re.sub(r"[/\\\x00]", "_", str(name)).strip()
    safe = re.sub(r"^\.+", lambda m: "_" * len(m.group()), safe)
    return safe or "_"


def _png_bytes(image: np.ndarray) -> bytes:
    """PNG of one ``uint8 C×H×W`` image (C = 1, 3 or 4)."""
    from PIL import Image

    c = image.shape[0]
    if c not in (1, 3, 4):
        raise BadInputError(f"PNG export needs 1, 3 or 4 channels, got {c}")
    pixels = image[0] if c == 1 else image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def export_imagefolder(store: ImageSource, out_dir) -> Path:
    """Write one PNG per image under ``out_dir/<class name>/<index>.png`` and ``metadata.csv``
    (file_name — what Hugging Face ``datasets``' imagefolder builder reads —, path (the same, kept
    for older readers), index, label, class_name and the provenance columns). Class names are sanitised
    (:func:`safe_dirname`) so that none can escape ``out_dir``."""
    out = Path(out_dir)
    folders = [safe_dirname(name) for name in store.class_names]
    if len(set(folders)) != len(folders):
        raise BadInputError(f"{out}: class names {store.class_names} collide once made safe as folder names {folders}")
    root = out.resolve()
    for folder in folders:
        target = (out / folder).resolve()
        if target.parent != root:
            raise BadInputError(f"{out}: class folder {folder!r} would be written outside the output folder")
        target.mkdir(parents=True, exist_ok=True)
    has_provenance = isinstance(store, SyntheticStore)
    rows: list[dict[str, Any]] = []
    labels = store.labels.numpy()
    for start, images in _uint8_chunks(store):
        for j, image in enumerate(images):
            index = start + j
            label = int(labels[index])
            relative = f"{folders[label]}/{index:08d}.png"
            atomic_write_bytes(out / relative, _png_bytes(image))
            record = store.provenance(index) if has_provenance else {}
            rows.append({**record, "file_name": relative, "path": relative, "index": index, "label": label,
                         "class_name": store.class_names[label]})
    first = ["file_name", "path", "index", "label", "class_name"]  # file_name: datasets' imagefolder builder
    columns = first + sorted({k for r in rows for k in r} - set(first))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})
    atomic_write_bytes(out / "metadata.csv", text.getvalue().encode("utf-8"))
    return out


def save_sample_grid(source: ImageSource, path, per_class: int = 8, seed: int = 0, pad: int = 1) -> Path:
    """Save a PNG grid of ``source`` (any ImageSource): one row per class, up to ``per_class``
    images drawn at random (``seed``) from that class, on a grey lattice; missing cells stay black."""
    if per_class <= 0:
        raise BadInputError(f"per_class: must be > 0, got {per_class}")
    c, h, w = source.image_shape
    labels = source.labels.numpy()
    rng = np.random.default_rng(seed)
    k = max(source.num_classes, 1)
    grid = np.full((c, pad + k * (h + pad), pad + per_class * (w + pad)), 128, dtype=np.uint8)
    for label in range(source.num_classes):
        members = np.flatnonzero(labels == label)
        chosen = np.sort(rng.choice(members, size=min(per_class, members.size), replace=False))
        images = to_uint8_images(source.get(chosen)[0]).numpy() if chosen.size else []
        for col in range(per_class):
            top, left = pad + label * (h + pad), pad + col * (w + pad)
            grid[:, top:top + h, left:left + w] = images[col] if col < len(images) else 0
    if c == 2 or c > 4:  # no PNG mode: show the first channel
        grid = grid[:1]
    path = Path(path)
    atomic_write_bytes(path, _png_bytes(grid))
    return path
