"""Hook specifications: one registration hook per component kind, plus two lifecycle hooks.

The registration hooks are derived from the kinds table (:data:`dreamset.contracts.kinds.KINDS`): one
``register_<kind>s(register)`` per kind — ``register_datasets``, ``register_shifts``,
``register_generators``, ``register_samplers``, ``register_mixers``, ``register_models``,
``register_augmentations``, ``register_attackers``, ``register_objectives``, ``register_metrics``,
``register_extractors``, ``register_trackers``.

A component is normally declared once, on its class, and never meets these hooks by name::

    @dreamset.register(description="...")      # dreamset.contracts.declarations: the module gets the hook
    class PGDAttacker(Attacker):
        key = "attacker:pgd"

The hooks themselves are the contract underneath (and the form third-party plugins written against
it keep using). Every registration hook receives a ``register`` callback, in one of two forms::

    register(ComponentClass, *, description="", aliases=())      # the key is ComponentClass.key
    register(name, factory, *, description="", aliases=())       # the key is "<kind>:<name>"

In the first form the key is written once, as the class attribute ``key = "attacker:pgd"``, and the
module that holds the hook implementation is the component's own file (already imported by
discovery, so nothing more is imported); ``@dreamset.register`` generates exactly this call. In the
second form ``factory`` is a ``"module:Object"`` string, imported only when the component is
created, or the object itself. Either way the object is a subclass of the kind's interface whose
``Options`` model validates the recipe's options. A missing description defaults to the first line
of the class docstring.

When they run: once, when the registry is first used (``dreamset.registry.get_registry()``), for
every loaded plugin, in pluggy's call order — ``tryfirst`` implementations first, ``trylast`` last,
otherwise built-ins before third-party plugins. The first registration of a key wins; a later one
is reported as a duplicate of that plugin and skipped (so ``tryfirst=True`` lets a plugin take a key
from a built-in). Return value: ignored. Hook wrappers (``wrapper=True`` / ``hookwrapper=True``) are
refused with an error on the plugin: a registration hook has nothing to wrap.
"""
from __future__ import annotations

from dreamset import hookspec
from dreamset.contracts.kinds import KIND_HOOKS, KINDS

__all__ = ["KIND_HOOKS", "before_stage", "after_stage", "after_epoch", "log_metrics", *KIND_HOOKS.values()]


def _registration_hookspec(kind):
    def spec(register):
        pass

    spec.__name__ = spec.__qualname__ = kind.hook
    spec.__doc__ = (
        f"Register {kind.summary} (``{kind.name}:*``).\n\n"
        f"``register`` takes a :class:`dreamset.contracts.interfaces.{kind.interface}` subclass (key = its ``key``\n"
        f"attribute) or ``(name, factory)``. Recipe fields: {', '.join(kind.recipe_fields)}. Contract:\n"
        f"{kind.doc}. Runs once, when the registry is built; the return value is ignored."
    )
    return hookspec(spec)


for _kind in KINDS:
    globals()[_kind.hook] = _registration_hookspec(_kind)
del _kind


#: ``context`` (every lifecycle hook below): the 0.1 run context, still passed for implementations
#: written against it, one release long (a DeprecationWarning names them, docs/migration.md); take
#: the named arguments instead.


@hookspec
def before_stage(stage, run_dir, context):
    """Called by the pipeline before each stage (``data``, ``generate``, ``generate-eval``, ``select``,
    ``train``, ``evaluate``, ``metrics``, ``report``) with the run folder. Return value ignored;
    exceptions abort the run."""


@hookspec
def after_stage(stage, run_dir, seconds, context):
    """Called by the pipeline after each stage finishes, with its wall-clock duration in seconds.
    Return value ignored."""


@hookspec
def after_epoch(arm, seed, epoch, metrics, context):
    """Called by the trainer after each epoch of an arm's training (rank 0 only), with the arm's
    name, the seed, the 0-based epoch and ``metrics``: a flat ``{name: float}`` with ``loss``,
    ``train_accuracy`` (on the batches trained on, adversarial where the objective is), ``lr``,
    ``step`` (optimizer steps so far) and, every ``report.curve_every`` epochs, ``val_clean_accuracy``
    and ``val_robust_accuracy`` on the fixed validation subset. Experiment trackers
    (``tracker:*``) receive it through :class:`dreamset.contracts.interfaces.Tracker`'s implementation, which
    is registered for the length of their run. Not called for epochs restored from a checkpoint.
    Return value ignored."""


@hookspec
def log_metrics(run_dir, metrics, step, context):
    """Called once at the end of a run (after ``report.json`` is written in ``run_dir``) with the headline numbers
    as a flat ``{name: float}`` (``<arm>/clean_accuracy``, ``<arm>/robust_accuracy``,
    ``metrics/<metric>/<key>``) and ``step=None``. Experiment trackers log them (and the run's
    files); the pipeline closes them afterwards. Return value ignored."""
