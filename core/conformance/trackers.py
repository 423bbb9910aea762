"""Conformance checks for ``tracker:*`` components."""
from __future__ import annotations

import tempfile
from pathlib import Path

from dreamset.contracts.errors import BadInputError


def check_tracker(tracker, run_dir: Path) -> None:
    """Driven the way a run drives it, inside an empty ``run_dir``: ``start``, two epochs through
    ``after_epoch`` (a NaN and the bookkeeping ``epoch``/``step`` among the numbers), the final
    numbers and files through ``log_metrics``, then ``close``. Every name handed to ``log`` is a
    string, every value a finite float; nothing is written outside ``run_dir``."""
    logged: list[tuple[dict, int]] = []
    log = tracker.log

    def spy(metrics, step):
        logged.append((dict(metrics), step))
        return log(metrics, step)

    tracker.log = spy
    (run_dir / "recipe.json").write_text('{"name": "conformance"}')
    try:
        tracker.start(run_dir, "conformance", {"train.epochs": 2, "seeds": "[0]", "report.html": True})
        for epoch in range(2):
            tracker.after_epoch_hook(arm="real+synthetic", seed=0, epoch=epoch,
                                     metrics={"epoch": epoch, "step": 4 * (epoch + 1), "loss": 1.0 / (epoch + 1),
                                              "train_accuracy": 0.5, "lr": 0.1, "val_clean_accuracy": float("nan")})
        tracker.log_metrics_hook(run_dir=run_dir, metrics={"real/clean_accuracy": 0.75, "metrics/fid/fid": 12.5}, step=None)
    finally:
        tracker.close(failed=False)
        del tracker.log
    assert [step for _, step in logged] == [4, 8, 0], logged
    for metrics, _ in logged:
        assert metrics and all(isinstance(k, str) and isinstance(v, float) and v == v for k, v in metrics.items())
        assert not any(k.endswith(("epoch", "step")) for k in metrics), "bookkeeping logged as a metric"
    assert len(logged[0][0]) == 3  # loss, train_accuracy, lr: the NaN and the bookkeeping dropped


def check_default(tracker) -> None:
    try:
        tracker.check_requirements()
    except BadInputError as exc:
        import pytest

        pytest.skip(f"{tracker.key}: {exc}")
    with tempfile.TemporaryDirectory() as folder:
        outside = Path(folder)
        run_dir = outside / "run"
        run_dir.mkdir()
        check_tracker(tracker, run_dir)
        assert [p.name for p in outside.iterdir()] == ["run"], "the tracker wrote outside the run folder"
