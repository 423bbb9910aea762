"""Sharing a synthetic set the way the field shares them: WebDataset tar shards and Hugging Face
``datasets`` (saved to disk, or one parquet file). ``.npz`` and ImageFolder live in
:mod:`dreamset.store.npz` and :mod:`dreamset.store.imagefolder`.

* **WebDataset** (``dreamset export STORE --format webdataset --out DIR``): ``DIR/shard-000000.tar``,
  ... each holding, per image, ``<key>.png`` (the uint8 image), ``<key>.cls`` (the integer label,
  ASCII) and ``<key>.json`` (index, label, class name and the provenance record); ``<key>`` is the
  zero-padded image index. Written with the standard library's :mod:`tarfile`; read with
  ``webdataset.WebDataset("DIR/shard-{000000..000003}.tar").decode("pil")`` or any tar reader.
  ``DIR/classes.json`` lists the class names.
* **datasets** (``--format datasets``): ``datasets.Dataset.save_to_disk(DIR)`` with an ``image``
  column (``datasets.Image``), ``label`` (``datasets.ClassLabel`` with the store's class names),
  ``index`` and one column per provenance key; load with ``datasets.load_from_disk(DIR)``.
  ``--format parquet`` writes the same table as ``DIR/data.parquet`` (the features, class names
  included, ride in the parquet metadata): ``datasets.load_dataset("parquet", data_files=...)``.
  Needs the optional ``datasets`` package (``pip install 'dreamset[datasets]'``).

Every written file is readable as the umask allows (0644 under the usual 022); a shard or the
dataset folder appears only once complete.
"""
from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterator

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import ImageSource
from dreamset.files.atomic import current_umask, fsync_dir

#: images per WebDataset shard (WebDataset's own examples use a few thousand per tar)
WEBDATASET_SHARD_SIZE = 5000


def _records(store: ImageSource, services: Any = None, description: str = "export") -> Iterator[tuple[int, Any, dict[str, Any]]]:
    """``(index, uint8 C×H×W image, record)`` for every image, in order; the record holds the
    index, label, class name and (for a dreamset store) the provenance. Progress on ``services``."""
    from dreamset.store.reader import SyntheticStore, _uint8_chunks

    has_provenance = isinstance(store, SyntheticStore)
    labels = store.labels.numpy()
    for start, images in _uint8_chunks(store, services=services, description=description):
        for j, image in enumerate(images):
            index = start + j
            label = int(labels[index])
            record = dict(store.provenance(index)) if has_provenance else {}
            record.update(index=index, label=label, class_name=store.class_names[label])
            yield index, image, record


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0  # mtime 0: the same store gives the same bytes
    tar.addfile(info, io.BytesIO(data))


def export_webdataset(store: ImageSource, out_dir, shard_size: int = WEBDATASET_SHARD_SIZE, services: Any = None) -> list[Path]:
    """Write ``store`` as WebDataset tar shards under ``out_dir``; returns the shard paths. Progress on
    ``services`` (:class:`dreamset.contracts.inputs.Services`; ``None``: silent)."""
    from dreamset.files.atomic import atomic_write_text
    from dreamset.store.imagefolder import _png_bytes
    from dreamset.store.npz import _atomic_output

    if shard_size <= 0:
        raise BadInputError(f"--shard-size: must be > 0, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width = max(8, len(str(max(len(store) - 1, 0))))
    mode = 0o666 & ~current_umask()
    paths: list[Path] = []
    records = _records(store, services, "export webdataset")
    for shard in range((len(store) + shard_size - 1) // shard_size):
        path = out / f"shard-{shard:06d}.tar"
        with _atomic_output(path) as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for _ in range(min(shard_size, len(store) - shard * shard_size)):
                    index, image, record = next(records)
                    key = f"{index:0{width}d}"
                    _add(tar, f"{key}.png", _png_bytes(image), mode)
                    _add(tar, f"{key}.cls", str(record["label"]).encode(), mode)
                    _add(tar, f"{key}.json", json.dumps(record, sort_keys=True, default=str).encode(), mode)
        paths.append(path)
    atomic_write_text(out / "classes.json", json.dumps(list(store.class_names)))
    return paths


def _require_datasets():
    try:
        import datasets
    except ImportError:
        raise BadInputError("--format datasets/parquet: needs the 'datasets' package "
                            "(pip install 'dreamset[datasets]')") from None
    return datasets


def _column_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "string"


def hf_dataset(store: ImageSource, services: Any = None):
    """``store`` as an in-memory ``datasets.Dataset``: ``image`` (PNG bytes, ``datasets.Image``),
    ``label`` (``ClassLabel``), ``index``, ``class_name`` and the provenance columns (ints, floats
    and strings keep their type; anything else, or a column of mixed types, is JSON text)."""
    datasets = _require_datasets()
    from dreamset.store.imagefolder import _png_bytes

    rows = [(image, record) for _, image, record in _records(store, services, "export datasets")]
    keys = list(dict.fromkeys(k for _, r in rows for k in r if k not in ("index", "label", "class_name")))
    types: dict[str, str] = {}
    for key in keys:
        seen = {_column_type(r[key]) for _, r in rows if r.get(key) is not None}
        types[key] = seen.pop() if len(seen) == 1 else "string"

    def cell(value: Any, kind: str):
        if value is None:
            return None
        if kind == "string" and not isinstance(value, str):
            return json.dumps(value, sort_keys=True)
        return value

    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=[str(n) for n in store.class_names]),
        "index": datasets.Value("int64"),
        "class_name": datasets.Value("string"),
        **{key: datasets.Value(kind) for key, kind in types.items()},
    })
    columns = {
        "image": [{"bytes": _png_bytes(image), "path": None} for image, _ in rows],
        "label": [r["label"] for _, r in rows],
        "index": [r["index"] for _, r in rows],
        "class_name": [r["class_name"] for _, r in rows],
        **{key: [cell(r.get(key), kind) for _, r in rows] for key, kind in types.items()},
    }
    return datasets.Dataset.from_dict(columns, features=features)


def export_datasets(store: ImageSource, out_dir, parquet: bool = False, services: Any = None) -> Path:
    """``datasets.Dataset.save_to_disk(out_dir)`` (or ``out_dir/data.parquet`` with ``parquet``),
    committed by renaming a finished temporary folder into place."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"--out: {out} exists and is not empty")
    dataset = hf_dataset(store, services)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=str(out.parent)))
    try:
        if parquet:
            dataset.to_parquet(str(tmp / "data.parquet"))
        else:
            dataset.save_to_disk(str(tmp))
        _apply_umask(tmp)
        if out.exists():
            out.rmdir()
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(out.parent)
    return out


def _apply_umask(folder: Path) -> None:
    """mkdtemp makes 0700 folders; give the tree the modes the umask asks for."""
    mask = current_umask()
    folder.chmod(0o777 & ~mask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
