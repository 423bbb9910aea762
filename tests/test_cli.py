"""The command line: exit codes, one-line errors, nothing written for bad input, fast start."""
from __future__ import annotations

import json
import subprocess
import sys
import time

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


@pytest.mark.parametrize("args", [["--help"], ["plugins"]])
def test_cli_starts_fast_without_torch(args):
    code = (
        "import sys, time; t = time.perf_counter(); from dreamset.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({args!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(time.perf_counter() - t, 'torch' in sys.modules)\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, torch_loaded = out.stdout.split()
    assert torch_loaded == "False"
    assert float(seconds) < 1.0, f"dreamset {' '.join(args)} took {seconds} s in-process"
    assert time.perf_counter() - start < 5
