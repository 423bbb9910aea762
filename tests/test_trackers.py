"""Experiment trackers as a component kind (``tracker:*``, issue 20): old recipes' bare names, an
unknown name refused before anything is written, the MLflow adapter against a fake ``mlflow``
module (mlflow is not a dependency: it would lift ``requests`` past torchattacks' pin), a missing
package refused with the pip command, and trackers closed (as failed) when a run raises."""
from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

import dreamset
import dreamset.registry as registry
from dreamset.cli import main
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Tracker
from dreamset.orchestration.recipe import validate_recipe


def tiny_recipe(trackers) -> dict:
    """One arm, one seed, standard training for two epochs on 200 digits: seconds on a CPU."""
    return {
        "name": "tiny-tracked",
        "seeds": [0],
        "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 200}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 8}}, "epochs": 2, "batch_size": 64,
                  "mixed_precision": False},
        "evaluate": {"robust_samples": 50},
        "report": {"curve_samples": 0, "trackers": trackers},
    }


class FakeMlflow(types.ModuleType):
    """A stand-in ``mlflow`` module recording the fluent-API calls the tracker makes."""

    def __init__(self):
        super().__init__("mlflow")
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uri = "file:./default-mlruns"
        self.active = None

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))

    def get_tracking_uri(self):
        return self.uri

    def set_tracking_uri(self, uri):
        self._record("set_tracking_uri", uri)
        self.uri = uri

    def set_experiment(self, name):
        self._record("set_experiment", name)

    def active_run(self):
        return self.active

    def start_run(self, **kwargs):
        assert self.active is None or kwargs.get("nested"), "start_run without nested while a run is active"
        self._record("start_run", **kwargs)
        self.active = SimpleNamespace(info=SimpleNamespace(run_id="r1"))
        return self.active

    def log_params(self, params):
        assert self.active is not None
        self._record("log_params", dict(params))

    def log_metrics(self, metrics, step=None):
        assert self.active is not None
        self._record("log_metrics", dict(metrics), step=step)

    def log_artifact(self, path):
        assert self.active is not None and Path(path).is_file()
        self._record("log_artifact", path)

    def end_run(self, status="FINISHED"):
        self._record("end_run", status=status)
        self.active = None

    def named(self, name):
        return [c for c in self.calls if c[0] == name]


@pytest.fixture
def fake_mlflow(monkeypatch):
    module = FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", module)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return module


def test_trackers_are_a_kind_and_old_bare_names_still_validate():
    assert {"tracker:tensorboard", "tracker:mlflow"} <= set(registry.list("tracker:*"))
    for key in ("tracker:tensorboard", "tracker:mlflow"):
        assert issubclass(registry.get(key).load(), Tracker)
    recipe = validate_recipe(tiny_recipe(["tensorboard", "mlflow"]), registry.get_registry())  # as written before
    assert [registry.get(ref.key, "tracker").key for ref in recipe.report.trackers] == ["tracker:tensorboard", "tracker:mlflow"]
    refs = {path: ref.key for path, kind, ref in recipe.component_refs() if kind == "tracker"}
    assert refs == {"report.trackers.0": "tensorboard", "report.trackers.1": "mlflow"}
    with_options = tiny_recipe([{"key": "mlflow", "options": {"experiment": "digits"}}])
    assert validate_recipe(with_options, registry.get_registry()).report.trackers[0].options == {"experiment": "digits"}
    with pytest.raises(BadInputError, match=r"report\.trackers\.0\.options\.experimnt"):
        validate_recipe(tiny_recipe([{"key": "mlflow", "options": {"experimnt": "x"}}]), registry.get_registry())


def test_an_unknown_tracker_exits_2_naming_the_field_and_writes_nothing(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(tiny_recipe(["tensorbord"])))
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: report.trackers.0.key: ")
    assert "tensorbord" in err[0] and "tracker:tensorboard" in err[0]  # the close match is offered
    assert not out.exists()


def test_a_missing_mlflow_is_one_line_naming_the_tracker_and_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps(tiny_recipe(["tensorboard", "mlflow"])))
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: report.trackers.1: tracker:mlflow needs the mlflow package")
    assert "pip install mlflow-skinny" in err[0]
    assert not out.exists()


def test_mlflow_tracker_logs_params_curves_final_numbers_and_files(tmp_path, fake_mlflow):
    report = dreamset.run(tiny_recipe(["mlflow"]), out=tmp_path / "run")
    run_dir = (tmp_path / "run").resolve()
    names = [c[0] for c in fake_mlflow.calls]
    assert names[:4] == ["set_tracking_uri", "set_experiment", "start_run", "log_params"]
    assert names[-2:] == ["end_run", "set_tracking_uri"]
    assert fake_mlflow.calls[0][1] == (run_dir.joinpath("mlruns").as_uri(),)  # a local file store: offline
    assert fake_mlflow.uri == "file:./default-mlruns"  # the caller's tracking URI is restored
    assert fake_mlflow.named("set_experiment")[0][1] == ("dreamset",)
    start = fake_mlflow.named("start_run")[0][2]
    assert start["run_name"] == "tiny-tracked" and start["nested"] is False
    assert Path(start["tags"]["dreamset.run_dir"]).resolve() == run_dir

    # the resolved recipe, flattened to dotted keys, values as text
    params = fake_mlflow.named("log_params")[0][1][0]
    assert params["train.epochs"] == "2" and params["train.lr"] == "0.1" and params["name"] == "tiny-tracked"
    assert params["data.dataset.key"] == "digits" and params["data.dataset.options.train_size"] == "200"
    assert params["report.trackers"] == json.dumps([{"key": "mlflow", "options": {}}])
    assert all(isinstance(v, str) for v in params.values())

    # one log_metrics per epoch at step = optimizer steps so far, then the final numbers at step 0
    logged = fake_mlflow.named("log_metrics")
    curve = report.curves("real", 0)
    assert [c[2]["step"] for c in logged] == [p["step"] for p in curve] + [0]
    for (_, (metrics,), _), point in zip(logged, curve):
        assert set(metrics) == {"real.seed0.loss", "real.seed0.train_accuracy", "real.seed0.lr"}
        assert metrics["real.seed0.loss"] == pytest.approx(point["loss"])
    final = logged[-1][1][0]
    assert final["final.real.clean_accuracy"] == pytest.approx(report.arms["real"]["clean_accuracy"])
    assert all(name.startswith("final.") and "/" not in name and math.isfinite(v) for name, v in final.items())

    artifacts = [Path(c[1][0]).name for c in fake_mlflow.named("log_artifact")]
    assert artifacts == ["recipe.json", "report.json", "report.html"]
    assert fake_mlflow.named("end_run")[0][2] == {"status": "FINISHED"}
    assert report["components"]["report.trackers.0"]["key"] == "tracker:mlflow"
    assert not any(isinstance(p, Tracker) for p in registry.plugin_manager().get_plugins())  # unregistered


def test_mlflow_nests_under_an_active_run_and_honours_the_options(tmp_path, fake_mlflow):
    from dreamset.orchestration.tracking import tracking

    fake_mlflow.active = SimpleNamespace(info=SimpleNamespace(run_id="notebook"))  # a notebook's open run
    tracker = registry.create("tracker:mlflow", experiment="digits", tracking_uri="file:/elsewhere")
    recipe = validate_recipe(tiny_recipe(["mlflow"]), registry.get_registry())
    with tracking(SimpleNamespace(recipe=recipe, run_dir=tmp_path), [tracker]):
        pass
    assert fake_mlflow.named("set_tracking_uri")[0][1] == ("file:/elsewhere",)
    assert fake_mlflow.named("set_experiment")[0][1] == ("digits",)
    assert fake_mlflow.named("start_run")[0][2]["nested"] is True


def test_a_failing_run_closes_its_trackers_as_failed_and_unregisters_them(tmp_path, fake_mlflow, monkeypatch):
    import dreamset.orchestration.stages as pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("the evaluation broke")

    monkeypatch.setattr(pipeline, "summarize_arms", broken)
    with pytest.raises(RuntimeError, match="the evaluation broke"):
        dreamset.run(tiny_recipe(["mlflow"]), out=tmp_path / "run")
    assert fake_mlflow.named("end_run") == [("end_run", (), {"status": "FAILED"})]
    assert len(fake_mlflow.named("log_metrics")) == 2  # the two epochs were logged before the failure
    assert not any(isinstance(p, Tracker) for p in registry.plugin_manager().get_plugins())


def test_tracker_base_class_skeleton_filters_and_names():
    class Memory(Tracker):
        key = "tracker:memory"

        def __init__(self):
            super().__init__()
            self.logged = []

        def log(self, metrics, step):
            self.logged.append((metrics, step))

    tracker = Memory()
    context = SimpleNamespace(run_dir=Path("/nonexistent"))
    tracker.after_epoch(context=context, arm="a+b", seed=3, epoch=1,
                        metrics={"epoch": 1, "step": 20, "loss": 0.5, "lr": 0.1, "flag": True,
                                 "val_clean_accuracy": float("nan"), "note": "x"})
    tracker.after_epoch(context=context, arm="a", seed=0, epoch=2, metrics={"epoch": 2, "step": 30})  # nothing left
    tracker.log_metrics(context=context, metrics={"a/clean_accuracy": 0.9, "metrics/fid/fid": float("inf")}, step=None)
    assert tracker.logged == [({"a+b/seed3/loss": 0.5, "a+b/seed3/lr": 0.1}, 20), ({"final/a/clean_accuracy": 0.9}, 0)]


def test_mlflow_tracker_passes_the_conformance_suite_against_the_fake(fake_mlflow):
    from dreamset.conformance import check_component

    check_component("tracker:mlflow")
    assert [c[0] for c in fake_mlflow.calls].count("log_metrics") == 3  # two epochs, the final numbers
    assert fake_mlflow.named("end_run") == [("end_run", (), {"status": "FINISHED"})]


def test_the_wandb_example_passes_the_tracker_checks_against_a_fake_wandb(monkeypatch, tmp_path):
    """docs/examples/dreamset-wandb (not installed here; its key is tracker:wandb-minimal beside the
    built-in tracker:wandb) on the base class, against a fake wandb module."""
    from dreamset.conformance.trackers import check_tracker

    calls = []

    class FakeRun:
        summary: dict = {}

        def log(self, metrics, step=None):
            calls.append(("log", dict(metrics), step))

        def finish(self, exit_code=0):
            calls.append(("finish", exit_code))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or FakeRun()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "docs" / "examples" / "dreamset-wandb"))
    monkeypatch.delitem(sys.modules, "dreamset_wandb", raising=False)
    import dreamset_wandb

    tracker = dreamset_wandb.WandbTracker()
    assert tracker.key == "tracker:wandb-minimal" and issubclass(dreamset_wandb.WandbTracker, Tracker)
    check_tracker(tracker, tmp_path)
    assert calls[0][1]["name"] == "conformance" and calls[0][1]["config"]["train.epochs"] == 2
    assert [c[2] for c in calls if c[0] == "log"] == [4, 8]  # the final numbers went to the summary
    assert FakeRun.summary["final/real/clean_accuracy"] == 0.75 and calls[-1] == ("finish", 0)


def test_register_trackers_takes_tracker_subclasses_only(dreamset_registry):
    from dreamset.contracts.interfaces import Metric

    class Good(Tracker):
        """A tracker that logs nowhere."""

        key = "tracker:good"

        def log(self, metrics, step):
            pass

    class NotATracker(Metric):
        key = "tracker:not-a-tracker"

        def compute(self, context):
            return {}

    class Plugin:
        @dreamset.hookimpl
        def register_trackers(self, register):
            register(Good)
            register(NotATracker)

    reg = dreamset_registry(Plugin(), builtins=False, strict=False)
    assert reg.list() == ["tracker:good"] and isinstance(reg.create("tracker:good"), Tracker)
    errors = " | ".join(e for p in reg.plugins for e in p.errors)
    assert "NotATracker is not a subclass of dreamset.contracts.interfaces.Tracker" in errors
    assert "register_trackers: " in errors


def _wandb_records(folder: Path) -> list[dict]:
    """The records of the offline run under ``folder``, read back with wandb's own reader of the
    transaction log (``wandb leet inspect --json``: one JSON record per line)."""
    import subprocess

    wandb_cli = Path(sys.executable).with_name("wandb")
    command = [str(wandb_cli)] if wandb_cli.exists() else [sys.executable, "-m", "wandb"]
    out = subprocess.run([*command, "leet", "inspect", "--json", str(folder)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_wandb_tracker_offline_run_holds_config_curves_summary_and_report_artifact(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    recipe = tiny_recipe(["wandb"])
    recipe["arms"]["real+aug"] = {"real": True}
    report = dreamset.run(recipe, out=tmp_path / "run")
    runs = list((tmp_path / "run" / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    records = _wandb_records(runs[0])
    kinds = [r["type"] for r in records]
    assert kinds.count("run") == 1 and kinds[-1] == "exit" and records[-1]["exit"].get("exit_code", 0) == 0

    config = next(r for r in records if r["type"] == "run")["run"]["config"]["update"]
    assert config["train.epochs"] == 2 and config["name"] == "tiny-tracked" and config["seeds"] == [0]

    # the curves: one history row per epoch of every arm and seed, on that arm's own x-axis
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    for arm in ("real", "real+aug"):
        for seed in (0,):
            prefix = f"{arm}/seed{seed}"
            rows = [h for h in history if f"{prefix}/loss" in h]
            curve = report.curves(arm, seed)
            assert len(rows) == len(curve) == 2
            assert [h[f"{prefix}/optimizer_step"] for h in rows] == [p["step"] for p in curve]
            assert [h[f"{prefix}/loss"] for h in rows] == pytest.approx([p["loss"] for p in curve])
    axes = {r["metric"].get("glob_name"): r["metric"].get("step_metric") for r in records if r["type"] == "metric"}
    assert axes["real+aug/seed0/*"] == "real+aug/seed0/optimizer_step"

    # the final numbers and the paired comparisons in the summary
    summary: dict = {}
    for r in records:
        if r["type"] == "summary":
            summary.update(r["summary"].get("update") or {})
    assert summary["final/real/clean_accuracy"] == pytest.approx(report.arms["real"]["clean_accuracy"])
    difference = report.comparisons["real+aug"]["clean_accuracy"]
    assert summary["comparisons/real+aug - real/clean_accuracy/mean"] == pytest.approx(difference["mean"])
    assert summary["comparisons/real+aug - real/clean_accuracy/verdict"] == difference["verdict"]

    # report.html and report.json (and recipe.json) as one artifact
    artifact = next(r["artifact"] for r in records if r["type"] == "artifact")
    assert artifact["type"] == "dreamset-report"
    assert {entry["path"] for entry in artifact["manifest"]["contents"]} == {"recipe.json", "report.json", "report.html"}
