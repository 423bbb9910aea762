"""Hostile values a user can type (issue 34, cases 4, 5 and 7): each is one line and exit code 2,
refused before it costs time or memory."""
from __future__ import annotations

import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from dreamset.cli import main
from dreamset.contracts.errors import BadInputError

#: a recipe that would be valid but for the field under test (never run: each case is refused first)
BASE = {"name": "hostile", "seeds": [0], "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1}}


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def refused_quickly(capsys, argv, within: float = 1.0) -> str:
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    line = one_line(capsys)
    assert code == 2, line
    assert seconds < within, f"{seconds:.2f} s"
    return line


# -- case 4: an integer beyond Python's int-string limit ----------------------------------------------

@pytest.mark.parametrize("where", ["yaml", "toml", "set"])
def test_an_integer_of_5000_digits_is_one_line(tmp_path, capsys, where):
    digits = "9" * 5000
    out = tmp_path / "run"
    if where == "set":
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(BASE))
        argv = ["run", str(path), "--out", str(out), "--set", f"train.epochs={digits}"]
    elif where == "yaml":
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(BASE) + f"report:\n  samples_per_class: {digits}\n")
        argv = ["run", str(path), "--out", str(out)]
    else:
        path = tmp_path / "recipe.toml"
        path.write_text(f'name = "hostile"\nseeds = [0]\n[train]\nepochs = {digits}\n')
        argv = ["run", str(path), "--out", str(out)]
    line = refused_quickly(capsys, argv)
    assert "5,000 digits" in line and ("train.epochs" in line or "recipe." in line), line
    assert not out.exists()


# -- case 5: a billion laughs --------------------------------------------------------------------------

def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("where", ["top", "nested", "set"])
def test_a_billion_laughs_recipe_is_one_line_within_a_second(tmp_path, capsys, where):
    out, path = tmp_path / "run", tmp_path / "recipe.yaml"
    bomb = billion_laughs()
    assert len(bomb.encode()) < 1100  # the 1 KB file
    if where == "top":
        path.write_text(yaml.safe_dump(BASE) + bomb)
        argv = ["run", str(path), "--out", str(out)]
    elif where == "nested":
        path.write_text(yaml.safe_dump(BASE) + "report:\n  extra:\n" + "".join(f"    {line}\n" for line in bomb.splitlines()))
        argv = ["run", str(path), "--out", str(out)]
    else:
        path.write_text(yaml.safe_dump(BASE))
        argv = ["run", str(path), "--out", str(out), "--set", "report.extra={" + bomb.strip().replace("\n", ", ") + "}"]
    line = refused_quickly(capsys, argv)
    assert "aliases" in line and ("recipe.yaml" in line or "--set report.extra" in line), line
    assert not out.exists()


def test_a_few_aliases_still_work(tmp_path):
    """Anchors and aliases are YAML a recipe may use (a shared options block): only their expansion is bounded."""
    from dreamset.orchestration.recipe import read_recipe_file

    path = tmp_path / "recipe.yaml"
    path.write_text("opts: &o {eps: 0.1, steps: 3}\na: *o\nb: [*o, *o]\n")
    assert read_recipe_file(path) == {"opts": {"eps": 0.1, "steps": 3}, "a": {"eps": 0.1, "steps": 3},
                                      "b": [{"eps": 0.1, "steps": 3}] * 2}


def test_a_recipe_referring_to_itself_is_one_line(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(BASE) + "loop: &l [1, *l]\n")
    line = refused_quickly(capsys, ["run", str(path), "--out", str(tmp_path / "run")])
    assert "recipe.yaml" in line
