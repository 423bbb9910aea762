"""Fair comparisons: compute budgets, one stratified evaluation subset, worst-case robust accuracy,
paired differences with intervals over seeds, effective robustness without scored arms in the fit,
and the claims tables regenerated from report.json."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import dreamset.registry as registry
from dreamset.cli import main
from dreamset.conformance.metrics import tiny_run_context
from dreamset.contracts.errors import BadInputError
from dreamset.orchestration.evaluation import stratified_subset, worst_case_correct
from dreamset.orchestration.pipeline import arm_budgets
from dreamset.orchestration.recipe import load_recipe
from dreamset.report.claims import claims_markdown, splice
from dreamset.report.differences import compute_notes, pair_comparisons, paired_comparisons, t_interval, verdict

#: the arms and budget the budget machinery is tested with: the compute-matched control, the mixed arm and an
#: arm at its own epochs (budget: epochs), trained with PGD (the default recipe itself has the first two, at a
#: fixed number of steps, with N-FGSM)
THREE_ARMS = [
    "train.budget=matched",
    "arms={real: {real: true}, real+synthetic: {real: true, synthetic: true, mixer: {key: ratio, options: {real_fraction: 0.5}}},"
    " real-epochs: {real: true, budget: epochs}}",
    "train.attacker={key: pgd, options: {eps: 0.15, steps: 7}}",
]

#: the default recipe at toy size, with THREE_ARMS: every stage runs, in seconds
TINY = [*THREE_ARMS,
    "seeds=[0,1]", "data.dataset.options.train_size=200",
    "generate.count=200", "generate.batch_size=100", "generate.shard_size=100",
    "generate.generator.options={block_out_channels: [8, 16], train_steps: 20, steps: 4, batch_size: 32}",
    "train.epochs=2", "train.model.options.width=8", "train.attacker.options.steps=2",
    "evaluate.attackers.0.options.steps=2", "evaluate.robust_samples=50", "evaluate.metrics=[]",
]


def _run(out, *extra) -> dict:
    args = ["run", "--out", str(out)]
    for item in (*TINY, *extra):
        args += ["--set", item]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("fair") / "run"
    return out, _run(out)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    return tiny_run_context(tmp_path_factory.mktemp("fair-context"))


# -- budgets ----------------------------------------------------------------------------------------

def test_matched_budget_gives_every_arm_the_longest_arms_steps():
    recipe, _ = load_recipe("digits-robust", THREE_ARMS)
    # mixer:ratio 0.5 takes twice as many batches per pass over the real set as real-only batches
    budgets = arm_budgets(recipe, {"real": 4, "real+synthetic": 8, "real-epochs": 4})
    # real-epochs keeps its own epochs (budget: epochs): the old, unmatched comparison
    assert budgets == {"real": 8 * recipe.train.epochs, "real+synthetic": 8 * recipe.train.epochs, "real-epochs": 4 * recipe.train.epochs}


def test_epoch_budgets_and_fixed_budgets():
    spe = {"real": 4, "real+synthetic": 8, "real-epochs": 4}
    recipe, _ = load_recipe("digits-robust", [*THREE_ARMS, "train.budget=epochs"])
    assert arm_budgets(recipe, spe) == {"real": 4 * 30, "real+synthetic": 8 * 30, "real-epochs": 4 * 30}
    recipe, _ = load_recipe("digits-robust", [*THREE_ARMS, "train.budget=100", "arms.real.budget=epochs"])
    assert arm_budgets(recipe, spe) == {"real": 4 * 30, "real+synthetic": 100, "real-epochs": 4 * 30}


def test_bad_budget_names_the_field():
    with pytest.raises(BadInputError, match="train.budget"):
        load_recipe("digits-robust", ["train.budget=longest"])


def test_default_run_records_equal_steps_and_what_each_arm_saw(tiny_report):
    _, report = tiny_report
    arms = report["arms"]
    steps = {name: arm["training"]["optimizer_steps"] for name, arm in arms.items()}
    # the compute-matched control trains as long as real+synthetic; real-epochs (budget: epochs) half as long
    assert steps["real"] == steps["real+synthetic"] == 2 * steps["real-epochs"]
    # one loud note per dimension the half-length arm differs in: steps, attack passes, images seen
    assert len(report["notes"]) == 3 and all("real-epochs" in n and "NOT COMPUTE-MATCHED" in n for n in report["notes"])
    assert [d in n for d, n in zip(("optimizer steps", "attack forward/backward passes", "images seen"), report["notes"])] == [True] * 3
    for name, arm in arms.items():
        for seed, result in arm["per_seed"].items():
            t = result["training"]
            assert t["optimizer_steps"] == t["planned_steps"] == steps[name]
            # PGD-2: one forward (and backward) per attack step, per optimizer step
            assert t["attack_forward_backward_passes"] == 2 * t["optimizer_steps"]
            assert t["images_seen"]["real"] + t["images_seen"]["synthetic"] == t["images_seen"]["total"]
            assert t["images_seen"]["split"] == "counted"
            assert t["wall_seconds"] > 0
    real, mixed = arms["real"]["per_seed"]["0"]["training"], arms["real+synthetic"]["per_seed"]["0"]["training"]
    assert real["images_seen"]["synthetic"] == 0 and mixed["images_seen"]["synthetic"] == mixed["images_seen"]["real"]
    # the real arm passes over its data twice as often to match the mixed arm's steps
    assert real["epochs"] == pytest.approx(2 * mixed["epochs"])
    assert arms["real-epochs"]["per_seed"]["0"]["training"]["epochs"] == pytest.approx(mixed["epochs"])



def test_images_seen_per_set_are_counted_not_planned(tmp_path):
    """The real/synthetic split of ``images_seen`` counts the rows of the batches trained on: right for a
    mixer whose mix changes within an epoch and that declares no composition (the planned split was
    ``None`` there), and blind to the batches the prefetch thread read ahead past the budget."""
    from dreamset.conformance.metrics import toy_row_images
    from dreamset.contracts.interfaces import Mixer
    from dreamset.files.checkpoints import load_checkpoint
    from dreamset.orchestration.recipe import TrainStage
    from dreamset.training.trainer import train_classifier

    class Alternating(Mixer):
        """Even batches: 16 real rows; odd batches: 4 real + 12 synthetic. No declared composition."""
        key = "mixer:alternating-test"

        def steps_per_epoch(self, real, synthetic, batch_size):
            return 5

        def composition(self, real, synthetic, batch_size):
            return None

        def batches(self, real, synthetic, batch_size, epoch, seed):
            for step in range(5):
                parts = [real.get(torch.arange(16))] if step % 2 == 0 else [real.get(torch.arange(4)), synthetic.get(torch.arange(12))]
                yield torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    real = toy_row_images(40, 3, 0.0, torch.Generator().manual_seed(0))
    synthetic = toy_row_images(40, 3, 0.0, torch.Generator().manual_seed(1))
    settings = TrainStage(model="small-cnn", epochs=1, batch_size=16, mixed_precision=False)
    build = lambda: registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)  # noqa: E731
    record: dict = {}
    torch.manual_seed(0)
    # 7 steps: one epoch (batches 0-4) and batches 0-1 of the second; the prefetcher reads ahead of both
    train_classifier(None, build(), mixer=Alternating(), real=real, synthetic=synthetic, attacker=None, settings=settings,
                     seed=0, checkpoint_dir=tmp_path / "a", total_steps=7, record=record)
    real_rows = 3 * 16 + 2 * 4 + 16 + 4
    assert record["images_seen"] == {"total": 7 * 16, "real": real_rows, "synthetic": 7 * 16 - real_rows, "split": "counted"}
    # the counters are in the checkpoint, so a resumed or reused run reports the same split
    _, meta = load_checkpoint(tmp_path / "a" / "final.safetensors")
    assert (meta["cost"]["images_seen_real"], meta["cost"]["images_seen_synthetic"]) == (real_rows, 7 * 16 - real_rows)

def test_without_an_epoch_arm_the_default_recipe_has_no_note(tmp_path):
    report = _run(tmp_path / "run", "seeds=[0]", "arms={real: {real: true}, real+synthetic: {real: true, synthetic: true}}")
    assert report["notes"] == []
    assert len({arm["training"]["optimizer_steps"] for arm in report["arms"].values()}) == 1


def test_arms_that_differ_in_steps_are_flagged_loudly(tmp_path, capsys):
    report = _run(tmp_path / "run", "train.budget=epochs", "seeds=[0]", "arms={real: {real: true}, real+synthetic: {real: true, synthetic: true}}")
    steps = {name: arm["training"]["optimizer_steps"] for name, arm in report["arms"].items()}
    assert steps["real"] * 2 == steps["real+synthetic"]
    assert len(report["notes"]) == 3 and all("NOT COMPUTE-MATCHED" in n for n in report["notes"])  # steps, attack passes, images
    assert "NOT COMPUTE-MATCHED" in capsys.readouterr().out
    assert "NOT COMPUTE-MATCHED" in (tmp_path / "run" / "report.html").read_text()


def test_a_fixed_budget_stops_inside_an_epoch_and_a_rerun_reuses_it(tmp_path):
    from dreamset.conformance.metrics import toy_row_images
    from dreamset.files.checkpoints import load_checkpoint
    from dreamset.orchestration.recipe import TrainStage
    from dreamset.training.trainer import train_classifier

    data = toy_row_images(50, 3, 0.0, torch.Generator().manual_seed(0))
    settings = TrainStage(model="small-cnn", epochs=1, batch_size=16, mixed_precision=False)
    mixer = registry.create("mixer:ratio", real_fraction=1.0)
    build = lambda: registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)  # noqa: E731
    record: dict = {}
    torch.manual_seed(0)
    train_classifier(None, build(), mixer=mixer, real=data, synthetic=None, attacker=None, settings=settings, seed=0,
                     checkpoint_dir=tmp_path / "a", total_steps=10, record=record)
    assert record["optimizer_steps"] == 10 and record["steps_per_epoch"] == 4 and record["epochs"] == pytest.approx(2.5)
    assert record["images_seen"]["total"] == 2 * 50 + 2 * 16  # two full epochs, then two batches of the third
    # re-running reuses the finished model with the same bookkeeping
    torch.manual_seed(0)
    again: dict = {}
    train_classifier(None, build(), mixer=mixer, real=data, synthetic=None, attacker=None, settings=settings, seed=0,
                     checkpoint_dir=tmp_path / "a", total_steps=10, record=again)
    assert {k: v for k, v in again.items() if k != "wall_seconds"} == {k: v for k, v in record.items() if k != "wall_seconds"}
    assert load_checkpoint(tmp_path / "a" / "final.safetensors")[1]["cost"]["optimizer_steps"] == 10


# -- the evaluation subset -------------------------------------------------------------------------

def test_stratified_subset_holds_every_class_in_proportion_and_is_seeded():
    labels = np.array([0] * 500 + [1] * 300 + [2] * 10 + [3] * 190)
    rows = stratified_subset(labels, 100, seed=3)
    assert len(rows) == len(set(rows)) == 100 and list(rows) == sorted(rows)
    assert np.bincount(labels[rows]).tolist() == [50, 30, 1, 19]
    assert (stratified_subset(labels, 100, seed=3) == rows).all()
    assert not (stratified_subset(labels, 100, seed=4) == rows).all()
    assert (stratified_subset(labels, None) == np.arange(1000)).all()
    assert (stratified_subset(labels, 5000) == np.arange(1000)).all()
    with pytest.raises(BadInputError, match="evaluate.robust_samples: 3 is fewer than the 4 classes"):
        stratified_subset(labels, 3)


def test_a_class_sorted_test_set_still_gives_every_class(tmp_path):
    labels = np.repeat(np.arange(10), 30)  # ImageFolder order: class by class
    rows = stratified_subset(labels, 40)
    assert set(labels[rows]) == set(range(10))  # the first 40 rows would be classes 0 and 1 only


def test_the_run_saves_its_subset_and_every_arm_is_evaluated_on_it(tiny_report):
    out, report = tiny_report
    saved = json.loads((out / "evaluation_subset.json").read_text())
    assert saved["n"] == len(saved["indices"]) == 50 == report["evaluation"]["subset_size"]
    assert report["evaluation"]["indices"] == saved["indices"]  # report.json holds them too
    assert all(count >= 1 for count in saved["per_class"].values())
    for arm in report["arms"].values():
        for result in arm["per_seed"].values():
            assert result["n_evaluated"] == 50
            assert result["robust_accuracy"] <= result["clean_accuracy_subset"]


def test_null_robust_samples_means_the_whole_test_set(tmp_path):
    report = _run(tmp_path / "run", "seeds=[0]", "evaluate.robust_samples=null", "data.dataset.options.test_size=60")
    assert report["evaluation"]["subset_size"] == report["evaluation"]["test_size"] == 60
    assert report["evaluation"]["indices"] == list(range(60))
    assert report["arms"]["real"]["per_seed"]["0"]["n_evaluated"] == 60


def test_metric_robust_accuracy_uses_the_runs_subset_and_null_is_not_replaced(context):
    rows = stratified_subset(context.real_test.labels, 12, seed=0)
    context.evaluation_subset = rows
    try:
        default = registry.create("metric:robust-accuracy", eps=0.1, steps=2).compute(context)
        explicit_null = registry.create("metric:robust-accuracy", eps=0.1, steps=2, max_samples=None).compute(context)
    finally:
        context.evaluation_subset = None
    assert default["n_samples"] == explicit_null["n_samples"] == 12
    everything = registry.create("metric:robust-accuracy", eps=0.1, steps=2).compute(context)
    assert everything["n_samples"] == len(context.real_test)
    sized = registry.create("metric:robust-accuracy", eps=0.1, steps=2, max_samples=9).compute(context)
    assert sized["n_samples"] == 9
    assert all(row["count"] == 3 for row in sized["arms"]["real"]["per_class"])  # 3 classes, 3 each


# -- worst case over several attackers ---------------------------------------------------------------

def test_worst_case_is_at_most_every_single_attacker(context):
    model = context.models["real"]
    attackers = [registry.create("attacker:pgd", eps=0.2, steps=3), registry.create("attacker:fgsm", eps=0.2),
                 registry.create("attacker:pgd", eps=0.2, steps=1, random_start=False)]
    clean, by_attacker, worst = worst_case_correct(model, context.real_test, attackers)
    assert list(by_attacker) == ["attacker:pgd#0", "attacker:fgsm", "attacker:pgd#2"]
    for flags in by_attacker.values():
        assert bool((worst <= flags).all()) and bool((flags <= clean).all())
    expected = clean.clone()
    for flags in by_attacker.values():
        expected &= flags
    assert torch.equal(worst, expected)
    assert worst.float().mean() <= min(f.float().mean() for f in by_attacker.values())


def test_a_run_with_two_attackers_reports_the_worst_case_and_each(tmp_path):
    report = _run(tmp_path / "run", "seeds=[0]",
                  "evaluate.attackers=[{key: pgd, options: {eps: 0.15, steps: 2}}, {key: fgsm, options: {eps: 0.15}}]")
    for arm in report["arms"].values():
        result = arm["per_seed"]["0"]
        assert set(result["robust_accuracy_by_attacker"]) == {"attacker:pgd", "attacker:fgsm"}
        assert result["robust_accuracy"] <= min(result["robust_accuracy_by_attacker"].values())


# -- paired differences ----------------------------------------------------------------------------

def test_t_interval_matches_the_textbook_formula():
    from scipy import stats

    values = [0.02, 0.03, 0.025]
    got = t_interval(values)
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)
    assert got["low"] == pytest.approx(0.025 - half) and got["high"] == pytest.approx(0.025 + half)
    assert verdict(got) == "gain" and verdict(t_interval([-v for v in values])) == "loss"
    # mean +0.02 with sd 0.01 over 3 seeds: the interval [-0.005, +0.045] contains 0
    assert verdict(t_interval([0.01, 0.03, 0.02])) == "not shown"
    one = t_interval([0.5])
    assert one["low"] is None and verdict(one) == "not shown"


def test_paired_comparisons_pair_by_seed():
    per_seed = {s: {"real": {"clean_accuracy": 0.8 + s / 100, "robust_accuracy": 0.5},
                    "mix": {"clean_accuracy": 0.81 + s / 100, "robust_accuracy": 0.5 + s / 10}} for s in range(3)}
    got = paired_comparisons(per_seed, "real")
    assert list(got) == ["mix"] and got["mix"]["baseline"] == "real"
    clean = got["mix"]["clean_accuracy"]
    assert clean["per_seed"] == pytest.approx({"0": 0.01, "1": 0.01, "2": 0.01})
    assert clean["std"] == pytest.approx(0, abs=1e-12) and clean["n"] == 3
    assert got["mix"]["robust_accuracy"]["mean"] == pytest.approx(0.1)


def test_pairs_compare_any_two_arms_like_the_baseline_rows():
    """evaluate.pairs (a full method against its ablations): the same paired intervals, then rendered
    after the baseline rows in the claims block, the terminal/HTML table and the generated reading."""
    from dreamset.report.claims import claims_markdown, reading
    from dreamset.report.tables import comparison_rows

    per_seed = {s: {"naive": {"clean_accuracy": 0.60}, "full": {"clean_accuracy": 0.70 + s / 100},
                    "ablated": {"clean_accuracy": 0.65}} for s in range(3)}
    (entry,) = pair_comparisons(per_seed, [("full", "ablated")])
    assert entry["arm"] == "full" and entry["baseline"] == "ablated"
    assert entry["clean_accuracy"]["per_seed"] == pytest.approx({"0": 0.05, "1": 0.06, "2": 0.07})
    assert entry["clean_accuracy"]["verdict"] == "gain"
    # the same numbers as the baseline comparison of that arm would give
    assert entry["clean_accuracy"] == paired_comparisons(per_seed, "ablated")["full"]["clean_accuracy"]
    report = {"arms": {name: {"clean_accuracy": 0.6, "training": {"optimizer_steps": 240}} for name in ("naive", "full", "ablated")},
              "comparisons": paired_comparisons(per_seed, "naive"), "pair_comparisons": [entry], "seeds": [0, 1, 2]}
    block = claims_markdown(report, source="test")
    rows = [line for line in block.splitlines() if " − " in line and line.startswith("| ")]
    assert [row.split(" |")[0] for row in rows] == ["| full − naive", "| ablated − naive", "| full − ablated"]
    assert "**+6.0 [" in rows[2] and "gain" in rows[2]
    assert any(line.startswith("*Reading (generated):* `full` against `ablated`, at equal optimizer steps: a gain on clean")
               for line in reading(report))
    assert [row[0] for row in comparison_rows(report)[1]] == ["full − naive", "ablated − naive", "full − ablated"]


@pytest.mark.parametrize("pairs,message", [("[[real, nope]]", "evaluate.pairs.0: 'nope' is not an arm"),
                                           ("[[real, real]]", "evaluate.pairs.0: an arm compared with itself")])
def test_pairs_must_name_two_different_arms(pairs, message):
    with pytest.raises(BadInputError, match=message):
        load_recipe("digits-robust", [f"evaluate.pairs={pairs}"])
    recipe, _ = load_recipe("digits-robust", [*THREE_ARMS, "evaluate.pairs=[[real+synthetic, real-epochs]]"])
    assert recipe.evaluate.pairs == [("real+synthetic", "real-epochs")]


def test_report_holds_intervals_and_says_not_shown(tiny_report):
    _, report = tiny_report
    entry = report["comparisons"]["real+synthetic"]
    assert entry["baseline"] == "real"
    for name in ("clean_accuracy", "robust_accuracy", "shifted_mean", "shifted_robust_mean"):
        d = entry[name]
        assert d["n"] == 2 and d["low"] <= d["mean"] <= d["high"]
        assert d["verdict"] == verdict(d)
        per_seed = d["per_seed"]
        key = {"shifted_mean": None, "shifted_robust_mean": None}.get(name, name)
        if key:
            arms = report["arms"]
            assert per_seed["0"] == pytest.approx(arms["real+synthetic"]["per_seed"]["0"][key] - arms["real"]["per_seed"]["0"][key])


def test_compute_notes_only_when_steps_differ():
    assert compute_notes({"a": {"training": {"optimizer_steps": 5.0}}, "b": {"training": {"optimizer_steps": 5.0}}}) == []
    assert "a 5, b 10" in compute_notes({"a": {"training": {"optimizer_steps": 5}}, "b": {"training": {"optimizer_steps": 10}}})[0]


def test_baseline_arm_must_be_an_arm():
    with pytest.raises(BadInputError, match="evaluate.baseline_arm"):
        load_recipe("digits-robust", ["evaluate.baseline_arm=nope"])
    recipe, _ = load_recipe("digits-robust")
    assert recipe.baseline_arm() == "real"


# -- claims tables ---------------------------------------------------------------------------------

def test_the_claims_block_with_metrics_lists_the_runs_warnings(tiny_report):
    """A collapsed ARC discriminator or an effective-robustness control off its own line is a warning in
    report.json; the docs' block with metrics says it under the metrics table (issue 27 items 2 and 3)."""
    _, report = tiny_report
    off_line = ("effective_robustness: control arm 'real' (standard training, real data only) lies off its own "
                "baseline line: ER -2.26 pp [-3.10, -1.40]")
    report = {**report, "warnings": [off_line]}
    assert f"* {off_line}" in claims_markdown(report, source="test", metrics=True)
    assert off_line not in claims_markdown(report, source="test")  # README's short block: the arms only

def test_claims_table_is_generated_from_the_report(tiny_report):
    _, report = tiny_report
    block = claims_markdown(report, source="Generated by a test.")
    arms = report["arms"]
    for name, arm in arms.items():
        assert f"| {name} |" in block
        assert f"{100 * arm['robust_accuracy']:.1f}" in block
        assert f"| {int(arm['training']['optimizer_steps'])} |" in block
    d = report["comparisons"]["real+synthetic"]["robust_accuracy"]
    assert f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]" in block
    line = next(row for row in block.splitlines() if row.startswith("| real+synthetic − real |"))
    robust_cell = line.split(" | ")[2]
    assert d["verdict"] in robust_cell
    assert robust_cell.startswith("**") == (d["verdict"] != "not shown")  # only a shown difference is bold
    assert block.endswith("Generated by a test.")


def test_claims_reading_sentence_follows_the_verdicts_and_the_steps():
    """The generated sentence says in words what each interval shows, and flags unequal steps."""
    from dreamset.report.claims import reading

    def report(steps, verdicts):
        entry = {"baseline": "real", **{k: {"mean": 0.01, "low": -0.01, "high": 0.02, "verdict": v}
                                        for k, v in verdicts.items()}}
        return {"arms": {"real": {"training": {"optimizer_steps": 240}},
                         "mix": {"training": {"optimizer_steps": steps}}},
                "comparisons": {"mix": entry}}

    matched = reading(report(240, {"robust_accuracy": "gain", "clean_accuracy": "not shown"}))  # only steps recorded
    assert matched == ["*Reading (generated):* `mix` against `real`, at equal optimizer steps: "
                       "a gain on robust; not shown on clean."]
    unequal = reading(report(120, {"robust_accuracy": "loss"}))[0]
    assert "NOT at equal compute (optimizer steps 120 vs 240)" in unequal and "a loss on robust" in unequal


def test_the_compute_note_names_every_dimension_that_differs():
    """Fails on the code before issue 27: only optimizer steps were compared, so arms at equal steps with
    three times the attack passes, more images or three times the wall time read 'at equal optimizer steps'."""
    from dreamset.report.claims import compute_phrase
    from dreamset.report.differences import wall_notes

    def arm(steps=100, passes=100, seen=12800, wall=40.0):
        return {"training": {"optimizer_steps": steps, "attack_forward_backward_passes": passes,
                             "images_seen": {"total": seen, "real": None, "synthetic": None}, "wall_seconds": wall}}

    same = {"a": arm(), "b": arm(wall=50.0)}
    assert compute_notes(same) == [] and wall_notes(same) == []
    assert compute_phrase(same["a"], same["b"]) == "at equal optimizer steps, attack forward/backward passes and images seen"
    refined = {"real": arm(), "refined": arm(passes=900, wall=130.0)}
    (note,) = compute_notes(refined)
    assert "attack forward/backward passes" in note and "real 100, refined 900" in note
    (wall,) = wall_notes(refined)
    assert "NOT TIME-MATCHED" in wall and "3.2x" in wall
    phrase = compute_phrase(refined["refined"], refined["real"])
    assert phrase == "NOT at equal compute (attack forward/backward passes 900 vs 100), but 3.2x the wall time"
    short = {"real": arm(seen=12600), "mix": arm()}   # short last batches: within 5%, no note
    assert compute_notes(short) == [] and compute_phrase(short["mix"], short["real"]).startswith("at equal")
    more = {"real": arm(), "big": arm(seen=25600)}
    assert "images seen" in compute_notes(more)[0] and "images seen 25,600 vs 12,800" in compute_phrase(more["big"], more["real"])


def test_splice_replaces_only_between_markers():
    text = "intro\n<!-- claims:x -->\nold\n<!-- /claims:x -->\nrest"
    assert splice(text, "x", "new") == "intro\n<!-- claims:x -->\nnew\n<!-- /claims:x -->\nrest"
    empty = "<!-- claims:x -->\n<!-- /claims:x -->"
    assert splice(empty, "x", "new") == "<!-- claims:x -->\nnew\n<!-- /claims:x -->"
    assert splice(splice(empty, "x", "a\nb"), "x", "c") == "<!-- claims:x -->\nc\n<!-- /claims:x -->"
    with pytest.raises(BadInputError, match="claims:y"):
        splice(text, "y", "new")


@pytest.mark.parametrize("doc,with_metrics", [("README.md", False), ("docs/recipes.md", True)])
def test_readme_block_is_the_named_runs_numbers(doc, with_metrics):
    """README's (and docs/recipes.md's) default-recipe block is what README's own command printed: the
    block names the run it came from (`dreamset run`, its report.json kept in docs/runs/), and
    re-rendering that report.json gives the block back, every number included."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    text = (root / doc).read_text()
    block = text.split("<!-- claims:digits-robust -->\n")[1].split("<!-- /claims:digits-robust -->")[0].rstrip("\n")
    source = block.splitlines()[-1]
    assert "benchmarks/claims.py" in source and "made by `dreamset run`" in source, source
    kept = re.search(r"report.json kept as `([^`]+)`", source).group(1)
    report = json.loads((root / kept).read_text())
    assert report["recipe"]["name"] == "digits-robust" and report["threads"]
    assert block == claims_markdown(report, source=source, metrics=with_metrics)
    assert "pip install -e . && dreamset run\n" in (root / "README.md").read_text()  # the command README gives