"""``metric:effective-robustness`` — effective robustness to natural distribution shifts (Taori,
Dave, Shankar, Carlini, Recht & Schmidt, 2020, "Measuring Robustness to Natural Distribution Shifts
in Image Classification", NeurIPS, arXiv:2007.00644), as used for synthetic training data by Bansal & Grover (2023,
"Leaving Reality to Imagination: Robust Classification via Generated Datasets").

Taori et al. observe that, across standard models trained on the real distribution, accuracy on a
shifted test set is (nearly) a linear function of in-distribution (ID) accuracy once both are put
through a logit (or probit) transform. Effective robustness (ER) of a model is how far its shifted
accuracy lies above that baseline line at its own ID accuracy.

* Baseline testbed, as Taori et al. build it — **standard-trained models on real data only**
  (trained by this metric, cheaply): ``model = train.model`` trained with standard
  training (no attacker, no EMA, no label smoothing; the recipe's optimiser, lr and batch size) on
  nested random subsets of ``real_train`` — a ``testbed_sizes`` fraction each — for each of
  ``testbed_epochs`` (default: the recipe's epochs); model ``i`` uses seed ``seed + i``.
  Checkpoints are cached in ``run_dir/metrics/effective-robustness/<digest>/``. Arms named in
  ``baseline_arms`` (default none) join the fit with every seed — and are then **not scored**: an arm
  is never measured against a line fitted through itself. A baseline arm that is adversarially
  trained or uses synthetic data gets a warning (it is not a Taori testbed model).
* Fit, per shift: least squares ``T(ood) = slope·T(id) + intercept`` with ``T`` = logit (default,
  Taori et al.), probit, or ``linear`` (the identity, as Bansal & Grover's slides fit), accuracies
  clipped to ``[1e-4, 1 − 1e-4]`` first for logit/probit (:func:`fit_logit_line`). Each fit records
  its points' count and ``residual_std``, the spread of the testbed around the line in ``T`` units.
* ER of an arm on a shift, in percentage points of accuracy (the logit residual transformed back):
  ``100·(ood − T⁻¹(slope·T(id) + intercept))`` (:func:`effective_robustness`), computed per seed;
  ``effective_robustness_mean`` averages over shifts and seeds (``unit: "pp"`` in the result).
  ``interval`` carries the fit's own uncertainty: a 95% percentile bootstrap (``bootstrap``
  resamples, seeded) that resamples the testbed models — re-fitting the line each time — and the
  arm's seeds (:func:`score_arms`); ``interval_seeds`` is the Student-t interval over seeds with the
  line fixed. The ``verdict`` is a gain/loss only when both exclude 0 (a percentile bootstrap over
  three seeds alone is too narrow); otherwise ``not shown``. A shift whose testbed has fewer than two
  distinct ID accuracies has no fit: its ER is ``null`` and a line in ``warnings`` says why.
* Control check (``control_check``, :func:`control_check`): every scored arm trained like the testbed
  (standard training, real data only) should lie on its own line — its interval should contain 0.
  One that does not gets a line in ``warnings``: the line does not describe this training.

Inputs (``scope = "arms"``, :class:`~dreamset.contracts.inputs.ArmInputs`): ``real.train``/``test``/``shifted``
(images ``float32 N×C×H×W`` in [0,1], labels ``int64 N``), ``results`` (seed -> arm ->
``clean_accuracy``, ``shifted``) and the recipe's ``train`` settings.
Accuracies are fractions in [0,1]; ER is in percentage points. Result: ``scale``,
``effective_robustness[<arm>]`` scalars (mean over shifts), ``arms`` (arm -> ``id_accuracy``,
``shifted``, ``effective_robustness`` per shift, ``effective_robustness_mean``, ``interval``, ``interval_seeds``,
``verdict``, ``per_seed``), ``control_check``,
``fits`` (shift -> ``{slope, intercept, n_points}`` or ``null``), ``testbed`` and ``baselines``
(every point), ``warnings``, ``tables``, and the figure ``run_dir/effective_robustness.png``.
"""
from __future__ import annotations

import hashlib
import json
import math
import statistics
from typing import Annotated, Any, Iterable, Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.orchestration.seeding import forked_rng
from dreamset.orchestration.seeding import build_model
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.progress import progress
from dreamset.contracts.interfaces import Metric
from dreamset.orchestration.recipe import ComponentRef

#: accuracies are clipped to [CLIP, 1 − CLIP] before the logit/probit transform
CLIP = 1e-4


def transform(accuracy: float, scale: str = "logit") -> float:
    """``logit(a)`` or ``probit(a)`` of an accuracy clipped to ``[1e-4, 1 − 1e-4]``; ``linear``: ``a``."""
    a = min(1 - CLIP, max(CLIP, float(accuracy)))
    if scale == "logit":
        return math.log(a / (1 - a))
    if scale == "probit":
        return statistics.NormalDist().inv_cdf(a)
    if scale == "linear":
        return float(accuracy)
    raise BadInputError(f"scale: expected 'logit', 'probit' or 'linear', got {scale!r}")


def inverse_transform(value: float, scale: str = "logit") -> float:
    """The accuracy whose :func:`transform` is ``value``."""
    if scale == "logit":
        return 1 / (1 + math.exp(-value)) if value >= 0 else math.exp(value) / (1 + math.exp(value))
    if scale == "probit":
        return statistics.NormalDist().cdf(value)
    if scale == "linear":
        return float(value)
    raise BadInputError(f"scale: expected 'logit', 'probit' or 'linear', got {scale!r}")


def fit_logit_line(points: Iterable[tuple[float, float]], scale: str = "logit") -> tuple[float, float]:
    """Least-squares line ``T(ood) = slope·T(id) + intercept`` through ``(id_accuracy,
    ood_accuracy)`` points (``T`` = logit or probit after clipping, or linear). Needs two distinct ID values."""
    xs, ys = [], []
    for id_acc, ood_acc in points:
        xs.append(transform(id_acc, scale))
        ys.append(transform(ood_acc, scale))
    if len(set(xs)) < 2:
        raise BadInputError(f"testbed: the fit needs at least two distinct in-distribution accuracies, got {len(set(xs))}")
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


def effective_robustness(id_acc: float, ood_acc: float, slope: float, intercept: float, scale: str = "logit") -> float:
    """``ood_acc`` minus the baseline fit's prediction at ``id_acc``, in percentage points."""
    predicted = inverse_transform(slope * transform(id_acc, scale) + intercept, scale)
    return 100.0 * (float(ood_acc) - predicted)


def _arm_er(per_seed: dict[str, dict[str, Any]], fits: dict[str, Any], labels: list[str], scale: str):
    """Per seed and shift ER (pp), or None where the shift has no fit or the seed no value."""
    return {seed: {label: (effective_robustness(point["id_accuracy"], point["shifted"][label], fits[label]["slope"],
                                                fits[label]["intercept"], scale)
                           if fits.get(label) is not None and label in point["shifted"] else None) for label in labels}
            for seed, point in per_seed.items()}


def _seed_means(er_seed: dict[str, dict[str, float | None]], seeds) -> list[float]:
    means = []
    for seed in seeds:
        known = [v for v in er_seed[seed].values() if v is not None]
        if known:
            means.append(statistics.fmean(known))
    return means


def score_arms(arm_points: dict[str, dict[str, dict[str, Any]]], fit_points: list[dict[str, Any]], fits: dict[str, Any],
               labels: list[str], scale: str = "logit", bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Each arm's ER (pp) per shift and overall, with an interval that carries the fit's uncertainty.

    ``interval``: the 95% percentile bootstrap of the arm's mean ER when both the testbed models
    (``fit_points``, the line is re-fitted per resample) and the arm's seeds are resampled with
    replacement (``bootstrap`` resamples, seeded; resamples whose testbed has < 2 distinct ID
    accuracies are skipped). ``interval_seeds``: the Student-t interval over seeds with the line held
    fixed (what the interval was before 2026-12). With few seeds a percentile bootstrap is too
    narrow, so the ``verdict`` is a gain/loss only when *both* intervals exclude 0 on the same side."""
    import numpy as np

    from dreamset.report.differences import t_interval, verdict

    out: dict[str, Any] = {}
    draws: dict[str, list[float]] = {arm: [] for arm in arm_points}
    rng = np.random.default_rng(seed)
    n_fit = len(fit_points)
    for _ in range(bootstrap if n_fit >= 2 else 0):
        rows = rng.integers(0, n_fit, n_fit)
        chosen = [fit_points[i] for i in rows]
        refit: dict[str, Any] = {}
        for label in labels:
            pts = [(p["id_accuracy"], p["shifted"][label]) for p in chosen if label in p["shifted"]]
            try:
                slope, intercept = fit_logit_line(pts, scale)
                refit[label] = {"slope": slope, "intercept": intercept}
            except BadInputError:
                refit[label] = None
        if all(refit.get(label) is None for label in labels):
            continue
        for arm, per_seed in arm_points.items():
            seeds = list(per_seed)
            picked = [seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]
            er_seed = _arm_er(per_seed, refit, labels, scale)
            means = _seed_means(er_seed, picked)
            if means:
                draws[arm].append(statistics.fmean(means))
    for arm, per_seed in arm_points.items():
        er_seed = _arm_er(per_seed, fits, labels, scale)
        er = {}
        for label in labels:
            values = [v[label] for v in er_seed.values() if v[label] is not None]
            er[label] = statistics.fmean(values) if values else None
        known = [v for v in er.values() if v is not None]
        mean = statistics.fmean(known) if known else None
        seed_means = _seed_means(er_seed, list(per_seed))
        seeds_t = t_interval(seed_means) if seed_means else None
        interval = None
        if mean is not None:
            interval = {"mean": mean, "low": None, "high": None, "n": len(seed_means), "n_testbed": n_fit,
                        "confidence": 0.95, "method": "percentile bootstrap over testbed models and seeds",
                        "resamples": len(draws[arm])}
            if len(draws[arm]) >= 100:
                interval["low"], interval["high"] = (float(v) for v in np.percentile(draws[arm], [2.5, 97.5]))
        both = (interval is not None and seeds_t is not None and interval["low"] is not None
                and seeds_t.get("low") is not None and verdict(interval) == verdict(seeds_t))
        out[arm] = {
            "id_accuracy": statistics.fmean(p["id_accuracy"] for p in per_seed.values()),
            "shifted": {label: statistics.fmean(p["shifted"][label] for p in per_seed.values() if label in p["shifted"])
                        for label in labels if any(label in p["shifted"] for p in per_seed.values())},
            "effective_robustness": er,
            "effective_robustness_mean": mean,
            "interval": interval,
            "interval_seeds": seeds_t,
            "verdict": verdict(interval) if both else "not shown",
            "per_seed": er_seed,
        }
    return out


def control_check(arms: dict[str, Any], specs: dict[str, Any], train) -> dict[str, Any]:
    """For every scored arm trained like the testbed (standard training on real data only, no augmentations
    of its own): whether its ER interval contains 0, i.e. whether the control lies on its own line. An off-line control
    gets a ``warning``: the line does not describe this training, and the other arms' ER is measured
    against a line their own control misses."""
    out: dict[str, Any] = {}
    for arm, entry in arms.items():
        spec = specs.get(arm) if specs else None
        if spec is None or spec.synthetic or not (train is None or train.attacker is None or spec.standard):
            continue
        own = getattr(spec, "augment", None)  # an arm's own augmentations: not trained like the testbed
        if own is not None and (own.real or own.synthetic or own.batch):
            continue
        i = entry.get("interval") or {}
        if i.get("low") is None:
            out[arm] = {"on_line": None, "note": "no interval (one seed or too few resamples)"}
            continue
        on_line = i["low"] <= 0 <= i["high"]
        out[arm] = {"on_line": on_line, "effective_robustness_mean": entry["effective_robustness_mean"],
                    "low": i["low"], "high": i["high"]}
        if not on_line:
            out[arm]["warning"] = (f"control arm {arm!r} (standard training, real data only) lies off its own baseline line: "
                                   f"ER {entry['effective_robustness_mean']:+.2f} pp [{i['low']:+.2f}, {i['high']:+.2f}]; "
                                   "the testbed does not describe this training, so the other arms' ER is relative to a "
                                   "line their control misses")
    return out


class EffectiveRobustnessOptions(Options):
    testbed_sizes: list[Annotated[float, Field(gt=0, le=1)]] = Field(default=[0.05, 0.1, 0.25, 0.5], max_length=100,
                                       description="fractions of real_train the baseline testbed models train on")
    testbed_epochs: list[Annotated[int, Field(ge=1, le=100_000)]] | None = Field(default=None, min_length=1, max_length=100,
                                             description="training epochs of the testbed models (null = the recipe's train.epochs)")
    baseline_arms: list[str] = Field(default=[], description="arms (every seed) added to the baseline fit; they are not scored")
    scale: Literal["logit", "probit", "linear"] = Field(default="logit", description="axis transform of the linear fit")
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="evaluation batch size")
    bootstrap: int = Field(default=2000, ge=0, le=1_000_000,
                           description="bootstrap resamples of testbed models and seeds for the interval (0: seeds' t-interval only)")
    seed: int = Field(default=0, ge=0, description="seed of the testbed subsets and models (model i: seed + i)")
    model: ComponentRef | None = Field(default=None, description="model key (or {key, options}) of the testbed; null = the recipe's train.model")
    mixer: ComponentRef = Field(default={"key": "mixer:ratio"},
                                description="mixer key (or {key, options}) of the testbed's real-only batches; created with real_fraction 1")


@register(description="effective robustness vs a real-data baseline fit in logit space (Taori et al. 2020)")
class EffectiveRobustnessMetric(Metric):
    """Effective robustness of every arm against a real-data baseline fit, per shift."""

    key = "metric:effective-robustness"
    scope = "arms"

    headline = (Headline("effective_robustness_mean", "effective robustness", better="higher", group="shift", unit="pp",
                         format="{:+.2f}", interval="interval", per_arm=True,
                         explain="shifted accuracy above the real-data baseline line at the arm's own ID accuracy, "
                                 "percentage points, mean over shifts (interval: bootstrap over testbed models and seeds)"),)

    Options = EffectiveRobustnessOptions

    @classmethod
    def dependencies(cls, options):
        return {"model": ("model", options.model.key if options.model is not None else None),
                "mixer": ("mixer", options.mixer.key)}
    conformance_options = {"testbed_sizes": [0.1, 0.5], "testbed_epochs": [1, 3]}

    def _evaluate(self, inputs, model) -> dict[str, Any]:
        from dreamset.orchestration.evaluation import accuracy

        bs, device = self.options.batch_size, inputs.services.device
        return {"id_accuracy": accuracy(model, inputs.real.test, device, bs),
                "shifted": {label: accuracy(model, source, device, bs) for label, source in inputs.real.shifted.items()}}

    def _testbed(self, inputs) -> list[dict[str, Any]]:
        """Train (or reload) and evaluate the real-only baseline models."""
        import numpy as np

        from dreamset.training.trainer import train_classifier

        o = self.options
        train, services = inputs.train, inputs.services
        real = inputs.real.train
        epochs_list = o.testbed_epochs or [train.epochs]
        order = np.random.default_rng(o.seed).permutation(len(real))
        dumped = o.model_dump(mode="json")
        for name, default in EffectiveRobustnessOptions().model_dump(mode="json").items():
            if name in ("model", "mixer") and dumped[name] == default:
                del dumped[name]  # options added later: at their defaults, earlier caches stay valid
        digest = hashlib.sha256(json.dumps({"options": dumped, "train": train.model_dump(mode="json"),
                                            "n": len(real), "shape": list(real.image_shape)}, sort_keys=True).encode())
        digest.update(real.labels.numpy().tobytes())
        probe, _ = real.get(order[: min(64, len(real))])
        digest.update(probe.numpy().tobytes())
        cache = services.run_dir / "metrics" / "effective-robustness" / digest.hexdigest()[:16]
        model_ref, model_field = (o.model, "model.options") if o.model is not None else (train.model, "train.model.options")
        factory = services.registry.create(model_ref.key, kind="model", field_path=model_field, **model_ref.options)
        mixer = services.registry.create(o.mixer.key, kind="mixer", field_path="mixer.options",
                                         **{**o.mixer.options, "real_fraction": 1.0})
        points = []
        index = 0
        with progress(services, "effective-robustness testbed", len(o.testbed_sizes) * len(epochs_list), unit="models") as advance:
            for fraction in o.testbed_sizes:
                size = max(1, int(round(fraction * len(real))))
                subset = real.subset(np.sort(order[:size]))
                for epochs in epochs_list:
                    seed = o.seed + index
                    settings = train.model_copy(update={"epochs": epochs, "ema_decay": None, "label_smoothing": 0.0})
                    model = build_model(factory, real.image_shape, real.num_classes, seed=o.seed,
                                        purpose="effective-robustness-testbed", index=index)
                    model = train_classifier(services, model, mixer=mixer, real=subset, synthetic=None, attacker=None, settings=settings,
                                             seed=seed, checkpoint_dir=cache / f"n{size}-e{epochs}-s{seed}",
                                             description=f"ER testbed n={size} epochs={epochs}")
                    points.append({"train_size": size, "epochs": epochs, "seed": seed, **self._evaluate(inputs, model)})
                    index += 1
                    advance(1)
        return points

    def _arm_points(self, inputs) -> dict[str, dict[str, dict[str, Any]]]:
        """arm -> seed -> ``{id_accuracy, shifted}`` from the arms' results (or the current models)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for seed, runs in inputs.results.items():
            for arm, res in runs.items():
                if isinstance(res.get("clean_accuracy"), (int, float)) and isinstance(res.get("shifted"), dict):
                    out.setdefault(arm, {})[str(seed)] = {"id_accuracy": float(res["clean_accuracy"]),
                                                          "shifted": {k: float(v) for k, v in res["shifted"].items()}}
        if not out:
            for arm, model in inputs.models.items():
                out[arm] = {str(inputs.seed): self._evaluate(inputs, model)}
        return out

    def compute(self, inputs) -> dict[str, Any]:
        o = self.options
        if not inputs.real.shifted:
            raise BadInputError("data.shifts: metric:effective-robustness needs at least one shifted test set")
        if inputs.real.train is None or inputs.real.test is None:
            raise BadInputError("real_train: metric:effective-robustness needs the real train and test splits")
        with forked_rng(inputs.services.device):
            testbed = self._testbed(inputs)
        arm_points = self._arm_points(inputs)
        missing = [a for a in o.baseline_arms if a not in arm_points]
        warnings = [f"baseline_arms: no results for arm {a!r}; it is not part of the fit" for a in missing]
        for name in o.baseline_arms:
            spec = inputs.arms.get(name)
            if spec is not None and (spec.synthetic or (inputs.train.attacker is not None and not spec.standard)):
                warnings.append(f"baseline_arms: {name!r} is {'trained on synthetic data' if spec.synthetic else 'adversarially trained'}; "
                                f"Taori et al.'s testbed holds standard-trained real-data models only")
        baselines = [{"arm": arm, "seed": seed, **point} for arm in o.baseline_arms if arm in arm_points
                     for seed, point in arm_points[arm].items()]
        labels = list(inputs.real.shifted)
        fits: dict[str, Any] = {}
        for label in labels:
            pts = [(p["id_accuracy"], p["shifted"][label]) for p in testbed + baselines if label in p["shifted"]]
            try:
                slope, intercept = fit_logit_line(pts, o.scale)
                residuals = [transform(ood, o.scale) - (slope * transform(idv, o.scale) + intercept) for idv, ood in pts]
                fits[label] = {"slope": slope, "intercept": intercept, "n_points": len(pts),
                               "residual_std": statistics.stdev(residuals) if len(residuals) > 2 else 0.0}
            except BadInputError as exc:
                fits[label] = None
                warnings.append(f"{label}: no fit ({exc}); widen testbed_sizes or testbed_epochs")
        result: dict[str, Any] = {"scale": o.scale, "unit": "pp"}
        arms = score_arms({a: p for a, p in arm_points.items() if a not in o.baseline_arms},  # a fit arm is never scored
                          testbed + baselines, fits, labels, o.scale, o.bootstrap, o.seed)
        for arm, entry in arms.items():
            if entry["effective_robustness_mean"] is not None:
                result[f"effective_robustness[{arm}]"] = entry["effective_robustness_mean"]
        controls = control_check(arms, inputs.arms, inputs.train)
        warnings += [c["warning"] for c in controls.values() if c.get("warning")]
        result["control_check"] = controls
        result.update({"arms": arms, "fits": fits, "testbed": testbed, "baselines": baselines, "warnings": warnings})
        fmt = lambda v: "–" if v is None else f"{v:+.2f}"  # noqa: E731

        def ci(a):
            i = a["interval"]
            return "–" if i is None or i.get("low") is None else f"[{i['low']:+.2f}, {i['high']:+.2f}] {a['verdict']}"
        result["tables"] = {
            "effective robustness (percentage points)": {
                "header": ["arm", "ID acc %"] + [f"{label} ER pp" for label in labels] + ["mean ER pp", "95% interval (testbed and seeds)"],
                "rows": [[arm, f"{100 * a['id_accuracy']:.1f}"] + [fmt(a["effective_robustness"][label]) for label in labels]
                         + [fmt(a["effective_robustness_mean"]), ci(a)] for arm, a in arms.items()],
            },
            "control check (standard-trained real-only arms on their own line)": {
                "header": ["arm", "mean ER pp", "95% interval", "on its line"],
                "rows": [[arm, fmt(c.get("effective_robustness_mean")),
                          "–" if c.get("low") is None else f"[{c['low']:+.2f}, {c['high']:+.2f}]",
                          {True: "yes", False: "NO", None: "–"}[c.get("on_line")]] for arm, c in controls.items()],
            },
            f"baseline fits ({o.scale})": {
                "header": ["shift", "slope", "intercept", "points", "residual std"],
                "rows": [[label, "–", "–", 0, "–"] if fit is None else
                         [label, f"{fit['slope']:.4f}", f"{fit['intercept']:.4f}", fit["n_points"], f"{fit['residual_std']:.3f}"]
                         for label, fit in fits.items()],
            },
        }
        self._plot(inputs.services.run_dir / "effective_robustness.png", labels, testbed, baselines, arms, fits)
        return result

    def _plot(self, path, labels, testbed, baselines, arms, fits) -> None:
        from dreamset.report.figures import png_figure

        scale = self.options.scale
        t = lambda a: transform(a, scale)  # noqa: E731
        cols = min(3, len(labels))
        rows = math.ceil(len(labels) / cols)
        with png_figure(path, rows, cols, figsize=(4.5 * cols, 4 * rows), squeeze=False) as (_, axes):
            for ax, label in zip(axes.flat, labels):
                xs = [t(p["id_accuracy"]) for p in testbed if label in p["shifted"]]
                ax.scatter(xs, [t(p["shifted"][label]) for p in testbed if label in p["shifted"]], c="grey", s=20, label="testbed (real)")
                bx = [t(p["id_accuracy"]) for p in baselines if label in p["shifted"]]
                ax.scatter(bx, [t(p["shifted"][label]) for p in baselines if label in p["shifted"]], c="black", marker="^", s=30,
                           label="baseline arms")
                for i, (arm, a) in enumerate(arms.items()):
                    if label in a["shifted"]:
                        ax.scatter([t(a["id_accuracy"])], [t(a["shifted"][label])], s=70, marker="*", color=f"C{i}", zorder=3,
                                   label=f"{arm} (ER {a['effective_robustness'][label]:+.1f} pp)" if a["effective_robustness"][label] is not None else arm)
                allx = xs + bx + [t(a["id_accuracy"]) for a in arms.values()]
                lo, hi = (min(allx), max(allx)) if allx else (-1.0, 1.0)
                if hi - lo < 1e-6:
                    lo, hi = lo - 1, hi + 1
                if fits.get(label) is not None:
                    f = fits[label]
                    ax.plot([lo, hi], [f["slope"] * lo + f["intercept"], f["slope"] * hi + f["intercept"]], "k-", lw=1,
                            label=f"fit: {f['slope']:.2f}x{f['intercept']:+.2f}")
                ax.plot([lo, hi], [lo, hi], ":", color="grey", lw=1, label="y = x")
                ax.set_xlabel(f"{scale}(ID accuracy)")
                ax.set_ylabel(f"{scale}({label} accuracy)")
                ax.set_title(label)
                ax.legend(fontsize=7)
            for ax in list(axes.flat)[len(labels):]:
                ax.axis("off")
