"""Reading a store: :class:`SyntheticStore`, an :class:`~dreamset.contracts.interfaces.ImageSource`
over the complete shards (``float32 B×C×H×W`` in [0,1] from ``uint8`` on disk), checked on opening."""
from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from dreamset.contracts.data import to_float_images, to_uint8_images
from dreamset.contracts.errors import StoreError
from dreamset.contracts.interfaces import ImageSource, as_index_tensor
from dreamset.store.format import SHARD_FILES, SHARDS, _SHARD_RE, _npy_header, _read_manifest, _shard_range, shard_name

#: how many shards' images.npy a store keeps open for random reads (one file descriptor each)
OPEN_SHARDS = 256


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


def _uint8_chunks(source: ImageSource, chunk: int = 1024, services: Any = None,
                  description: str = "export") -> Iterator[tuple[int, np.ndarray]]:
    """``(first index, uint8 N×C×H×W)`` blocks of any image source, in order; progress (in images,
    ``description``) on ``services`` (:func:`dreamset.contracts.progress.progress`)."""
    from dreamset.contracts.progress import progress

    with progress(services, description, len(source), unit="images") as advance:
        if isinstance(source, SyntheticStore):
            for images, _, start in source.iter_shards():
                yield start, np.asarray(images)
                advance(len(images))
            return
        for start in range(0, len(source), chunk):
            images, _ = source.get(range(start, min(start + chunk, len(source))))
            yield start, to_uint8_images(images).numpy()
            advance(len(images))
