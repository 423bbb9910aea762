"""Recipe models (pydantic, ``extra="forbid"``), loading from YAML/TOML, and ``--set`` overrides.

A recipe names one component per stage by registry key and gives its options::

    generate:
      generator: {key: ddpm, options: {train_steps: 1500}}
      count: 5000

``generate`` may instead name several synthetic sources (``{ddpm: {generator: ..., count: ...}, gan:
{...}}``); arms then say which ones they use (``synthetic: {ddpm: 0.5, gan: 0.5}``), see
:mod:`dreamset.orchestration.sources`. A component reference may also be a bare string
(``generator: ddpm``). Every error is one line naming the field path and the reason
(:class:`dreamset.BadInputError`).
"""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from dreamset.contracts.errors import BadInputError, shorten
from dreamset.contracts.options import format_validation_error
from dreamset.files.verify import int_digits_limit, load_yaml
from dreamset.orchestration.closed_loop import ClosedLoop
from dreamset.registry.catalogue import DEFAULT_RECIPE, RECIPE_SUFFIXES, recipe_names, recipe_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ComponentRef(_Model):
    """A component by registry key (the kind is implied by the field) and its options."""

    key: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value):
        return {"key": value} if isinstance(value, str) else value


class DataStage(_Model):
    dataset: ComponentRef
    #: distribution shifts applied to the test split (effective robustness), e.g. ``[invert, {key: rotate, options: {severity: 3}}]``
    shifts: list[ComponentRef] = Field(default_factory=list)


class GenerateStage(_Model):
    #: the generator to fit and sample; may be left out when ``source`` names the images instead
    generator: ComponentRef | None = None
    count: int = Field(gt=0, le=1_000_000_000)
    batch_size: int = Field(default=256, gt=0, le=1_000_000)
    shard_size: int = Field(default=1024, gt=0, le=10_000_000)
    #: ``balanced``: label i % num_classes for image i; ``random``: labels drawn uniformly (seeded)
    labels: Literal["balanced", "random"] = "balanced"
    #: seed of the generator's training and of every image's noise (image i uses seed * 10**9 + i)
    seed: int = Field(default=0, ge=0)
    #: an existing store folder or ``.npz`` file to use instead of generating (``image``/``label`` keys)
    source: str | None = None
    #: use a store that holds fewer images than planned (one still being written, or interrupted)
    allow_partial: bool = False
    #: generate in rounds steered by the classifier of the arm that trains on it (dreamset.orchestration.closed_loop)
    closed_loop: ClosedLoop | None = None

    @model_validator(mode="after")
    def _generator_or_source(self):
        if self.generator is None and self.source is None:
            raise ValueError("generator: name a generator, or a source (.npz file or store folder) to use instead")
        return self


class AugmentSpec(_Model):
    """Training augmentations (``augmentation:*``, see :mod:`dreamset.training.augmenting`): per image of the
    real set, per image of the synthetic set, and on the mixed batch (CutMix/MixUp; several = one of
    them at random per batch)."""

    real: list[ComponentRef] = Field(default_factory=list)
    synthetic: list[ComponentRef] = Field(default_factory=list)
    batch: list[ComponentRef] = Field(default_factory=list)


class GeneratedSetSpec(_Model):
    """A generated evaluation set (:mod:`dreamset.orchestration.generated_sets`): ``count`` images from a held-out
    seed range of the recipe's generator (``generator: null``) or of another generator, evaluated
    like a shifted set."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+@-]*$")
    generator: ComponentRef | None = None
    count: int = Field(gt=0, le=10**9)
    #: image i uses seed ``seed * 10**9 + i``; with the recipe's own generator it must differ from ``generate.seed``
    seed: int = Field(ge=0)
    labels: Literal["balanced", "random"] = "balanced"
    batch_size: int = Field(default=256, gt=0, le=1_000_000)
    #: also measure worst-case robust accuracy on it (the evaluation attackers)
    robust: bool = False


#: how many optimizer steps an arm trains for: ``matched`` (every arm of the recipe the same number,
#: that of the arm whose ``epochs`` take the most steps), ``epochs`` (``train.epochs`` passes over the
#: arm's own mixer epoch; arms may then differ, and the report says so) or a fixed number of steps
Budget = Union[Literal["matched", "epochs"], Annotated[int, Field(gt=0, le=10**9)]]


def _synthetic_form(value) -> str:
    return "~list" if isinstance(value, (list, tuple)) else "~proportions" if isinstance(value, dict) else "~flag"


#: source name -> fraction of the arm's synthetic samples (normalised to sum 1)
Proportions = dict[str, Annotated[float, Field(gt=0, le=1e6)]]


class ArmSpec(_Model):
    """One training arm. Arms share the model, attacker, schedule, seeds and — by default — the
    number of optimizer steps (``train.budget: matched``): a fair comparison."""

    real: bool = True
    #: ``true``: every synthetic source (as one set); a list of source names: those, in equal parts
    #: of each batch's synthetic share; ``{name: proportion}``: those at these proportions
    synthetic: Annotated[Union[Annotated[bool, Tag("~flag")], Annotated[list[str], Field(min_length=1), Tag("~list")],
                               Annotated[Proportions, Field(min_length=1), Tag("~proportions")]],
                         Discriminator(_synthetic_form)] = False
    sampler: ComponentRef | None = None
    mixer: ComponentRef | None = None
    #: train this arm without the attacker (a standard-training contrast arm)
    standard: bool = False
    #: this arm's own budget (default: ``train.budget``); an arm that differs in steps from the
    #: others is flagged in the report
    budget: Budget | None = None
    #: this arm's training augmentations, instead of ``train.augment`` (``{}`` = none)
    augment: AugmentSpec | None = None
    #: this arm's training objective, instead of ``train.objective``; it gets ``train.attacker`` when it
    #: uses one (e.g. the ablations of ``objective:greedy-bias-correction`` in one recipe)
    objective: ComponentRef | None = None

    @model_validator(mode="after")
    def _needs_data(self):
        if not self.real and not self.synthetic:
            raise ValueError("an arm needs real and/or synthetic data")
        if self.standard and self.objective is not None:
            raise ValueError("objective: an arm with standard: true trains with objective:standard; drop one of them")
        if self.sampler is not None and not self.synthetic:
            raise ValueError("sampler given but synthetic is false")
        return self


class CatastrophicOverfittingCheck(_Model):
    """The check of single-step adversarial training (Wong et al. 2020, arXiv:2001.03994) made at every
    validated epoch of the training curves (:mod:`dreamset.training.curves`): needs
    ``report.curve_samples > 0`` and an evaluation attacker. Catastrophic overfitting = the validation
    robust accuracy collapsed to at most ``collapse`` × its best earlier value, by at least ``min_drop``,
    while the training attack's own accuracy did not fall."""

    #: the collapse: robust accuracy at most this fraction of its best earlier value
    collapse: float = Field(default=0.5, gt=0, lt=1)
    #: and at least this far below it (accuracy in [0,1]; above the validation subset's noise)
    min_drop: float = Field(default=0.1, ge=0, le=1)
    #: stop the arm at the epoch where it is found (its fewer optimizer steps are flagged by the
    #: compute note); false: warn only
    stop: bool = False


class TrainStage(_Model):
    model: ComponentRef
    #: adversarial training attacker (the objective's inner maximisation); ``null`` = standard training
    attacker: ComponentRef | None = None
    #: the training loss (``objective:*``: standard, pgd-at, trades, mart, a plugin's). Left out, it
    #: is what the attacker implied before objectives existed: none -> standard, ``trades`` ->
    #: ``trades`` with β = ``trades_beta``, any other -> ``pgd-at`` (docs/migration.md)
    objective: ComponentRef | None = None
    epochs: int = Field(default=10, gt=0, le=100_000)
    #: optimizer steps per arm: ``matched`` (default; equal for every arm, the longest arm's
    #: ``epochs`` kept), ``epochs`` (each arm its own ``epochs``) or a number of steps
    budget: Budget = "matched"
    batch_size: int = Field(default=128, gt=0, le=1_000_000)
    #: ``sgd`` (Nesterov momentum), ``adamw`` (decoupled weight decay) or ``adam`` (Adam with the weight
    #: decay added to the gradient, L2 — ``torch.optim.Adam(weight_decay=...)``, as Jin & Rinard train)
    optimizer: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = Field(default=0.1, gt=0, le=100)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=5e-4, ge=0, le=1)
    schedule: Literal["cosine", "onecycle", "constant"] = "cosine"
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    #: deprecated: β of the legacy ``attacker: trades`` form; write ``objective: {key: trades, options: {beta: ...}}``
    trades_beta: float | None = Field(default=None, gt=0, le=1000)
    #: exponential moving average of weights (Gowal et al. 2021); null = off
    ema_decay: float | None = Field(default=None, gt=0, lt=1)
    mixed_precision: bool = True
    channels_last: bool = False
    #: process each global batch as this many row groups (rows ``g::G``), each with its own seeded
    #: random draws, their gradients summed in group order: the weights are then the same bit for bit
    #: on 1 process and under torchrun on any number of processes dividing it (dreamset.training.row_groups);
    #: null = one group per process (fastest; results then vary with the world size by float rounding)
    batch_groups: int | None = Field(default=None, ge=1, le=4096)
    #: training augmentations of every arm that sets none of its own
    augment: AugmentSpec | None = None
    #: watch single-step training attackers (FGSM, FGSM-RS, N-FGSM) for catastrophic overfitting;
    #: null = do not watch
    catastrophic_overfitting: CatastrophicOverfittingCheck | None = Field(default_factory=CatastrophicOverfittingCheck)

    @model_validator(mode="after")
    def _legacy_trades_beta(self):
        if self.objective is not None and self.trades_beta is not None:
            raise ValueError("train.trades_beta: only for recipes without train.objective; "
                             "write train.objective: {key: trades, options: {beta: ...}}")
        return self


def _generate_form(value) -> str:
    """``single`` for a generate block (it has a block's own keys), ``sources`` for a mapping of them."""
    if isinstance(value, GenerateStage) or (isinstance(value, dict) and set(value) & set(GenerateStage.model_fields)):
        return "~single"
    return "~sources"


class ReferenceStage(_Model):
    """The real-only, standard-trained classifier used for features (FID/PRDC/adaptive sampling),
    label agreement, confidence filtering and pseudo-labelling."""

    epochs: int = Field(default=20, gt=0, le=100_000)
    lr: float = Field(default=0.05, gt=0, le=100)


class DataEfficiency(_Model):
    #: the arm that trains on the whole generated pool (no sampler)
    full: str
    #: the sampler every other is compared with at the same fraction
    reference_sampler: str = "sampler:uniform"


class EvaluateStage(_Model):
    #: robust accuracy is the per-sample worst case over all of these (a sample counts only if it is
    #: classified correctly clean and under every attack); each one's own number stays beside it
    attackers: list[ComponentRef] = Field(default_factory=list)
    metrics: list[ComponentRef] = Field(default_factory=list)
    batch_size: int = Field(default=256, gt=0, le=1_000_000)
    #: size of the run's evaluation subset: one seeded, class-stratified subset of the test set (and
    #: the same rows of every shifted set) that every arm, attacker and metric is evaluated on; its
    #: indices are saved as ``evaluation_subset.json``. null = the whole test set
    robust_samples: int | None = Field(default=None, gt=0)
    #: seed of the evaluation subset
    subset_seed: int = Field(default=0, ge=0)
    #: the arm every other arm is compared with (paired differences over seeds, 95% interval);
    #: null = the first arm that trains on real data only (else the first arm)
    baseline_arm: str | None = None
    #: further paired differences, each ``[arm, baseline]`` (e.g. the full method against each of its
    #: ablation arms), reported as ``pair_comparisons`` with the same intervals and verdicts
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    #: generated evaluation sets, reported per arm beside the shifted sets (``generated``)
    sets: list[GeneratedSetSpec] = Field(default_factory=list)
    #: equivalence margin (accuracy fraction, e.g. 0.01 = 1 point): every paired difference also gets
    #: an ``equivalence`` verdict — "equivalent" only when its whole 95% interval lies inside
    #: [−margin, +margin] (two one-sided tests); null = no equivalence verdicts
    equivalence_margin: float | None = Field(default=None, gt=0, le=1)
    #: a data-efficiency sweep (arms that keep a ``fraction`` of one pool with different samplers):
    #: the arm trained on the whole pool (``full``), against which every fraction is tested for
    #: equivalence (report.json ``data_efficiency``, :mod:`dreamset.report.data_efficiency`)
    data_efficiency: DataEfficiency | None = None


class ReportStage(_Model):
    #: write report.html (report.json is always written)
    html: bool = True
    samples_per_class: int = Field(default=8, gt=0, le=64)
    #: training curves: every ``curve_every`` epochs, clean and robust accuracy (the first
    #: evaluation attacker, else the training one) on a fixed class-stratified validation subset of
    #: ``curve_samples`` test images (0 = loss and train accuracy only)
    curve_samples: int = Field(default=128, ge=0, le=100_000)
    curve_every: int = Field(default=5, gt=0)
    #: experiment trackers (``tracker:*``) fed each epoch and at the end (built in: ``tensorboard``,
    #: ``mlflow``); a bare name as before, or ``{key: mlflow, options: {...}}``
    trackers: list[ComponentRef] = Field(default_factory=list)


class Recipe(_Model):
    name: str = Field(default="recipe", min_length=1)
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    data: DataStage
    #: one generate block (one source named ``synthetic``) or ``{source name: generate block}``
    generate: Annotated[Union[Annotated[GenerateStage, Tag("~single")],
                              Annotated[dict[str, GenerateStage], Tag("~sources")]],
                        Discriminator(_generate_form)] | None = None
    arms: dict[str, ArmSpec] = Field(min_length=1)
    train: TrainStage
    reference: ReferenceStage = Field(default_factory=ReferenceStage)
    evaluate: EvaluateStage = Field(default_factory=EvaluateStage)
    report: ReportStage = Field(default_factory=ReportStage)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds):
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be >= 0")
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct")
        return seeds

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name):
        if not is_plain_name(name):
            raise ValueError(f"a recipe name names the run folder runs/NAME: no path separators, no leading dot, got {name!r}")
        return name

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms):
        folders: dict[str, str] = {}
        for name in arms:
            if not is_plain_name(name, leading_dot=True):
                raise ValueError(f"invalid arm name {name!r}")
            other = folders.setdefault(arm_folder(name).casefold(), name)
            if other != name:
                raise ValueError(f"arms {other!r} and {name!r} would share the checkpoint folder {arm_folder(name)!r}; rename one")
        return arms

    @model_validator(mode="after")
    def _synthetic_needs_generate(self):
        from dreamset.orchestration.sources import check_sources

        check_sources(self)
        from dreamset.orchestration.closed_loop import check as check_closed_loop

        check_closed_loop(self)
        baseline = self.evaluate.baseline_arm
        if baseline is not None and baseline not in self.arms:
            raise ValueError(f"evaluate.baseline_arm: {baseline!r} is not an arm of this recipe ({', '.join(self.arms)})")
        efficiency = self.evaluate.data_efficiency
        if efficiency is not None:
            if efficiency.full not in self.arms:
                raise ValueError(f"evaluate.data_efficiency.full: {efficiency.full!r} is not an arm of this recipe ({', '.join(self.arms)})")
            if self.arms[efficiency.full].sampler is not None:
                raise ValueError(f"evaluate.data_efficiency.full: {efficiency.full!r} uses a sampler; the full pool arm keeps every image")
        for i, pair in enumerate(self.evaluate.pairs):
            unknown = [name for name in pair if name not in self.arms]
            if unknown:
                raise ValueError(f"evaluate.pairs.{i}: {unknown[0]!r} is not an arm of this recipe ({', '.join(self.arms)})")
            if pair[0] == pair[1]:
                raise ValueError(f"evaluate.pairs.{i}: an arm compared with itself ({pair[0]!r})")
        from dreamset.orchestration.generated_sets import check_generated_sets

        check_generated_sets(self)
        return self

    def baseline_arm(self) -> str:
        """The arm every other arm is compared with (``evaluate.baseline_arm``, else the first
        real-only arm, else the first arm)."""
        if self.evaluate.baseline_arm is not None:
            return self.evaluate.baseline_arm
        return next((name for name, arm in self.arms.items() if arm.real and not arm.synthetic), next(iter(self.arms)))

    def generate_stages(self) -> dict[str, tuple[str, GenerateStage]]:
        """Source name -> (field path, generate block); one generate block is the source ``synthetic``."""
        from dreamset.orchestration.sources import generate_stages

        return generate_stages(self)

    def component_refs(self):
        """``(field path, kind, ref)`` for every component the recipe names."""
        yield "data.dataset", "dataset", self.data.dataset
        for i, ref in enumerate(self.data.shifts):
            yield f"data.shifts.{i}", "shift", ref
        for path, stage in self.generate_stages().values():
            if stage.generator is not None:  # None: the stage names a source instead
                yield f"{path}.generator", "generator", stage.generator
        for name, arm in self.arms.items():
            if arm.sampler is not None:
                yield f"arms.{name}.sampler", "sampler", arm.sampler
            if arm.mixer is not None:
                yield f"arms.{name}.mixer", "mixer", arm.mixer
        yield "train.model", "model", self.train.model
        augments = [("train.augment", self.train.augment)] + [(f"arms.{n}.augment", a.augment) for n, a in self.arms.items()]
        for path, spec in augments:
            for part in ("real", "synthetic", "batch"):
                for i, ref in enumerate(getattr(spec, part) if spec is not None else []):
                    yield f"{path}.{part}.{i}", "augmentation", ref
        if self.train.attacker is not None:
            yield "train.attacker", "attacker", self.train.attacker
        if self.train.objective is not None:
            yield "train.objective", "objective", self.train.objective
        for name, arm in self.arms.items():
            if arm.objective is not None:
                yield f"arms.{name}.objective", "objective", arm.objective
        for i, ref in enumerate(self.evaluate.attackers):
            yield f"evaluate.attackers.{i}", "attacker", ref
        for i, ref in enumerate(self.evaluate.metrics):
            yield f"evaluate.metrics.{i}", "metric", ref
        for i, spec in enumerate(self.evaluate.sets):
            if spec.generator is not None:
                yield f"evaluate.sets.{i}.generator", "generator", spec.generator
        for i, ref in enumerate(self.report.trackers):
            yield f"report.trackers.{i}", "tracker", ref


def is_plain_name(name: str, leading_dot: bool = False) -> bool:
    """A name that is one folder name: no path separator or NUL, not ``.``/``..`` (nor, unless
    ``leading_dot``, hidden)."""
    return bool(name) and not any(ch in name for ch in "/\\\0") and name not in {".", ".."} \
        and (leading_dot or not name.startswith("."))


def arm_folder(name: str) -> str:
    """The folder name of arm ``name`` in ``checkpoints/`` and ``selections/`` (``+`` -> ``_plus_``);
    the recipe refuses two arms with one folder (compared case-insensitively)."""
    return name.replace("+", "_plus_")


#: the deepest nesting of mappings and lists a recipe (file or ``--set`` value) may have
MAX_DEPTH = 32


def check_depth(data: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """A one-line error when ``data`` nests deeper than ``limit``."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                raise BadInputError(f"{where}: nested deeper than {limit} levels")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))


# -- loading ---------------------------------------------------------------------------------------

def read_recipe_file(path: Path) -> dict[str, Any]:
    """Parse a YAML or TOML recipe file into a dict; errors name the file."""
    if not path.is_file():
        raise BadInputError(f"{path}: recipe file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read recipe ({exc})") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = load_yaml(text, str(path))  # bounded: aliases and integer sizes checked before building
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first = " ".join(str(exc).split())
        raise BadInputError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {first}") from None
    except ValueError as exc:  # tomllib: an integer longer than Python converts
        digits = re.search(r"value has (\d+) digits", str(exc))
        if digits is None:
            raise
        raise BadInputError(f"{path}: an integer of {int(digits.group(1)):,} digits (at most {int_digits_limit():,})") from None
    except RecursionError:
        raise BadInputError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    check_depth(data, str(path))
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a recipe must be a mapping at the top level")
    return data


def find_recipe(name_or_path: str | None) -> Path:
    """A shipped recipe by name, or a path to a recipe file. ``None`` is the default recipe."""
    name_or_path = name_or_path or DEFAULT_RECIPE
    shipped = recipe_path(name_or_path)
    if shipped is not None:
        return shipped
    path = Path(name_or_path)
    try:
        if path.is_file():
            return path
    except (OSError, ValueError) as exc:  # a name too long for a file, a NUL byte
        raise BadInputError(f"{shorten(name_or_path, 200)}: not a recipe file ({getattr(exc, 'strerror', None) or exc})") from None
    if path.suffix in RECIPE_SUFFIXES or "/" in name_or_path or "\\" in name_or_path:
        raise BadInputError(f"{name_or_path}: recipe file not found")
    raise BadInputError(
        f"unknown recipe {name_or_path!r}: not a shipped recipe ({', '.join(recipe_names())}) nor a file"
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)``. The value is parsed as YAML, so
    ``seeds=[0,1,2]``, ``train.attacker=null`` and ``x=true`` work."""
    if "=" not in text:
        raise BadInputError(f"--set {text!r}: expected KEY=VALUE")
    key, _, raw = text.partition("=")
    parts = key.strip().split(".")
    if not key.strip() or any(not p for p in parts):
        raise BadInputError(f"--set {text!r}: empty key path")
    if len(parts) > MAX_DEPTH:
        raise BadInputError(f"--set {key[:80]!r}: nested deeper than {MAX_DEPTH} levels")
    try:
        value = load_yaml(raw, f"--set {key[:80]}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except RecursionError:
        raise BadInputError(f"--set {key[:80]}: value nested deeper than {MAX_DEPTH} levels") from None
    check_depth(value, f"--set {key[:80]}")
    return parts, value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``value`` at ``path`` in the raw recipe dict, creating mappings as needed; list
    elements are addressed by index (``evaluate.attackers.0.options.steps=50``)."""
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        where = ".".join(path[: depth + 1])
        if isinstance(node, dict):
            child = node.get(part)
            if isinstance(child, str) and path[depth + 1] in {"key", "options"}:  # short-form component ref
                child = {"key": child}
                node[part] = child
            if child is None:
                child = {}
                node[part] = child
            node = child
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise BadInputError(f"--set {'.'.join(path)}: {where} is not an index of a list of {len(node)}")
            idx = int(part)
            if isinstance(node[idx], str) and path[depth + 1] in {"key", "options"}:
                node[idx] = {"key": node[idx]}
            node = node[idx]
        else:
            raise BadInputError(f"--set {'.'.join(path)}: {where} is not a mapping")
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    else:
        parent = ".".join(path[:-1])
        raise BadInputError(f"--set {'.'.join(path)}: {parent} is not a mapping")


def validate_recipe(data: dict[str, Any], registry=None, source: str = "recipe") -> Recipe:
    """Validate the raw dict (structure, then every component's options against its registered
    ``Options`` model). ``registry=None`` checks the structure only."""
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(format_validation_error(exc)) from None
    if registry is not None:
        for path, kind, ref in recipe.component_refs():
            try:
                spec = registry.get(ref.key, kind)
            except BadInputError as exc:
                raise BadInputError(f"{path}.key: {exc}") from None
            registry.validate_options(spec.key, ref.options, field_path=f"{path}.options")
        from dreamset.training.objectives import check_objective

        check_objective(recipe, registry)
    return recipe


def load_recipe(name_or_path: str | None = None, overrides: list[str] | tuple[str, ...] = (), registry=None) -> tuple[Recipe, dict[str, Any]]:
    """Find, read, override and validate a recipe. Returns the model and the resolved raw dict."""
    path = find_recipe(name_or_path)
    data = read_recipe_file(path)
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        apply_override(data, parts, value)
    recipe = validate_recipe(data, registry, source=str(path))
    return recipe, data
