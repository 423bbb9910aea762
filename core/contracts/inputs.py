"""What a component receives, named: the typed, read-only inputs of the contracts.

A component never sees the run's state as a whole. It receives:

* :class:`Services` — the run's tools, none of them run state: the ``device``, the component
  ``registry`` (to create the components it declared, see ``ComponentRef`` options), the ``run_dir``
  where it may cache and draw figures, the run's ``reference`` classifier
  (:class:`~dreamset.orchestration.reference.ReferenceClassifier`), ``progress`` (rich bars in a terminal,
  plain lines in a log) and ``fresh``
  (``dreamset run --fresh``);
* :class:`RealData` — the real splits, their shifted copies and the run's evaluation subset;
* :class:`DistributionInputs` — what a distribution metric (``Metric.scope = "source"`` or
  ``"synthetic"``) measures: the real data against one synthetic set;
* :class:`ArmInputs` — what an arm metric (``Metric.scope = "arms"``) measures: the trained arms
  and their results.

All are frozen dataclasses: a component reads them, never changes them. This module is a contract:
it imports no orchestration module (and no torch).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from dreamset.contracts.progress import DEFAULT_EVERY, progress_bar

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

#: an :class:`dreamset.contracts.interfaces.ImageSource` (named, not imported: the interfaces import this module)
ImageSource = Any


@dataclass(frozen=True)
class Services:
    """The run's tools a component may use (no run state). ``Services()`` alone is a library-use
    stand-in: CPU, no run folder, no reference classifier, silent progress."""

    #: where tensors go (a ``torch.device``; ``None`` = CPU)
    device: Any = None
    #: the component registry (``registry.create(key, kind=..., **options)``); ``None`` = the default one
    registry: Any = None
    #: the run folder (caches, figures); ``None`` in library use
    run_dir: Path | None = None
    #: the run's :class:`~dreamset.orchestration.reference.ReferenceClassifier` (``None`` when there is none)
    reference: Any = None
    #: the console progress bars draw on (``None`` = silent)
    console: Any = None
    #: ``dreamset run --fresh``: checkpoints made with other settings are moved aside, not refused
    fresh: bool = False
    #: ``bars(description, total)``, a context manager yielding ``advance``, drawn instead of the
    #: console's bars (a caller's own progress display)
    bars: Any = None
    #: seconds between plain progress lines when the console is not a terminal (``--progress-every``;
    #: 0: none); not part of any result or digest
    progress_every: float = DEFAULT_EVERY

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None, unit: str = "items", done: int = 0) -> Iterator[Any]:
        """Progress of a loop of ``total`` ``unit`` (``done`` of them already done, by a resumed run):
        a rich bar in a terminal, plain log lines otherwise (:mod:`dreamset.contracts.progress`);
        yields ``advance(n=1)`` (silent without a console)."""
        if self.bars is not None:
            with self.bars(description, total) as advance:
                if done:
                    advance(done)
                yield advance
            return
        with progress_bar(self.console, description, total, unit=unit, done=done, every=self.progress_every) as advance:
            yield advance


@dataclass(frozen=True)
class RealData:
    """The real data of a run (the data stage's output): ``train`` and ``test`` splits, the shifted
    copies of the test split (shift label -> set) and the evaluation subset (sorted rows of ``test``
    and of every shifted set; ``None`` = all of them)."""

    train: ImageSource | None
    test: ImageSource | None
    shifted: Mapping[str, ImageSource] = field(default_factory=dict)
    evaluation_subset: "np.ndarray | None" = None

    def split(self, name: str) -> ImageSource | None:
        """``"train"`` or ``"test"``."""
        return self.train if name == "train" else self.test


@dataclass(frozen=True)
class DistributionInputs:
    """A distribution metric's inputs: the real data and one synthetic set. ``source_name`` names the
    source measured when the recipe has named sources (``None``: the recipe's one synthetic set, or
    every source as one set for ``scope = "synthetic"``)."""

    real: RealData
    synthetic: ImageSource | None
    source_name: str | None = None
    services: Services = field(default_factory=Services)


@dataclass(frozen=True)
class ArmInputs:
    """An arm metric's inputs: the classifiers of the last seed (arm -> model), every seed's results
    (seed -> arm -> ``clean_accuracy``, ``robust_accuracy``, ``shifted`` ...), the arms as the
    recipe declares them (arm -> its ``arms.<name>`` block), the ``train`` settings and the synthetic
    images each arm kept in the last seed."""

    real: RealData
    models: Mapping[str, "torch.nn.Module"]
    results: Mapping[int, Mapping[str, Mapping[str, Any]]]
    seed: int = 0
    arms: Mapping[str, Any] = field(default_factory=dict)
    train: Any = None
    services: Services = field(default_factory=Services)
    #: arm -> the synthetic images it trained on in the last seed (its sampler's choice); arms without
    #: synthetic data are absent
    synthetic: Mapping[str, Any] = field(default_factory=dict)


#: ``Metric.scope`` values: the pipeline runs a ``source`` metric once per named synthetic source,
#: a ``synthetic`` metric once on every source as one set, an ``arms`` metric once on the arms
METRIC_SCOPES = ("source", "synthetic", "arms")
