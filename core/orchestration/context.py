"""The 0.1 run context: the state of a run in one object, as plugins written against the 0.1
contracts (``compute(context)``, ``select(synthetic, real, context, seed)``, hooks taking ``context``)
read it. The pipeline no longer passes it between stages (:mod:`dreamset.orchestration.stages`) or to components
(:mod:`dreamset.contracts.inputs`); it builds one for those old plugins only (:mod:`dreamset.contracts.legacy`), until 0.3.

Services are objects the context carries, not its methods: ``context.reference`` is the run's
:class:`~dreamset.orchestration.reference.ReferenceClassifier` (real data only, standard training, trained on first
use), whose penultimate features are the offline feature space for FID/KID/PRDC and the adaptive
sampler, and whose predictions give label agreement, confidence filtering and pseudo-labels.
``context.reference_classifier()``, ``context.features()`` and ``context.predict()`` are shorthands
for its methods.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from rich.console import Console

from dreamset.contracts.interfaces import ImageSource, Selection
from dreamset.contracts.progress import DEFAULT_EVERY, progress, progress_bar  # noqa: F401  (progress re-exported: it lived here)
from dreamset.orchestration.recipe import Recipe
from dreamset.orchestration.reference import ReferenceClassifier

log = logging.getLogger("dreamset")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from dreamset.contracts.errors import BadInputError

        raise BadInputError("device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


@dataclass
class RunContext:
    recipe: Recipe
    run_dir: Path
    registry: Any
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    console: Console = field(default_factory=Console)
    seed: int = 0
    real_train: ImageSource | None = None
    real_test: ImageSource | None = None
    #: shift label -> shifted test set
    shifted: dict[str, ImageSource] = field(default_factory=dict)
    #: every synthetic source as one set (what samplers and metrics read; see :mod:`dreamset.orchestration.sources`)
    synthetic: ImageSource | None = None
    #: source name -> its store (one generate block: the one source ``synthetic``)
    sources: dict[str, ImageSource] = field(default_factory=dict)
    #: the source a per-source metric is measuring now (``None`` outside such a metric)
    source_name: str | None = None
    #: generated evaluation set name -> its images (``evaluate.sets``, :mod:`dreamset.orchestration.generated_sets`)
    generated_sets: dict[str, ImageSource] = field(default_factory=dict)
    #: generated evaluation set name -> its provenance (report.json ``evaluation.generated_sets``)
    generated_provenance: dict[str, Any] = field(default_factory=dict)
    #: arm -> the augmentations it trains with (report.json ``augmentation``)
    augmentation: dict[str, Any] = field(default_factory=dict)
    #: arm -> selection, for the current seed
    selections: dict[str, Selection] = field(default_factory=dict)
    #: arm -> trained classifier, for the current seed
    models: dict[str, torch.nn.Module] = field(default_factory=dict)
    #: sorted row indices of the run's evaluation subset of ``real_test`` (and of every shifted set);
    #: ``None`` = the whole test set (see :mod:`dreamset.orchestration.evaluation`)
    evaluation_subset: Any = None
    #: seed -> arm -> results (clean_accuracy, robust_accuracy, shifted accuracies ...)
    arm_results: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: stage -> one-line results (one per time it ran: train/evaluate run once per seed)
    stage_results: dict[str, list[str]] = field(default_factory=dict)
    #: ``dreamset run --fresh``: checkpoints made with other settings are moved aside, not refused
    fresh: bool = False
    #: the run's reference classifier (a service; made for this run when not given)
    reference: ReferenceClassifier | None = None
    #: seconds between plain progress lines off a terminal (``--progress-every``; 0: none)
    progress_every: float = DEFAULT_EVERY

    def __post_init__(self) -> None:
        if self.reference is None:
            self.reference = ReferenceClassifier.for_run(self)

    # -- progress -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def progress(self, description: str, total: int | None, unit: str = "items", done: int = 0) -> Iterator[Any]:
        """A rich progress bar in a terminal, plain lines otherwise; yields ``advance(n=1)``."""
        with progress_bar(self.console, description, total, unit=unit, done=done, every=self.progress_every) as advance:
            yield advance

    # -- shorthands for the reference-classifier service ------------------------------------------
    def reference_classifier(self) -> torch.nn.Module:
        """``context.reference.model()``: standard-trained on the real training split only (cached in
        ``run_dir/reference``)."""
        return self.reference.model()

    def features(self, source: ImageSource, model: torch.nn.Module | None = None, batch_size: int = 512) -> torch.Tensor:
        """``context.reference.features(...)``: penultimate features ``float32 N×D`` (on CPU)."""
        return self.reference.features(source, model, batch_size)

    def predict(self, source: ImageSource, model: torch.nn.Module | None = None, batch_size: int = 512) -> torch.Tensor:
        """``context.reference.predict(...)``: softmax probabilities ``float32 N×K`` (on CPU)."""
        return self.reference.predict(source, model, batch_size)
