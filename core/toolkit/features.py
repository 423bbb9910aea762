"""Feature plumbing for the distribution metrics: which extractor, which rows, which cache.

The feature networks themselves are components of kind ``extractor`` (``extractor:reference``,
``extractor:inception-fid``, ``extractor:timm``, ``extractor:torchvision-inception``; see
``dreamset plugins --kind extractor``). This module holds what every feature metric shares:

- :func:`extractor_ref` — the metric option ``extractor`` (a registry key, ``{key, options}``, or a
  pre-registry string ``reference`` / ``inception-v3`` / ``timm:NAME`` with ``weights``) as one
  canonical :class:`~dreamset.orchestration.recipe.ComponentRef` (migration: docs/metrics.md).
- :class:`FeatureSet` — one side of a comparison: an image source embedded by an extractor chunk by
  chunk, or a precomputed feature matrix from a ``.npy`` / ``.npz`` file (:func:`load_feature_file`).
- :class:`StatisticsCache` — float64 moments of a real split, stored under
  ``DREAMSET_CACHE_DIR`` (default ``~/.cache/dreamset``)``/statistics/<digest>.npz``, keyed by
  (dataset fingerprint, split, extractor identity, preprocessing).

FIDs from different extractors are not comparable: every metric reports which one it used.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import ImageSource

#: pre-registry ``extractor`` strings -> registry keys (old recipes keep working)
LEGACY_EXTRACTORS = {"reference": "extractor:reference", "inception-v3": "extractor:torchvision-inception",
                     "inception": "extractor:inception-fid"}


def extractor_ref(extractor: Any, weights: str | None = None, field: str = "extractor"):
    """Canonical ``ComponentRef`` for a metric's ``extractor`` option (and the legacy ``weights``).

    ``"reference"`` -> ``extractor:reference``; ``"inception-v3"`` -> ``extractor:torchvision-inception``;
    ``"timm:NAME"`` -> ``extractor:timm`` with ``model: NAME``; ``weights`` becomes the extractor's
    ``weights`` option. Registry keys (``extractor:inception-fid``) and ``{key, options}`` pass through."""
    from dreamset.orchestration.recipe import ComponentRef

    if isinstance(extractor, str):
        if extractor.startswith("timm:"):
            ref = ComponentRef(key="extractor:timm", options={"model": extractor[5:]})
        else:
            key = LEGACY_EXTRACTORS.get(extractor, extractor)
            ref = ComponentRef(key=key if ":" in key else f"extractor:{key}")
    else:
        ref = extractor if isinstance(extractor, ComponentRef) else ComponentRef.model_validate(extractor)
    if weights is not None:
        if "weights" in ref.options and ref.options["weights"] != weights:
            raise BadInputError(f"weights: given twice ({field}.options.weights and weights)")
        ref = ComponentRef(key=ref.key, options={**ref.options, "weights": weights})
    return ref


def create_extractor(context, ref, field: str = "extractor"):
    """The extractor component for ``ref`` (a :func:`extractor_ref` result), prepared with ``context``
    (the :class:`dreamset.contracts.inputs.Services` — registry, device, reference classifier — or ``None``)."""
    import dreamset.registry as registry_module
    from dreamset.contracts.legacy import call_prepare

    registry = getattr(context, "registry", None) or registry_module.get_registry()
    try:
        key = registry.get(ref.key, "extractor").key
    except BadInputError as exc:
        raise BadInputError(f"{field}: {exc}") from None
    extractor = registry.create(key, field_path=f"{field}.options", **ref.options)
    call_prepare(extractor, context)
    return extractor


def load_state_dict(model: torch.nn.Module, path: str | Path, what: str, *, allow_unexpected: bool = True) -> None:
    """Load a local ``.safetensors`` / ``.pt`` / ``.pth`` state dict into ``model``: every parameter
    of ``model`` must be in the file (a missing one is an error naming the file); extra entries (a
    classifier head the extractor does not use) are ignored when ``allow_unexpected``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BadInputError(f"{what}: weights file {path} does not exist (give a local file; nothing is downloaded)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or (unexpected and not allow_unexpected):
        raise BadInputError(f"{what}: {path} does not fit the network: missing {list(missing)[:3]}"
                            f"{'...' if len(missing) > 3 else ''}, unexpected {list(unexpected)[:3]}")


def file_identity(path: str | Path) -> dict[str, Any]:
    """``{path, size, mtime}`` of a weights file (cheap; part of a cache key)."""
    p = Path(path).expanduser().resolve()
    stat = p.stat()
    return {"path": str(p), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def resize_and_normalise(x: torch.Tensor, size: int, mean, std, mode: str = "bilinear") -> torch.Tensor:
    """``float32 B×C×H×W`` in [0,1] -> 3 channels (grey replicated), ``size×size`` (``mode``,
    ``align_corners=False``, antialias off: the timm/torchvision eval convention for inputs already
    of that scale), ``(x − mean) / std``."""
    import torch.nn.functional as F

    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode=mode, align_corners=False)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


# -- precomputed features ------------------------------------------------------------------------

def load_feature_file(path: str | Path, field: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(features N×D, labels int64 N or None)`` from a ``.npy`` (the matrix) or a ``.npz`` (array
    ``features``, optional ``labels``). ``.npy`` files are memory-mapped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInputError(f"{field}: {p} does not exist")
    if p.suffix == ".npy":
        features, labels = np.load(p, mmap_mode="r", allow_pickle=False), None
    elif p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as data:
            if "features" not in data:
                raise BadInputError(f"{field}: {p} has no 'features' array (found {sorted(data.files)})")
            features = data["features"]
            labels = data["labels"].astype(np.int64) if "labels" in data else None
    else:
        raise BadInputError(f"{field}: {p} is not a .npy or .npz feature file")
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
        raise BadInputError(f"{field}: {p} must hold a numeric N×D matrix, got shape {features.shape} {features.dtype}")
    if labels is not None and labels.shape != (features.shape[0],):
        raise BadInputError(f"{field}: {p} has {labels.shape[0]} labels for {features.shape[0]} feature rows")
    return features, labels


class FeatureSet:
    """One side of a feature comparison: ``len``, ``labels`` (``int64 N``; see ``labelled``),
    ``class_names`` and features of any rows, ``float32`` chunks of at most ``batch_size`` rows —
    either embedded from an :class:`ImageSource` by an extractor or read from a feature matrix."""

    def __init__(self, *, source: ImageSource | None = None, embed: Callable | None = None,
                 matrix: np.ndarray | None = None, labels=None, class_names=None, name: str = "",
                 context=None) -> None:
        self.source, self._embed, self.matrix, self.name = source, embed, matrix, name
        #: the run context whose progress bars show the embedding passes (``None``: no bar)
        self.context = context
        #: whether ``labels`` are real class labels (a ``.npy`` or an unlabelled ``.npz`` has none: zeros)
        self.labelled = source is not None or labels is not None
        if source is not None:
            self.labels = source.labels
            self.class_names = list(source.class_names)
        else:
            n = int(matrix.shape[0])
            self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64) if labels is not None else torch.zeros(n, dtype=torch.int64)
            top = int(self.labels.max()) + 1 if n else 0
            self.class_names = list(class_names) if class_names is not None and len(class_names) >= top else [str(c) for c in range(top)]

    @classmethod
    def from_file(cls, path: str | Path, field: str, class_names=None) -> "FeatureSet":
        features, labels = load_feature_file(path, field)
        return cls(matrix=features, labels=labels, class_names=class_names, name=str(path))

    def __len__(self) -> int:
        return len(self.source) if self.source is not None else int(self.matrix.shape[0])

    def chunks(self, indices, batch_size: int) -> Iterator[torch.Tensor]:
        """Features ``float32 B×D`` (CPU) at ``indices`` (ascending ints), ``batch_size`` rows at a time
        (embedding passes show a progress bar in the run's terminal)."""
        from dreamset.contracts.interfaces import as_index_tensor
        from dreamset.contracts.progress import progress

        indices = as_index_tensor(indices)
        if self.matrix is not None:
            for start in range(0, indices.shape[0], batch_size):
                yield torch.from_numpy(np.asarray(self.matrix[indices[start:start + batch_size].numpy()], dtype=np.float32))
            return
        with progress(self.context, f"features ({self.name})", int(indices.shape[0]), unit="images") as advance:
            for start in range(0, indices.shape[0], batch_size):
                rows = indices[start:start + batch_size]
                yield self._embed(self.source.subset(rows))
                advance(int(rows.shape[0]))

    def at(self, indices, batch_size: int) -> torch.Tensor:
        """Features ``float32 len(indices)×D`` at ``indices``."""
        parts = list(self.chunks(indices, batch_size))
        return torch.cat(parts) if parts else torch.zeros(0, 0)


def embedder(extractor, device=None, batch_size: int = 256) -> Callable[[ImageSource], torch.Tensor]:
    """``f(source)`` -> features ``float32 N×D`` (CPU) of every image of ``source`` through
    ``extractor.embed``, ``batch_size`` images per forward pass, under ``no_grad``."""

    @torch.no_grad()
    def features(source: ImageSource) -> torch.Tensor:
        out = []
        for start in range(0, len(source), batch_size):
            x, _ = source.get(range(start, min(start + batch_size, len(source))))
            out.append(extractor.embed(x.to(device) if device is not None else x).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    return features


def feature_extractor(context, extractor: str = "reference", weights: str | None = None) -> Callable[..., torch.Tensor]:
    """``f(source, batch_size=256)`` -> features ``float32 N×D`` (CPU) of every image of ``source``
    (kept for callers of the pre-registry API, e.g. ``sampler:adaptive-low-density``; new code uses
    :func:`create_extractor`). ``"reference"`` calls ``context.reference.features`` (the run's
    :class:`~dreamset.orchestration.reference.ReferenceClassifier`), or ``context.features`` on a stand-in context
    that has no ``reference`` service."""
    if extractor == "reference" and weights is None:
        features = context.reference.features if getattr(context, "reference", None) is not None else context.features
        return lambda source, batch_size=256: features(source, batch_size=batch_size)
    component = create_extractor(context, extractor_ref(extractor, weights))
    device = getattr(context, "device", None)
    return lambda source, batch_size=256: embedder(component, device, batch_size)(source)


def extract_features(context, source: ImageSource, extractor: str = "reference", weights: str | None = None,
                     batch_size: int = 256) -> torch.Tensor:
    """Features ``float32 N×D`` (CPU) of every image of ``source`` under ``extractor``."""
    return feature_extractor(context, extractor, weights)(source, batch_size=batch_size)


# -- the reference-statistics cache ----------------------------------------------------------------

def source_fingerprint(source: ImageSource, probes: int = 64) -> str:
    """A digest of a source's size, shape, labels and ``probes`` evenly spaced images: the
    "dataset" part of a statistics cache key (a changed file changes it)."""
    digest = hashlib.sha256(f"{len(source)}|{tuple(source.image_shape)}|{list(source.class_names)}".encode())
    digest.update(source.labels.numpy().astype(np.int64).tobytes())
    if len(source):
        rows = np.unique(np.linspace(0, len(source) - 1, num=min(probes, len(source))).astype(np.int64))
        images, _ = source.get(rows)
        digest.update((images * 255).round().to(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


class StatisticsCache:
    """Float64 moments (count, mean, scatter) of a real split under an extractor, on disk.

    Key: ``(dataset fingerprint, split, extractor identity, preprocessing, per-class?)``; a cache
    miss returns ``None``; writes are atomic (a killed run leaves no half file). Extractors whose
    :meth:`~dreamset.contracts.interfaces.Extractor.cache_identity` is ``None`` (the run's reference
    classifier) are never cached."""

    def __init__(self, root: str | Path | None = None) -> None:
        from dreamset.files.verify import cache_dir

        base = root or cache_dir()
        self.root = Path(base) / "statistics"

    @staticmethod
    def key(fingerprint: str, split: str, extractor, extra: dict | None = None) -> str | None:
        identity = extractor.cache_identity()
        if identity is None:
            return None
        payload = {"dataset": fingerprint, "split": split, "extractor": identity,
                   "preprocessing": extractor.preprocessing, **(extra or {})}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def load(self, key: str | None) -> dict[str, np.ndarray] | None:
        if key is None or not (self.root / f"{key}.npz").is_file():
            return None
        with np.load(self.root / f"{key}.npz", allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def save(self, key: str | None, arrays: dict[str, np.ndarray]) -> None:
        if key is None:
            return
        from dreamset.files.atomic import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.root / f"{key}.npz", buffer.getvalue())
