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
from test_reliability import one_line_error

from dreamset.cli import main
from dreamset.contracts.errors import BadInputError

#: a recipe that would be valid but for the field under test (never run: each case is refused first)
BASE = {"name": "hostile", "seeds": [0], "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1}}


def refused_quickly(capsys, argv, within: float = 1.0) -> str:
    """``main(argv)`` is exit 2 with one line within ``within`` seconds of CPU (CPU, not wall time, so a
    loaded machine does not fail it; the registry is loaded first, as any earlier command would)."""
    from dreamset.registry import get_registry

    get_registry()
    start = time.process_time()
    code = main(argv)
    seconds = time.process_time() - start
    line = one_line_error(capsys.readouterr().err)
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


# -- case 7: a small .npz that declares a huge array honestly ----------------------------------------

def honest_big_npz(path: Path, n: int, shape=(8, 8)) -> Path:
    """An .npz whose ``image`` member really holds ``n`` zero images (deflated to almost nothing): its
    header and its declared size agree, so only the size itself can refuse it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("image.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": (n, *shape)})
            row = bytes(int(np.prod(shape)))
            block = row * 65536
            for start in range(0, n, 65536):
                member.write(block if n - start >= 65536 else row * (n - start))
        with zf.open("label.npy", "w") as member:
            np.lib.format.write_array(member, np.zeros(n, dtype=np.int64))
    return path


def npz_dataset(path: Path, **options):
    from dreamset.registry import get_registry

    return get_registry().create("dataset:npz", kind="dataset", path=str(path), **options)


def test_an_npz_array_larger_than_the_available_memory_allows_is_refused_naming_it(tmp_path, monkeypatch):
    """The issue's file, scaled down: 16 MB declared behind a few KB on disk, with 60 MB of memory
    available (the bound: a sixth of it, as the array, its split copy and training's reads of it are
    about three times its size, and a data set may take half the memory)."""
    import dreamset.files.verify as verify

    path = honest_big_npz(tmp_path / "big.npz", 250_000)
    assert path.stat().st_size < 200_000
    monkeypatch.setattr(verify, "available_memory", lambda: 60_000_000, raising=False)
    with pytest.raises(BadInputError) as info:
        npz_dataset(path).load("train")
    text = str(info.value)
    assert "big.npz" in text and "key 'image'" in text and "16,000,128 bytes" in text and "max_array_bytes" in text, text
    # an option raises the bound: the same file is read
    train = npz_dataset(path, max_array_bytes=20_000_000).load("train")
    assert len(train) == 200_000


def test_the_memory_bound_follows_the_available_memory():
    import dreamset.files.verify as verify

    available = verify.available_memory()
    assert 0 < available and verify.memory_bound() == available // 6
