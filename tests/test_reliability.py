"""What a run folder must never do: report what did not happen. One test (or a few) per case of
issue #13 — changed settings, corrupt and incomplete inputs, colliding names, hostile paths and
archives, the disk estimate, and dreamset's own dependencies. (Bit-identical resume at every model
boundary: tests/test_kill_points.py.)"""
from __future__ import annotations

import ast
import io
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from dreamset.cli import main
from dreamset.contracts.errors import BadInputError, StoreError

ROOT = Path(__file__).resolve().parents[1]


def tiny_recipe(tmp_path, **changes) -> Path:
    """One real-only arm, standard training for 1 epoch on 60 digits: a run takes a second or two."""
    recipe = {
        "name": "tiny", "seeds": [0], "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1, "batch_size": 32,
                  "mixed_precision": False},
        "evaluate": {"robust_samples": 20},
        "report": {"html": False},
    }
    for key, value in changes.items():
        recipe[key] = value
    path = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def with_npz_source(tmp_path, n=96, shard_size=32, **changes) -> Path:
    npz = tmp_path / "synthetic.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, image=rng.integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8), label=np.arange(n) % 10)
    return tiny_recipe(tmp_path, generate={"generator": "ddpm", "count": n, "source": str(npz), "shard_size": shard_size},
                       arms={"real": {"real": True}, "mixed": {"real": True, "synthetic": True}}, **changes)


def run(capsys, *args) -> tuple[int, str]:
    code = main(["run", *map(str, args)])
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def flip_a_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# -- case 2: a checkpoint is reused only with the settings that made it -------------------------------

@pytest.mark.parametrize("override,named", [
    (["train.epochs=2", "train.lr=0.5"], ["train.epochs: 1 -> 2", "train.lr: 0.1 -> 0.5"]),
    (["train.optimizer=adamw"], ["train.optimizer"]),
    (["train.model.options.width=6"], ["train.model.options.width: 4 -> 6", "architecture changed"]),
])
def test_changed_settings_refuse_the_old_checkpoint_naming_what_changed(tmp_path, capsys, override, named):
    recipe, out = tiny_recipe(tmp_path), tmp_path / "run"
    assert run(capsys, recipe, "--out", out)[0] == 0
    before = (out / "checkpoints" / "real-seed0" / "final.safetensors").read_bytes()
    sets = [a for item in override for a in ("--set", item)]
    code, err = run(capsys, recipe, "--out", out, *sets)
    line = one_line_error(err)
    assert code == 2
    assert "final.safetensors: was made with other settings" in line and "--fresh" in line and "--out" in line
    for part in named:
        assert part in line
    assert (out / "checkpoints" / "real-seed0" / "final.safetensors").read_bytes() == before
    # --fresh: the old checkpoints are moved aside (kept), the model retrained with the new settings
    code, err = run(capsys, recipe, "--out", out, *sets, "--fresh")
    assert code == 0, err
    stale = list((out / "stale").glob("*/checkpoints/real-seed0/final.safetensors"))
    assert len(stale) == 1 and stale[0].read_bytes() == before
    assert (out / "checkpoints" / "real-seed0" / "final.safetensors").read_bytes() != before
    report = json.loads((out / "report.json").read_text())
    if override[0] == "train.epochs=2":
        assert report["arms"]["real"]["per_seed"]["0"]["training"]["optimizer_steps"] == 2 * 2


def test_the_same_settings_reuse_the_checkpoint(tmp_path, capsys):
    recipe, out = tiny_recipe(tmp_path), tmp_path / "run"
    assert run(capsys, recipe, "--out", out)[0] == 0
    final = out / "checkpoints" / "real-seed0" / "final.safetensors"
    stamp = final.stat().st_mtime_ns
    assert run(capsys, recipe, "--out", out)[0] == 0
    assert final.stat().st_mtime_ns == stamp and not (out / "stale").exists()


# -- case 3: what is read is verified -----------------------------------------------------------------

def test_a_flipped_bit_in_a_store_shard_stops_the_rerun(tmp_path, capsys):
    """A store the run generated itself (a ``generate.source`` store was always verified)."""
    ddpm = {"key": "ddpm", "options": {"block_out_channels": [8, 16], "train_steps": 1, "steps": 2}}
    recipe = tiny_recipe(tmp_path, generate={"generator": ddpm, "count": 64, "batch_size": 32, "shard_size": 32},
                         arms={"real": {"real": True}, "mixed": {"real": True, "synthetic": True}})
    out = tmp_path / "run"
    assert run(capsys, recipe, "--out", out)[0] == 0
    images = out / "synthetic" / "shards" / "shard-000001" / "images.npy"
    flip_a_bit(images, images.stat().st_size - 5)
    code, err = run(capsys, recipe, "--out", out)
    assert code != 0 and f"{images}: sha256 mismatch" in one_line_error(err)


def test_a_flipped_bit_in_a_checkpoint_is_an_error_naming_the_file(tmp_path, capsys):
    recipe, out = tiny_recipe(tmp_path), tmp_path / "run"
    assert run(capsys, recipe, "--out", out)[0] == 0
    final = out / "checkpoints" / "real-seed0" / "final.safetensors"
    flip_a_bit(final, final.stat().st_size - 9)  # inside the last tensor's bytes
    code, err = run(capsys, recipe, "--out", out)
    assert code == 2 and f"{final}: checkpoint content does not match its sha256" in one_line_error(err)


def test_store_verification_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
    import dreamset.files.verify as verify
    from dreamset.store.npz import import_npz
    from dreamset.store.reader import SyntheticStore

    monkeypatch.setenv("DREAMSET_CACHE_DIR", str(tmp_path / "cache"))
    npz = tmp_path / "x.npz"
    np.savez(npz, image=np.zeros((40, 8, 8), dtype=np.uint8), label=np.arange(40) % 4)
    import_npz(npz, tmp_path / "store", shard_size=10)
    hashed = []
    real = verify.file_sha256
    monkeypatch.setattr(verify, "file_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    SyntheticStore.open(tmp_path / "store")
    assert len(hashed) == 4 * 3  # 4 shards × (images, labels, meta)
    hashed.clear()
    SyntheticStore.open(tmp_path / "store")
    assert hashed == []  # unchanged files: a stat each, no read
    images = tmp_path / "store" / "shards" / "shard-000003" / "images.npy"
    flip_a_bit(images, images.stat().st_size - 1)
    with pytest.raises(StoreError, match="shard-000003/images.npy: sha256 mismatch"):
        SyntheticStore.open(tmp_path / "store")
    assert hashed == ["images.npy"]


# -- case 4: partial data is never used as complete --------------------------------------------------

def test_an_interrupted_npz_import_is_finished_by_the_rerun(tmp_path, capsys):
    import shutil

    from dreamset.store.npz import import_npz
    from dreamset.store.reader import SyntheticStore

    recipe, out = with_npz_source(tmp_path, n=2100), tmp_path / "run"
    import_npz(tmp_path / "synthetic.npz", out / "synthetic", class_names=[str(i) for i in range(10)])
    shutil.rmtree(out / "synthetic" / "shards" / "shard-000002")  # killed before the last shard
    assert len(SyntheticStore.open(out / "synthetic")) == 2048
    code, err = run(capsys, recipe, "--out", out)
    assert code == 0, err
    store = SyntheticStore.open(out / "synthetic")
    assert store.complete and len(store) == 2100


def _incomplete_store(tmp_path) -> Path:
    import shutil

    from dreamset.store.npz import import_npz

    npz = tmp_path / "other.npz"
    np.savez(npz, image=np.zeros((60, 8, 8), dtype=np.uint8), label=np.arange(60) % 10)
    store = tmp_path / "other-run" / "synthetic"
    import_npz(npz, store, class_names=[str(i) for i in range(10)], shard_size=20)
    shutil.rmtree(store / "shards" / "shard-000002")  # as if still being written
    return store


def test_generate_source_refuses_an_incomplete_store_unless_asked(tmp_path, capsys):
    store = _incomplete_store(tmp_path)
    generate = {"generator": "ddpm", "count": 60, "source": str(store)}
    recipe = tiny_recipe(tmp_path, generate=generate, arms={"mixed": {"real": True, "synthetic": True}})
    code, err = run(capsys, recipe, "--out", tmp_path / "run")
    line = one_line_error(err)
    assert code == 2 and "generate.source" in line and "holds 40 of 60 images" in line
    assert not (tmp_path / "run").exists()  # a refused run leaves nothing behind
    recipe = tiny_recipe(tmp_path, generate={**generate, "allow_partial": True}, arms={"mixed": {"real": True, "synthetic": True}})
    code, err = run(capsys, recipe, "--out", tmp_path / "run")
    assert code == 0, err


def test_export_and_evaluate_refuse_an_incomplete_store(tmp_path, capsys):
    store = _incomplete_store(tmp_path)
    code = main(["export", str(store), "--out", str(tmp_path / "x.npz")])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "holds 40 of 60 images" in line and not (tmp_path / "x.npz").exists()
    assert main(["export", str(store), "--out", str(tmp_path / "x.npz"), "--partial"]) == 0
    assert np.load(tmp_path / "x.npz")["image"].shape[0] == 40
    capsys.readouterr()
    code = main(["evaluate", "digits", str(store)])
    assert code == 2 and "holds 40 of 60 images" in one_line_error(capsys.readouterr().err)


# -- case 5: one folder per arm -----------------------------------------------------------------------

@pytest.mark.parametrize("names", [("a+b", "a_plus_b"), ("Real", "real")])
def test_arms_sharing_a_folder_are_refused(tmp_path, capsys, names):
    arms = {name: {"real": True} for name in names}
    code, err = run(capsys, tiny_recipe(tmp_path, arms=arms), "--out", tmp_path / "run")
    line = one_line_error(err)
    assert code == 2 and all(repr(n) in line for n in names) and "checkpoint folder" in line
    assert not (tmp_path / "run").exists()


# -- case 6: smaller breaks -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ABSOLUTE/elsewhere", "../..", "a/b", ".hidden"])
def test_a_recipe_name_is_a_name_not_a_path(tmp_path, capsys, monkeypatch, name):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    name = name.replace("ABSOLUTE", str(tmp_path))  # an absolute path, kept inside the test's folder
    code, err = run(capsys, tiny_recipe(tmp_path, name=name))
    assert code == 2 and "name" in one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "recipe-0.yaml"]
    assert not list((tmp_path / "cwd").iterdir())


def _nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("where", ["yaml", "toml", "set"])
def test_deep_nesting_is_a_one_line_error(tmp_path, capsys, where):
    if where == "yaml":
        path = tmp_path / "deep.yaml"
        path.write_text("x: " + "[" * 500 + "]" * 500 + "\n")
        args = [path]
    elif where == "toml":
        path = tmp_path / "deep.toml"
        path.write_text("x = " + "[" * 500 + "]" * 500 + "\n")
        args = [path]
    else:
        args = [tiny_recipe(tmp_path), "--set", "description=" + "[" * 500 + "]" * 500]
    code, err = run(capsys, *args, "--out", tmp_path / "run")
    assert code == 2 and "nested deeper than" in one_line_error(err)
    assert len(err) < 400


@pytest.mark.parametrize("out", ["file", "/proc/self", "/proc/self/x/y"])
def test_an_unwritable_out_is_a_one_line_error(tmp_path, capsys, out):
    if out == "file":
        out = tmp_path / "a-file"
        out.write_text("x")
    code, err = run(capsys, tiny_recipe(tmp_path), "--out", out)
    line = one_line_error(err)
    assert code == 2 and "cannot write the run folder" in line and "another dreamset run" not in line


def test_a_refused_run_leaves_nothing_behind(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, generate={"generator": "ddpm", "count": 10, "source": str(tmp_path / "missing")},
                         arms={"mixed": {"real": True, "synthetic": True}})
    code, err = run(capsys, recipe, "--out", tmp_path / "run")
    assert code == 2 and "generate.source" in one_line_error(err)
    assert not (tmp_path / "run").exists()


def test_a_huge_invalid_value_is_cut_in_the_error(tmp_path, capsys):
    code, err = run(capsys, tiny_recipe(tmp_path), "--out", tmp_path / "run", "--set", "train.epochs=" + "x" * 5_000_000)
    line = one_line_error(err)
    assert code == 2 and "train.epochs" in line and len(line) <= 1100 and "characters cut" in line


def test_temporary_files_of_a_killed_run_are_removed_on_resume(tmp_path, capsys):
    recipe, out = tiny_recipe(tmp_path), tmp_path / "run"
    assert run(capsys, recipe, "--out", out)[0] == 0
    leftovers = [out / ".report.json.k2j4_x9a.tmp", out / "checkpoints" / "real-seed0" / ".last.safetensors.ab12cd34.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    keep = out / "notes.tmp"
    keep.write_text("a user's file")
    assert run(capsys, recipe, "--out", out)[0] == 0
    assert not any(p.exists() for p in leftovers) and keep.exists()


def _bomb(path: Path, member: str = "label.npy", extra: int = 50_000_000) -> Path:
    """An .npz whose ``member`` has a tiny array header and ``extra`` zero bytes behind it (deflated
    to ~50 KB): np.load would inflate all of it."""
    header = io.BytesIO()
    np.save(header, np.arange(4, dtype=np.int64))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((4, 8, 8), dtype=np.uint8))
        zf.writestr("image.npy", buffer.getvalue())
        with zf.open(member, "w", force_zip64=True) as handle:
            handle.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(extra // len(chunk)):
                handle.write(chunk)
    return path


def test_an_npz_zip_bomb_is_refused_before_inflating(tmp_path):
    from dreamset.store.npz import import_npz

    bomb = _bomb(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(BadInputError, match=r"key 'label' declares 4\d,\d{3},\d{3} bytes uncompressed but its header describes 160"):
        import_npz(bomb, tmp_path / "store")
    assert not (tmp_path / "store").exists()
    from dreamset.plugins.datasets.npz import read_npz_images

    with pytest.raises(BadInputError, match="key 'label' declares"):
        read_npz_images(bomb)


def test_an_npz_member_larger_than_memory_is_refused(tmp_path, monkeypatch):
    import dreamset.files.verify as verify
    from dreamset.plugins.datasets.npz import read_npz_images

    path = tmp_path / "big.npz"
    np.savez_compressed(path, image=np.zeros((2000, 8, 8), dtype=np.uint8), label=np.zeros(2000, dtype=np.int64))
    monkeypatch.setattr(verify, "memory_bound", lambda: 100_000)
    with pytest.raises(BadInputError, match=r"key 'image' is 128,128 bytes uncompressed, more than the 100,000 bytes"):
        read_npz_images(path)


def test_object_arrays_are_a_one_line_error_and_leave_no_store(tmp_path):
    from dreamset.store.npz import import_npz

    path = tmp_path / "objects.npz"
    np.savez(path, image=np.array([np.zeros((8, 8)), "x"], dtype=object), label=np.array([0, 1]))
    with pytest.raises(BadInputError, match="key 'image' holds Python objects"):
        import_npz(path, tmp_path / "store")
    assert not (tmp_path / "store").exists()


def _imagefolder(root: Path, n=3) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for c in ("a", "b"):
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")


def test_imagefolder_skips_a_fifo_instead_of_hanging(tmp_path):
    from dreamset.registry import get_registry

    dreamset_registry = get_registry()
    _imagefolder(tmp_path / "data")
    os.mkfifo(tmp_path / "data" / "train" / "a" / "x.png")
    dataset = dreamset_registry.create("dataset:imagefolder", root=str(tmp_path / "data"), channels=1)
    result = []
    thread = threading.Thread(target=lambda: result.append(dataset.load("train")), daemon=True)
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():  # unblock the reader so the test process can end
        with open(tmp_path / "data" / "train" / "a" / "x.png", "wb"):
            pass
        pytest.fail("reading an ImageFolder with a FIFO named x.png hung")
    assert len(result[0]) == 6


def test_imagefolder_refuses_symlinks_leaving_the_root_unless_allowed(tmp_path):
    from dreamset.registry import get_registry

    dreamset_registry = get_registry()
    _imagefolder(tmp_path / "data")
    _imagefolder(tmp_path / "elsewhere")
    (tmp_path / "data" / "train" / "c").symlink_to(tmp_path / "elsewhere" / "train" / "a")
    (tmp_path / "data" / "test" / "c").symlink_to(tmp_path / "data" / "test" / "a")  # inside the root: fine
    dataset = dreamset_registry.create("dataset:imagefolder", root=str(tmp_path / "data"), channels=1)
    with pytest.raises(BadInputError, match=r"train/c: a symlink leading outside"):
        dataset.load("train")
    allowed = dreamset_registry.create("dataset:imagefolder", root=str(tmp_path / "data"), channels=1, allow_external_links=True)
    assert len(allowed.load("train")) == 9


def test_the_disk_estimate_counts_provenance(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    # 10,000 images of 1×8×8: 0.72 MB of pixels and labels fit in 2 MB; with ~267 B of meta.jsonl each they do not
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2 * 10**6, 2 * 10**6))
    code = main(["run", "--out", str(tmp_path / "run"), "--set", "generate.count=10000",
                 "--set", "generate.generator.options={block_out_channels: [8, 16], train_steps: 1, steps: 2}",
                 "--set", "data.dataset.options.train_size=100"])
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "generate.count: 10,000 images of (1, 8, 8) need about 3.9 MB on disk (392 bytes per image" in line
    assert "only 2.0 MB are free" in line and not (tmp_path / "run").exists()


def test_the_disk_check_measures_the_first_batch(tmp_path, monkeypatch):
    """A generator whose provenance is long (a 2,000-character prompt per image) passes the estimate
    made before generation and is stopped by the one measured on its first batch."""
    import shutil
    from collections import namedtuple

    import torch

    from dreamset.contracts.interfaces import GeneratedBatch, Generator
    from dreamset.store.generation import generate_to_store

    class Wordy(Generator):
        key = "generator:wordy"

        def generate(self, labels, seeds, class_names):
            prov = [{"prompt": "p" * 2000, "seed": s} for s in seeds]
            return GeneratedBatch(torch.zeros(len(seeds), 1, 8, 8), labels.clone(), prov)

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 1000 * (64 + 8 + 400)))
    with pytest.raises(BadInputError, match=r"1,000 images of \(1, 8, 8\) need about 2\.\d MB on disk \(2,\d{3} bytes per image"):
        generate_to_store(Wordy(), tmp_path / "store", count=1000, batch_size=10, shard_size=100, labels="balanced",
                          seed=0, class_names=["a", "b"], image_shape=(1, 8, 8))
    assert not list((tmp_path / "store").glob("shards/shard-*"))


# -- case 8: dependencies -----------------------------------------------------------------------------

def test_dreamset_code_never_imports_requests():
    offenders = []
    for folder in ("core", "plugins", "registry"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if any(n == "requests" or n.startswith("requests.") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


def test_the_minimum_diffusers_is_one_that_checks_remote_code():
    from importlib.metadata import version

    from packaging.version import Version

    pyproject = (ROOT / "pyproject.toml").read_text()
    pinned = next(line for line in pyproject.splitlines() if '"diffusers>=' in line)
    minimum = Version(pinned.split(">=")[1].split('"')[0])
    assert minimum >= Version("0.38")  # 0.38.0 fixed the trust_remote_code bypass for local folders
    assert Version(version("diffusers")) >= minimum


class _Loader:
    """Stands in for a diffusers pipeline class: records how it was asked to load."""

    __name__ = "FakePipeline"
    calls: list = []

    @classmethod
    def from_pretrained(cls, model, **kwargs):
        cls.calls.append(kwargs)
        return "pipe"


@pytest.mark.parametrize("case", ["pipeline.py", "custom class", "custom component"])
def test_a_pipeline_folder_with_custom_code_is_refused(tmp_path, case):
    from dreamset.plugins.generators.diffusers_pipeline import load_pretrained

    folder = tmp_path / "pipe"
    folder.mkdir()
    index = {"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]}
    if case == "pipeline.py":
        (folder / "pipeline.py").write_text("open('/tmp/pwned', 'w')\n")
    elif case == "custom class":
        index["_class_name"] = ["pipeline", "EvilPipeline"]
    else:
        index["unet"] = ["evil_module", "UNet"]
    (folder / "model_index.json").write_text(json.dumps(index))
    _Loader.calls = []
    with pytest.raises(BadInputError, match="custom|Python code"):
        load_pretrained(_Loader, str(folder), local_files_only=True, torch_dtype=None)
    assert _Loader.calls == []


def test_a_pipeline_folder_with_safetensors_is_loaded_with_use_safetensors(tmp_path):
    from dreamset.plugins.generators.diffusers_pipeline import load_pretrained

    folder = tmp_path / "pipe"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"]}))
    _Loader.calls = []
    assert load_pretrained(_Loader, str(folder), local_files_only=True, torch_dtype=None) == "pipe"
    assert _Loader.calls[0]["use_safetensors"] is True and _Loader.calls[0]["trust_remote_code"] is False
