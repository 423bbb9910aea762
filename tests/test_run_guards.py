"""A run never trusts a component (issue 31): each guard of dreamset.orchestration.guards against a
deliberately broken plugin of tests/fixtures/dreamset_broken_plugins.py, installed as the distribution
``dreamset-broken-plugins``. A broken output is one line naming the key, the distribution and where
(stage, arm, seed), exit 2, nothing half-written; a plugin that raises is the same line with exit 3 and
its traceback in the run folder's run.log; a metric that raises is a warning and the run goes on."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from dreamset.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dreamset_broken_plugins.py"
NAMED = "(distribution dreamset-broken-plugins 1.0)"


@pytest.fixture
def broken(fake_distribution):
    fake_distribution("dreamset-broken-plugins", {"broken": "dreamset_broken_plugins"},
                      {"dreamset_broken_plugins": FIXTURE.read_text()})


def _recipe(tmp_path, **changes) -> Path:
    """One real-only arm, 1 epoch of standard training on 60 digits, no attackers: a second or two."""
    recipe = {
        "name": "guarded", "seeds": [0], "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1, "batch_size": 32,
                  "mixed_precision": False},
        "evaluate": {"robust_samples": 20, "attackers": []},
        "report": {"html": False, "curve_samples": 0},
    }
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    file = tmp_path / "recipe.yaml"
    file.write_text(yaml.safe_dump(recipe))
    return file


def _run(capsys, tmp_path, **changes) -> tuple[int, str, Path]:
    out = tmp_path / "run"
    code = main(["run", str(_recipe(tmp_path, **changes)), "--out", str(out), "-q"])
    return code, capsys.readouterr().err, out


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "warning"))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _attacker(fault: str, **options) -> dict:
    return {"key": "attacker:broken", "options": {"fault": fault, **options}}


# -- broken outputs: exit 2, one line, nothing half-written ------------------------------------------

@pytest.mark.parametrize("fault,problem", [
    ("shape", "returned torch.float32 (20, 1, 7, 8) on cpu for torch.float32 (20, 1, 8, 8) on cpu"),
    ("unprojected", "L2 perturbation"),
    ("range", "values outside [0,1]"),
])
def test_an_evaluation_attacker_that_breaks_its_contract_stops_the_run(broken, capsys, tmp_path, fault, problem):
    code, err, out = _run(capsys, tmp_path, **{"evaluate.attackers": [_attacker(fault)]})
    line = _one_line(err)
    assert code == 2, err
    assert line.startswith(f"error: attacker:broken {NAMED} broke its contract: ") and problem in line, line
    assert line.endswith("[stage evaluate, arm real, seed 0]"), line
    if fault == "unprojected":
        assert "> eps 0.5" in line
    assert not (out / "report.json").exists()  # no robust accuracy is reported


def test_a_training_attacker_outside_its_ball_stops_the_run_in_the_train_stage(broken, capsys, tmp_path):
    code, err, out = _run(capsys, tmp_path, **{"train.attacker": _attacker("unprojected", norm="linf", eps=0.1)})
    line = _one_line(err)
    assert code == 2 and f"attacker:broken {NAMED} broke its contract: L-inf perturbation 0.3" in line, line
    assert "> eps 0.1" in line and line.endswith("[stage train, arm real, seed 0]"), line
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("fault,problem", [
    ("per-sample", "loss must be a 0-dim floating-point tensor, got Tensor (32,)"),
    ("nan", "non-finite loss nan"),
])
def test_an_objective_with_a_bad_loss_stops_the_run(broken, capsys, tmp_path, fault, problem):
    code, err, out = _run(capsys, tmp_path, **{"train.objective": {"key": "objective:broken", "options": {"fault": fault}},
                                               "train.attacker": _attacker("none")})
    line = _one_line(err)
    assert code == 2 and f"objective:broken {NAMED} broke its contract: {problem}" in line, line
    assert line.endswith("[stage train, arm real, seed 0]"), line
    assert not (out / "report.json").exists() and not list(out.glob("checkpoints/*/final.safetensors"))


SYNTHETIC = {"generate": {"generator": "glyphs", "count": 30, "batch_size": 30}}


@pytest.mark.parametrize("fault,problem", [
    ("scores-length", "scores must have one entry per synthetic sample (30), got shape (29,)"),
    ("out-of-range", "indices must lie in [0, 30), got 0..34"),
])
def test_a_sampler_with_a_bad_selection_stops_the_run_before_saving_it(broken, capsys, tmp_path, fault, problem):
    arms = {"mixed": {"real": True, "synthetic": True, "sampler": {"key": "sampler:broken", "options": {"fault": fault}}}}
    code, err, out = _run(capsys, tmp_path, arms=arms, **SYNTHETIC)
    line = _one_line(err)
    assert code == 2 and f"sampler:broken {NAMED} broke its contract: {problem}" in line, line
    assert line.endswith("[stage select, arm mixed, seed 0]"), line
    assert not list(out.glob("selections/*.npz")) and not (out / "report.json").exists()


@pytest.mark.parametrize("fault,problem", [
    ("nan", "nan at value (NaN and infinity are not JSON)"),
    ("tensor", "a torch.Tensor at value (not plain JSON"),
    ("silent-none", "'value' is None without a reason"),
])
def test_a_metric_with_a_bad_value_stops_the_run_and_writes_no_report(broken, capsys, tmp_path, fault, problem):
    metrics = ["accuracy", {"key": "metric:broken", "options": {"fault": fault}}]
    code, err, out = _run(capsys, tmp_path, **{"evaluate.metrics": metrics})
    line = _one_line(err)
    assert code == 2 and f"metric:broken {NAMED} broke its contract: {problem}" in line, line
    assert line.endswith("[stage metrics]"), line
    assert not (out / "report.json").exists()


def test_a_metric_value_that_is_none_with_a_reason_is_kept(broken, capsys, tmp_path):
    code, err, out = _run(capsys, tmp_path, **{"evaluate.metrics": [{"key": "metric:broken",
                                                                     "options": {"fault": "none-with-reason"}}]})
    assert code == 0, err
    assert json.loads((out / "report.json").read_text())["metrics"]["broken"] == {
        "value": None, "reasons": {"value": "nothing to measure in this run"}}


def test_report_json_is_strict_json_and_a_nan_writes_nothing(tmp_path):
    from dreamset.contracts.errors import DreamsetError
    from dreamset.report.writer import write_report_json

    with pytest.raises(DreamsetError, match=r"report\.json not written: nan at arms\.real\.clean_accuracy"):
        write_report_json(tmp_path, {"arms": {"real": {"clean_accuracy": math.nan}}})
    assert not (tmp_path / "report.json").exists()


# -- a plugin that raises: exit 3, one line, the traceback in run.log --------------------------------
# (the mixer's batches come from the trainer's prefetch thread: its exception is named all the same)

@pytest.mark.parametrize("key,changes,call,stage", [
    ("attacker", {"evaluate.attackers": [_attacker("raises")]}, "raised RuntimeError in attack(): kaboom in attack",
     "[stage evaluate, arm real, seed 0]"),
    ("objective", {"train.objective": {"key": "objective:broken", "options": {"fault": "raises"}},
                   "train.attacker": _attacker("none")},
     "raised ValueError in loss(): kaboom in loss", "[stage train, arm real, seed 0]"),
    ("sampler", {"arms": {"mixed": {"real": True, "synthetic": True,
                                    "sampler": {"key": "sampler:broken", "options": {"fault": "raises"}}}}, **SYNTHETIC},
     "raised KeyError in select(): 'kaboom in select'", "[stage select, arm mixed, seed 0]"),
    ("mixer", {"arms": {"real": {"real": True, "mixer": "mixer:broken"}}},
     "raised IndexError in batches(): kaboom in batches", "[stage train, arm real, seed 0]"),
    ("augmentation", {"train.augment": {"real": ["augmentation:broken"]}},
     "raised OSError in apply(): kaboom in apply", "[stage train, arm real, seed 0]"),
], ids=["attacker", "objective", "sampler", "mixer", "augmentation"])
def test_a_plugin_that_raises_is_one_line_naming_it_with_the_traceback_in_run_log(broken, capsys, tmp_path, key, changes,
                                                                                   call, stage):
    code, err, out = _run(capsys, tmp_path, **changes)
    line = _one_line(err)
    assert code == 3, err
    assert line == f"error: {key}:broken {NAMED} {call} {stage}; traceback in {out / 'run.log'}", line
    log = (out / "run.log").read_text()
    assert "Traceback (most recent call last)" in log and "dreamset_broken_plugins.py" in log and call in log
    assert not (out / "report.json").exists()


def test_a_metric_that_raises_is_a_warning_and_the_other_metrics_are_reported(broken, capsys, tmp_path):
    metrics = ["accuracy", {"key": "metric:broken", "options": {"fault": "raises"}}, "metric:broken"]
    code, err, out = _run(capsys, tmp_path, **{"evaluate.metrics": metrics})
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert set(report["metrics"]) == {"accuracy", "broken"}  # the second metric:broken (fault none) ran after
    assert report["metrics"]["broken"] == {"value": 1.0}
    failed = [w for w in report["warnings"] if "metric:broken" in w]
    assert failed == [f"metric:broken {NAMED} raised ZeroDivisionError in compute(): kaboom in compute "
                      f"[stage metrics]; traceback in {out / 'run.log'}; metric:broken left out of metrics"], report["warnings"]
    assert "ZeroDivisionError: kaboom in compute" in (out / "run.log").read_text()
    # the guards timed themselves (every training loss was checked): their cost, beside the stages'
    assert 0 < report["timings"]["contract_guards"] < report["timings"]["train"]
