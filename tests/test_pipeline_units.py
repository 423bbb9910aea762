"""Pipeline pieces that need no trained model: the run-folder lock and the per-seed summary."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dreamset.contracts.errors import BadInputError
from dreamset.orchestration.pipeline import run_folder_lock, summarize_arms


def test_second_run_into_the_same_folder_is_refused(tmp_path):
    with run_folder_lock(tmp_path / "run"):
        with pytest.raises(BadInputError, match="another dreamset run is using this folder"):
            with run_folder_lock(tmp_path / "run"):
                pass
    with run_folder_lock(tmp_path / "run"):  # released afterwards
        pass


def test_lock_is_held_across_processes(tmp_path):
    code = (
        "import sys; from dreamset.orchestration.pipeline import run_folder_lock\n"
        "from dreamset.contracts.errors import BadInputError\n"
        "try:\n"
        f"    with run_folder_lock(__import__('pathlib').Path({str(tmp_path / 'run')!r})): print('acquired')\n"
        "except BadInputError as e: print('refused')\n"
    )
    with run_folder_lock(tmp_path / "run"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "refused"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "acquired"


def test_summarize_arms_mean_std_and_per_seed():
    per_seed = {
        0: {"real": {"clean_accuracy": 0.8, "robust_accuracy": 0.5, "shifted": {"invert@5": 0.2}}},
        1: {"real": {"clean_accuracy": 0.9, "robust_accuracy": 0.7, "shifted": {"invert@5": 0.4}}},
    }
    arms = summarize_arms(per_seed)
    real = arms["real"]
    assert real["clean_accuracy"] == pytest.approx(0.85)
    assert real["robust_accuracy"] == pytest.approx(0.6)
    assert real["robust_accuracy_std"] == pytest.approx(0.1414213562, rel=1e-6)  # sample std
    assert real["shifted"] == {"invert@5": pytest.approx(0.3)}
    assert real["shifted_std"]["invert@5"] == pytest.approx(0.1414213562, rel=1e-6)
    assert set(real["per_seed"]) == {"0", "1"}


def test_summary_prints_metric_keys_with_brackets_verbatim():
    import io

    from rich.console import Console

    from dreamset.report.writer import print_summary

    report = {"arms": {}, "seeds": [0], "metrics": {"effective_robustness": {"arms": {"[bold]x[/bold]": {"effective_robustness_mean": 0.25}}},
                                                    "mystery": {"score[real]": 0.5}}}
    buffer = io.StringIO()
    print_summary(report, Console(file=buffer, width=160))
    text = buffer.getvalue()
    assert "effective robustness [[bold]x[/bold]]" in text and "+0.25 pp" in text
    assert "mystery.score[real]" in text
