"""Ctrl-C stops a run cleanly and says how to resume; the resumed run finishes. Absurd sizes are
refused with the estimate before anything is generated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dreamset.cli import main

SETS = ["data.dataset.options.train_size=200", "generate.count=1500", "generate.batch_size=100", "generate.shard_size=500",
        "generate.generator.options={block_out_channels: [8, 16], train_steps: 100, steps: 8, batch_size: 32}",
        "seeds=[0]", "train.epochs=1", "train.model.options.width=8", "train.budget=matched",
        "evaluate.attackers.0.options.steps=2", "evaluate.robust_samples=32", "evaluate.metrics=[]"]


def _command(out, sets=SETS):
    args = [sys.executable, "-m", "dreamset", "run", "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    return args


def _finished_shards(shards):
    """The committed shard folders (``shard-NNNNNN``; ``.tmp-shard-*`` is a shard still being written)."""
    return [entry for entry in shards.iterdir() if entry.name.startswith("shard-")] if shards.is_dir() else []


def _wait_for(condition, process, timeout: float = 900):
    """Poll ``condition()`` until true, while ``process`` runs; no wall-clock guess of how long a
    stage takes (a loaded machine may be ten times slower), only a generous ceiling."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended (code {process.returncode}) before the awaited moment"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def _default_sigint() -> None:
    """Run in the child before it executes: Ctrl-C as a terminal delivers it. A background job of a
    non-interactive shell (``bash -c 'pytest ... &'``, ``nohup ... &``) starts with SIGINT ignored,
    and an ignored signal stays ignored across ``exec``: Python would never raise KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_stops_cleanly_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(_command(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=_default_sigint)
    shards = out / "synthetic" / "shards"
    # interrupt once a shard is committed on disk (3 are planned: the run is still sampling, or training
    # on a fast machine; either way it has not finished)
    _wait_for(lambda: _finished_shards(shards), process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "re-run the same command" in err and "Traceback" not in err
    assert not (out / "report.json").exists()
    before = {f: f.stat().st_mtime_ns for f in shards.rglob("*") if f.is_file()}
    assert before, "no shard was finished before the interrupt"
    finished = subprocess.run(_command(out), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert json.loads((out / "report.json").read_text())["arms"]
    # the shards finished before Ctrl-C were kept, not regenerated
    assert {f: f.stat().st_mtime_ns for f in before} == before
    assert json.loads((out / "synthetic" / "store.json").read_text())["count"] == 1500


def test_absurd_generation_size_is_refused_with_the_estimate(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 * 10**9, 90 * 10**9, 10 * 10**9))
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), "--set", "generate.count=1000000000",
                 "--set", "generate.generator.options={block_out_channels: [8, 16], train_steps: 1}",
                 "--set", "data.dataset.options.train_size=100"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert ("generate.count: 1,000,000,000 images of (1, 8, 8) need about 392.0 GB on disk (392 bytes per image with labels "
            "and provenance), but only 10.0 GB are free") in err
    assert not (out / "synthetic").exists() and not (out / "report.json").exists()


# -- SIGKILL at random moments of a whole run --------------------------------------------------------

KILL_SETS = ["seeds=[0,1]", "data.dataset.options.train_size=200", "generate.count=400", "generate.batch_size=100",
             "generate.shard_size=100",
             "generate.generator.options={block_out_channels: [8, 16], train_steps: 60, steps: 4, batch_size: 32}",
             "train.epochs=3", "train.model.options.width=8", "train.budget=matched",
             "evaluate.attackers.0.options.steps=3", "evaluate.robust_samples=64", "reference.epochs=2",
             "evaluate.metrics=[{key: fid}, {key: label-agreement}]"]


def _outcome(out):
    """What must not depend on interruptions: the results, the store's bytes, the final weights."""
    import hashlib

    report = json.loads((out / "report.json").read_text())

    def without_wall_time(value):  # the one per-arm number that legitimately depends on interruptions
        if isinstance(value, dict):
            return {k: without_wall_time(v) for k, v in value.items() if k not in ("wall_seconds", "wall_seconds_std")}
        return value

    digest = {str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
              for pattern in ("synthetic/shards/*/*", "checkpoints/*/final.safetensors") for f in out.glob(pattern)}
    return without_wall_time(report["arms"]), report["metrics"], digest


def _kill_at_random_moments(tmp_path, kills: int, seed: int):
    import random

    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    reference = tmp_path / "uninterrupted"
    start = time.monotonic()
    done = subprocess.run(_command(reference, KILL_SETS), capture_output=True, text=True, timeout=600, env=env)
    duration = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-2000:]
    out, rng, killed = tmp_path / "killed", random.Random(seed), 0
    for _ in range(kills):
        process = subprocess.Popen(_command(out, KILL_SETS), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            # within the first half of the reference's time: under pytest-xdist the other worker's load
            # changes how long a run takes, and a kill timed near the end can come after it finished
            process.wait(timeout=rng.uniform(0.05, 0.5) * duration)
        except subprocess.TimeoutExpired:
            process.kill()
            killed += 1
        process.communicate(timeout=60)
        if (out / "report.json").exists():
            break
    finished = subprocess.run(_command(out, KILL_SETS), capture_output=True, text=True, timeout=600, env=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert killed >= 1
    arms, metrics, files = _outcome(out)
    expected_arms, expected_metrics, expected_files = _outcome(reference)
    assert files == expected_files and len([f for f in files if f.startswith("checkpoints")]) == 4  # 2 arms x 2 seeds
    assert arms == expected_arms
    assert json.dumps(metrics, sort_keys=True) == json.dumps(expected_metrics, sort_keys=True)
    assert not list(out.rglob(".tmp-*"))


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
    _kill_at_random_moments(tmp_path, kills=3, seed=0)


@pytest.mark.slow
def test_sigkill_many_times_then_resume_equals_an_uninterrupted_run(tmp_path):
    _kill_at_random_moments(tmp_path, kills=15, seed=1)
