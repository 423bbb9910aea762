"""PNG output of any image source: the ImageFolder export (one PNG per image, ``metadata.csv``) and
the sample grid (one row per class)."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from dreamset.contracts.data import to_uint8_images
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import ImageSource
from dreamset.files.atomic import atomic_write_bytes
from dreamset.store.reader import SyntheticStore, _uint8_chunks


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


def export_imagefolder(store: ImageSource, out_dir, services: Any = None) -> Path:
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
    for start, images in _uint8_chunks(store, services=services, description="export imagefolder"):
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
