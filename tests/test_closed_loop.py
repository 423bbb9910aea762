"""Closed-loop generation (dreamset.orchestration.closed_loop): rounds written as store segments with provenance,
resume after a kill between rounds, per-class budgets that follow the classifier's scores, and
one-line errors for bad options."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import yaml

from dreamset.cli import main
from dreamset.contracts.data import TensorImageSet
from dreamset.orchestration.closed_loop import allocate, class_scores, segment_counts

RECIPE = {
    "name": "tiny-closed-loop",
    "seeds": [0],
    "device": "cpu",
    "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
    "generate": {"loop": {"generator": "glyphs", "count": 30, "batch_size": 10, "shard_size": 10,
                          "closed_loop": {"rounds": 3, "rule": "entropy", "probe": 30}}},
    "arms": {"real": {"real": True}, "real+loop": {"synthetic": ["loop"]}},
    "train": {"model": {"key": "small-cnn", "options": {"width": 2}}, "epochs": 1, "batch_size": 32, "attacker": None},
    "evaluate": {"attackers": [], "robust_samples": 20, "metrics": []},
}


def _write(tmp_path, recipe, name="r.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _run(tmp_path, recipe, out):
    assert main(["run", str(_write(tmp_path, recipe)), "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def _store_files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "cache" not in p.name}


def test_rounds_are_store_segments_with_provenance_and_resume_after_a_kill(tmp_path, monkeypatch):
    from dreamset.store.reader import SyntheticStore

    report = _run(tmp_path, RECIPE, tmp_path / "whole")
    rounds = tmp_path / "whole" / "synthetic" / "loop-rounds" / "seed0" / "real_plus_loop"
    first = SyntheticStore.open(tmp_path / "whole" / "synthetic" / "loop")
    seg1, seg2 = SyntheticStore.open(rounds / "round-1"), SyntheticStore.open(rounds / "round-2")
    assert [len(first), len(seg1), len(seg2)] == segment_counts(30, 3) == [10, 10, 10]
    assert first.provenance(0)["request"]["round"] == 0 and first.provenance(0)["request"]["score"] is None
    loop = report["arms"]["real+loop"]["per_seed"]["0"]["training"]["closed_loop"]
    for r, segment in ((1, seg1), (2, seg2)):
        scores = loop["rounds"][r - 1]["scores"]
        for i in range(len(segment)):
            request = segment.provenance(i)["request"]
            assert request["round"] == r and request["rule"] == "entropy"
            assert request["score"] == pytest.approx(scores[segment.provenance(i)["class_name"]], abs=1e-6)
        # the per-class counts recorded are those the segment holds
        held = np.bincount(segment.labels.numpy(), minlength=10)
        assert held.tolist() == list(loop["rounds"][r - 1]["next_counts"].values())
    # image seeds continue over the segments, as one up-front store of 30 images would have them
    assert [seg2.provenance(i)["seed"] for i in range(len(seg2))] == list(range(20, 30))
    # every arm trained the same steps; the loop's rounds add up to them
    steps = {arm["training"]["optimizer_steps"] for arm in report["arms"].values()}
    assert len(steps) == 1 and sum(r["optimizer_steps"] for r in loop["rounds"]) == steps.pop()

    # a kill after round 1's segment was written (before round 2 trained), then a resume
    import dreamset.training.trainer as training

    real_train = training.train_classifier

    def killed(*args, **kwargs):
        if str(kwargs["checkpoint_dir"]).endswith("round-2"):
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train_classifier", killed)
    from dreamset.cli import EXIT_INTERRUPTED

    assert main(["run", str(_write(tmp_path, RECIPE)), "--out", str(tmp_path / "killed")]) == EXIT_INTERRUPTED
    assert (tmp_path / "killed" / "synthetic" / "loop-rounds" / "seed0" / "real_plus_loop" / "round-2").is_dir()
    assert not (tmp_path / "killed" / "report.json").exists()
    monkeypatch.setattr(training, "train_classifier", real_train)
    resumed = _run(tmp_path, RECIPE, tmp_path / "killed")
    assert _store_files(tmp_path / "killed" / "synthetic") == _store_files(tmp_path / "whole" / "synthetic")
    assert resumed["arms"]["real+loop"]["clean_accuracy"] == report["arms"]["real+loop"]["clean_accuracy"]


def test_budgets_follow_the_scores():
    counts, shares = allocate([0.0, 0.0, 3.0, 1.0], 100, uniform_mix=0.2)
    assert counts.sum() == 100 and counts.tolist() == [5, 5, 65, 25]
    assert shares == pytest.approx([0.05, 0.05, 0.65, 0.25])
    assert allocate([0, 0, 0], 7, 0.5)[0].tolist() == [3, 2, 2]  # no signal: uniform
    assert allocate([1, 2, 3], 60, 1.0)[0].tolist() == [20, 20, 20]  # uniform_mix 1: uniform

    # a classifier sure of classes 0 and 1 and unsure of class 2: entropy and margin score class 2 highest
    class Fixed(torch.nn.Module):
        def forward(self, x):
            y = (2 * x.flatten(1)[:, 0]).round().long()  # images hold label / 2
            logits = torch.full((len(x), 3), -5.0)
            logits[y == 0, 0] = 5.0
            logits[y == 1, 1] = 5.0
            logits[y == 2] = 0.0  # uniform over the classes
            return logits

    labels = torch.tensor([0, 1, 2] * 4)
    probe = TensorImageSet(labels.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone() / 2, labels, ["a", "b", "c"])
    model = Fixed()
    for rule in ("entropy", "margin", "robust-error"):
        scores = class_scores(model, probe, rule, 3, "cpu")
        assert np.argmax(scores) == 2 and scores[0] == pytest.approx(scores[1]), rule
    assert allocate(class_scores(model, probe, "entropy", 3, "cpu"), 30, 0.1)[0].argmax() == 2


@pytest.mark.parametrize("change, message", [
    ({"generate.loop.closed_loop.rounds": 40}, "generate.loop.closed_loop.rounds: 40 rounds need at least as many images"),
    ({"generate.loop.closed_loop.rule": "loss"}, "generate.loop.closed_loop.rule"),
    ({"generate.loop.closed_loop.rounds": 1}, "generate.loop.closed_loop.rounds"),
    ({"generate.loop.closed_loop.every": 2}, "generate.loop.closed_loop.every"),
    ({"arms.real+loop.sampler": "uniform"}, "arms.real+loop.sampler: the closed-loop source 'loop' is steered"),
])
def test_bad_closed_loop_options_are_one_line_errors(tmp_path, capsys, change, message):
    recipe = copy.deepcopy(RECIPE)
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        node = recipe
        for key in parents:
            node = node[key]
        node[leaf] = value
    out = tmp_path / "run"
    assert main(["run", str(_write(tmp_path, recipe)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_the_catalogue_recipe_is_compute_matched():
    import dreamset.registry as registry
    from dreamset.orchestration.recipe import load_recipe
    from dreamset.orchestration.sources import generate_stages

    recipe, _ = load_recipe("closed-loop-digits", registry=registry.get_registry())
    stages = {name: stage for name, (_, stage) in generate_stages(recipe).items()}
    assert stages["upfront"].count == stages["loop"].count  # the same number of generated images per arm
    assert stages["loop"].closed_loop.rounds > 1 and stages["upfront"].closed_loop is None
    assert stages["upfront"].generator == stages["loop"].generator
    assert recipe.train.budget == "matched" and len(recipe.seeds) == 3
    assert set(recipe.arms) == {"uniform", "adaptive", "closed-loop", "rounds-uniform"} and recipe.evaluate.baseline_arm == "uniform"
    # the control of the steering: the same rounds, drawn uniformly (issue 27), compared with the closed loop
    control = stages["loop-uniform"].closed_loop
    assert control.rule == "uniform" and control.rounds == stages["loop"].closed_loop.rounds
    assert stages["loop-uniform"].count == stages["loop"].count and stages["loop-uniform"].generator == stages["loop"].generator
    assert [list(p) for p in recipe.evaluate.pairs] == [["closed-loop", "rounds-uniform"]]


def test_the_uniform_control_trains_in_the_same_rounds_without_steering(tmp_path):
    """Fails before issue 27 (no such rule): a source with ``rule: uniform`` is generated in the same rounds
    and trained with the same step split as a steered one, but every segment is class-balanced and
    nothing is scored, so ``closed loop − uniform rounds`` isolates the steering."""
    from dreamset.store.reader import SyntheticStore

    recipe = copy.deepcopy(RECIPE)
    recipe["generate"]["control"] = copy.deepcopy(recipe["generate"]["loop"])
    recipe["generate"]["control"]["closed_loop"]["rule"] = "uniform"
    recipe["arms"] = {"real+loop": {"synthetic": ["loop"]}, "real+control": {"synthetic": ["control"]}}
    report = _run(tmp_path, recipe, tmp_path / "run")
    steered = report["arms"]["real+loop"]["per_seed"]["0"]["training"]
    control = report["arms"]["real+control"]["per_seed"]["0"]["training"]
    assert [r["optimizer_steps"] for r in steered["closed_loop"]["rounds"]] == \
        [r["optimizer_steps"] for r in control["closed_loop"]["rounds"]]
    assert [r["pool"] for r in steered["closed_loop"]["rounds"]] == [r["pool"] for r in control["closed_loop"]["rounds"]]
    assert control["images_seen"]["total"] == steered["images_seen"]["total"]
    for entry in control["closed_loop"]["rounds"][:-1]:
        assert set(entry["scores"].values()) == {0.0} and len(set(entry["next_counts"].values())) == 1  # 10 over 10 classes
    segment = SyntheticStore.open(tmp_path / "run" / "synthetic" / "control-rounds" / "seed0" / "real_plus_control" / "round-1")
    assert sorted(np.bincount(segment.labels.numpy(), minlength=10).tolist()) == [1] * 10
    assert segment.provenance(0)["request"]["rule"] == "uniform"
