"""Training augmentation: how the trainer applies ``augmentation:*`` components, deterministically.

A recipe gives augmentations per data source and per batch (``train.augment`` for every arm, an
arm's own ``augment`` instead of it)::

    augment:
      real: [{key: random-crop, options: {padding: 4}}, horizontal-flip]   # each real image
      synthetic: [horizontal-flip]                                         # each synthetic image
      batch: [cutmix]                                                      # the mixed batch

* **Per source** (``level = "image"``): the real and the synthetic :class:`~dreamset.contracts.interfaces.ImageSource`
  are wrapped (:class:`AugmentedSource`) so that every image the mixer reads is transformed on its
  own, before mixing — the papers augment real images and not always generated ones (Gowal et al.
  2021, arXiv:2110.09468; Wang et al. 2023, arXiv:2302.04638).
* **Per batch** (``level = "batch"``, CutMix/MixUp, Rebuffi et al. 2021, arXiv:2103.01946): applied
  to the mixer's whole batch; the labels become soft (``float32 B×K``). Several batch augmentations
  mean *one of them, chosen at random per batch* (torchvision's reference recipe:
  ``RandomChoice([CutMix, MixUp])``).
* **Determinism**: every draw comes from torch's default generator, forked and seeded from
  ``(seed, epoch, step, source)`` (:func:`augmentation_seed`) and restored afterwards, so the rest
  of training (dropout, attack starts) sees the same random stream as without augmentation, and a
  run resumed after epoch ``e`` sees exactly the augmentations of an uninterrupted one.

The components themselves are torchvision ``transforms.v2`` objects (their bases,
``TorchvisionImageAugmentation`` and ``TorchvisionBatchAugmentation``, are in
:mod:`dreamset.toolkit.augmenting`; the plugins in ``dreamset.plugins.augmentations`` name them); the
trainer knows none of them by name. Images stay ``float32 N×C×H×W`` in [0,1]; a component that
declares ``uint8 = True`` (the AutoAugment family, AugMix) gets ``uint8`` images, as torchvision's
reference recipes feed them, and its output is converted back.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Augmentation, ImageSource
from dreamset.contracts.lazy import lazy_module
from dreamset.orchestration.guards import calling

torch = lazy_module("torch")  # plugins import this module at discovery: no torch until used

SOURCE_TAGS = {"real": 1, "synthetic": 2, "batch": 3}


def augmentation_seed(seed: int, epoch: int, step: int, source: str) -> int:
    """The seed of the augmentation draws of ``source`` (``real``/``synthetic``/``batch``) at read
    ``step`` of ``epoch`` of a run seeded ``seed``."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919_000 + int(step) * 104_729 + SOURCE_TAGS[source] * 31 + 5) % (2**63)


@contextlib.contextmanager
def seeded(seed: int):
    """Torch's CPU default generator seeded with ``seed`` inside, restored on exit."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class AugmentationPlan:
    """One arm's augmentations, created from the recipe: per source and per batch."""

    real: list[Augmentation] = field(default_factory=list)
    synthetic: list[Augmentation] = field(default_factory=list)
    batch: list[Augmentation] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.real or self.synthetic or self.batch)

    def describe(self) -> dict[str, Any]:
        """What report.json records for the arm (every component's key and resolved options)."""
        return {name: [a.describe() for a in getattr(self, name)] for name in ("real", "synthetic", "batch")}

    @property
    def per_source_thread_safe(self) -> bool:
        """Whether the per-source augmentations may run on the prefetch thread (:func:`thread_safe`)."""
        return thread_safe(self.real + self.synthetic)

    def sources(self, real, synthetic, seed: int, epoch: int):
        """``(real, synthetic)`` for one epoch, each wrapped when it has augmentations."""
        wrap = lambda source, augs, tag: AugmentedSource(source, augs, seed, epoch, tag) if source is not None and augs else source  # noqa: E731
        return wrap(real, self.real, "real"), wrap(synthetic, self.synthetic, "synthetic")

    def mix(self, images, labels, num_classes: int, seed: int, epoch: int, step: int):
        """The batch augmentation of step ``step`` (one of :attr:`batch`, chosen at random)."""
        if not self.batch:
            return images, labels
        with seeded(augmentation_seed(seed, epoch, step, "batch")):
            chosen = self.batch[int(torch.randint(len(self.batch), ())) if len(self.batch) > 1 else 0]
            with calling(chosen, "apply"):  # a failure names the augmentation (dreamset.orchestration.guards)
                return chosen.apply(images, labels, num_classes)


def augmentation_plan(context, spec, field_path: str) -> AugmentationPlan:
    """Create the components of a recipe ``augment`` block (``None`` = no augmentation); an
    image-level augmentation listed under ``batch`` (or the reverse) is refused, naming the field."""
    plan = AugmentationPlan()
    if spec is None:
        return plan
    for name in ("real", "synthetic", "batch"):
        for i, ref in enumerate(getattr(spec, name)):
            path = f"{field_path}.{name}.{i}"
            component = context.registry.create(ref.key, kind="augmentation", field_path=f"{path}.options", **ref.options)
            wanted = "batch" if name == "batch" else "image"
            if component.level != wanted:
                where = "augment.batch" if component.level == "batch" else "augment.real / augment.synthetic"
                raise BadInputError(f"{path}: {component.key} is a {component.level}-level augmentation; list it under {where}")
            getattr(plan, name).append(component)
    return plan


def arm_augmentation_plan(context, arm_name: str, arm) -> AugmentationPlan:
    """The augmentations arm ``arm_name`` trains with: its own ``augment`` block, else ``train.augment``."""
    if arm.augment is not None:
        return augmentation_plan(context, arm.augment, f"arms.{arm_name}.augment")
    return augmentation_plan(context, context.recipe.train.augment, "train.augment")


class AugmentedSource(ImageSource):
    """``source`` whose ``get`` returns its images augmented: read ``k`` of the epoch draws its
    randomness from :func:`augmentation_seed` ``(seed, epoch, k, tag)``. A new one is made every
    epoch, so the draws depend on ``(seed, epoch)`` and the mixer's (deterministic) reads only."""

    def __init__(self, source: ImageSource, augmentations: Sequence[Augmentation], seed: int, epoch: int, tag: str) -> None:
        self.source, self.augmentations = source, list(augmentations)
        self.seed, self.epoch, self.tag = seed, epoch, tag
        self.class_names = source.class_names
        self.reads = 0

    def __len__(self) -> int:
        return len(self.source)

    @property
    def image_shape(self):
        return self.source.image_shape

    @property
    def labels(self):
        return self.source.labels

    def __getattr__(self, name):  # anything else a mixer reads (e.g. a store's masks) comes from the source
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)

    def get(self, indices):
        images, labels = self.source.get(indices)
        seed = augmentation_seed(self.seed, self.epoch, self.reads, self.tag)
        if thread_safe(self.augmentations):  # the same draws, from a generator of their own
            draws, given = contextlib.nullcontext(), {"generator": torch.Generator().manual_seed(seed)}
        else:  # from torch's default generator
            draws, given = seeded(seed), {}
        with draws:
            for augmentation in self.augmentations:
                with calling(augmentation, "apply"):
                    images, labels = augmentation.apply(images, labels, len(self.class_names), **given,
                                                        **self._epoch(augmentation))
        self.reads += 1
        return images, labels

    def _epoch(self, augmentation) -> dict:
        """``{"epoch": E}`` for an augmentation that declares ``takes_epoch`` (a schedule), else nothing."""
        return {"epoch": self.epoch} if getattr(augmentation, "takes_epoch", False) else {}


def thread_safe(augmentations: Sequence[Augmentation]) -> bool:
    """Whether every one of ``augmentations`` draws from a generator it is given
    (``draws_from_generator``): then they never touch torch's default generator, and may run on the
    trainer's prefetch thread while the training step draws from it. A ``torch.Generator`` seeded
    with ``s`` draws what the default generator seeded with ``s`` would, so the images are the same
    either way."""
    return all(getattr(a, "draws_from_generator", False) for a in augmentations)

