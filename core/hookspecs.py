"""Hook specifications: one registration hook per component kind, plus two lifecycle hooks.

Every registration hook receives a ``register`` callback::

    register(name, factory, *, description="", aliases=())

``name`` is the part after the colon of the registry key (``register_attackers`` registering
``"pgd"`` creates ``attacker:pgd``). ``factory`` is a ``"module:Object"`` string (preferred: it is
imported only when the component is created, so discovery never imports torch) or the object
itself. The object is a :class:`dreamset.interfaces.Component` subclass whose ``Options`` model
validates the recipe's options. The host, not the plugin, handles duplicates: a key registered
twice is reported and the second registration skipped.

Registration hooks run once, when the registry is first used. Their return value is ignored.
"""
from __future__ import annotations

from dreamset import hookspec


@hookspec
def register_datasets(register):
    """Register real datasets (``dataset:*``): labelled images for training and evaluation."""


@hookspec
def register_shifts(register):
    """Register distribution shifts (``shift:*``): deterministic transforms of an evaluation set."""


@hookspec
def register_generators(register):
    """Register generators (``generator:*``): models that produce labelled synthetic images."""


@hookspec
def register_samplers(register):
    """Register samplers (``sampler:*``): choose which synthetic samples a training arm uses."""


@hookspec
def register_mixers(register):
    """Register mixers (``mixer:*``): turn real + selected synthetic data into training batches."""


@hookspec
def register_models(register):
    """Register classifiers (``model:*``): factories of ``torch.nn.Module`` taking [0,1] images."""


@hookspec
def register_augmentations(register):
    """Register training augmentations (``augmentation:*``): per-image transforms of a source or
    batch-level mixes (CutMix/MixUp) with soft labels."""


@hookspec
def register_attackers(register):
    """Register attackers (``attacker:*``): ``attack(model, x, y) -> x_adv`` for training/evaluation."""


@hookspec
def register_metrics(register):
    """Register metrics (``metric:*``): ``compute(context) -> JSON-serialisable result``."""


@hookspec
def before_stage(stage, context):
    """Called by the pipeline before each stage (``data``, ``generate``, ``select``, ``train``,
    ``evaluate``, ``report``) with the run context. Return value ignored; exceptions abort the run."""


@hookspec
def after_stage(stage, context, seconds):
    """Called by the pipeline after each stage finishes, with its wall-clock duration in seconds.
    Return value ignored."""


#: component kind -> registration hook name. The single source of truth for the kinds.
KIND_HOOKS = {
    "dataset": "register_datasets",
    "shift": "register_shifts",
    "generator": "register_generators",
    "sampler": "register_samplers",
    "mixer": "register_mixers",
    "model": "register_models",
    "augmentation": "register_augmentations",
    "attacker": "register_attackers",
    "metric": "register_metrics",
}
