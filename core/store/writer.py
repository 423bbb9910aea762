"""Writing a store: shards committed atomically (temporary folder, fsync every file, rename, fsync
the parent), on a background thread; the manifest of a new store; temp folders left by a crash."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dreamset.contracts.errors import BadInputError, StoreError
from dreamset.files.atomic import DISK_FULL, atomic_write_bytes, disk_full_message, fsync_dir
from dreamset.store.format import (
    MANIFEST, SHARDS, TMP_PREFIX, StoreFullError, _dumps, _json_default, _read_manifest, manifest_changes, shard_name)

log = logging.getLogger("dreamset")


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
        if exc.errno in DISK_FULL:
            raise StoreFullError(disk_full_message(final, " while writing this shard (earlier shards are intact)")) from None
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


def _init_store(root: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest of a new store, or check that an existing one has the same plan."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a read-only place
        raise BadInputError(f"{root}: cannot make a store folder there ({exc.strerror or exc})") from None
    if (root / MANIFEST).exists():
        existing, wanted = _read_manifest(root), json.loads(_dumps(manifest))
        if "made_by" not in existing:  # written before stores recorded what made them: the plan decides
            wanted.pop("made_by", None)
        if existing != wanted:
            raise BadInputError(f"{root}: holds a store from a different plan or source ({manifest_changes(existing, wanted)}); "
                                f"use a new folder or delete it")
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
