"""The pipeline, top to bottom:

    real data -> generator -> synthetic store -> sampler -> mixer -> trainer (+ attacker)
              -> evaluator (metrics) -> report

:func:`run_recipe` is that line. Every stage is timed, announced to plugins through the
``before_stage``/``after_stage`` hooks, and resumable: re-running into the same folder reuses the
generator checkpoint, the complete shards of the store and finished training checkpoints.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from dreamset.contracts.data import TensorImageSet, materialize
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Selection
from dreamset.files.atomic import atomic_write_bytes
from dreamset.files.verify import check_disk_space
from dreamset.orchestration import distributed
from dreamset.orchestration.context import RunContext, resolve_device
from dreamset.orchestration.recipe import ComponentRef, Recipe, arm_folder
from dreamset.orchestration.runlog import final_scalars, log, metric_summary, plugin_versions

#: mixer used when an arm names none: all real, all synthetic, or half and half
DEFAULT_MIXER = "mixer:ratio"


def _create(context: RunContext, ref: ComponentRef, kind: str, path: str):
    return context.registry.create(ref.key, kind=kind, field_path=f"{path}.options", **ref.options)


@contextlib.contextmanager
def _stage(context: RunContext, name: str, timings: dict[str, float]):
    import dreamset.registry as registry_module

    from dreamset.orchestration.runlog import stage_result

    hook = registry_module.plugin_manager().hook  # the lifecycle hooks of the loaded plugins
    hook.before_stage(stage=name, context=context)
    log.info("%s ...", name)
    start = time.perf_counter()
    with distributed.stage(name):
        yield
    seconds = time.perf_counter() - start
    timings[name] = timings.get(name, 0.0) + seconds
    result = stage_result(name, context)
    context.stage_results.setdefault(name, []).append(result)
    log.info("%s done in %.1fs: %s", name, seconds, result)
    hook.after_stage(stage=name, context=context, seconds=seconds)


@contextlib.contextmanager
def run_folder_lock(run_dir: Path):
    """Refuse a second run into the same folder; see :func:`dreamset.orchestration.runfolder.run_folder`."""
    from dreamset.orchestration.runfolder import run_folder

    with run_folder(run_dir):
        yield


def _new_context(recipe: Recipe, run_dir: Path, console: Console | None, fresh: bool = False) -> RunContext:
    import dreamset.registry as registry_module

    return RunContext(recipe=recipe, run_dir=run_dir, registry=registry_module.get_registry(),
                      console=console or Console(), device=distributed.local_device(resolve_device(recipe.device)),
                      seed=recipe.seeds[0], fresh=fresh)


def _data_and_generate(context: RunContext, resolved: dict[str, Any], timings: dict[str, float]) -> None:
    """The first two stages, shared by ``dreamset run`` and ``dreamset generate``: record the recipe,
    load the real splits and their shifted copies, then fit the generator and fill the store."""
    recipe, run_dir = context.recipe, context.run_dir
    if distributed.is_main():  # under torchrun rank 0 owns the run folder's files
        atomic_write_bytes(run_dir / "recipe.json", json.dumps(resolved, indent=2, default=str).encode())
    with _stage(context, "data", timings):
        dataset = _create(context, recipe.data.dataset, "dataset", "data.dataset")
        context.real_train = dataset.load("train")
        context.real_test = dataset.load("test")
        test_x, test_y = materialize(context.real_test)
        for i, ref in enumerate(recipe.data.shifts):
            shift = _create(context, ref, "shift", f"data.shifts.{i}")
            shifted = shift.apply(test_x, seed=recipe.seeds[0] + i)
            context.shifted[shift.label] = TensorImageSet(shifted, test_y, context.real_test.class_names, name=shift.label)
        context.evaluation_subset = _evaluation_subset(context)
    if recipe.generate is not None:
        from dreamset.orchestration.sources import MixedSource, store_folders

        with _stage(context, "generate", timings):
            for name, (path, gen) in recipe.generate_stages().items():
                context.sources[name] = _generate(context, gen, *store_folders(run_dir, recipe, name), path)
            only = next(iter(context.sources.values())) if len(context.sources) == 1 else None
            context.synthetic = only if only is not None else MixedSource(context.sources)
    if recipe.evaluate.sets:
        from dreamset.orchestration.generated_sets import build_generated_sets

        with _stage(context, "generate-eval", timings):
            context.generated_sets, context.generated_provenance = build_generated_sets(context)


def _evaluation_subset(context: RunContext) -> np.ndarray | None:
    """The run's one evaluation subset (see :mod:`dreamset.orchestration.evaluation`), saved as
    ``evaluation_subset.json``; ``None`` when it is the whole test set."""
    from dreamset.orchestration.evaluation import stratified_subset

    settings = context.recipe.evaluate
    labels = context.real_test.labels
    rows = stratified_subset(labels, settings.robust_samples, settings.subset_seed)
    counts = np.bincount(labels.numpy()[rows], minlength=context.real_test.num_classes)
    record = {"n": int(len(rows)), "of": int(len(labels)), "seed": settings.subset_seed,
              "per_class": {name: int(c) for name, c in zip(context.real_test.class_names, counts)},
              "indices": rows.tolist()}
    atomic_write_bytes(context.run_dir / "evaluation_subset.json", json.dumps(record).encode())
    return None if len(rows) == len(labels) else rows


def generate_only(recipe: Recipe, resolved: dict[str, Any], run_dir: Path, console: Console | None = None):
    """``dreamset generate``: the data and generate stages of ``recipe`` into ``run_dir``; returns the
    synthetic store. A later ``dreamset run`` into the same folder reuses it."""
    context = _new_context(recipe, run_dir, console)
    with distributed.main_holds("the run folder lock", lambda: run_folder_lock(run_dir)):
        _data_and_generate(context, resolved, {})
    return context.synthetic


def run_recipe(recipe: Recipe, resolved: dict[str, Any], run_dir: Path, console: Console | None = None,
               fresh: bool = False) -> dict[str, Any]:
    """Execute ``recipe`` into ``run_dir`` and return the report dict (also written as report.json).
    ``fresh``: checkpoints made with other settings are moved aside and retrained (else refused)."""
    import dreamset.registry as registry_module
    from dreamset.orchestration.provenance import component_sources, selection_record

    from dreamset.orchestration.tracking import create_trackers, tracking

    context = _new_context(recipe, run_dir, console, fresh)
    timings: dict[str, float] = {}
    selections: dict[str, dict[str, Any]] = {}
    trackers = create_trackers(context)  # a tracker's missing package is refused before anything is written
    with distributed.main_holds("the run folder lock", lambda: run_folder_lock(run_dir)), tracking(context, trackers):
        _data_and_generate(context, resolved, timings)

        from dreamset.orchestration.sources import arm_synthetic

        for seed in recipe.seeds:
            context.seed = seed
            torch.manual_seed(seed)
            context.selections, context.models = {}, {}
            with _stage(context, "select", timings):
                for arm_name, arm in recipe.arms.items():
                    if arm.synthetic is not False:
                        context.selections[arm_name] = _select(context, arm_name, arm, seed)
                        selections.setdefault(arm_name, {})[str(seed)] = selection_record(
                            context.selections[arm_name], len(arm_synthetic(context, arm_name, arm)))
            records: dict[str, dict[str, Any]] = {}
            with _stage(context, "train", timings):
                inputs = {arm_name: _arm_inputs(context, arm_name, arm) for arm_name, arm in recipe.arms.items()}
                budgets = arm_budgets(recipe, {name: inp["steps_per_epoch"] for name, inp in inputs.items()})
                for arm_name, arm in recipe.arms.items():
                    records[arm_name] = {}
                    context.models[arm_name] = _train_arm(context, arm_name, arm, seed, inputs[arm_name],
                                                          budgets[arm_name], records[arm_name])
            with _stage(context, "evaluate", timings):
                from dreamset.orchestration.evaluation import evaluate_classifier
                from dreamset.orchestration.seeding import forked_rng

                attackers = [_create(context, ref, "attacker", f"evaluate.attackers.{i}")
                             for i, ref in enumerate(recipe.evaluate.attackers)]
                context.arm_results[seed] = {}
                with context.progress(f"evaluate (seed {seed})", len(context.models)) as advance:
                    for arm_name, model in context.models.items():
                        # attacks draw random starts: each arm's from the same seeded fork, so the result
                        # depends neither on the other arms nor on whether training ran or was reused
                        with forked_rng(context.device, seed):
                            result = evaluate_classifier(context, model, attackers)
                        context.arm_results[seed][arm_name] = {**result, "training": records[arm_name]}
                        advance(1)

        from dreamset.orchestration.sources import compute_metric

        metrics: dict[str, Any] = {}
        torch.manual_seed(recipe.seeds[0])  # likewise independent of what this process ran before
        with _stage(context, "metrics", timings), context.progress("metrics", len(recipe.evaluate.metrics)) as advance:
            for i, ref in enumerate(recipe.evaluate.metrics):
                metric = _create(context, ref, "metric", f"evaluate.metrics.{i}")
                started = time.perf_counter()
                metrics[metric_report_name(metric.key)] = compute_metric(context, metric)
                log.info("metric %s: %s (%.1fs)", metric.key, metric_summary(metrics[metric_report_name(metric.key)]),
                         time.perf_counter() - started)
                advance(1)

        from dreamset.orchestration.sources import named
        from dreamset.report.differences import compute_notes, pair_comparisons, paired_comparisons
        from dreamset.report.tables import metric_warnings, training_warnings

        arms = summarize_arms(context.arm_results)
        report = {
            "recipe": resolved,
            "arms": arms,
            "comparisons": paired_comparisons(context.arm_results, recipe.baseline_arm()),
            "pair_comparisons": pair_comparisons(context.arm_results, recipe.evaluate.pairs),
            "notes": compute_notes(arms),
            "warnings": training_warnings(context.arm_results) + metric_warnings(metrics, context.sources if named(recipe) else ()),
            "evaluation": {"subset_size": int(len(context.evaluation_subset) if context.evaluation_subset is not None
                                              else len(context.real_test)),
                           "test_size": len(context.real_test), "subset_seed": recipe.evaluate.subset_seed,
                           "subset_file": "evaluation_subset.json",
                           "indices": (context.evaluation_subset.tolist() if context.evaluation_subset is not None
                                       else list(range(len(context.real_test)))),
                           "robust_accuracy": "per-sample worst case over evaluate.attackers",
                           "attackers": [a.model_dump(mode="json") for a in recipe.evaluate.attackers],
                           "generated_sets": context.generated_provenance},
            "augmentation": context.augmentation,
            "metrics": metrics,
            "components": component_sources(recipe, context.registry, DEFAULT_MIXER),
            "selections": selections,
            "timings": timings,
            "seeds": list(recipe.seeds),
            "device": str(context.device),
            "threads": torch.get_num_threads(),  # results vary with it by float rounding (docs/recipes.md)
            "stages": context.stage_results,
            "versions": plugin_versions(context),
        }
        from dreamset.report.generator_table import add_generator_table
        from dreamset.report.writer import write_report, write_report_json

        add_generator_table(run_dir, recipe, report)

        if distributed.is_main():
            with _stage(context, "report", timings):
                write_report(run_dir, report, context)
            write_report_json(run_dir, report)  # again, now with the report stage's own time
            registry_module.plugin_manager().hook.log_metrics(context=context, metrics=final_scalars(report), step=None)
    return report


def metric_report_name(key: str) -> str:
    """``metric:effective-robustness`` -> ``effective_robustness`` (the key under ``report.json``'s
    ``metrics``, as ../shared/ARCHITECTURE.md names them)."""
    return key.split(":", 1)[1].replace("-", "_")


def _generate(context: RunContext, gen, store_dir: Path, generator_dir: Path, path: str = "generate"):
    """Fit one source's generator on the real training split, then fill (or resume) its store; the
    store is verified (sha256, cached) and must be complete unless ``allow_partial``."""
    from dreamset.files.verify import require_complete
    from dreamset.store.generation import generate_to_store
    from dreamset.store.npz import import_npz
    from dreamset.store.reader import SyntheticStore

    if gen.source is not None:
        source = Path(gen.source)
        if source.suffix == ".npz":
            import_npz(source, store_dir, class_names=context.real_train.class_names)  # resumes a cut-short import
            store = SyntheticStore.open(store_dir)
        elif not (source / "store.json").exists():
            raise BadInputError(f"{path}.source: {source} is neither a .npz file nor a dreamset store")
        else:
            store = SyntheticStore.open(source)
        require_complete(store, f"{path}.source", gen.allow_partial)
        return store
    generator = _create(context, gen.generator, "generator", f"{path}.generator")
    check_disk_space(store_dir, gen.count, generator.image_shape(context.real_train), field=f"{path}.count")
    torch.manual_seed(gen.seed)
    # rank 0 fits (or reloads) the generator; the other ranks then load its checkpoint
    distributed.main_first("fitting the generator", lambda: generator.fit(context.real_train, generator_dir, context))
    from dreamset.orchestration.closed_loop import first_segment

    rounds = {} if gen.closed_loop is None else first_segment(gen, len(context.real_train.class_names))
    generate_to_store(
        generator,
        store_dir,
        count=rounds.get("count", gen.count),
        plan=rounds.get("plan"),
        batch_size=gen.batch_size,
        shard_size=gen.shard_size,
        labels=gen.labels,
        seed=gen.seed,
        class_names=context.real_train.class_names,
        image_shape=generator.image_shape(context.real_train),
        context=context,
    )
    store = SyntheticStore.open(store_dir)  # verified: a shard altered since it was written is an error
    require_complete(store, path, gen.allow_partial)
    return store


def _select(context: RunContext, arm_name: str, arm, seed: int) -> Selection:
    """Run the arm's sampler (default: every synthetic sample of the arm's sources) and record its choice."""
    from dreamset.orchestration.sources import arm_synthetic

    pool = arm_synthetic(context, arm_name, arm)
    if arm.sampler is None:
        selection = Selection(indices=np.arange(len(pool), dtype=np.int64))
    else:
        sampler = _create(context, arm.sampler, "sampler", f"arms.{arm_name}.sampler")
        selection = sampler.select(pool, context.real_train, context, seed)
    folder = context.run_dir / "selections"
    folder.mkdir(exist_ok=True)
    import io

    buffer = io.BytesIO()
    arrays = {"indices": np.asarray(selection.indices, dtype=np.int64)}
    if selection.scores is not None:
        arrays["scores"] = np.asarray(selection.scores, dtype=np.float64)
    np.savez(buffer, **arrays)
    safe = arm_folder(arm_name)
    atomic_write_bytes(folder / f"{safe}-seed{seed}.npz", buffer.getvalue())
    return selection


def _arm_inputs(context: RunContext, arm_name: str, arm) -> dict[str, Any]:
    """The data and mixer an arm trains on, and how many optimizer steps one mixer epoch takes."""
    recipe = context.recipe
    real = context.real_train if arm.real else None
    synthetic = None
    if arm.synthetic is not False:
        from dreamset.orchestration.sources import arm_synthetic, check_selection

        synthetic = arm_synthetic(context, arm_name, arm).subset(context.selections[arm_name].indices)
        check_selection(arm_name, synthetic)
    if arm.mixer is not None:
        mixer = _create(context, arm.mixer, "mixer", f"arms.{arm_name}.mixer")
    else:
        fraction = 1.0 if synthetic is None else (0.0 if real is None else 0.5)
        mixer = context.registry.create(DEFAULT_MIXER, real_fraction=fraction)
    return {"real": real, "synthetic": synthetic, "mixer": mixer,
            "steps_per_epoch": mixer.steps_per_epoch(real, synthetic, recipe.train.batch_size)}


def arm_budgets(recipe: Recipe, steps_per_epoch: dict[str, int]) -> dict[str, int]:
    """Optimizer steps per arm from ``train.budget`` (and each arm's own ``budget``): ``matched``
    arms all get the largest ``steps_per_epoch × train.epochs`` among them, ``epochs`` arms their own
    ``steps_per_epoch × train.epochs``, a number is taken as it is."""
    own = {name: steps * recipe.train.epochs for name, steps in steps_per_epoch.items()}
    budget = {name: arm.budget if arm.budget is not None else recipe.train.budget for name, arm in recipe.arms.items()}
    matched = max((own[name] for name, b in budget.items() if b == "matched"), default=0)
    return {name: matched if b == "matched" else own[name] if b == "epochs" else int(b) for name, b in budget.items()}


def _train_arm(context: RunContext, arm_name: str, arm, seed: int, inputs: dict[str, Any], total_steps: int,
               record: dict[str, Any]) -> torch.nn.Module:
    from dreamset.training.trainer import train_classifier

    recipe = context.recipe
    from dreamset.orchestration.seeding import build_model

    model_factory = _create(context, recipe.train.model, "model", "train.model")
    model = build_model(model_factory, context.real_train.image_shape, context.real_train.num_classes,
                        seed=seed, purpose="classifier")
    attacker = None
    if recipe.train.attacker is not None and not arm.standard:
        attacker = _create(context, recipe.train.attacker, "attacker", "train.attacker")
    from dreamset.training.augmenting import arm_augmentation_plan

    augment = arm_augmentation_plan(context, arm_name, arm)
    context.augmentation[arm_name] = augment.describe()

    from dreamset.training.objectives import objective_for

    objective = objective_for(attacker, recipe.train, context.registry)
    safe = arm_folder(arm_name)
    from dreamset.orchestration.closed_loop import looped_source, train_in_rounds

    common = dict(mixer=inputs["mixer"], real=inputs["real"], attacker=attacker, settings=recipe.train, seed=seed,
                  checkpoint_dir=context.run_dir / "checkpoints" / f"{safe}-seed{seed}",
                  description=f"train {arm_name} (seed {seed})", total_steps=total_steps, record=record,
                  augment=augment, objective=objective, arm=arm_name)
    if looped_source(recipe, arm) is not None:  # generated in rounds steered by this classifier
        return train_in_rounds(context, model, trainer=train_classifier, arm_folder_name=safe, **common)
    return train_classifier(context, model, synthetic=inputs["synthetic"], **common)


def summarize_arms(per_seed: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per arm: the mean of every numeric result over seeds, ``<name>_std`` beside it, and
    ``per_seed`` with the raw results."""
    arms: dict[str, dict[str, Any]] = {}
    names = [name for results in per_seed.values() for name in results]
    for arm in dict.fromkeys(names):
        runs = {seed: results[arm] for seed, results in per_seed.items() if arm in results}
        arms[arm] = _mean_std(list(runs.values()))
        arms[arm]["per_seed"] = {str(seed): r for seed, r in runs.items()}
    return arms


def _mean_std(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric entry (recursively through dicts); ``<key>_std`` (sample std, 0 for one
    seed) beside it — for a dict of numbers, a dict of stds."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = float(statistics.fmean(values))
            out[f"{key}_std"] = float(statistics.stdev(values)) if len(values) > 1 else 0.0
        elif all(isinstance(v, dict) for v in values):
            nested = _mean_std(values)
            out[key] = {k: v for k, v in nested.items() if not k.endswith("_std")}
            out[f"{key}_std"] = {k[:-4]: v for k, v in nested.items() if k.endswith("_std")}
    return out
