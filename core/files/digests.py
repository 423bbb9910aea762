"""What made a checkpoint, and whether a re-run may reuse it.

Every training checkpoint (``last.safetensors``, ``final.safetensors``) records in its metadata the
settings that produced it (:func:`training_settings`): the resolved training stage (model and its
options, optimizer, learning rate, epochs, ...), the model's architecture (names and shapes of its
tensors), the mixer, the training attacker and the objective with their options, the seed, the number of optimizer
steps, a fingerprint of the real and synthetic data (:func:`source_fingerprint`) and the dreamset
version. A re-run into the same folder reuses a checkpoint only when these are equal; otherwise
:func:`reuse_or_refuse` refuses with one line naming what changed — or, when the run was started with
``--fresh``, moves the stale checkpoint folder aside (``<run>/stale/<UTC time>/...``), never deleting
it, and the model is trained anew.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from dreamset.contracts.errors import BadInputError, shorten

log = logging.getLogger("dreamset")

#: rows of a data source whose pixels enter its fingerprint (evenly spaced; labels enter whole)
PROBE_ROWS = 64


def source_fingerprint(source) -> dict[str, Any] | None:
    """``{n, shape, classes, sha256}`` of an :class:`~dreamset.contracts.interfaces.ImageSource`: its size,
    image shape, class names, and a sha256 of every label plus the pixels of ``PROBE_ROWS`` evenly
    spaced images (cheap for any size; a different data set or selection changes it)."""
    if source is None:
        return None
    import numpy as np

    n = len(source)
    digest = hashlib.sha256(np.ascontiguousarray(source.labels.numpy(), dtype=np.int64).tobytes())
    if n:
        rows = np.unique(np.linspace(0, n - 1, num=min(PROBE_ROWS, n)).round().astype(np.int64))
        images, _ = source.get(rows)
        digest.update(images.float().numpy().tobytes())
    return {"n": int(n), "shape": [int(v) for v in source.image_shape], "classes": len(source.class_names),
            "sha256": digest.hexdigest()}


def images_sha256(images, labels) -> str:
    """sha256 of every image (as uint8) and every label (int64): a full digest of a data set, not a
    probe (what a generator was fitted on; a change of one pixel changes it)."""
    import torch

    from dreamset.contracts.data import to_uint8_images

    digest = hashlib.sha256()
    digest.update(to_uint8_images(images).contiguous().numpy().tobytes())
    digest.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def source_sha256(source, batch_size: int = 4096) -> str:
    """:func:`images_sha256` of every image and label of an :class:`~dreamset.contracts.interfaces.ImageSource`,
    read batch by batch (never the whole set as floats at once)."""
    import torch

    from dreamset.contracts.data import to_uint8_images

    digest, labels = hashlib.sha256(), []
    for start in range(0, len(source), batch_size):
        images, batch_labels = source.get(range(start, min(start + batch_size, len(source))))
        digest.update(to_uint8_images(images).contiguous().numpy().tobytes())
        labels.append(batch_labels.to(torch.int64))
    if labels:
        digest.update(torch.cat(labels).contiguous().numpy().tobytes())
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str | None:
    """sha256 over the relative name and the content of every file under ``folder`` (hidden
    temporary files left out); ``None`` when there is no such folder or it holds no file."""
    from dreamset.files.verify import file_sha256

    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _component(component) -> Any:
    if component is None:
        return None
    if hasattr(component, "describe"):
        return json.loads(json.dumps(component.describe(), default=str))
    return type(component).__name__


def training_settings(settings, model, mixer, attacker, real, synthetic, seed: int, total_steps: int,
                      objective=None) -> dict[str, Any]:
    """Everything that decides what ``train_classifier`` produces (JSON, stored in its checkpoints)."""
    from dreamset import __version__

    architecture = hashlib.sha256(json.dumps([[name, list(t.shape), str(t.dtype)] for name, t in model.state_dict().items()]).encode())
    return {
        # a field left at None is left out, so checkpoints made before it existed are still reused
        "train": settings.model_dump(mode="json", exclude=_unrecorded(settings)),
        "architecture": architecture.hexdigest()[:16],
        "mixer": _component(mixer),
        "attacker": _component(attacker),
        "objective": _component(objective),
        "seed": int(seed),
        "optimizer_steps": int(total_steps),
        "data": {"real": source_fingerprint(real), "synthetic": source_fingerprint(synthetic)},
        "dreamset": __version__,
    }


def _unrecorded(settings) -> set[str] | None:
    """Train fields left out of the digest: ``batch_groups`` left at None, and the catastrophic-overfitting
    check unless it stops arms (watching alone changes no weight), so checkpoints made before these
    fields existed are still reused."""
    left = set()
    if getattr(settings, "batch_groups", None) is None:
        left.add("batch_groups")
    check = getattr(settings, "catastrophic_overfitting", None)
    if check is None or not check.stop:
        left.add("catastrophic_overfitting")
    return left or None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested mappings as dotted keys (other values are leaves)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["train.epochs: 2 -> 20", ...]``: the leaves that differ between two settings records."""
    a, b = flatten(old), flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "(absent)") != b.get(key, "(absent)"):
            if key.endswith("sha256") or key == "architecture":
                out.append(f"{key.removesuffix('.sha256')} changed")
            else:
                out.append(f"{key}: {shorten(json.dumps(a.get(key, '(absent)')), 40)} -> {shorten(json.dumps(b.get(key, '(absent)')), 40)}")
    return out


def move_aside(run_dir: Path, path: Path, stamp: str | None = None) -> Path:
    """Move ``path`` (inside ``run_dir``) to ``run_dir/stale/<stamp>/<its relative path>`` (``stamp``
    default: the UTC time; give one to keep several moves together)."""
    run_dir, path = Path(run_dir), Path(path)
    try:
        relative = path.resolve().relative_to(run_dir.resolve())
    except ValueError:
        relative = Path(path.name)
    target = run_dir / "stale" / (stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))
    return target


def reuse_or_refuse(checkpoint_dir: Path, wanted: dict[str, Any], context) -> None:
    """Check the settings recorded in ``checkpoint_dir``'s checkpoints against ``wanted``. Equal (or a
    checkpoint from before settings were recorded): nothing to do. Different: with ``--fresh``
    (``context.fresh``) the folder is moved aside; otherwise a one-line :class:`BadInputError`."""
    from dreamset.files.checkpoints import read_checkpoint_meta

    checkpoint_dir = Path(checkpoint_dir)
    for name in ("final.safetensors", "last.safetensors"):
        path = checkpoint_dir / name
        if not path.exists():
            continue
        recorded = read_checkpoint_meta(path).get("settings")
        if recorded is None or recorded == wanted:
            return
        changed = changes(recorded, wanted)
        if context is not None and getattr(context, "fresh", False):
            target = move_aside(context.run_dir, checkpoint_dir)
            log.info("%s: made with other settings (%s); moved to %s", path, "; ".join(changed), target)
            return
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise BadInputError(f"{path}: was made with other settings ({shown}); use a new --out, or re-run with "
                            f"--fresh to move the old checkpoints aside and train anew")
