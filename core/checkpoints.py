"""Checkpoints as safetensors: tensors in a ``.safetensors`` file, structure and scalars as JSON in
its metadata. Written atomically; loading never unpickles anything.

``load_torch_weights`` reads legacy ``.pt``/``.pth`` files only with ``torch.load(weights_only=True)``,
which refuses arbitrary pickled objects (a malicious pickle raises instead of running code).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save

from dreamset.atomic import atomic_write_bytes
from dreamset.errors import BadInputError

META_KEY = "dreamset"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Atomically write ``tensors`` (contiguous CPU copies) and JSON ``meta`` to ``path``."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = save(cpu, metadata={META_KEY: json.dumps(meta or {})})
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
    return tensors, meta


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
