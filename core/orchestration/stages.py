"""The stages of a run, each a small object with typed, read-only inputs and outputs:

    DataStage -> RealData
    GenerateStage -> SyntheticSets            GenerateEvalStage -> GeneratedSets
    SelectStage -> Selections                 (per seed)
    TrainStage -> TrainedArms                 (per seed)
    EvaluateStage -> ArmResults               (per seed)
    MetricsStage -> metrics (report.json ``metrics``)
    ReportStage -> report.json, report.html

A stage is called with the outputs it needs, named, and returns its own; ``summary`` says in one
line what it produced (the run log and report.json's ``stages``). :class:`StageRunner` runs one
stage the way every stage runs: announced to plugins (``before_stage``/``after_stage``), timed,
logged, and under :func:`dreamset.orchestration.distributed.stage`. :func:`dreamset.orchestration.pipeline.run_recipe` is the
list of stages.

The outputs are frozen dataclasses: a stage never changes what another produced. Components receive
:class:`dreamset.contracts.inputs.Services` and their typed inputs (:mod:`dreamset.contracts.inputs`), never the run.
"""
from __future__ import annotations

import functools
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from dreamset.orchestration import distributed
from dreamset.files.atomic import atomic_write_bytes
from dreamset.orchestration.context import RunContext
from dreamset.contracts.data import TensorImageSet, materialize
from dreamset.contracts.checks import metric_result_problem, selection_problem
from dreamset.contracts.errors import BadInputError, PluginError, PluginFailure
from dreamset.contracts.inputs import RealData, Services
from dreamset.contracts.interfaces import ImageSource, Selection
from dreamset.orchestration.guards import calling, check, record_traceback, where
from dreamset.orchestration.recipe import ComponentRef, Recipe, arm_folder
from dreamset.orchestration.runlog import log, metric_summary
from dreamset.files.verify import check_disk_space

#: mixer used when an arm names none: all real, all synthetic, or half and half
DEFAULT_MIXER = "mixer:ratio"


# -- the run: its recipe and its services -----------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """What every stage of one run shares and nobody changes: the recipe (and its resolved form,
    report.json's ``recipe``) and the run's :class:`~dreamset.contracts.inputs.Services`."""

    recipe: Recipe
    resolved: Mapping[str, Any]
    services: Services

    @property
    def run_dir(self) -> Path:
        return self.services.run_dir

    @property
    def registry(self):
        return self.services.registry

    @property
    def device(self) -> torch.device:
        return self.services.device

    @property
    def fresh(self) -> bool:
        return self.services.fresh

    def progress(self, description: str, total: int | None, unit: str = "items"):
        return self.services.progress(description, total, unit=unit)

    def create(self, ref: ComponentRef, kind: str, path: str):
        """The component ``ref`` names, its options validated under recipe field ``path``."""
        return self.registry.create(ref.key, kind=kind, field_path=f"{path}.options", **ref.options)

    def with_reference(self, real: RealData) -> "Run":
        """This run with its reference classifier service (trained on ``real.train`` on first use)."""
        from dataclasses import replace

        from dreamset.orchestration.reference import ReferenceClassifier
        from dreamset.training.trainer import train_reference_classifier

        run = self
        reference = ReferenceClassifier(lambda: train_reference_classifier(run.recipe, real.train, run.services),
                                        self.device)
        return replace(self, services=replace(self.services, reference=reference))

    def view(self, outputs: "Mapping[str, list[Any]]", lines: Mapping[str, list[str]] | None = None) -> RunContext:
        """The old run context (:class:`~dreamset.orchestration.context.RunContext`) as of ``outputs`` (stage name ->
        its outputs so far, one per seed for the per-seed stages): what plugins written against the
        0.1 contracts and the lifecycle hooks receive."""
        def latest(name: str, default=None):
            return outputs[name][-1] if outputs.get(name) else default

        real, synthetic = latest("data", RealData(None, None)), latest("generate", SyntheticSets({}))
        generated = latest("generate-eval", GeneratedSets({}, {}))
        selections, trained = latest("select"), latest("train")
        results = {r.seed: r for r in outputs.get("evaluate", ())}
        seed = selections.seed if selections is not None else self.recipe.seeds[0]
        return RunContext(
            recipe=self.recipe, run_dir=self.run_dir, registry=self.registry, device=self.device,
            console=self.services.console, seed=seed, real_train=real.train, real_test=real.test,
            shifted=dict(real.shifted), synthetic=synthetic.combined, sources=dict(synthetic.sources),
            generated_sets=dict(generated.sets), generated_provenance=dict(generated.provenance),
            augmentation={name: arm.augmentation for name, arm in (trained.arms.items() if trained else ())},
            selections=dict(selections.by_arm) if selections is not None else {},
            models=dict(trained.models) if trained is not None else {},
            evaluation_subset=real.evaluation_subset,
            arm_results={s: dict(r.results) for s, r in results.items()},
            stage_results=lines if lines is not None else {}, fresh=self.fresh, reference=self.services.reference,
            progress_every=self.services.progress_every)


# -- the outputs ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticSets:
    """The synthetic sources (source name -> store; one generate block: the one source
    ``synthetic``); :attr:`combined` reads them as one set."""

    sources: Mapping[str, ImageSource]

    @functools.cached_property
    def combined(self) -> ImageSource | None:
        """Every source as one set (one source: its store); ``None`` without sources."""
        from dreamset.orchestration.sources import MixedSource

        if not self.sources:
            return None
        return next(iter(self.sources.values())) if len(self.sources) == 1 else MixedSource(dict(self.sources))

    def for_arm(self, recipe: Recipe, arm) -> ImageSource | None:
        """The synthetic set an arm's sampler chooses from (:func:`dreamset.orchestration.sources.arm_synthetic`)."""
        from dreamset.orchestration.sources import arm_synthetic

        return arm_synthetic(recipe, self.sources, arm)


@dataclass(frozen=True)
class GeneratedSets:
    """Generated evaluation sets (``evaluate.sets``): name -> images, name -> provenance."""

    sets: Mapping[str, ImageSource]
    provenance: Mapping[str, Any]


@dataclass(frozen=True)
class Selections:
    """One seed's sampler choices: arm -> :class:`~dreamset.contracts.interfaces.Selection`, and arm ->
    report.json's ``selections`` record."""

    seed: int
    by_arm: Mapping[str, Selection]
    records: Mapping[str, dict[str, Any]]


@dataclass(frozen=True)
class TrainedArm:
    """One arm's classifier for one seed, what training it cost and its augmentations."""

    model: torch.nn.Module
    record: dict[str, Any]
    augmentation: Any
    #: the synthetic images the arm trained on (its sampler's choice; None without synthetic data)
    synthetic: ImageSource | None = None


@dataclass(frozen=True)
class TrainedArms:
    seed: int
    arms: Mapping[str, TrainedArm]

    @property
    def models(self) -> dict[str, torch.nn.Module]:
        return {name: arm.model for name, arm in self.arms.items()}


@dataclass(frozen=True)
class ArmResults:
    """One seed's evaluation: arm -> results (clean_accuracy, robust_accuracy, shifted ..., training)."""

    seed: int
    results: Mapping[str, dict[str, Any]]


#: seed -> that seed's :class:`ArmResults`
ArmResultsBySeed = Mapping[int, ArmResults]


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "–"


# -- running a stage ------------------------------------------------------------------------------

class StageRunner:
    """Runs stages: each announced to the plugins' lifecycle hooks (with the run context of the
    outputs so far, :meth:`Run.view`), timed into :attr:`timings` (seconds per stage, summed over
    seeds), its one-line :attr:`lines` logged and kept (report.json ``timings`` and ``stages``)."""

    def __init__(self, run: Run) -> None:
        import dreamset.registry as registry_module
        from dreamset.contracts.legacy import warn_context_hookimpls

        self.run = run
        self.hook = registry_module.plugin_manager().hook
        warn_context_hookimpls(self.hook)
        self.timings: dict[str, float] = {}
        self.lines: dict[str, list[str]] = {}
        #: stage name -> its outputs so far (for the hooks' run context, :meth:`Run.view`)
        self.outputs: dict[str, list[Any]] = {}

    def __call__(self, stage, *args, **kwargs):
        name = stage.name
        self.hook.before_stage(stage=name, run_dir=self.run.run_dir, context=self.run.view(self.outputs, self.lines))
        plan = stage.plan(*args, **kwargs) if hasattr(stage, "plan") else ""  # the start line states the planned work
        log.info("%s ...%s", name, f" {plan}" if plan else "")
        start = time.perf_counter()
        try:
            with distributed.stage(name), where(stage=name):
                output = stage(*args, **kwargs)
        except PluginError as exc:  # a plugin raised or broke its contract: its traceback to run.log
            path = record_traceback(self.run.run_dir if distributed.is_main() else None, exc)
            if hasattr(exc, "log_path"):
                exc.log_path = path
            raise
        seconds = time.perf_counter() - start
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        self.outputs.setdefault(name, []).append(output)
        line = stage.summary(output)
        self.lines.setdefault(name, []).append(line)
        log.info("%s done in %.1fs: %s", name, seconds, line)
        if distributed.is_main():  # for dreamset status
            from dreamset.orchestration.runfolder import record_stage

            record_stage(self.run.run_dir, name, getattr(output, "seed", None), seconds, line)
        self.hook.after_stage(stage=name, run_dir=self.run.run_dir, seconds=seconds,
                              context=self.run.view(self.outputs, self.lines))
        return output


# -- the stages -----------------------------------------------------------------------------------

class DataStage:
    """Load the real splits and their shifted copies; choose and save the evaluation subset."""

    name = "data"

    def __init__(self, run: Run) -> None:
        self.run = run

    def plan(self) -> str:
        data = self.run.recipe.data
        shifts = len(data.shifts)
        return f"load {data.dataset.key}" + (f", then {shifts} shifted cop{'ies' if shifts > 1 else 'y'} of its test split" if shifts else "")

    def __call__(self) -> RealData:
        recipe, run = self.run.recipe, self.run
        dataset = run.create(recipe.data.dataset, "dataset", "data.dataset")
        with calling(dataset, "load"):
            train, test = dataset.load("train"), dataset.load("test")
        test_x, test_y = materialize(test)
        shifted = {}
        for i, ref in enumerate(recipe.data.shifts):
            shift = run.create(ref, "shift", f"data.shifts.{i}")
            with calling(shift, "apply"):
                images = shift.apply(test_x, seed=recipe.seeds[0] + i)
            shifted[shift.label] = TensorImageSet(images, test_y, test.class_names, name=shift.label)
        return RealData(train, test, shifted, self._evaluation_subset(test))

    def _evaluation_subset(self, test: ImageSource) -> np.ndarray | None:
        """The run's one evaluation subset (see :mod:`dreamset.orchestration.evaluation`), saved as
        ``evaluation_subset.json``; ``None`` when it is the whole test set."""
        from dreamset.orchestration.evaluation import stratified_subset

        settings = self.run.recipe.evaluate
        rows = stratified_subset(test.labels, settings.robust_samples, settings.subset_seed)
        counts = np.bincount(test.labels.numpy()[rows], minlength=test.num_classes)
        record = {"n": int(len(rows)), "of": int(len(test.labels)), "seed": settings.subset_seed,
                  "per_class": {name: int(c) for name, c in zip(test.class_names, counts)},
                  "indices": rows.tolist()}
        atomic_write_bytes(self.run.run_dir / "evaluation_subset.json", json.dumps(record).encode())
        return None if len(rows) == len(test.labels) else rows

    @staticmethod
    def summary(real: RealData) -> str:
        train, test = real.train, real.test
        text = (f"{len(train):,} train / {len(test):,} test images, {train.num_classes} classes, "
                f"shape {tuple(train.image_shape)}")
        if real.shifted:
            text += f"; shifts: {', '.join(real.shifted)}"
        if real.evaluation_subset is not None:
            text += f"; evaluation subset {len(real.evaluation_subset):,}"
        return text


class GenerateStage:
    """Per synthetic source: fit its generator on the real training split, then fill (or resume) its
    store; or import/open the store it names. Stores are verified and must be complete unless
    ``allow_partial``."""

    name = "generate"

    def __init__(self, run: Run) -> None:
        self.run = run

    def __call__(self, real: RealData) -> SyntheticSets:
        from dreamset.orchestration.sources import store_folders

        recipe = self.run.recipe
        return SyntheticSets({name: self._source(real, block, *store_folders(self.run.run_dir, recipe, name), path)
                              for name, (path, block) in recipe.generate_stages().items()})

    def plan(self, real: RealData) -> str:
        """``fit generator:ddpm (6,000 steps), then sample 5,000 images in 10 shards`` per source."""
        parts = []
        for name, (path, gen) in self.run.recipe.generate_stages().items():
            if gen.source is not None:
                work = f"import or open {gen.source}"
            else:
                steps = getattr(self.run.create(gen.generator, "generator", f"{path}.generator").options, "train_steps", None)
                shards = -(-gen.count // gen.shard_size)
                work = (f"fit {gen.generator.key}" + (f" ({steps:,} steps)" if isinstance(steps, int) else "")
                        + f", then sample {gen.count:,} images in {shards:,} shard{'s' if shards > 1 else ''}")
            parts.append(work if len(self.run.recipe.generate_stages()) == 1 else f"{name}: {work}")
        return "; ".join(parts)

    def _source(self, real: RealData, gen, store_dir: Path, generator_dir: Path, path: str) -> ImageSource:
        from dreamset.orchestration.closed_loop import first_segment
        from dreamset.store.generation import check_store_origin, generate_to_store, store_manifest, store_origin
        from dreamset.store.reader import SyntheticStore
        from dreamset.files.verify import require_complete

        if gen.source is not None:
            store = self._existing(gen, store_dir, real, path)
            require_complete(store, f"{path}.source", gen.allow_partial)
            return store
        generator = self.run.create(gen.generator, "generator", f"{path}.generator")
        rounds = {} if gen.closed_loop is None else first_segment(gen, len(real.train.class_names))
        plan = dict(count=rounds.get("count", gen.count), plan=rounds.get("plan"), shard_size=gen.shard_size,
                    labels=gen.labels, seed=gen.seed, class_names=real.train.class_names,
                    image_shape=generator.image_shape(real.train))
        # before anything is written: a store made by other settings, data or checkpoint is refused (or
        # with --fresh moved aside together with its generator), so a refusal overwrites nothing
        distributed.main_first("checking the store", lambda: check_store_origin(
            store_dir, store_manifest(generator, **plan, made_by=store_origin(real.train, generator_dir)),
            run_dir=self.run.run_dir, fresh=self.run.fresh, generator_dir=generator_dir))
        check_disk_space(store_dir, gen.count, generator.image_shape(real.train), field=f"{path}.count")
        torch.manual_seed(gen.seed)
        # rank 0 fits (or reloads) the generator; the other ranks then load its checkpoint
        with calling(generator, "fit"):
            distributed.main_first("fitting the generator",
                                   lambda: fit_generator(generator, real.train, generator_dir, self.run.services))
        # the checkpoint as fitted: a generator that retrained in place makes the old store stale too
        with calling(generator, "generate"):
            generate_to_store(generator, store_dir, **plan, batch_size=gen.batch_size, context=self.run.services,
                              made_by=store_origin(real.train, generator_dir))
        store = SyntheticStore.open(store_dir)  # verified: a shard altered since it was written is an error
        require_complete(store, path, gen.allow_partial)
        return store

    def _existing(self, gen, store_dir: Path, real: RealData, path: str) -> ImageSource:
        from dreamset.store.npz import import_npz
        from dreamset.store.reader import SyntheticStore

        source = Path(gen.source)
        if source.suffix == ".npz":
            import_npz(source, store_dir, class_names=real.train.class_names, services=self.run.services)  # resumes a cut-short import
            return SyntheticStore.open(store_dir)
        if not (source / "store.json").exists():
            raise BadInputError(f"{path}.source: {source} is neither a .npz file nor a dreamset store")
        return SyntheticStore.open(source)

    @staticmethod
    def summary(synthetic: SyntheticSets) -> str:
        combined = synthetic.combined
        return f"{len(combined):,} synthetic images" if combined is not None else "nothing generated"


class GenerateEvalStage:
    """Generated evaluation sets (``evaluate.sets``, :mod:`dreamset.orchestration.generated_sets`)."""

    name = "generate-eval"

    def __init__(self, run: Run) -> None:
        self.run = run

    def __call__(self, real: RealData) -> GeneratedSets:
        from dreamset.orchestration.generated_sets import build_generated_sets

        return GeneratedSets(*build_generated_sets(self.run, real.train))

    @staticmethod
    def summary(_: GeneratedSets) -> str:
        return "done"


def fit_generator(generator, real: ImageSource, workdir: Path, services: Services) -> None:
    """``generator.fit(real, workdir, services)`` (a generator of the 0.1 contract through
    :mod:`dreamset.contracts.legacy`)."""
    from dreamset.contracts.legacy import call_fit

    call_fit(generator, real, workdir, services)


class SelectStage:
    """Per arm with synthetic data: its sampler's choice (default: every synthetic sample of its
    sources), saved as ``selections/<arm>-seed<S>.npz``."""

    name = "select"

    def __init__(self, run: Run) -> None:
        self.run = run
        self.seconds: dict[str, float] = {}

    def plan(self, real: RealData, synthetic: SyntheticSets, seed: int) -> str:
        arms = [name for name, arm in self.run.recipe.arms.items() if arm.synthetic is not False]
        return f"seed {seed}: choose synthetic images for {', '.join(arms) or 'no arm'}"

    def __call__(self, real: RealData, synthetic: SyntheticSets, seed: int) -> Selections:
        from dreamset.orchestration.provenance import selection_record

        by_arm, records = {}, {}
        for arm_name, arm in self.run.recipe.arms.items():
            if arm.synthetic is not False:
                pool = synthetic.for_arm(self.run.recipe, arm)
                view = functools.partial(self.run.view, {"data": [real], "generate": [synthetic]})
                with where(arm=arm_name, seed=seed):
                    by_arm[arm_name] = self._select(real, pool, arm_name, arm, seed, view)
                records[arm_name] = {**selection_record(by_arm[arm_name], len(pool)),
                                     "wall_seconds": self.seconds[arm_name]}  # the sampler's scoring time (machine-dependent)
        return Selections(seed, by_arm, records)

    def _select(self, real: RealData, pool: ImageSource, arm_name: str, arm, seed: int,
                view: Callable[[], RunContext]) -> Selection:
        from dreamset.contracts.legacy import call_select

        started = time.perf_counter()
        if arm.sampler is None:
            selection = Selection(indices=np.arange(len(pool), dtype=np.int64))
        else:
            sampler = self.run.create(arm.sampler, "sampler", f"arms.{arm_name}.sampler")
            with calling(sampler, "select"):
                selection = call_select(sampler, pool, real.train, seed, self.run.services, view)
            check(sampler, selection_problem, selection, len(pool))  # before anything is saved
        self.seconds[arm_name] = time.perf_counter() - started
        folder = self.run.run_dir / "selections"
        folder.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        arrays = {"indices": np.asarray(selection.indices, dtype=np.int64)}
        if selection.scores is not None:
            arrays["scores"] = np.asarray(selection.scores, dtype=np.float64)
        np.savez(buffer, **arrays)
        atomic_write_bytes(folder / f"{arm_folder(arm_name)}-seed{seed}.npz", buffer.getvalue())
        return selection

    @staticmethod
    def summary(selections: Selections) -> str:
        return ", ".join(f"{arm}: {len(sel.indices):,} synthetic" for arm, sel in selections.by_arm.items()) or "no synthetic arms"


class TrainStage:
    """Per arm: its classifier, trained on its data and mixer for its share of the optimizer-step
    budget (:func:`arm_budgets`), with its attacker, objective and augmentations; resumable."""

    name = "train"

    def __init__(self, run: Run) -> None:
        self.run = run

    def plan(self, real: RealData, synthetic: SyntheticSets, selections: Selections) -> str:
        train = self.run.recipe.train
        return (f"seed {selections.seed}: {len(self.run.recipe.arms)} arms ({', '.join(self.run.recipe.arms)}), "
                f"{train.epochs} epochs, budget {train.budget}")

    def __call__(self, real: RealData, synthetic: SyntheticSets, selections: Selections) -> TrainedArms:
        recipe = self.run.recipe
        data = {name: self._arm_data(real, synthetic, selections, name, arm) for name, arm in recipe.arms.items()}
        budgets = arm_budgets(recipe, {name: d["steps_per_epoch"] for name, d in data.items()})
        log.info("train (seed %d): %s", selections.seed, ", ".join(f"{name} {steps:,} optimizer steps" for name, steps in budgets.items()))
        view = self.run.view({"data": [real], "generate": [synthetic], "select": [selections]})
        arms = {}
        for name, arm in recipe.arms.items():
            with where(arm=name, seed=selections.seed):
                arms[name] = self._train(view, real, name, arm, selections.seed, data[name], budgets[name])
        return TrainedArms(selections.seed, arms)

    def _arm_data(self, real: RealData, synthetic: SyntheticSets, selections: Selections, arm_name: str, arm) -> dict[str, Any]:
        """The data and mixer an arm trains on, and how many optimizer steps one mixer epoch takes."""
        from dreamset.orchestration.sources import check_selection

        train_real = real.train if arm.real else None
        chosen = None
        if arm.synthetic is not False:
            chosen = synthetic.for_arm(self.run.recipe, arm).subset(selections.by_arm[arm_name].indices)
            check_selection(arm_name, chosen)
        if arm.mixer is not None:
            mixer = self.run.create(arm.mixer, "mixer", f"arms.{arm_name}.mixer")
        else:
            fraction = 1.0 if chosen is None else (0.0 if train_real is None else 0.5)
            mixer = self.run.registry.create(DEFAULT_MIXER, real_fraction=fraction)
        return {"real": train_real, "synthetic": chosen, "mixer": mixer,
                "steps_per_epoch": mixer.steps_per_epoch(train_real, chosen, self.run.recipe.train.batch_size)}

    def _train(self, view: RunContext, real: RealData, arm_name: str, arm, seed: int, data: dict[str, Any],
               total_steps: int) -> TrainedArm:
        from dreamset.training.augmenting import arm_augmentation_plan
        from dreamset.orchestration.closed_loop import looped_source, train_in_rounds
        from dreamset.training.objectives import objective_for
        from dreamset.orchestration.seeding import build_model
        from dreamset.training.trainer import TrainingPlan, train_classifier

        recipe, run = self.run.recipe, self.run
        model_factory = run.create(recipe.train.model, "model", "train.model")
        with calling(model_factory, "build"):
            model = build_model(model_factory, real.train.image_shape, real.train.num_classes, seed=seed, purpose="classifier")
        attacker = None
        if recipe.train.attacker is not None and not arm.standard:
            attacker = run.create(recipe.train.attacker, "attacker", "train.attacker")
        augment = arm_augmentation_plan(run, arm_name, arm)
        if arm.objective is not None:  # the arm's own objective; the attacker only if it uses one
            objective = run.create(arm.objective, "objective", f"arms.{arm_name}.objective")
            attacker = attacker if objective.uses_attacker else None
        else:
            objective = objective_for(attacker, recipe.train, run.registry)
        safe = arm_folder(arm_name)
        plan = TrainingPlan(mixer=data["mixer"], real=data["real"], synthetic=data["synthetic"], settings=recipe.train,
                            seed=seed, checkpoint_dir=run.run_dir / "checkpoints" / f"{safe}-seed{seed}",
                            attacker=attacker, objective=objective, augment=augment, total_steps=total_steps,
                            description=f"train {arm_name} (seed {seed})")
        record: dict[str, Any] = {}
        if looped_source(recipe, arm) is not None:  # generated in rounds steered by this classifier
            model = train_in_rounds(view, model, plan, trainer=train_classifier, arm=arm_name, arm_folder_name=safe,
                                    record=record)
        else:
            model = train_classifier(view, model, record=record, arm=arm_name, **vars(plan))
        return TrainedArm(model, record, augment.describe(), data["synthetic"])

    @staticmethod
    def summary(trained: TrainedArms) -> str:
        return f"seed {trained.seed}: trained {', '.join(trained.arms)}"


def arm_budgets(recipe: Recipe, steps_per_epoch: dict[str, int]) -> dict[str, int]:
    """Optimizer steps per arm from ``train.budget`` (and each arm's own ``budget``): ``matched``
    arms all get the largest ``steps_per_epoch × train.epochs`` among them, ``epochs`` arms their own
    ``steps_per_epoch × train.epochs``, a number is taken as it is."""
    own = {name: steps * recipe.train.epochs for name, steps in steps_per_epoch.items()}
    budget = {name: arm.budget if arm.budget is not None else recipe.train.budget for name, arm in recipe.arms.items()}
    matched = max((own[name] for name, b in budget.items() if b == "matched"), default=0)
    return {name: matched if b == "matched" else own[name] if b == "epochs" else int(b) for name, b in budget.items()}


class EvaluateStage:
    """Per arm: clean, worst-case robust and shifted accuracy (:func:`dreamset.orchestration.evaluation.evaluate_classifier`)."""

    name = "evaluate"

    def __init__(self, run: Run) -> None:
        self.run = run

    def plan(self, real: RealData, generated: GeneratedSets, trained: TrainedArms) -> str:
        from dreamset.orchestration.evaluation import evaluation_passes

        settings, rows = self.run.recipe.evaluate, real.evaluation_subset
        passes = evaluation_passes(settings.attackers, real, settings, generated.sets)
        attacks = (f", {len(settings.attackers)} attacks on {len(real.test) if rows is None else len(rows):,} images"
                   if settings.attackers else "")
        return f"seed {trained.seed}: {len(trained.arms)} arms × {passes:,} images through the model (clean{attacks})"

    def __call__(self, real: RealData, generated: GeneratedSets, trained: TrainedArms) -> ArmResults:
        from dreamset.orchestration.evaluation import evaluate_classifier, evaluation_passes
        from dreamset.orchestration.seeding import forked_rng

        recipe, seed = self.run.recipe, trained.seed
        attackers = [self.run.create(ref, "attacker", f"evaluate.attackers.{i}") for i, ref in enumerate(recipe.evaluate.attackers)]
        results = {}
        total = len(trained.arms) * evaluation_passes(attackers, real, recipe.evaluate, generated.sets)
        with self.run.progress(f"evaluate (seed {seed})", total, unit="images") as advance:
            for arm_name, arm in trained.arms.items():
                # attacks draw random starts: each arm's from the same seeded fork, so the result
                # depends neither on the other arms nor on whether training ran or was reused
                with forked_rng(self.run.device, seed), where(arm=arm_name, seed=seed):
                    result = evaluate_classifier(arm.model, attackers, real, recipe.evaluate, self.run.device,
                                                 generated.sets, advance=advance)
                results[arm_name] = {**result, "training": arm.record}
        return ArmResults(seed, results)

    @staticmethod
    def summary(results: ArmResults) -> str:
        return f"seed {results.seed}: " + "; ".join(
            f"{arm} clean {_pct(r.get('clean_accuracy'))}"
            + (f" robust {_pct(r['robust_accuracy'])}" if "robust_accuracy" in r else "")
            for arm, r in results.results.items())


class MetricsStage:
    """Every ``evaluate.metrics`` entry, each over the inputs of its scope
    (:func:`dreamset.orchestration.sources.compute_metric`): report.json's ``metrics``."""

    name = "metrics"

    def __init__(self, run: Run) -> None:
        self.run = run
        #: one line per metric that raised (report.json ``warnings``); the run goes on without it
        self.failures: list[str] = []

    def plan(self, *_: Any) -> str:
        keys = [ref.key for ref in self.run.recipe.evaluate.metrics]
        return f"{len(keys)} metrics: {', '.join(keys)}" if keys else "no metrics"

    def __call__(self, real: RealData, synthetic: SyntheticSets, trained: TrainedArms | None, results: ArmResultsBySeed,
            view: Callable[[], RunContext]) -> dict[str, Any]:
        recipe = self.run.recipe
        metrics: dict[str, Any] = {}
        torch.manual_seed(recipe.seeds[0])  # likewise independent of what this process ran before
        with self.run.progress("metrics", len(recipe.evaluate.metrics), unit="metrics") as advance:
            for i, ref in enumerate(recipe.evaluate.metrics):
                metric = self.run.create(ref, "metric", f"evaluate.metrics.{i}")
                started = time.perf_counter()
                name = metric_report_name(metric.key)
                try:
                    metrics[name] = compute_metric(metric, self.run, real, synthetic, trained, results, view)
                except PluginFailure as exc:  # the other metrics are still reported; this one is a warning
                    exc.log_path = record_traceback(self.run.run_dir if distributed.is_main() else None, exc)
                    self.failures.append(f"{exc}; {metric.key} left out of metrics")
                    log.warning("%s", self.failures[-1])
                    advance(1)
                    continue
                log.info("metric %s: %s (%.1fs)", metric.key, metric_summary(metrics[name]), time.perf_counter() - started)
                advance(1)
        return metrics

    def summary(self, metrics: dict[str, Any]) -> str:
        failed = f", {len(self.failures)} failed (see warnings)" if self.failures else ""
        return f"{len(self.run.recipe.evaluate.metrics)} metrics{failed}"


def compute_metric(metric, run: Run, real: RealData, synthetic: SyntheticSets, trained: TrainedArms | None,
                   results: ArmResultsBySeed, view: Callable[[], RunContext]) -> Any:
    """``metric.compute`` on the inputs of its scope (:mod:`dreamset.contracts.inputs`): an ``arms`` metric
    once on the last seed's classifiers and every seed's results; a ``source`` metric of a recipe
    with named sources once per source, ``{source: result}`` with each result's tables titled
    ``source: title`` under a shared ``tables`` key; otherwise once on every source as one set.
    A 0.1 metric (``compute(context)``) gets the old run context (:mod:`dreamset.contracts.legacy`)."""
    from dreamset.contracts.inputs import ArmInputs, DistributionInputs
    from dreamset.contracts.legacy import metric_takes_context
    from dreamset.orchestration.sources import named

    recipe, services = run.recipe, run.services
    per_source = named(recipe) and synthetic.sources
    takes_context = metric_takes_context(metric)

    def compute(inputs) -> Any:  # every call: a failure named, the result checked (a 0.1 metric may return a number)
        with calling(metric, "compute"):
            result = metric.compute(inputs)
        check(metric, metric_result_problem, result, require_dict=not takes_context)
        return result

    if takes_context:
        if not (getattr(metric, "per_source", False) and per_source):
            return compute(view())

        def legacy(name: str, source: ImageSource) -> Any:
            context = view()
            context.synthetic, context.source_name = source, name
            return compute(context)
        return _per_source(legacy, synthetic.sources)
    scope = metric_scope(metric)
    if scope == "arms":
        models = trained.models if trained is not None else {}
        kept = {name: arm.synthetic for name, arm in trained.arms.items() if arm.synthetic is not None} if trained else {}
        return compute(ArmInputs(real, models, {seed: r.results for seed, r in results.items()},
                                 trained.seed if trained is not None else recipe.seeds[-1], recipe.arms,
                                 recipe.train, services, kept))
    if scope == "source" and per_source:
        return _per_source(lambda name, source: compute(DistributionInputs(real, source, name, services)),
                           synthetic.sources)
    return compute(DistributionInputs(real, synthetic.combined, None, services))


def metric_scope(metric) -> str:
    """``metric.scope``, checked against :data:`dreamset.contracts.inputs.METRIC_SCOPES`."""
    from dreamset.contracts.inputs import METRIC_SCOPES

    scope = getattr(metric, "scope", None)
    if scope not in METRIC_SCOPES:
        raise BadInputError(f"{metric.key}: declares scope {scope!r}; a metric's scope is one of {', '.join(METRIC_SCOPES)}")
    return scope


def _per_source(compute: Callable[[str, ImageSource], Any], sources: Mapping[str, ImageSource]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for name, source in sources.items():
        result = compute(name, source)
        for title, table in (result.pop("tables", None) or {}).items():
            tables[f"{name}: {title}"] = table
        out[name] = result
    if tables:
        out["tables"] = tables
    return out


def metric_report_name(key: str) -> str:
    """``metric:effective-robustness`` -> ``effective_robustness`` (the key under ``report.json``'s
    ``metrics``, as ../shared/ARCHITECTURE.md names them)."""
    return key.split(":", 1)[1].replace("-", "_")


class ReportStage:
    """Sample grids, report.json and report.html (rank 0)."""

    name = "report"

    def __init__(self, run: Run) -> None:
        self.run = run

    def __call__(self, report: dict[str, Any], real: RealData, synthetic: SyntheticSets) -> None:
        from dreamset.report.writer import write_report

        write_report(self.run.run_dir, report, self.run.view({"data": [real], "generate": [synthetic]}))

    def summary(self, _: None) -> str:
        return f"written to {self.run.run_dir}"


@dataclass
class ReportBuilder:
    """report.json from the stages' outputs (:meth:`build`); ``timings`` and ``lines`` are the
    :class:`StageRunner`'s own dicts, so the report stage's time lands in them when it is re-written."""

    run: Run
    timings: dict[str, float]
    lines: dict[str, list[str]]
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_selections(self, selections: Selections) -> None:
        for arm, record in selections.records.items():
            self.selections.setdefault(arm, {})[str(selections.seed)] = record

    def build(self, real: RealData, synthetic: SyntheticSets, generated: GeneratedSets, trained: TrainedArms | None,
              results: ArmResultsBySeed, metrics: dict[str, Any], failed_metrics: list[str] = ()) -> dict[str, Any]:
        from dreamset.report.differences import compute_notes, pair_comparisons, paired_comparisons, wall_notes
        from dreamset.report.data_efficiency import add_data_efficiency
        from dreamset.report.generator_table import add_generator_table
        from dreamset.orchestration.provenance import component_sources
        from dreamset.report.tables import metric_warnings, training_warnings
        from dreamset.orchestration.runlog import plugin_versions
        from dreamset.orchestration.sources import named

        recipe, run = self.run.recipe, self.run
        per_seed = {seed: dict(r.results) for seed, r in results.items()}
        arms = summarize_arms(per_seed)
        rows = real.evaluation_subset if real.evaluation_subset is not None else np.arange(len(real.test))
        report = {
            "recipe": run.resolved,
            "arms": arms,
            "comparisons": paired_comparisons(per_seed, recipe.baseline_arm(), margin=recipe.evaluate.equivalence_margin),
            "pair_comparisons": pair_comparisons(per_seed, recipe.evaluate.pairs, margin=recipe.evaluate.equivalence_margin),
            "notes": compute_notes(arms),
            "wall_notes": wall_notes(arms),  # machine-dependent: kept apart from the notes
            "warnings": (training_warnings(per_seed) + list(failed_metrics)
                         + metric_warnings(metrics, synthetic.sources if named(recipe) else ())),
            "evaluation": {"subset_size": int(len(rows)), "test_size": len(real.test),
                           "subset_seed": recipe.evaluate.subset_seed, "subset_file": "evaluation_subset.json",
                           "indices": [int(i) for i in rows],
                           "robust_accuracy": "per-sample worst case over evaluate.attackers",
                           "attackers": [a.model_dump(mode="json") for a in recipe.evaluate.attackers],
                           "generated_sets": generated.provenance},
            "augmentation": {name: arm.augmentation for name, arm in trained.arms.items()} if trained else {},
            "metrics": metrics,
            "components": component_sources(recipe, run.registry, DEFAULT_MIXER),
            "selections": self.selections,
            "timings": self.timings,
            "seeds": list(recipe.seeds),
            "device": str(run.device),
            "threads": torch.get_num_threads(),  # results vary with it by float rounding (docs/recipes.md)
            "stages": self.lines,
            "versions": plugin_versions(),
        }
        add_generator_table(run.run_dir, recipe, report)
        add_data_efficiency(run.run_dir, recipe, report, per_seed)
        return report


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
    import statistics

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
