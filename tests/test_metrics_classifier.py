"""The classifier-based metrics: accuracy, robust accuracy, label agreement, ARC (Sehwag et al. 2022)
and effective robustness (Taori et al. 2020) — conformance on one shared tiny run context, oracles
with known answers, and option errors that name the field."""
from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest
import torch

import dreamset.registry as registry
from dreamset.conformance import create_default
from dreamset.conformance.metrics import check_metric, tiny_run_context
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError
from dreamset.orchestration.evaluation import accuracy
from dreamset.plugins.metrics.arc import arc_area
from dreamset.plugins.metrics.effective_robustness import effective_robustness, fit_logit_line

KEYS = ["metric:accuracy", "metric:robust-accuracy", "metric:label-agreement", "metric:arc", "metric:effective-robustness"]

#: a small, fast ARC setting: radii on [0, 0.15] (L-inf), tiny discriminator, 100 images per side
ARC_OPTIONS = {"eps": [0.0, 0.05, 0.1, 0.15], "epochs": 8, "attack_steps": 3, "eval_steps": 5, "batch_size": 32,
               "max_samples": 100, "discriminator": {"key": "model:small-cnn", "options": {"width": 4}}}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The models here are tiny: one intra-op thread is as fast and does not thrash a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def context(tmp_path_factory, one_torch_thread):
    return tiny_run_context(tmp_path_factory.mktemp("metrics-classifier"))


def toy_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` 1×8×8 images in [0.2, 0.8]: low noise plus a lit row per class (3 classes)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = 0.2 + 0.1 * torch.rand(n, 1, 8, 8, generator=g)
    x[torch.arange(n), 0, labels * 2] += 0.5
    return x, labels


def arc_of(context, real_x, labels, synthetic_x, **options) -> dict:
    names = ["c0", "c1", "c2"]
    ctx = dataclasses.replace(context, real_train=TensorImageSet(real_x, labels, names),
                              synthetic=TensorImageSet(synthetic_x, labels, names))
    return registry.create("metric:arc", **{**ARC_OPTIONS, **options}).compute(ctx)


# -- conformance ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
def test_metric_passes_conformance(key, context):
    metric = create_default(registry.get_registry(), key)
    check_metric(metric, context)


# -- accuracy ---------------------------------------------------------------------------------------

def test_accuracy_per_class_and_over_seeds(context):
    ctx = dataclasses.replace(context, arm_results={
        **context.arm_results,
        101: {"real": {"clean_accuracy": 0.5}},
        102: {"real": {"clean_accuracy": 0.25}},
    })
    result = registry.create("metric:accuracy").compute(ctx)
    for arm, model in context.models.items():
        entry = result["arms"][arm]
        assert entry["clean_accuracy"] == pytest.approx(accuracy(model, context.real_test), abs=1e-12)
        rows = entry["per_class"]
        assert sum(r["count"] for r in rows) == len(context.real_test)
        weighted = sum(r["accuracy"] * r["count"] for r in rows) / len(context.real_test)
        assert weighted == pytest.approx(entry["clean_accuracy"], abs=1e-12)
    seeds = [v["real"]["clean_accuracy"] for v in ctx.arm_results.values()]
    assert result["arms"]["real"]["seeds"] == 3
    assert result["arms"]["real"]["clean_accuracy_mean"] == pytest.approx(statistics.fmean(seeds))
    assert result["arms"]["real"]["clean_accuracy_std"] == pytest.approx(statistics.stdev(seeds))
    table = result["tables"]["per-class clean accuracy (%)"]
    assert table["header"][:2] == ["class", "count"] and len(table["rows"]) == context.real_test.num_classes


# -- robust accuracy --------------------------------------------------------------------------------

def test_robust_accuracy_at_most_clean_and_strong_attack_hurts(context):
    result = registry.create("metric:robust-accuracy", eps=0.5, steps=10, max_samples=30).compute(context)
    clean = registry.create("metric:accuracy", max_samples=30).compute(context)
    for arm in context.models:
        robust = result["arms"][arm]["robust_accuracy"]
        assert 0.0 <= robust <= result["arms"][arm]["clean_accuracy"]
        assert result["arms"][arm]["clean_accuracy"] == pytest.approx(clean["arms"][arm]["clean_accuracy"])
        for row in result["arms"][arm]["per_class"]:
            assert 0.0 <= row["accuracy"] <= 1.0
    # an L-inf ball of radius 0.5 can paint any toy image into any class: robustness collapses
    assert min(result["arms"][arm]["robust_accuracy"] for arm in context.models) < 0.5
    assert result["n_samples"] == 30 and result["attacker"]["options"]["eps"] == 0.5


def test_robust_accuracy_explicit_attacker_equals_default_form(context):
    default = registry.create("metric:robust-accuracy", eps=0.1, steps=5, max_samples=24).compute(context)
    explicit = registry.create("metric:robust-accuracy", max_samples=24,
                               attacker={"key": "pgd", "options": {"eps": 0.1, "steps": 5}}).compute(context)
    for arm in context.models:
        assert explicit["arms"][arm]["robust_accuracy"] == default["arms"][arm]["robust_accuracy"]


# -- label agreement --------------------------------------------------------------------------------

def test_label_agreement_equals_hand_count(context):
    x, y = context.synthetic.get(range(len(context.synthetic)))
    wrong = y.clone()
    wrong[::3] = (wrong[::3] + 1) % 3  # a third of the images now carry a label they do not show
    ctx = dataclasses.replace(context, synthetic=TensorImageSet(x, wrong, context.synthetic.class_names))
    result = registry.create("metric:label-agreement").compute(ctx)
    reference = context.reference_classifier()
    agree, p_label, p_max = 0, 0.0, 0.0
    with torch.no_grad():
        for i in range(len(x)):
            p = torch.softmax(reference(x[i:i + 1]), dim=1)[0].double()
            agree += int(p.argmax()) == int(wrong[i])
            p_label += float(p[wrong[i]])
            p_max += float(p.max())
    assert result["n_samples"] == len(x)
    assert result["agreement"] == pytest.approx(agree / len(x), abs=1e-12)
    assert result["mean_label_probability"] == pytest.approx(p_label / len(x), abs=1e-5)
    assert result["mean_confidence"] == pytest.approx(p_max / len(x), abs=1e-5)
    assert result["agreement"] < 0.9  # the relabelled third is mostly caught
    for c, row in enumerate(result["per_class"]):
        members = (wrong == c).nonzero().flatten().tolist()
        assert row["count"] == len(members)


# -- ARC --------------------------------------------------------------------------------------------

def test_arc_area_by_hand():
    assert arc_area([0.0, 0.5, 1.0], [1.0, 0.75, 0.5]) == pytest.approx(0.5)  # heights 1, .5, 0
    assert arc_area([0.0, 1.0], [0.3, 0.2]) == 0.0  # below chance clips to 0
    assert arc_area([0.1, 0.2, 0.4], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    with pytest.raises(BadInputError, match="eps"):
        arc_area([0.0], [1.0])


def test_arc_is_near_zero_for_two_halves_of_the_same_data(context):
    x, y = toy_images(200, seed=1)
    result = arc_of(context, x[:100], y[:100], x[100:])
    assert result["arc"] < 0.1, result["curve"]
    assert result["n_train_per_side"] + result["n_heldout_per_side"] == 100


def test_arc_is_near_one_for_trivially_separable_sets(context):
    x, y = toy_images(100, seed=2)
    result = arc_of(context, x, y, torch.ones_like(x))
    assert result["arc"] > 0.9, result["curve"]
    assert (context.run_dir / "arc_curve.png").stat().st_size > 0


def test_arc_grows_with_a_brightness_shift(context):
    # real vs real+δ: an L-inf adversary moves both sides by ε, so the sets stay separable only
    # while 2ε < δ — ARC must not decrease with δ, and a large δ must score clearly higher
    x, y = toy_images(200, seed=3)
    arcs = [arc_of(context, x[:100], y[:100], (x[100:] + delta).clamp(0, 1))["arc"] for delta in (0.04, 0.14, 0.32)]
    assert arcs[0] <= arcs[1] + 0.02 and arcs[1] <= arcs[2] + 0.02, arcs
    assert arcs[2] - arcs[0] > 0.3, arcs


def test_arc_leaves_the_global_rng_alone(context):
    x, y = toy_images(40, seed=4)
    state = torch.get_rng_state()
    arc_of(context, x[:20], y[:20], x[20:], epochs=1, max_samples=20)
    assert torch.equal(state, torch.get_rng_state())


# -- effective robustness ---------------------------------------------------------------------------

def _logit(a):
    a = np.clip(np.asarray(a, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(a / (1 - a))


TABLE = [(0.55, 0.30), (0.62, 0.36), (0.70, 0.41), (0.81, 0.52), (0.90, 0.60), (1.0, 0.71)]


def test_fit_and_effective_robustness_equal_a_hand_computed_fit():
    ids, oods = zip(*TABLE)
    slope, intercept = np.polyfit(_logit(ids), _logit(oods), 1)
    got_slope, got_intercept = fit_logit_line(TABLE)
    assert got_slope == pytest.approx(slope, abs=1e-9)
    assert got_intercept == pytest.approx(intercept, abs=1e-9)
    for id_acc, ood_acc in [(0.75, 0.50), (0.95, 0.40), (1.0, 1.0)]:
        predicted = 1 / (1 + np.exp(-(slope * _logit(id_acc) + intercept)))
        expected = 100 * (ood_acc - predicted)
        assert effective_robustness(id_acc, ood_acc, got_slope, got_intercept) == pytest.approx(expected, abs=1e-9)
    # points on the fitted line have zero effective robustness
    assert effective_robustness(0.7, 1 / (1 + math.exp(-(got_slope * _logit(0.7) + got_intercept))), got_slope, got_intercept) == pytest.approx(0, abs=1e-9)


def test_probit_fit_equals_a_hand_computed_fit():
    special = pytest.importorskip("scipy.special")
    ids, oods = zip(*TABLE)
    probit = lambda a: special.ndtri(np.clip(np.asarray(a, dtype=np.float64), 1e-4, 1 - 1e-4))  # noqa: E731
    slope, intercept = np.polyfit(probit(ids), probit(oods), 1)
    got = fit_logit_line(TABLE, scale="probit")
    assert got == pytest.approx((slope, intercept), abs=1e-9)
    expected = 100 * (0.5 - special.ndtr(slope * probit(0.8) + intercept))
    assert effective_robustness(0.8, 0.5, *got, scale="probit") == pytest.approx(expected, abs=1e-9)


def test_fit_needs_two_distinct_id_accuracies():
    with pytest.raises(BadInputError, match="testbed"):
        fit_logit_line([(0.9, 0.5), (0.9, 0.6)])


def test_effective_robustness_fits_the_standard_testbed_only_and_scores_every_arm(context):
    options = dict(getattr(registry.get("metric:effective-robustness").load(), "conformance_options"))
    result = registry.create("metric:effective-robustness", **options).compute(context)
    points = result["testbed"]
    assert len(points) == len(options["testbed_sizes"]) * len(options["testbed_epochs"])
    assert result["baselines"] == []  # Taori et al.: standard-trained real-only models, no scored arm
    fit = result["fits"]["invert"]
    slope, intercept = np.polyfit(_logit([p["id_accuracy"] for p in points]), _logit([p["shifted"]["invert"] for p in points]), 1)
    assert (fit["slope"], fit["intercept"]) == pytest.approx((slope, intercept), abs=1e-9)
    residuals = np.array(_logit([p["shifted"]["invert"] for p in points])) - (slope * np.array(_logit([p["id_accuracy"] for p in points])) + intercept)
    assert fit["n_points"] == len(points)
    assert fit["residual_std"] == pytest.approx(float(np.std(residuals, ddof=1)) if len(points) > 2 else 0.0, abs=1e-9)
    assert set(result["arms"]) == set(context.models)
    for arm, runs in ((a, [r[a] for r in context.arm_results.values()]) for a in context.models):
        ers = [100 * (r["shifted"]["invert"] - 1 / (1 + np.exp(-(slope * _logit(r["clean_accuracy"]) + intercept)))) for r in runs]
        assert result["arms"][arm]["effective_robustness"]["invert"] == pytest.approx(float(np.mean(ers)), abs=1e-9)
        assert result[f"effective_robustness[{arm}]"] == pytest.approx(float(np.mean(ers)), abs=1e-9)
        assert result["arms"][arm]["interval"]["n"] == len(runs)
    assert (context.run_dir / "effective_robustness.png").stat().st_size > 0


def test_an_arm_in_the_fit_is_never_scored_against_it(context):
    options = dict(getattr(registry.get("metric:effective-robustness").load(), "conformance_options"))
    arm = next(iter(context.models))
    result = registry.create("metric:effective-robustness", baseline_arms=[arm], **options).compute(context)
    assert [b["arm"] for b in result["baselines"]] == [arm] * len(context.arm_results)
    assert arm not in result["arms"] and f"effective_robustness[{arm}]" not in result
    assert result["fits"]["invert"]["n_points"] == len(result["testbed"]) + len(context.arm_results)
    assert set(result["arms"]) == set(context.models) - {arm}


def test_effective_robustness_on_linear_axes_is_a_plain_least_squares_line(context):
    options = dict(getattr(registry.get("metric:effective-robustness").load(), "conformance_options"))
    result = registry.create("metric:effective-robustness", scale="linear", **options).compute(context)
    points = result["testbed"]
    slope, intercept = np.polyfit([p["id_accuracy"] for p in points], [p["shifted"]["invert"] for p in points], 1)
    assert (result["fits"]["invert"]["slope"], result["fits"]["invert"]["intercept"]) == pytest.approx((slope, intercept), abs=1e-9)
    for arm in context.models:
        runs = [r[arm] for r in context.arm_results.values()]
        ers = [100 * (r["shifted"]["invert"] - (slope * r["clean_accuracy"] + intercept)) for r in runs]
        assert result["arms"][arm]["effective_robustness"]["invert"] == pytest.approx(float(np.mean(ers)), abs=1e-9)


# -- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, options, field", [
    ("metric:accuracy", {"batch_size": 0}, "batch_size"),
    ("metric:accuracy", {"bogus": 1}, "bogus"),
    ("metric:robust-accuracy", {"max_samples": 0}, "max_samples"),
    ("metric:robust-accuracy", {"eps": 2.0}, "eps"),
    ("metric:robust-accuracy", {"attacker": "pgd", "eps": 0.1}, "eps"),
    ("metric:label-agreement", {"max_samples": -1}, "max_samples"),
    ("metric:arc", {"epochs": 0}, "epochs"),
    ("metric:arc", {"norm": "l3"}, "norm"),
    ("metric:arc", {"eps": [0.0, 0.1, 0.05]}, "eps"),
    ("metric:arc", {"eps": [0.0, 0.1], "eps_max": 0.2}, "eps_max"),
    ("metric:arc", {"eps_max": 2.0}, "eps_max"),
    ("metric:arc", {"holdout_fraction": 1.0}, "holdout_fraction"),
    ("metric:effective-robustness", {"testbed_sizes": [0.5, 1.5]}, "testbed_sizes"),
    ("metric:effective-robustness", {"testbed_epochs": [0]}, "testbed_epochs"),
    ("metric:effective-robustness", {"scale": "log"}, "scale"),
])
def test_bad_options_name_the_field(key, options, field):
    with pytest.raises(BadInputError) as info:
        registry.create(key, **options)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_bad_inputs_at_compute_name_the_field(context):
    cases = [
        ("metric:robust-accuracy", {"attacker": "model:small-cnn"}, context, "attacker.key"),
        ("metric:robust-accuracy", {"attacker": {"key": "pgd", "options": {"steps": 0}}}, context, "attacker.options.steps"),
        ("metric:arc", {"discriminator": "attacker:pgd"}, context, "discriminator.key"),
        ("metric:effective-robustness", {}, dataclasses.replace(context, shifted={}), "data.shifts"),
        ("metric:label-agreement", {}, dataclasses.replace(context, synthetic=None), "synthetic"),
        ("metric:arc", {}, dataclasses.replace(context, synthetic=None), "synthetic"),
    ]
    for key, options, ctx, field in cases:
        with pytest.raises(BadInputError) as info:
            registry.create(key, **options).compute(ctx)
        assert str(info.value).startswith(field), (key, str(info.value))


def test_arc_warns_when_a_discriminator_collapses_to_a_constant():
    from dreamset.plugins.metrics.arc import collapse_warnings

    curve = [{"eps": 0.0, "predicted_real_fraction": 0.49}, {"eps": 0.05, "predicted_real_fraction": 1.0},
             {"eps": 0.1, "predicted_real_fraction": 0.0}, {"eps": 0.15, "predicted_real_fraction": 0.52}]
    (warning,) = collapse_warnings(curve)
    assert "collapsed" in warning and "0.05, 0.1" in warning and "0.15" not in warning
    assert collapse_warnings(curve[:1] + curve[3:]) == []


def test_arc_reports_the_schedule_and_predicted_fractions(context):
    x, y = context.real_train.get(range(len(context.real_train)))
    result = arc_of(context, x[:100], y[:100], torch.ones_like(x[:100]))
    assert result["schedule"] == "curriculum" and isinstance(result["warnings"], list)
    assert all(0 <= p["predicted_real_fraction"] <= 1 for p in result["curve"])


def _line_points(noise):
    """Eight testbed models on the line logit(ood) = logit(id) - 0.5, with logit noise."""
    out = []
    for i, (a, e) in enumerate(zip(np.linspace(0.3, 0.95, 8), noise)):
        out.append({"id_accuracy": float(a), "shifted": {"s": float(1 / (1 + np.exp(-(_logit(a) - 0.5 + e))))}})
    return out


def test_the_interval_carries_the_fits_uncertainty():
    """Three seeds with the same accuracies: the seeds' t-interval has zero width (the pre-2026-12 interval,
    a 'gain' from a line fitted through eight noisy points); the bootstrap over testbed models re-fits the
    line and widens the interval to what the testbed supports."""
    from dreamset.plugins.metrics.effective_robustness import fit_logit_line, score_arms

    testbed = _line_points([0.6, -0.7, 0.5, -0.6, 0.7, -0.5, 0.6, -0.6])
    slope, intercept = fit_logit_line([(p["id_accuracy"], p["shifted"]["s"]) for p in testbed])
    fits = {"s": {"slope": slope, "intercept": intercept}}
    on = 1 / (1 + np.exp(-(slope * _logit(0.9) + intercept)))
    arm = {str(k): {"id_accuracy": 0.9, "shifted": {"s": float(on + 0.01)}} for k in range(3)}   # +1 pp every seed
    (result,) = score_arms({"a": arm}, testbed, fits, ["s"], bootstrap=2000, seed=0).values()
    assert result["effective_robustness_mean"] == pytest.approx(1.0, abs=1e-6)
    assert result["interval_seeds"]["low"] == pytest.approx(result["interval_seeds"]["high"])   # zero width
    assert result["interval"]["low"] < 0 < result["interval"]["high"]                         # the fit's spread
    assert result["verdict"] == "not shown" and result["interval"]["resamples"] == 2000
    tight = _line_points([0.01, -0.01] * 4)
    slope, intercept = fit_logit_line([(p["id_accuracy"], p["shifted"]["s"]) for p in tight])
    on = 1 / (1 + np.exp(-(slope * _logit(0.9) + intercept)))
    arm = {str(k): {"id_accuracy": 0.9, "shifted": {"s": float(on + 0.05 + 0.002 * k)}} for k in range(3)}
    (result,) = score_arms({"a": arm}, tight, {"s": {"slope": slope, "intercept": intercept}}, ["s"]).values()
    assert result["interval"]["low"] > 0 and result["verdict"] == "gain"


def test_the_control_check_flags_a_standard_real_only_arm_off_its_line():
    from types import SimpleNamespace

    from dreamset.plugins.metrics.effective_robustness import control_check

    arms = {"real": {"effective_robustness_mean": -2.26, "interval": {"low": -3.1, "high": -1.4}},
            "real+sd": {"effective_robustness_mean": 3.0, "interval": {"low": 1.0, "high": 5.0}},
            "at": {"effective_robustness_mean": 0.5, "interval": {"low": -1.0, "high": 2.0}}}
    specs = {"real": SimpleNamespace(synthetic=False, standard=False), "real+sd": SimpleNamespace(synthetic=["sd"], standard=False),
             "at": SimpleNamespace(synthetic=False, standard=False)}
    checked = control_check(arms, specs, SimpleNamespace(attacker=None))
    assert set(checked) == {"real", "at"} and checked["real"]["on_line"] is False and "off its own baseline line" in checked["real"]["warning"]
    assert checked["at"]["on_line"] is True and "warning" not in checked["at"]
    adversarial = control_check(arms, specs, SimpleNamespace(attacker={"key": "pgd"}))
    assert adversarial == {}  # adversarially trained arms are not the testbed's kind of model
    # an arm with augmentations of its own (real+crop) is not trained like the testbed: no control
    from dreamset.orchestration.recipe import AugmentSpec

    specs["at"] = SimpleNamespace(synthetic=False, standard=False, augment=AugmentSpec(real=[{"key": "random-crop"}]))
    specs["real"].augment = AugmentSpec()  # augment: {} is none
    assert set(control_check(arms, specs, SimpleNamespace(attacker=None))) == {"real"}
