"""The command line: exit codes, one-line errors, nothing written for bad input, fast start."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dreamset.cli import main


def test_bad_recipe_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: x\ntrain: {epochs: -3}\n")
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]
    assert not out.exists()


def test_bad_override_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--set", "train.epochs=0"]) == 2
    assert "train.epochs: Input should be greater than 0" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_recipe_exits_2(capsys):
    assert main(["run", "no-such-recipe"]) == 2
    assert "unknown recipe 'no-such-recipe'" in capsys.readouterr().err


def test_recipes_lists_the_catalogue(capsys):
    assert main(["recipes", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    default = [e for e in entries if e["default"]]
    assert [e["name"] for e in default] == ["digits-robust"] and default[0]["description"]


def test_plugins_json_and_kind_filter(capsys):
    assert main(["plugins", "--kind", "shift", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["components"] and all(c["key"].startswith("shift:") for c in data["components"])
    assert all({"key", "plugin", "distribution", "version", "status"} <= set(c) for c in data["components"])


def test_plugins_table_renders(capsys):
    assert main(["plugins", "shift:*"]) == 0
    assert "shift:invert" in capsys.readouterr().out


#: what the CLI must not import to list plugins or print help (each costs seconds to import)
HEAVY_MODULES = ("torch", "torchvision", "diffusers", "transformers", "timm", "torchattacks", "sklearn", "matplotlib", "safetensors")


@pytest.mark.parametrize("args", [["--help"], ["plugins"]])
def test_cli_starts_without_importing_heavy_modules(args):
    """What "starts fast" means, without a wall-clock threshold (which a loaded CI machine breaks):
    listing plugins or printing help imports none of the heavy libraries. The time itself is
    measured by benchmarks/cli_start.py."""
    code = (
        "import sys, contextlib, io\n"
        "from dreamset.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({args!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules) or '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["-"], f"dreamset {' '.join(args)} imported {out.stdout.strip()}"


def _digits_npz(path, noise: float, seed: int):
    """The digits as an ``image``/``label`` .npz (uint8 N×8×8), optionally with noise added."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / 16.0 + noise * np.random.default_rng(seed).standard_normal(digits.images.shape)
    np.savez(path, image=(np.clip(images, 0, 1) * 255).round().astype(np.uint8), label=digits.target)
    return path


def test_evaluate_compares_a_dataset_with_an_imported_store(tmp_path, capsys):
    from dreamset.commands.compare import evaluate_sources

    names = ",".join(str(i) for i in range(10))
    for tag, noise in (("close", 0.0), ("noisy", 0.4)):
        assert main(["import", str(_digits_npz(tmp_path / f"{tag}.npz", noise, 0)), str(tmp_path / tag),
                     "--class-names", names]) == 0
    capsys.readouterr()
    results = {tag: evaluate_sources("dataset:digits", str(tmp_path / tag), metrics=["fid", "prdc", "label-agreement"],
                                     work_dir=tmp_path / "work", reference_epochs=15)
               for tag in ("close", "noisy")}
    close, noisy = results["close"], results["noisy"]
    assert set(close) == {"fid", "prdc", "label_agreement"}
    # the same digits are far closer to the real set than heavily noised copies of them
    assert close["fid"]["fid"] < noisy["fid"]["fid"]
    assert close["prdc"]["precision"] > noisy["prdc"]["precision"]
    assert close["label_agreement"]["agreement"] > max(0.85, noisy["label_agreement"]["agreement"])


def test_evaluate_cli_prints_json_and_refuses_bad_sources(tmp_path, capsys):
    names = ",".join(str(i) for i in range(10))
    assert main(["import", str(_digits_npz(tmp_path / "s.npz", 0.0, 0)), str(tmp_path / "store"),
                 "--class-names", names]) == 0
    capsys.readouterr()
    assert main(["evaluate", "dataset:digits", str(tmp_path / "store"), "--metric", "kid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kid"]["kid_mean"] < 0.05
    assert main(["evaluate", "dataset:digits", str(tmp_path / "missing.npz")]) == 2
    assert "synthetic: " in capsys.readouterr().err
    assert main(["evaluate", "dataset:digits", str(tmp_path / "store"), "--metric", "accuracy"]) == 2
    assert "needs trained arms" in capsys.readouterr().err
