"""``.npz`` import and export: ``image`` (uint8 N×H×W×C as released by DM-Improves-AT, or N×C×H×W)
and ``label`` arrays, streamed shard by shard.

The import never holds the ``image`` array: its ``.npy`` member's header is read from the zip, then
its rows are read in blocks of one shard straight from the (stored or deflated) member, each block
committed as a shard on a writer thread. Its memory is therefore one or two shards and the labels
(8 bytes an image), whatever the file's size (``benchmarks/anchor_scale.py`` measures 10⁵ and 10⁶
CIFAR-size images). A Fortran-ordered member, whose rows are spread over the whole member, is the
one exception: it is read whole, and refused when it does not fit the memory bound."""
from __future__ import annotations

import contextlib
import io
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from dreamset.contracts.data import to_uint8_images
from dreamset.contracts.errors import BadInputError, DiskFullError
from dreamset.contracts.interfaces import ImageSource
from dreamset.files.atomic import DISK_FULL, disk_full_message, fsync_dir
from dreamset.files.verify import check_disk_space
from dreamset.store.format import MANIFEST, _dumps, _manifest, _provenance, _read_manifest, _read_npy_header
from dreamset.contracts.progress import progress
from dreamset.store.reader import SyntheticStore, _uint8_chunks
from dreamset.store.writer import _clean_tmp, _init_store, _ShardWriter


#: how a Fortran-ordered ``image`` member too large for memory is refused
FORTRAN_HINT = ("; it is Fortran-ordered, so it can only be read whole: save it C-ordered to stream it "
                "(np.savez(path, image=np.ascontiguousarray(image), label=label))")


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


def import_npz(npz_path, store_dir, class_names: Sequence[str] | None = None, shard_size: int = 1024,
               services: Any = None) -> SyntheticStore:
    """Import an ``.npz`` with keys ``image`` (uint8 N×H×W×C as released by DM-Improves-AT /
    Rebuffi et al. 2021, or N×C×H×W) and ``label`` (N integers) into a store, shard by shard.
    Class names default to ``"0".."K-1"`` with ``K = max(label) + 1``. Re-running resumes.
    Streamed: the image array is read one shard at a time, never whole (see the module docstring).
    Refused with one line before anything is written: a store that does not fit the free disk
    (:func:`dreamset.files.verify.check_disk_space`: pixels, labels and the measured provenance line
    per image), a file replaced since a cut-short import, malformed keys.
    Progress (images) on ``services`` (:class:`dreamset.contracts.inputs.Services`; ``None``: silent)."""
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
            if images.fortran:  # its rows are spread over the whole member: only readable whole
                check_npz_members(zf, path, in_memory=("image",), hint=FORTRAN_HINT)
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
        # before anything is read whole or written: the store must fit the disk (its pixels, labels
        # and provenance lines, less what a cut-short import already wrote)
        line = _dumps(_provenance({"source": path.name}, generator="import:npz", index=n - 1, label=int(labels[-1]),
                                  class_names=class_names, seed=None, image_shape=shape))
        check_disk_space(root, n, shape, provenance_bytes=len(line) + 1, field=str(path))
        source = {"key": "import:npz", "source": path.name, "bytes": path.stat().st_size}
        digest = _same_source(path, root)
        if digest is not None:
            source["sha256"] = digest
        _init_store(root, _manifest(image_shape=shape, class_names=class_names, count=n, shard_size=shard_size,
                                    labels="imported", seed=0, generator=source))
        _clean_tmp(root, lambda s: True)
        done = set(SyntheticStore.open(root, verify=False)._shards)
        with _ShardWriter(root) as writer, progress(services, f"import {path.name}", n, unit="images",
                                                    done=sum(min(shard_size, n - s * shard_size) for s in done)) as advance:
            for shard, rows in enumerate(images.rows(shard_size)):
                if shard in done:
                    continue
                lo = shard * shard_size
                block = _as_nchw_uint8(rows, layout, path)
                meta = [_provenance({"source": path.name}, generator="import:npz", index=lo + j, label=y,
                                    class_names=class_names, seed=None, image_shape=shape)
                        for j, y in enumerate(labels[lo:lo + len(block)])]
                writer.submit(shard, block, labels[lo:lo + len(block)], meta)
                advance(len(block))
    return SyntheticStore.open(root, verify=False)


def _same_source(path: Path, root: Path) -> str | None:
    """The sha256 of the file ``path``, read once before any shard is written; a store at ``root``
    imported from a file with another content (replaced under the same name and size) is refused
    with one line, so a resumed import never mixes two files. A store imported before stores
    recorded it is resumed as before."""
    from dreamset.files.verify import file_sha256

    digest = file_sha256(path)
    if (root / MANIFEST).exists():
        recorded = _read_manifest(root).get("generator", {}).get("sha256")
        if recorded is not None and recorded != digest:
            raise BadInputError(f"{path}: a different file than the one {root} was imported from (sha256 "
                                f"{digest[:12]}…, recorded {recorded[:12]}…); import it into a new store or delete {root}")
        if recorded is None:
            return None
    return digest


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
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise DiskFullError(disk_full_message(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def write_npz(path, image_shape, chunks: Iterable[np.ndarray], labels: np.ndarray) -> Path:
    """Write an ``.npz`` with ``image`` (uint8 ``image_shape``, e.g. N×H×W×C, the DM-Improves-AT
    layout) from ``chunks`` (uint8 blocks of rows, in order, together ``image_shape[0]`` rows) and
    ``label`` (int64 N), uncompressed, streamed (never the whole array in memory) and committed
    atomically."""
    path = Path(path)
    n = int(image_shape[0])
    written = 0
    with _atomic_output(path) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("image.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                          "shape": tuple(int(v) for v in image_shape)})
            for chunk in chunks:
                member.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())
                written += len(chunk)
            if written != n or len(labels) != n:
                raise ValueError(f"write_npz: {written} image rows and {len(labels)} labels for a shape of {n} rows")
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(labels).astype(np.int64))
        zf.writestr("label.npy", buffer.getvalue())
    return path


def export_npz(store: ImageSource, path, services: Any = None) -> Path:
    """Write ``store`` as an ``.npz`` with ``image`` (uint8 N×H×W×C, the DM-Improves-AT layout) and
    ``label`` (int64 N), streamed shard by shard and committed atomically. Progress on ``services``."""
    c, h, w = store.image_shape
    chunks = (images.transpose(0, 2, 3, 1) for _, images in _uint8_chunks(store, services=services, description="export npz"))
    return write_npz(path, (len(store), h, w, c), chunks, store.labels.numpy())
