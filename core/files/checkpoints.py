"""Checkpoints as safetensors: tensors in a ``.safetensors`` file, structure and scalars as JSON in
its metadata. Written atomically; loading never unpickles anything. The metadata also holds a
sha256 of the tensors (names, dtypes, shapes and bytes), checked on load: a flipped bit in the
weights is an error naming the file, not a silently different model.

``load_torch_weights`` reads legacy ``.pt``/``.pth`` files only with ``torch.load(weights_only=True)``,
which refuses arbitrary pickled objects (a malicious pickle raises instead of running code).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save

from dreamset.contracts.errors import BadInputError
from dreamset.files.atomic import atomic_write_bytes

META_KEY = "dreamset"
#: key of the tensors' sha256 inside the JSON metadata (files written before it existed have none and
#: are not checked). One metadata entry only: safetensors writes several in a random order, and a
#: resumed run's checkpoint must be byte-identical to an uninterrupted run's
HASH_KEY = "_sha256"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor (sorted by name): its name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Atomically write ``tensors`` (contiguous CPU copies) and JSON ``meta`` to ``path``."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = save(cpu, metadata={META_KEY: json.dumps({**(meta or {}), HASH_KEY: tensors_sha256(cpu)})})
    atomic_write_bytes(Path(path), data)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` from a file written by :func:`save_checkpoint`; errors name the file."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with open(path, "rb"):  # the OS's own reason (missing, a directory, no permission) for the message
            pass
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read checkpoint ({exc.strerror})") from None
    try:  # one pass over the file: the header (with the metadata), then each tensor
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "{}"))
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a valid dreamset safetensors checkpoint ({exc})") from None
    expected = meta.pop(HASH_KEY, None) if isinstance(meta, dict) else None
    if expected is not None and tensors_sha256(tensors) != expected:
        raise BadInputError(f"{path}: checkpoint content does not match its sha256 (corrupt file); delete it to retrain that model")
    return tensors, meta


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without reading its tensors; errors name the file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return json.loads((handle.metadata() or {}).get(META_KEY, "{}"))
    except (OSError, SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not a valid dreamset safetensors checkpoint ({exc})") from None


def load_torch_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or, for legacy files, ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        return load_checkpoint(path)[0]
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but plain tensors/containers
        raise BadInputError(f"{path}: refused to load (only plain tensors are accepted: {type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise BadInputError(f"{path}: expected a state dict of tensors")
    return state
