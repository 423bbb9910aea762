"""The documented multi-process commands, run for real: ``torchrun --standalone --nproc_per_node 2
-m dreamset run|generate`` on CPU (gloo) gives the same store bytes and the same report numbers as
one process; a killed rank stops the other with one line naming it, and re-running resumes.

``python -m torch.distributed.run`` is the ``torchrun`` entry point (the console script may not be on
PATH in a virtual environment); ``--standalone`` rendezvouses on a free port chosen at run time.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreamset.cli import main
from dreamset.report.writer import result_numbers as numbers

RECIPE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "tiny-distributed.yaml"
#: relative tolerance on report numbers between 1 and 2 processes: float32 gradients summed in another
#: order drift the weights by ~1e-7, which FID (a matrix square root) turns into ~2e-6 (measured)
REL_TOL = 1e-4


def _env(**extra) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "dreamset", *args]


def dreamset(*args: str) -> list[str]:
    return [sys.executable, "-m", "dreamset", *args]


def _run(command: list[str], timeout: float = 600, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_env(**env))
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def store_digest(store: Path) -> dict[str, str]:
    return {str(f.relative_to(store)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(store.rglob("*")) if f.is_file()}


def assert_reports_match(one: dict, two: dict) -> None:
    a, b = numbers(one), numbers(two)
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float) and isinstance(b[key], float):
            assert math.isclose(value, b[key], rel_tol=REL_TOL, abs_tol=1e-9) or (math.isnan(value) and math.isnan(b[key])), \
                f"{key}: {value} (1 process) vs {b[key]} (2 processes)"
        else:
            assert value == b[key], f"{key}: {value!r} (1 process) vs {b[key]!r} (2 processes)"


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """``python -m dreamset run`` of the tiny recipe in one process."""
    out = tmp_path_factory.mktemp("single") / "run"
    _run(dreamset("run", str(RECIPE), "--out", str(out)))
    return out


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """``torchrun --nproc_per_node 2 -m dreamset run`` of the tiny recipe, rank 1 SIGKILLed once the
    first arm has checkpointed an epoch (mid-training), then the same command again: ``(out, the
    killed attempt's stderr and exit code, the re-run)``. One launch pair serves the
    kill, resume and 1-vs-2-process checks."""
    out = tmp_path_factory.mktemp("two") / "run"
    command = torchrun(2, "run", str(RECIPE), "--out", str(out))
    checkpoint = out / "checkpoints" / "real-seed0" / "last.safetensors"
    process, stderr = _kill_a_rank_once(command, checkpoint.exists, "no epoch was checkpointed")
    resumed = _run(command)
    return out, stderr, process.returncode, resumed


def _kill_a_rank_once(command: list[str], ready, what: str) -> tuple[subprocess.Popen, str]:
    """Start ``command`` (torchrun, 2 processes), SIGKILL rank ``VICTIM`` once ``ready()`` holds;
    returns the finished process and its stderr (``communicate`` raises if the survivor hangs)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 600
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    pids = _rank_pids(process.pid)
    assert set(pids) == {0, 1}, pids
    os.kill(pids[VICTIM], signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    return process, stderr


def _rank_pids(parent: int) -> dict[int, int]:
    """``{rank: pid}`` of the worker processes under the torchrun process ``parent``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0") if ppid == parent else []
        except (OSError, IndexError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(entry.name)
    return found


VICTIM = 1


def test_a_killed_rank_stops_the_other_with_one_line_naming_it(killed_then_resumed):
    _, stderr, returncode, _ = killed_then_resumed
    assert returncode != 0
    survivor = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(survivor) == 1, stderr[-3000:]
    assert survivor[0].startswith(f"error: rank {1 - VICTIM} of 2: rank {VICTIM} died during train"), stderr[-3000:]
    assert survivor[0].endswith("re-run the same command (same --out) to resume")
    # the one traceback is torchrun's own summary (ChildFailedError, naming the SIGKILLed rank too)
    assert stderr.count("Traceback") <= 1 and f"rank      : {VICTIM} (local_rank: {VICTIM})" in stderr, \
        stderr[max(0, stderr.find("Traceback") - 1500):][:6000]


def test_torchrun_run_resumed_after_a_kill_equals_one_process(single, killed_then_resumed):
    out, _, _, resumed = killed_then_resumed
    assert resumed.stdout.count("dreamset run tiny-distributed") == 1, "only rank 0 speaks"
    assert "train real (seed 0): resuming after epoch" in resumed.stdout, resumed.stdout[-3000:]
    assert store_digest(out / "synthetic") == store_digest(single / "synthetic")
    one, two = (json.loads((d / "report.json").read_text()) for d in (single, out))
    assert_reports_match(one, two)
    # models that learned (chance is 0.1), so that equal reports mean something: adversarial training's
    # sign steps turn any float difference into other predictions (train.batch_groups: dreamset.training.row_groups)
    assert one["arms"]["real"]["clean_accuracy"] > 0.4 and one["arms"]["real+synthetic"]["clean_accuracy"] > 0.3


def test_torchrun_generate_equals_one_process(single, tmp_path):
    out = tmp_path / "gen"
    done = _run(torchrun(2, "generate", str(RECIPE), "--out", str(out)))
    assert "(96 images)" in " ".join(done.stdout.split())
    assert store_digest(out / "synthetic") == store_digest(single / "synthetic")


@pytest.mark.slow  # the suite kills a rank mid-training (above); this kills one mid-generation
def test_a_killed_rank_during_generate_is_named_and_rerun_resumes(tmp_path):
    sets = ["--set", "generate.count=1200", "--set", "generate.shard_size=100"]
    reference = tmp_path / "reference"
    assert main(["generate", str(RECIPE), "--out", str(reference), *sets]) == 0  # one process, in this one
    out = tmp_path / "gen"
    command = torchrun(2, "generate", str(RECIPE), "--out", str(out), *sets)
    shards = out / "synthetic" / "shards"
    process, stderr = _kill_a_rank_once(command, lambda: shards.is_dir() and any(e.name.startswith("shard-") for e in shards.iterdir()),
                                        "no shard was committed")
    assert process.returncode != 0
    survivor = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(survivor) == 1 and survivor[0].startswith(f"error: rank 0 of 2: rank {VICTIM} died during generate"), stderr[-3000:]
    finished = _run(command)
    assert "(1200 images)" in " ".join(finished.stdout.split())
    assert store_digest(out / "synthetic") == store_digest(reference / "synthetic")


BARRIER_SCRIPT = """
import sys, time
from dreamset.orchestration import distributed
with distributed.session("cpu"):
    with distributed.stage("a test"):
        if distributed.rank() == 1:
            time.sleep(3600)  # never arrives: without the barrier's timeout the test would hang
        distributed.barrier("the test barrier")
"""


@pytest.mark.slow  # three more interpreter starts; the suite's failure naming is the killed rank above
def test_a_stuck_rank_is_named_when_the_barrier_times_out(tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text(BARRIER_SCRIPT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=600, env=_env(DREAMSET_DIST_TIMEOUT="3"))
    assert done.returncode != 0
    assert "rank 0 of 2: rank 1 did not reach the barrier 'the test barrier' within the timeout (stuck or dead) " \
           "during a test" in done.stderr, done.stderr[-3000:]
