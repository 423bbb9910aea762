"""Calling a component through its contract, with the adapter for plugins written against the 0.1
contracts, which took the run context (a parameter named ``context``) instead of named inputs.

An old-form method still runs, one release long (until 0.3), with a :class:`DeprecationWarning`
naming the component and the new form (docs/migration.md):

========================  ======================================  ===============================================
contract                  0.1 form (still accepted)               now
========================  ======================================  ===============================================
``Metric.compute``        ``compute(context)``                    ``compute(inputs)``: ``DistributionInputs`` or
                                                                  ``ArmInputs`` as ``Metric.scope`` says
``Sampler.select``        ``select(synthetic, real, context,      ``select(synthetic, real, services, seed)``
                          seed)``
``Generator.fit``         ``fit(real, workdir, context)``         ``fit(real, workdir, services)``
``Extractor.prepare``     ``prepare(context)``                    ``prepare(services)``
tracker/lifecycle hooks   ``context`` argument                    ``run_dir`` (``log_metrics``), nothing else
========================  ======================================  ===============================================

An old metric or sampler receives the old run context (:class:`dreamset.orchestration.context.RunContext`, built
for the call); an old generator or extractor receives the :class:`~dreamset.contracts.inputs.Services`,
which carry what those read from the context (``device``, ``registry``, ``run_dir``,
``reference``, ``progress``).
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

#: the release that drops the 0.1 forms
REMOVED_IN = "0.3"


def takes_context(method: Callable[..., Any]) -> bool:
    """Whether ``method`` is written against the 0.1 contract (it has a parameter named ``context``)."""
    try:
        return "context" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def warn_old_form(component: Any, old: str, new: str) -> None:
    """The :class:`DeprecationWarning` of a component called through its 0.1 form."""
    name = getattr(component, "key", "") or type(component).__name__
    warnings.warn(f"{name}: {old} is the dreamset 0.1 contract, removed in {REMOVED_IN}; write {new} "
                  "(docs/migration.md)", DeprecationWarning, stacklevel=3)


#: the lifecycle hooks whose ``context`` argument is the 0.1 form
LIFECYCLE_HOOKS = ("before_stage", "after_stage", "after_epoch", "log_metrics")


def warn_context_hookimpls(hook) -> None:
    """Warn about every lifecycle hook implementation that takes ``context`` (the 0.1 form)."""
    for name in LIFECYCLE_HOOKS:
        for impl in getattr(hook, name).get_hookimpls():
            if "context" in impl.argnames:
                warn_old_form(impl.plugin, f"the {name} hook taking context", f"{name} with its named arguments")


def services_of(context) -> Any:
    """The :class:`~dreamset.contracts.inputs.Services` an old run context (or a stand-in, or ``None``) holds."""
    from dreamset.contracts.inputs import Services

    if context is None or isinstance(context, Services):
        return context if context is not None else Services()
    return Services(device=getattr(context, "device", None), registry=getattr(context, "registry", None),
                    run_dir=getattr(context, "run_dir", None), reference=getattr(context, "reference", None),
                    console=getattr(context, "console", None), fresh=bool(getattr(context, "fresh", False)),
                    bars=getattr(context, "progress", None))


def inputs_from_context(context, scope: str | None) -> Any:
    """The typed inputs of ``scope`` that an old run context (or ``None``) describes: what a metric of
    the new contract receives when a 0.1 caller hands it the context (``metric.compute(context)``)."""
    from dreamset.contracts.inputs import ArmInputs, DistributionInputs, RealData

    real = RealData(getattr(context, "real_train", None), getattr(context, "real_test", None),
                    getattr(context, "shifted", None) or {}, getattr(context, "evaluation_subset", None))
    services = services_of(context)
    if scope == "arms":
        recipe = getattr(context, "recipe", None)
        synthetic = getattr(context, "synthetic", None)
        kept = ({name: synthetic for name, arm in recipe.arms.items() if arm.synthetic is not False}
                if recipe is not None and synthetic is not None else {})  # a 0.1 context: one synthetic set for every arm
        return ArmInputs(real, getattr(context, "models", None) or {}, getattr(context, "arm_results", None) or {},
                         getattr(context, "seed", 0), recipe.arms if recipe is not None else {},
                         recipe.train if recipe is not None else None, services, kept)
    return DistributionInputs(real, getattr(context, "synthetic", None), getattr(context, "source_name", None), services)


def typed_compute(compute: Callable[..., Any]) -> Callable[..., Any]:
    """``Metric.compute(inputs)`` that also takes what a 0.1 caller passes (the run context, or
    ``None``), turned into the metric's inputs (:func:`inputs_from_context`) with the warning."""
    import functools

    from dreamset.contracts.inputs import ArmInputs, DistributionInputs

    @functools.wraps(compute)
    def wrapper(self, inputs):
        if not isinstance(inputs, (DistributionInputs, ArmInputs)):
            if inputs is not None:
                warn_old_form(self, "calling compute(context)", "compute(inputs) with DistributionInputs or ArmInputs")
            inputs = inputs_from_context(inputs, self.scope)
        return compute(self, inputs)
    return wrapper


def call_fit(generator, real, workdir, services) -> None:
    """``generator.fit(real, workdir, services)``."""
    if takes_context(generator.fit):
        warn_old_form(generator, "fit(real, workdir, context)", "fit(real, workdir, services)")
    return generator.fit(real, workdir, services)


def call_prepare(extractor, services) -> None:
    """``extractor.prepare(services)``."""
    if takes_context(extractor.prepare):
        warn_old_form(extractor, "prepare(context)", "prepare(services)")
    return extractor.prepare(services)


def call_select(sampler, synthetic, real, seed: int, services, context: Callable[[], Any]):
    """``sampler.select(synthetic, real, services, seed)``; ``context()`` makes the old run context
    for a 0.1 sampler."""
    if takes_context(sampler.select):
        warn_old_form(sampler, "select(synthetic, real, context, seed)", "select(synthetic, real, services, seed)")
        return sampler.select(synthetic, real, context(), seed)
    return sampler.select(synthetic, real, services, seed)


def metric_takes_context(metric) -> bool:
    """Whether ``metric`` is a 0.1 metric (``compute(context)``; then with the warning)."""
    if takes_context(metric.compute):
        warn_old_form(metric, "compute(context)", "compute(inputs) with a declared scope")
        return True
    return False
