"""The component interfaces. Importing this module does not import torch.

Tensor contract, stated once and kept everywhere inside the pipeline:
images are ``float32`` tensors of shape ``N×C×H×W`` with values in ``[0, 1]``; labels are ``int64``
tensors of shape ``N``; on disk images are ``uint8``. Normalisation (mean/std) lives inside the
model (:class:`dreamset.contracts.nn.Classifier`), never in data or attacks.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

from dreamset import hookimpl
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.kinds import KINDS
from dreamset.contracts.legacy import takes_context, typed_compute
from dreamset.contracts.options import Options

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from dreamset.contracts.inputs import ArmInputs, DistributionInputs, Services


class Component:
    """Base of every component. Subclasses set ``Options`` to their pydantic options model
    (``extra="forbid"``) and take the validated instance in ``__init__``. The registry sets
    ``key`` (``kind:name``) on each instance it creates."""

    Options: ClassVar[type[Options]] = Options
    key: str = ""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (key + options) recorded in reports and provenance."""
        return {"key": self.key, "options": self.options.model_dump(mode="json")}

    @classmethod
    def dependencies(cls, options: Options) -> dict[str, tuple[str, str | None]]:
        """The components of other kinds this one creates by key, as its ``options`` name them:
        option name -> ``(kind, key)`` (key ``None``: the recipe's own, e.g. ``train.model``).
        report.json's ``components`` lists them under ``uses``. Default: none."""
        return {}


class ImageSource(abc.ABC):
    """Random-access labelled images: a real dataset split, a synthetic store, or a subset.

    ``get(indices)`` returns ``(images, labels)``: images ``float32 B×C×H×W`` in ``[0,1]``, labels
    ``int64 B``. ``labels`` gives all ``N`` labels at once (cheap: used by samplers and mixers).
    """

    class_names: list[str]

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @property
    @abc.abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""

    @property
    @abc.abstractmethod
    def labels(self) -> "torch.Tensor":
        """All labels, ``int64 N``."""

    @abc.abstractmethod
    def get(self, indices: "Sequence[int] | torch.Tensor | np.ndarray") -> "tuple[torch.Tensor, torch.Tensor]":
        """Images ``float32 B×C×H×W`` in [0,1] and labels ``int64 B`` at ``indices``."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices) -> "ImageSource":
        """A view restricted to ``indices`` (no copy of the images)."""
        return SubsetImageSource(self, indices)


def as_index_tensor(indices) -> "torch.Tensor":
    """Indices (list, numpy array, tensor, slice-free) as an ``int64`` tensor."""
    import numpy as np
    import torch

    if isinstance(indices, torch.Tensor):
        return indices.to(torch.int64)
    return torch.as_tensor(np.asarray(indices, dtype=np.int64))


class SubsetImageSource(ImageSource):
    """A view of ``parent`` at ``indices`` (no copy)."""

    def __init__(self, parent: ImageSource, indices) -> None:
        self.parent = parent
        self.indices = as_index_tensor(indices)
        if self.indices.numel() and (self.indices.min() < 0 or self.indices.max() >= len(parent)):
            from dreamset.contracts.errors import BadInputError

            raise BadInputError(f"subset indices out of range for a source of {len(parent)} images")
        self.class_names = parent.class_names

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def image_shape(self):
        return self.parent.image_shape

    @property
    def labels(self) -> "torch.Tensor":
        return self.parent.labels[self.indices]

    def get(self, indices):
        return self.parent.get(self.indices[as_index_tensor(indices)])


class Dataset(Component):
    """A real dataset (``dataset:*``) with deterministic ``train``/``test`` splits."""

    @abc.abstractmethod
    def load(self, split: str) -> ImageSource:
        """Return the ``"train"`` or ``"test"`` split. Missing files raise
        :class:`dreamset.BadInputError` naming the path and how to get the data."""


class Shift(Component):
    """A deterministic distribution shift (``shift:*``) applied to an evaluation set, for
    effective robustness (Taori et al., 2020)."""

    @abc.abstractmethod
    def apply(self, images: "torch.Tensor", seed: int) -> "torch.Tensor":
        """Map ``float32 N×C×H×W`` images in [0,1] to shifted images of the same shape and range.
        Must be a deterministic function of ``(images, seed, options)``."""

    @property
    def label(self) -> str:
        """Name used in reports, e.g. ``invert`` or ``gaussian-noise@3``."""
        name = self.key.split(":", 1)[-1]
        severity = getattr(self.options, "severity", None)
        return f"{name}@{severity}" if severity is not None else name


@dataclass
class GeneratedBatch:
    """What a generator returns for one batch: ``images float32 B×C×H×W`` in [0,1], ``labels int64
    B`` and one provenance dict per image (generator, label, class_name, prompt, seed, steps,
    guidance, scheduler, width, height)."""

    images: "torch.Tensor"
    labels: "torch.Tensor"
    provenance: list[dict[str, Any]] = field(default_factory=list)


class Generator(Component):
    """A generator (``generator:*``): optionally fitted on the real training split, then asked for
    images of given labels, each with its own seed (so results do not depend on batching).

    ``assigns_labels = True`` declares that ``generate`` returns labels of its own (e.g. an
    unconditional model pseudo-labelled by a classifier) instead of echoing the requested ones."""

    assigns_labels: bool = False

    def fit(self, real: ImageSource, workdir: Path, services: "Services | None" = None) -> None:
        """Train on real data (e.g. a DDPM). Checkpoints go under ``workdir``; a finished checkpoint
        there must be reused, not retrained. ``services`` (:class:`dreamset.contracts.inputs.Services`): the
        device, progress bars and the run's reference classifier (``None``: library use, CPU).
        Default: nothing to fit."""

    @abc.abstractmethod
    def generate(self, labels: "torch.Tensor", seeds: Sequence[int], class_names: Sequence[str]) -> GeneratedBatch:
        """Generate one image per entry of ``labels`` (int64 B); image ``i`` depends only on
        ``labels[i]``, ``seeds[i]`` and the options, and is bit-identical on CPU across runs."""

    def image_shape(self, real: ImageSource | None = None) -> tuple[int, int, int]:
        """``(C, H, W)`` of generated images (default: the real data's shape)."""
        if real is None:
            raise NotImplementedError(f"{self.key}: image_shape needs the real data")
        return real.image_shape


@dataclass
class Selection:
    """Indices into the synthetic store chosen by a sampler. ``scores`` (when the sampler scores
    samples) has one entry per synthetic sample — all ``N`` of the store, chosen or not — higher =
    preferred. ``info`` holds JSON-serialisable diagnostics."""

    indices: "np.ndarray"
    scores: "np.ndarray | None" = None
    info: dict[str, Any] = field(default_factory=dict)


class Sampler(Component):
    """Chooses which synthetic samples an arm uses (``sampler:*``)."""

    @abc.abstractmethod
    def select(self, synthetic: ImageSource, real: ImageSource, services: "Services", seed: int) -> Selection:
        """Return the selected indices of ``synthetic`` (reproducible given ``seed``); ``real`` is the
        real training split, ``services`` (:class:`dreamset.contracts.inputs.Services`) the device and the
        run's reference classifier."""


class Mixer(Component):
    """Turns real and (selected) synthetic data into the training stream (``mixer:*``)."""

    @abc.abstractmethod
    def steps_per_epoch(self, real: ImageSource | None, synthetic: ImageSource | None, batch_size: int) -> int:
        """Number of batches one epoch yields."""

    def composition(self, real: ImageSource | None, synthetic: ImageSource | None, batch_size: int) -> tuple[float, float] | None:
        """``(real, synthetic)``: the fractions of each batch's images that come from the real and the
        synthetic set (they sum to 1) as planned; ``None`` when unknown. report.json's ``images_seen``
        split is counted from the rows a mixer reads (:mod:`dreamset.training.counting`); this planned
        split is its fallback for a run resumed from a checkpoint written before counting. The default
        covers an arm with one kind of data."""
        has_real, has_synthetic = real is not None and len(real) > 0, synthetic is not None and len(synthetic) > 0
        if has_real and has_synthetic:
            return None
        return (1.0, 0.0) if has_real else (0.0, 1.0)

    @abc.abstractmethod
    def batches(
        self,
        real: ImageSource | None,
        synthetic: ImageSource | None,
        batch_size: int,
        epoch: int,
        seed: int,
    ) -> "Iterator[tuple[torch.Tensor, ...]]":
        """Yield ``(images float32 B×C×H×W in [0,1], labels int64 B)`` for one epoch; a
        deterministic function of ``(epoch, seed)``. A compositing mixer may add a third item, the
        **context mask** ``float32 B×1×H×W`` in [0,1] (1 = background/context, 0 = the labelled
        object): the trainer hands it to an attacker whose ``attack`` takes ``mask`` (``attacker:masked-pgd``),
        which then perturbs the context only — Jin & Rinard's (arXiv:2005.14707) adversarial refinement."""


class Augmentation(Component):
    """A training augmentation (``augmentation:*``), applied by the trainer on CPU before the batch
    moves to the device. ``level = "image"``: each image of one source (the real or the synthetic
    set) is transformed on its own; ``level = "batch"``: the whole training batch is mixed (CutMix,
    MixUp) and the labels become soft (``float32 B×K`` rows summing to 1).

    Randomness comes from torch's default generator, which the caller seeds per
    ``(seed, epoch, step)`` (:mod:`dreamset.training.augmenting`), so training stays resumable bit for bit.
    An image-level augmentation that sets ``draws_from_generator = True`` also takes ``generator=``
    (a seeded ``torch.Generator``) in :meth:`apply` and then draws from it alone, never from the
    default generator: the trainer may then run it on its prefetch thread, beside training."""

    level: ClassVar[str] = "image"
    #: ``apply`` accepts an ``epoch`` keyword (the trainer's 0-based epoch) for schedules over training,
    #: e.g. a strength that ramps in (``augmentation:glyph-warp``); the trainer passes it only then
    takes_epoch: ClassVar[bool] = False
    #: ``apply`` takes ``generator=`` and draws from it alone (thread-safe; see the class docstring)
    draws_from_generator: ClassVar[bool] = False

    @abc.abstractmethod
    def apply(self, images: "torch.Tensor", labels: "torch.Tensor", num_classes: int) -> "tuple[torch.Tensor, torch.Tensor]":
        """Map ``float32 B×C×H×W`` images in [0,1] and labels (``int64 B``, or soft ``float32 B×K``)
        to augmented images of the same shape, dtype and range, and their labels (image level: the
        labels unchanged; batch level: soft ``float32 B×K``)."""


class Model(Component):
    """A classifier factory (``model:*``)."""

    @abc.abstractmethod
    def build(self, image_shape: tuple[int, int, int], num_classes: int) -> "torch.nn.Module":
        """Return a :class:`dreamset.contracts.nn.Classifier` taking ``float32 N×C×H×W`` images in [0,1]
        (normalisation inside) and returning logits ``N×num_classes``."""


class Attacker(Component):
    """An adversarial attack (``attacker:*``): inputs in [0,1], output in [0,1] within the
    threat model. Restores the model's exact train/eval state; takes the device from ``x``.

    ``takes_mask = True`` declares that ``attack`` accepts a ``mask`` keyword (``float32 N×1×H×W``
    or ``N×C×H×W`` in [0,1], 1 = may be perturbed): the trainer's objective then hands it a
    compositing mixer's context mask (``attacker:masked-pgd``). The conformance suite checks that
    the declaration matches ``attack``'s signature."""

    takes_mask: ClassVar[bool] = False
    #: one gradient computation per call (FGSM, FGSM-RS, N-FGSM): as a training attacker, the trainer
    #: watches it for catastrophic overfitting (Wong et al. 2020; :mod:`dreamset.training.curves`)
    single_step: ClassVar[bool] = False

    @abc.abstractmethod
    def attack(self, model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        """Return ``x_adv``: same shape and dtype as ``x`` (float32 N×C×H×W in [0,1])."""

    @property
    def eps(self) -> float | None:
        return getattr(self.options, "eps", None)


class Objective(Component):
    """A training objective (``objective:*``): the loss one optimizer step minimises, given the
    model, a batch and (for adversarial objectives) the training attacker. The trainer knows no
    objective by name; it calls :meth:`loss` once per optimizer step and back-propagates the result.

    ``uses_attacker = True`` (the default) declares that :meth:`loss` needs ``train.attacker``;
    ``objective:standard`` sets it to ``False`` and is then called with ``attacker=None``.
    ``soft_labels = True`` (the default) declares that :meth:`loss` also takes soft labels
    (``float32 B×K`` rows summing to 1, what batch augmentations such as CutMix/MixUp make); an
    objective that needs hard labels sets it to ``False`` and a recipe pairing it with
    ``augment.batch`` is refused when validated."""

    uses_attacker: ClassVar[bool] = True
    soft_labels: ClassVar[bool] = True

    @abc.abstractmethod
    def loss(self, model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor", *,
             attacker: "Attacker | None" = None, mask: "torch.Tensor | None" = None,
             label_smoothing: float = 0.0) -> "torch.Tensor":
        """The scalar loss (``float32``, 0-dim, differentiable w.r.t. the model's parameters) of
        the batch ``x`` (``float32 B×C×H×W`` in [0,1]), ``y`` (``int64 B``). ``model`` is in train
        mode and must be left in the mode it came in; ``mask`` is the batch's context mask (or
        ``None``), to be passed on with :meth:`perturb`; ``label_smoothing`` applies to the
        cross-entropy on the labels (``train.label_smoothing``). Random draws (attack starts) come
        from torch's global generator, which the trainer seeds per epoch."""

    @staticmethod
    def perturb(attacker: "Attacker", model, x, y, mask=None) -> "torch.Tensor":
        """``attacker.attack(model, x, y)``, with ``mask=mask`` when there is a mask and the
        attacker declares ``takes_mask``."""
        if mask is not None and getattr(attacker, "takes_mask", False):
            return attacker.attack(model, x, y, mask=mask)
        return attacker.attack(model, x, y)


class Metric(Component):
    """A metric (``metric:*``). It declares its :attr:`scope`, and the pipeline calls
    :meth:`compute` with that scope's typed inputs (:mod:`dreamset.contracts.inputs`):

    * ``"source"`` — :class:`~dreamset.contracts.inputs.DistributionInputs` of one synthetic source (FID, KID,
      PRDC, ARC, label agreement): in a recipe with named sources it runs once per source
      (``inputs.source_name`` names it) and reports ``metrics.<metric>.<source>``;
    * ``"synthetic"`` — :class:`~dreamset.contracts.inputs.DistributionInputs` of every source as one set;
    * ``"arms"`` — :class:`~dreamset.contracts.inputs.ArmInputs`: the trained arms and their results."""

    scope: ClassVar[str | None] = None
    #: the 0.1 form of ``scope = "source"`` (a metric whose ``compute`` takes ``context``)
    per_source: bool = False
    #: the values every reader shows (run page, terminal, claims blocks, generator table, ``dreamset
    #: evaluate``): :class:`dreamset.contracts.headline.Headline` entries. Empty: the numeric results
    #: are shown generically under "other metrics".
    headline: ClassVar[tuple[Headline, ...]] = ()

    @classmethod
    def headline_notes(cls, result: dict[str, Any]) -> dict[str, str]:
        """Headline key -> the text shown *instead of* its number in this ``result`` (for example
        ARC's "collapsed (lower bound)"). Default: none."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's ``compute(inputs)`` also accepts a 0.1 caller's run context (until 0.3)."""
        super().__init_subclass__(**kwargs)
        compute = cls.__dict__.get("compute")
        if compute is not None and not takes_context(compute):
            cls.compute = typed_compute(compute)

    @abc.abstractmethod
    def compute(self, inputs: "DistributionInputs | ArmInputs") -> dict[str, Any]:
        """Return a JSON-serialisable dict; it lands in ``report.json`` under ``metrics``."""


class Extractor(Component):
    """A feature extractor (``extractor:*``): a network mapping images to feature vectors for the
    distribution metrics (FID, KID, PRDC, memorization, Vendi).

    :meth:`embed` takes ``float32 B×C×H×W`` images in [0,1] (``C`` = 1 or 3) and returns features
    ``float32 B×D`` on the CPU; it resizes and normalises inside, as :attr:`preprocessing` says.
    :meth:`prepare` builds the network once (weights from a local file, never downloaded)."""

    def prepare(self, services: "Services | None") -> None:
        """Build the network (called once before the first :meth:`embed`) on ``services.device``
        (:class:`dreamset.contracts.inputs.Services`; ``None``: CPU). Default: nothing."""

    @abc.abstractmethod
    def embed(self, images: "torch.Tensor") -> "torch.Tensor":
        """Features ``float32 B×D`` (CPU) of ``images`` (``float32 B×C×H×W`` in [0,1])."""

    @property
    def preprocessing(self) -> dict[str, Any]:
        """JSON description of the input pipeline (resize mode and size, value range) — reported
        beside every number and part of the reference-statistics cache key."""
        return {}

    def cache_identity(self) -> dict[str, Any] | None:
        """What makes two instances produce the same features (key, options, weights file
        identity); ``None`` = features depend on the run (not cacheable across runs)."""
        return None


class Tracker(Component):
    """An experiment tracker (``tracker:*``): sends a run's numbers to TensorBoard, MLflow, W&B, ...

    This base class owns the hook skeleton every tracker shares. For the length of a run the pipeline
    (:mod:`dreamset.orchestration.tracking`, rank 0 only) creates the trackers of ``report.trackers``, checks
    :attr:`requires`, calls :meth:`start`, registers each instance with the plugin manager so its
    ``after_epoch`` and ``log_metrics`` hook implementations below receive the run's numbers, and
    calls :meth:`close` at the end (also when the run fails). A tracker implements :meth:`log`
    and, as needed, :meth:`start`, :meth:`log_files`, :meth:`metric_name` and :meth:`close`:

    * ``after_epoch`` -> ``log({"<arm>/seed<s>/<name>": value}, step)`` with ``step`` = optimizer
      steps so far, for ``loss``, ``train_accuracy``, ``lr``, ``val_clean_accuracy``, ``val_robust_accuracy``;
    * ``log_metrics`` -> ``log({"final/<arm>/clean_accuracy": ..., "final/metrics/<m>/<key>": ...}, 0)``
      then ``log_files([recipe.json, report.json, report.html])`` (those that exist).

    Values handed to :meth:`log` are finite Python floats (NaN, booleans and non-numbers are
    dropped), names pass through :meth:`metric_name`."""

    #: ``(import name, install command)`` of every package the tracker needs; a missing one is a
    #: :class:`dreamset.BadInputError` naming the tracker and the command, before the run starts
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    def check_requirements(self, field_path: str = "report.trackers") -> None:
        """Import every package of :attr:`requires`; raise a one-line BadInputError if one is missing."""
        import importlib

        for module, command in self.requires:
            try:
                importlib.import_module(module)
            except ImportError:
                raise BadInputError(f"{field_path}: {self.key} needs the {module} package, which is not "
                                    f"installed ({command})") from None

    def start(self, run_dir: Path, name: str, params: dict[str, Any]) -> None:
        """Open the tracker's run for the dreamset run in ``run_dir`` named ``name`` (the recipe's
        name); ``params`` is the resolved recipe flattened to ``{"train.epochs": 20, ...}``. Default:
        nothing."""

    @abc.abstractmethod
    def log(self, metrics: dict[str, float], step: int) -> None:
        """Log the scalars ``metrics`` (names already through :meth:`metric_name`) at ``step``."""

    def log_files(self, paths: "list[Path]") -> None:
        """Keep the run's files (``recipe.json``, ``report.json``, ``report.html``) with the
        tracker's run, once, after the final numbers. Default: nothing."""

    def metric_name(self, name: str) -> str:
        """The tracker's spelling of a ``/``-separated name (default: unchanged)."""
        return name

    def close(self, failed: bool = False) -> None:
        """End the tracker's run (``failed``: the dreamset run raised). Called once per run."""

    def scalars(self, metrics: dict[str, Any], prefix: str) -> dict[str, float]:
        """``{metric_name(prefix + name): float(value)}`` for the finite numbers of ``metrics``."""
        import math

        return {self.metric_name(f"{prefix}{name}"): float(value) for name, value in metrics.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}

    # -- the hook skeleton (active while the pipeline has the tracker registered) ----------------
    @hookimpl(specname="after_epoch")
    def after_epoch_hook(self, arm, seed, epoch, metrics):
        numbers = {k: v for k, v in metrics.items() if k not in ("epoch", "step")}
        values = self.scalars(numbers, f"{arm}/seed{seed}/")
        if values:
            self.log(values, int(metrics.get("step", epoch)))

    @hookimpl(specname="log_metrics")
    def log_metrics_hook(self, run_dir, metrics, step):
        values = self.scalars(metrics, "final/")
        if values:
            self.log(values, int(step or 0))
        names = ("recipe.json", "report.json", "report.html")
        self.log_files([Path(run_dir) / n for n in names if (Path(run_dir) / n).is_file()])

    # the 0.1 direct calls, with the run context (until 0.3)
    def after_epoch(self, context, arm, seed, epoch, metrics):
        self.after_epoch_hook(arm, seed, epoch, metrics)

    def log_metrics(self, context, metrics, step):
        self.log_metrics_hook(context.run_dir, metrics, step)


#: kind -> interface class (derived from the kinds table, :data:`dreamset.contracts.kinds.KINDS`)
KIND_INTERFACES: dict[str, type[Component]] = {kind.name: globals()[kind.interface] for kind in KINDS}
