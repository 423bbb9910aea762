"""A store is reused only by what made it (issue 34, cases 1-3): the generator's settings and
checkpoint, the real data it was fitted on, the sampling settings; an import only from the same
file. A stale store is refused before anything is written, or moved aside with ``--fresh``."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_reliability import one_line_error, run, tiny_recipe

from dreamset.cli import main

DDPM = {"key": "ddpm", "options": {"block_out_channels": [8, 16], "train_steps": 1, "steps": 2}}


def recipe_file(tmp_path: Path) -> Path:
    """A real arm and a synthetic-only arm, a 1-step DDPM on 60 digits, 64 images in 2 shards."""
    return tiny_recipe(tmp_path, generate={"generator": DDPM, "count": 64, "batch_size": 32, "shard_size": 32},
                       arms={"real": {"real": True}, "synthetic": {"real": False, "synthetic": True}},
                       evaluate={"robust_samples": 20, "metrics": []})


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "stale" not in p.relative_to(folder).parts}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run (copied by each test, never changed)."""
    folder = tmp_path_factory.mktemp("identity")
    recipe, out = recipe_file(folder), folder / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    return recipe, out


def copy_of(finished, tmp_path) -> tuple[Path, Path]:
    recipe, out = finished
    shutil.copytree(out, tmp_path / "run")
    return recipe, tmp_path / "run"


@pytest.mark.parametrize("change,named", [
    ("data.dataset.options.train_size=50", "real data changed"),            # case 1: the generator's input
    ("generate.generator.options.train_steps=2", "train_steps: 1 -> 2"),   # case 2: the generator's training
])
def test_a_store_made_from_other_inputs_is_refused_before_anything_is_written(finished, tmp_path, capsys, change, named):
    recipe, out = copy_of(finished, tmp_path)
    before = digests(out)
    code, err = run(capsys, recipe, "--out", out, "--set", change)
    line = one_line_error(err)
    assert code == 2 and str(out / "synthetic") in line and named in line and "--fresh" in line, line
    # nothing was written: not the generator's checkpoint, not a shard, not a model
    assert digests(out) == before


@pytest.mark.parametrize("change", ["data.dataset.options.train_size=50", "generate.generator.options.train_steps=2"])
def test_fresh_moves_the_stale_store_and_generator_aside_and_regenerates(finished, tmp_path, capsys, change):
    recipe, out = copy_of(finished, tmp_path)
    before = digests(out)
    code, err = run(capsys, recipe, "--out", out, "--set", change, "--fresh")
    assert code == 0, err
    # the old store and generator are kept, byte for byte, under stale/<time>/ (the arms' checkpoints
    # made from them are moved aside later, by the training stage, under a later time)
    stale = sorted((out / "stale").iterdir())
    kept = {name: digest for folder in stale for name, digest in digests(folder).items()}
    assert (stale[0] / "synthetic" / "store.json").is_file() and (stale[0] / "generator").is_dir()
    for name, digest in before.items():
        if name.startswith(("synthetic/", "generator/")):
            assert kept[name] == digest, name
    after = digests(out)
    assert after["synthetic/shards/shard-000000/images.npy"] != before["synthetic/shards/shard-000000/images.npy"]
    # the synthetic-only arm was retrained on the new store, not reused
    arm = "checkpoints/synthetic-seed0/final.safetensors"
    assert after[arm] != before[arm]
    manifest = json.loads((out / "synthetic" / "store.json").read_text())
    assert manifest["made_by"] != json.loads((stale[0] / "synthetic" / "store.json").read_text())["made_by"]


def test_a_replaced_generator_checkpoint_makes_the_store_stale(finished, tmp_path, capsys):
    """The generator's checkpoint is part of the store's identity: replaced by other weights, the store
    made from the old ones is refused and the replacement is not overwritten."""
    recipe, out = copy_of(finished, tmp_path)
    weights = out / "generator" / "unet.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    before = digests(out)
    code, err = run(capsys, recipe, "--out", out)
    line = one_line_error(err)
    assert code == 2 and "generator checkpoint changed" in line, line
    assert digests(out) == before


def test_the_same_recipe_reuses_everything(finished, tmp_path, capsys):
    recipe, out = copy_of(finished, tmp_path)
    before = digests(out)
    code, err = run(capsys, recipe, "--out", out)
    assert code == 0, err
    after = digests(out)
    for name, digest in before.items():
        if name.startswith(("synthetic/", "generator/", "checkpoints/")):
            assert after[name] == digest, name
    assert not (out / "stale").exists()


# -- case 3: a resumed import reads the same file --------------------------------------------------

def test_a_resumed_import_from_a_different_file_is_refused(tmp_path, capsys):
    import dreamset.store.writer as writer_module

    npz, store = tmp_path / "data.npz", tmp_path / "store"
    rng = np.random.default_rng(0)
    np.savez(npz, image=rng.integers(0, 256, size=(3000, 8, 8, 1), dtype=np.uint8), label=np.arange(3000) % 10)
    # the import is killed after 1 of its 3 shards (1,024 images each)
    real_write, written = writer_module.write_shard, []

    def write_then_die(root, index, *rest):
        if len(written) == 1:
            raise KeyboardInterrupt
        written.append(index)
        return real_write(root, index, *rest)

    writer_module.write_shard = write_then_die
    try:
        assert main(["import", str(npz), str(store)]) == 130
    finally:
        writer_module.write_shard = real_write
    capsys.readouterr()
    # the file is replaced by other data of the same name and size
    size = npz.stat().st_size
    np.savez(npz, image=rng.integers(0, 256, size=(3000, 8, 8, 1), dtype=np.uint8), label=np.arange(3000) % 10)
    assert npz.stat().st_size == size
    shards = digests(store)
    code = main(["import", str(npz), str(store)])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and str(npz) in line and "different file" in line, line
    assert digests(store) == shards
