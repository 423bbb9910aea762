"""A long run says where it is (issue 35): progress lines with done/total, rate and ETA when the
output is a file (``--progress-every``), the planned work at each stage's start, an estimate of the
time left after the first seed; and ``dreamset status`` on a finished, a killed and a live run folder."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreamset.cli import main
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.progress import ProgressLines, duration, progress_bar

#: one seed, one arm with synthetic data, a DDPM, adversarial evaluation and one k-NN metric:
#: small, yet every long stage loops long enough to be seen at a 0.02 s interval (twelve epochs of training)
TINY = [
    "seeds=[0]",
    "data.dataset.options.train_size=200",
    "generate.count=200", "generate.batch_size=50", "generate.shard_size=100",
    "generate.generator.options={block_out_channels: [8, 16], train_steps: 20, steps: 4, batch_size: 32}",
    "arms={real+synthetic: {real: true, synthetic: true}}", "evaluate.baseline_arm=real+synthetic",
    "train.epochs=12", "train.budget=epochs", "train.model.options.width=8",  # > 0.05 s of training on an idle machine
    "evaluate.attackers.0.options.steps=3", "evaluate.robust_samples=128",
    "reference.epochs=1",
    "evaluate.metrics=[{key: prdc, options: {max_samples: 200}}]",
]
#: done/total with units, a rate and an ETA
PROGRESS = re.compile(r": [\d,]+/[\d,]+ [a-z]+ \(\d+%\), [\d.,]+ (?:[a-z]+/s|s/[a-z]+), ETA \S+$")
LONG_STAGES = ("generate", "train", "evaluate", "metrics")


def _args(out: Path, *extra: str) -> list[str]:
    args = ["run", "--out", str(out), *extra]
    for item in TINY:
        args += ["--set", item]
    return args


def _stage_lines(log: list[str]) -> dict[str, list[str]]:
    """stage -> the log lines between its start (``generate ...``) and its end (``generate done in``)."""
    inside: dict[str, list[str]] = {}
    current = None
    for line in log:
        start = re.search(r"INFO\s+([a-z-]+) \.\.\.", line)
        if start:
            current = start.group(1)
            inside[current] = []
        elif current and re.search(rf"INFO\s+{current} done in", line):
            current = None
        elif current:
            inside[current].append(line)
    return inside


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny run piped to a file, as a batch job runs it: ``dreamset run ... > run.log 2>&1``."""
    root = tmp_path_factory.mktemp("progress")
    out, log = root / "run", root / "piped.log"
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "dreamset", *_args(out, "--progress-every", "0.02")],
                              stdout=handle, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    return out, text.splitlines()


def test_a_piped_run_logs_progress_with_done_total_and_eta_inside_every_long_stage(finished):
    _, log = finished
    assert not any("\x1b[" in line for line in log)  # plain lines: no terminal codes in a file
    inside = _stage_lines(log)
    for stage in LONG_STAGES:
        lines = [line for line in inside[stage] if PROGRESS.search(line)]
        assert lines, f"no progress line inside {stage}: {inside[stage][:5]}"
    generate = next(line for line in log if "generate ..." in line)
    assert re.search(r"generate \.\.\. fit ddpm \(20 steps\), then sample 200 images in 2 shards$", generate)
    assert any(re.search(r"train real\+synthetic \(seed 0\): [\d,]+/[\d,]+ steps", line) for line in inside["train"])
    assert any(re.search(r"evaluate \(seed 0\): [\d,]+/[\d,]+ images", line) for line in inside["evaluate"])
    assert any(re.search(r"training DDPM: \d+/20 steps", line) for line in inside["generate"])
    assert any(re.search(r"run: the seed took \S+; left: no more seeds, then 1 metrics and the report", line) for line in log)


def test_the_run_folder_keeps_its_log_and_progress_is_in_no_result(finished):
    out, log = finished
    kept = (out / "run.log").read_text().splitlines()
    assert sum(bool(PROGRESS.search(line)) for line in kept) == sum(bool(PROGRESS.search(line)) for line in log) > 0
    report = json.loads((out / "report.json").read_text())
    assert "progress" not in json.dumps(report["recipe"])
    # the same folder again without progress lines: every checkpoint is reused (no digest holds the
    # interval) and the results are the same
    before = report["arms"]["real+synthetic"]
    assert main(_args(out, "--progress-every", "0", "-q")) == 0
    after = json.loads((out / "report.json").read_text())["arms"]["real+synthetic"]
    assert after["clean_accuracy"] == before["clean_accuracy"] and after["robust_accuracy"] == before["robust_accuracy"]
    again = (out / "run.log").read_text().splitlines()[len(kept):]
    assert not any(PROGRESS.search(line) for line in again)


def test_status_of_a_finished_run_shows_every_stage_done_and_the_headline_table(finished, capsys):
    out, _ = finished
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "— finished" in text and "stages: 7 of 7 done" in text
    assert "store synthetic: 2/2 shards" in text and "real+synthetic" in text
    assert main(["status", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "finished" and status["lock"]["held"] is False and status["left"] == []
    assert status["headline"]["rows"][0][0] == "real+synthetic"
    assert status["last_log"]["line"].endswith(f"report done in {status['last_log']['line'].split('report done in ')[1]}")


def test_status_of_a_killed_run_says_what_is_done_and_left(finished, tmp_path, capsys):
    out, _ = finished
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    # as a kill during training leaves it: no report, the journal up to select, half a line after it,
    # the arm's epochs so far in last.safetensors
    (killed / "report.json").unlink()
    journal = (killed / "stages.jsonl").read_text().splitlines()
    start = max(i for i, line in enumerate(journal) if '"event": "start"' in line)
    kept = [line for line in journal[: start + 1]] + [line for line in journal[start + 1:] if '"stage": "train"' not in line][:3]
    (killed / "stages.jsonl").write_text("\n".join(kept) + '\n{"event": "stage", "sta')
    checkpoints = killed / "checkpoints" / "real_plus_synthetic-seed0"
    (checkpoints / "final.safetensors").rename(checkpoints / "last.safetensors")
    assert main(["status", str(killed), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "stopped" and status["lock"]["held"] is False
    assert status["left"] == ["train (seed 0)", "evaluate (seed 0)", "metrics", "report"]
    train = next(s for s in status["stages"] if s["stage"] == "train")
    assert train["arms"]["real+synthetic"]["epochs_done"] == 12
    assert "headline" not in status
    assert main(["status", str(killed)]) == 0
    text = capsys.readouterr().out
    assert "stopped before the end" in text and "re-run the same command to resume" in text


def test_status_of_a_live_run_names_the_process_holding_the_lock_and_leaves_it_held(finished, tmp_path, capsys):
    out, _ = finished
    live = tmp_path / "live"
    shutil.copytree(out, live, ignore=shutil.ignore_patterns("report.json"))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path\n"
         "from dreamset.orchestration.runfolder import run_folder\n"
         "with run_folder(Path(sys.argv[1])):\n    print('held', flush=True)\n    sys.stdin.read()\n", str(live)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["status", str(live), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["state"] == "running" and status["lock"] == {"held": True, "pid": holder.pid, "how": "/proc/locks"}
        assert main(["status", str(live)]) == 0
        assert f"running (pid {holder.pid} holds the lock)" in capsys.readouterr().out
        # status took nothing: a run into the folder is still refused while the holder lives
        assert main(_args(live)) == 2
        assert "another dreamset run is using this folder" in capsys.readouterr().err
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert main(["status", str(live), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lock"]["held"] is False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="the lock is probed through /proc/locks (Linux)")
def test_status_of_a_folder_that_is_no_run_is_one_line_exit_2(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path}: not a dreamset run folder (no recipe.json)"]
    assert main(["status", str(tmp_path / "missing")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_progress_lines_are_rate_limited_and_rate_leaves_out_resumed_work():
    now = [0.0]
    lines: list[str] = []
    bar = ProgressLines("train real (seed 0)", 100, "steps", every=30, done=40, emit=lines.append, clock=lambda: now[0])
    for _ in range(10):  # 10 steps in 20 s: no line yet
        now[0] += 2
        bar.advance()
    assert lines == []
    now[0] += 20  # 40 s in, 20 steps this run (not the 40 resumed): 2 s a step, 40 left
    bar.advance(10)
    assert lines == ["train real (seed 0): 60/100 steps (60%), 2 s/step, ETA 1m20s"]
    bar.advance()
    assert len(lines) == 1  # the next one waits another 30 s
    assert duration(3 * 3600 + 5 * 60) == "3h05m"


def test_progress_bar_off_a_terminal_is_lines_or_silent_and_the_interval_is_checked():
    from rich.console import Console

    from dreamset.contracts.progress import check_every

    console = Console(file=open(os.devnull, "w"), force_terminal=False)
    with progress_bar(console, "x", 10, every=0) as advance:
        assert advance(5) is None
    with progress_bar(console, "x", 10, every=0.5) as advance:
        assert isinstance(advance.__self__, ProgressLines)
    with pytest.raises(BadInputError, match=r"^--progress-every: expected seconds"):
        check_every(-1)
    assert main(["run", "--progress-every", "-2", "--out", "/nonexistent/never"]) == 2
    assert not Path("/nonexistent/never").exists()
    time.sleep(0)
