"""The synthetic store: roundtrip, crash safety (SIGKILL, ENOSPC, corruption), import/export,
distributed generation, memory-mapped reads, and the generator conformance check."""
from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import Field

import dreamset.store.reader as store_reader
import dreamset.store.writer as store_writer
from dreamset import Options
from dreamset.conformance.generators import check_generator
from dreamset.contracts.data import TensorImageSet, to_uint8_images
from dreamset.contracts.errors import BadInputError, StoreError
from dreamset.contracts.interfaces import GeneratedBatch, Generator
from dreamset.store.generation import generate_to_store
from dreamset.store.imagefolder import export_imagefolder, save_sample_grid
from dreamset.store.npz import export_npz, import_npz
from dreamset.store.reader import SyntheticStore

TESTS = Path(__file__).resolve().parent
CLASSES = ["zero", "one", "two"]
SHAPE = (3, 4, 4)
#: the plan shared by the in-process reference and the subprocesses (11 shards, the last partial)
PLAN = dict(count=52, batch_size=2, shard_size=5, labels="balanced", seed=3, class_names=CLASSES, image_shape=SHAPE)


class ToyOptions(Options):
    offset: float = Field(default=0.0, ge=0.0, le=0.5)


class ToyGenerator(Generator):
    """Image i = uniform noise seeded by seeds[i], brightened by the label. ``delay`` (seconds
    per call, not an option so it is not part of the plan) makes it slow for the kill test."""

    Options = ToyOptions

    def __init__(self, options=None, delay: float = 0.0, shape=SHAPE) -> None:
        super().__init__(options)
        self.key = "generator:toy"
        self.delay = delay
        self.shape = shape
        self.calls = 0

    def generate(self, labels, seeds, class_names):
        self.calls += 1
        time.sleep(self.delay)
        images = []
        for y, s in zip(labels.tolist(), seeds):
            noise = torch.rand(self.shape, generator=torch.Generator().manual_seed(int(s)))
            images.append((noise * 0.5 + 0.25 * y / max(len(class_names) - 1, 1) + self.options.offset).clamp(0, 1))
        c, h, w = self.shape
        provenance = [{"generator": self.key, "label": y, "class_name": class_names[y], "prompt": None, "seed": s,
                       "steps": 1, "guidance": None, "scheduler": "toy", "width": w, "height": h}
                      for y, s in zip(labels.tolist(), seeds)]
        return GeneratedBatch(torch.stack(images), labels.clone(), provenance)


def store_files(root: Path) -> dict[str, bytes]:
    """Every committed file of a store (temp leftovers, whose names start with '.', excluded)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def expected_images(gen: ToyGenerator, labels, seed: int, indices) -> torch.Tensor:
    """The oracle: each image generated alone with its plan seed, as uint8."""
    out = [gen.generate(torch.tensor([int(labels[i])]), [seed * 10**9 + i], CLASSES).images for i in indices]
    return to_uint8_images(torch.cat(out))


@pytest.fixture
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference") / "store"
    return generate_to_store(ToyGenerator(), root, **PLAN)


# -- roundtrip -------------------------------------------------------------------------------------

def test_roundtrip_layout_labels_seeds_and_provenance(reference):
    store = SyntheticStore.open(reference.path)
    assert len(store) == 52 and store.complete and store.image_shape == SHAPE and store.class_names == CLASSES
    assert sorted(p.name for p in (store.path / "shards").iterdir()) == [f"shard-{i:06d}" for i in range(11)]
    assert torch.equal(store.labels, torch.arange(52) % 3)
    indices = [51, 0, 7, 7, 30]
    images, labels = store.get(indices)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert torch.equal(to_uint8_images(images), expected_images(ToyGenerator(), store.labels, 3, indices))
    assert labels.tolist() == [51 % 3, 0, 1, 1, 0]
    record = store.provenance(7)
    assert record["seed"] == 3 * 10**9 + 7 and record["index"] == 7 and record["label"] == 1 and record["class_name"] == "one"
    assert record["generator"] == "generator:toy" and record["scheduler"] == "toy" and record["width"] == 4
    shard = np.load(store.path / "shards" / "shard-000001" / "images.npy", mmap_mode="r")
    assert shard.dtype == np.uint8 and shard.shape == (5, *SHAPE)
    assert torch.equal(torch.from_numpy(np.array(shard)), to_uint8_images(store.get(range(5, 10))[0]))


def test_random_labels_are_seeded_and_independent_of_shard_and_batch_size(tmp_path):
    plan = dict(PLAN, labels="random", count=30)
    a = generate_to_store(ToyGenerator(), tmp_path / "a", **plan)
    b = generate_to_store(ToyGenerator(), tmp_path / "b", **dict(plan, shard_size=7, batch_size=4))
    c = generate_to_store(ToyGenerator(), tmp_path / "c", **dict(plan, seed=4))
    assert torch.equal(a.labels, b.labels) and torch.equal(a.get(range(30))[0], b.get(range(30))[0])
    assert not torch.equal(a.labels, c.labels)
    assert not torch.equal(a.labels, torch.arange(30) % 3)
    assert set(a.labels.tolist()) == {0, 1, 2}


def test_a_different_plan_in_the_same_folder_is_refused(reference):
    for change in ({"count": 53}, {"shard_size": 6}, {"seed": 4}):
        with pytest.raises(BadInputError, match="new folder") as info:
            generate_to_store(ToyGenerator(), reference.path, **dict(PLAN, **change))
        assert next(iter(change)) in str(info.value)
    with pytest.raises(BadInputError, match="generator"):
        generate_to_store(ToyGenerator(ToyOptions(offset=0.1)), reference.path, **PLAN)
    before = store_files(reference.path)
    with pytest.raises(BadInputError, match="generate.labels"):
        generate_to_store(ToyGenerator(), reference.path.parent / "new", **dict(PLAN, labels="uniform"))
    assert not (reference.path.parent / "new").exists() and store_files(reference.path) == before


def test_progress_advances_by_the_generated_images(tmp_path):
    import contextlib

    seen = []

    class Context:
        @contextlib.contextmanager
        def progress(self, description, total):
            seen.append(("total", total))
            yield lambda n=1: seen.append(("advance", n))

    generate_to_store(ToyGenerator(), tmp_path / "s", context=Context(), **dict(PLAN, count=7))
    assert seen[0] == ("total", 7) and sum(n for kind, n in seen[1:]) == 7


# -- crash safety ----------------------------------------------------------------------------------

KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_store import PLAN, ToyGenerator
from dreamset.store.generation import generate_to_store
print("ready", flush=True)
generate_to_store(ToyGenerator(delay=0.03), sys.argv[1], **PLAN)
print("done", flush=True)
"""


def _start(script: Path, root: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_resume_after_sigkill_is_byte_identical(tmp_path, reference):
    script = tmp_path / "slow.py"
    script.write_text(KILL_SCRIPT.format(tests=str(TESTS)))
    root = tmp_path / "killed"
    rng = np.random.default_rng(0)
    partial = []
    for attempt in range(3):
        proc = _start(script, root)
        if attempt:  # later kills land after some progress, mid-way through the remaining shards
            while proc.poll() is None and len(list((root / "shards").glob("shard-*"))) < 2 + 3 * attempt:
                time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = SyntheticStore.open(root)  # whatever the moment, the store is valid
        assert len(killed) == min(5 * len(killed._shards), 52)
        partial.append(len(killed))
    assert any(0 < n < 52 for n in partial), partial
    proc = _start(script, root)
    assert proc.communicate(timeout=120)[0].strip() == "done"
    assert store_files(root) == store_files(reference.path)
    assert not list((root / "shards").glob(".tmp-*"))


def test_truncated_shard_is_detected_naming_the_file(reference, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(reference.path, root)
    target = root / "shards" / "shard-000002" / "images.npy"
    target.write_bytes(target.read_bytes()[:-7])
    for verify in (True, False):
        with pytest.raises(StoreError, match=r"shard-000002/images\.npy.*truncated"):
            SyntheticStore.open(root, verify=verify)


@pytest.mark.parametrize("name", ["images.npy", "labels.npy", "meta.jsonl"])
def test_bit_flip_is_detected_by_sha256(reference, tmp_path, name):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(reference.path, root)
    target = root / "shards" / "shard-000004" / name
    data = bytearray(target.read_bytes())
    data[-8] ^= 0x01  # for labels.npy: the last label 0 becomes 1, still in range
    target.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=rf"shard-000004/{name.replace('.', '[.]')}.*sha256"):
        SyntheticStore.open(root, verify=True)
    assert len(SyntheticStore.open(root, verify=False)) == 52  # the size check alone cannot see it


def test_temp_leftovers_are_ignored_then_cleaned_on_resume(tmp_path, reference):
    root = tmp_path / "s"
    generate_to_store(ToyGenerator(), root, **dict(PLAN))
    import shutil

    shutil.rmtree(root / "shards" / "shard-000003")
    leftover = root / "shards" / ".tmp-shard-000003-999-dead"
    leftover.mkdir()
    (leftover / "images.npy").write_bytes(b"half a shard")
    (root / ".store.json.abc.tmp").write_bytes(b"{")
    store = SyntheticStore.open(root)
    assert len(store) == 47 and not store.complete
    assert torch.equal(store.get([15])[0], reference.get([20])[0])  # indices run over complete shards
    resumed = generate_to_store(ToyGenerator(), root, **PLAN)
    assert resumed.complete and not leftover.exists()
    assert store_files(root) == store_files(reference.path)


def test_disk_full_during_a_shard_write(tmp_path, monkeypatch, reference):
    root = tmp_path / "s"
    real_write = store_writer._write_file

    def full_disk(path, fill):
        if path.parent.name.startswith(".tmp-shard-000002") and path.name == "labels.npy":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, fill)

    monkeypatch.setattr(store_writer, "_write_file", full_disk)
    with pytest.raises(BadInputError, match=r"shard-000002: no space left on device.*re-run"):
        generate_to_store(ToyGenerator(), root, **PLAN)
    store = SyntheticStore.open(root, verify=True)
    assert len(store) == 10 and not store.complete  # shards 0 and 1 intact and readable
    assert torch.equal(store.get(range(10))[0], reference.get(range(10))[0])
    assert not list((root / "shards").glob(".tmp-*"))
    monkeypatch.setattr(store_writer, "_write_file", real_write)
    generate_to_store(ToyGenerator(), root, **PLAN)
    assert store_files(root) == store_files(reference.path)


# -- distributed -----------------------------------------------------------------------------------

def test_two_ranks_write_disjoint_shards_into_one_store(tmp_path, reference):
    root = tmp_path / "s"
    gens = [ToyGenerator(), ToyGenerator()]
    errors = []

    def rank1():
        try:
            generate_to_store(gens[1], root, rank=1, world_size=2, **PLAN)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=rank1)
    thread.start()
    generate_to_store(gens[0], root, rank=0, world_size=2, **PLAN)
    thread.join(timeout=60)
    assert not errors and not thread.is_alive()
    assert gens[0].calls == 5 * 3 + 1 and gens[1].calls == 5 * 3  # shards 0,2,..,8 + 10 (2 images) vs 1,3,..,9
    assert store_files(root) == store_files(reference.path)


TORCHRUN_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_store import PLAN, ToyGenerator
from dreamset.store.generation import generate_to_store
import os
gen = ToyGenerator()
store = generate_to_store(gen, sys.argv[1], **PLAN)
assert store.complete, store
print(f"rank {{os.environ['RANK']}} of {{os.environ['WORLD_SIZE']}}: {{gen.calls}} calls", flush=True)
"""


def test_torchrun_two_processes_equal_one_process(tmp_path, reference):
    script = tmp_path / "gen.py"
    script.write_text(TORCHRUN_SCRIPT.format(tests=str(TESTS)))
    root = tmp_path / "s"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
                           str(script), str(root)], check=True, env=env, timeout=120, capture_output=True, text=True)
    assert "rank 0 of 2: 16 calls" in done.stdout and "rank 1 of 2: 15 calls" in done.stdout, done.stdout
    assert store_files(root) == store_files(reference.path)


# -- reads -----------------------------------------------------------------------------------------

def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status")


def test_random_reads_keep_memory_flat(tmp_path):
    n = 2000
    images = np.random.default_rng(0).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "big.npz", image=images, label=np.arange(n) % 10)
    store = SyntheticStore.open(import_npz(tmp_path / "big.npz", tmp_path / "s", shard_size=250).path, verify=True)
    store_bytes = n * 3 * 32 * 32
    rng = np.random.default_rng(1)
    store.get_uint8(rng.choice(n, 16, replace=False))  # warm-up: first-call allocations
    before = _rss_bytes()
    for _ in range(40):  # 640 images read: with page-cache mappings this would map most of the store
        indices = rng.choice(n, 16, replace=False)
        batch, labels = store.get_uint8(indices)
        assert np.array_equal(batch, images[indices].transpose(0, 3, 1, 2)) and np.array_equal(labels, indices % 10)
    grown = _rss_bytes() - before
    assert grown < store_bytes / 8, f"reading 40 batches of 16 grew RSS by {grown} bytes (store: {store_bytes})"
    assert isinstance(store.shard_array(3), np.memmap) and store.shard_array(3).shape == (250, 3, 32, 32)


def test_reads_spanning_more_shards_than_open_files(reference, monkeypatch):
    monkeypatch.setattr(store_reader, "OPEN_SHARDS", 2)
    store = SyntheticStore.open(reference.path)
    indices = np.random.default_rng(0).permutation(52)  # touches all 11 shards in one batch
    images, labels = store.get(indices)
    assert torch.equal(to_uint8_images(images), expected_images(ToyGenerator(), store.labels, 3, indices.tolist()))
    assert torch.equal(labels, torch.from_numpy(indices % 3)) and len(store._fds) == 2
    import pickle

    clone = pickle.loads(pickle.dumps(store))  # for DataLoader workers: no descriptors travel
    assert not clone._fds and torch.equal(clone.get([50])[0], images[indices.tolist().index(50)][None])


def test_sequential_runs_and_empty_batches(reference):
    images, labels = reference.get(range(3, 27))  # runs across shard boundaries, one read per run
    assert torch.equal(to_uint8_images(images), expected_images(ToyGenerator(), reference.labels, 3, range(3, 27)))
    empty, no_labels = reference.get([])
    assert empty.shape == (0, *SHAPE) and no_labels.shape == (0,)


def test_out_of_range_index_is_refused(reference):
    with pytest.raises(IndexError):
        reference.get([52])
    with pytest.raises(IndexError):
        reference.get([-1])


# -- import / export -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_npz_import_export_roundtrip(tmp_path, layout):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(13, 5, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, size=13)
    saved = nhwc if layout == "nhwc" else nhwc.transpose(0, 3, 1, 2)
    np.savez_compressed(tmp_path / "in.npz", image=saved, label=labels)
    store = import_npz(tmp_path / "in.npz", tmp_path / "s", class_names=list("abcd"), shard_size=4)
    assert store.complete and len(store) == 13 and store.image_shape == (3, 5, 6) and store.class_names == list("abcd")
    assert len(list((store.path / "shards").iterdir())) == 4
    x, y = store.get_uint8(range(13))
    assert np.array_equal(x, nhwc.transpose(0, 3, 1, 2)) and np.array_equal(y, labels)
    assert store.provenance(12)["source"] == "in.npz" and store.provenance(12)["index"] == 12
    export_npz(store, tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as out:
        assert np.array_equal(out["image"], nhwc) and np.array_equal(out["label"], labels)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # atomic: no temp left
    again = import_npz(tmp_path / "in.npz", tmp_path / "s", class_names=list("abcd"), shard_size=4)
    assert store_files(again.path) == store_files(store.path)


def test_npz_import_default_class_names_and_grayscale(tmp_path):
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    np.savez(tmp_path / "g.npz", image=images, label=np.array([0, 2, 1]))
    store = import_npz(tmp_path / "g.npz", tmp_path / "s")
    assert store.class_names == ["0", "1", "2"] and store.image_shape == (1, 4, 4)
    assert np.array_equal(store.get_uint8([1])[0][0, 0], images[1])


@pytest.mark.parametrize(
    "arrays, names, message",
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "label": np.zeros(2, int)}, None, r"bad\.npz: missing key 'image' \(found: images, label\)"),
        ({"image": np.zeros((2, 4, 4, 3), np.uint8)}, None, r"bad\.npz: missing key 'label'"),
        ({"image": np.zeros((2, 4, 4, 3), np.uint8), "label": np.zeros(3, int)}, None, r"bad\.npz: key 'label' has shape \(3,\), expected \(2,\)"),
        ({"image": np.zeros((2, 4, 4, 3), np.uint8), "label": np.array([0, 5])}, ["a", "b"], r"bad\.npz: key 'label' has values in \[0, 5\], outside \[0, 1\]"),
        ({"image": np.zeros((2, 4, 4, 3), np.uint8), "label": np.array([0, -1])}, None, r"bad\.npz: key 'label' has values in \[-1, 0\]"),
        ({"image": np.zeros((2, 5, 5), np.uint8)[:, None, None], "label": np.zeros(2, int)}, None, r"bad\.npz: key 'image' must be"),
        ({"image": np.full((2, 4, 4, 3), 2.0), "label": np.zeros(2, int)}, None, r"bad\.npz: key 'image' holds floats outside \[0,1\]"),
    ],
)
def test_npz_import_errors_are_one_line_naming_file_and_key(tmp_path, arrays, names, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(BadInputError, match=message) as info:
        import_npz(tmp_path / "bad.npz", tmp_path / "s", class_names=names)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_import_streams_across_chunk_boundaries(tmp_path, compressed):
    """A shard size that divides neither the file nor the zip's own read blocks: every image and label
    lands at its index, stored or deflated members alike, and the last shard is the short one."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(1000, 7, 5, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=1000)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "in.npz", image=images, label=labels)
    store = import_npz(tmp_path / "in.npz", tmp_path / "s", shard_size=64)
    assert store.complete and len(store) == 1000 and len(list((store.path / "shards").iterdir())) == 16
    x, y = store.get_uint8(range(1000))
    assert np.array_equal(x, images.transpose(0, 3, 1, 2)) and np.array_equal(y, labels)
    assert store.shard_array(15).shape == (1000 - 15 * 64, 3, 7, 5)


def test_npz_import_peak_memory_is_far_below_the_array(tmp_path):
    """numpy's buffers and the bytes read from the zip are traced by tracemalloc (every thread): the
    import's peak is a few shards, not the 24 MB image array the file holds."""
    import tracemalloc

    from dreamset.store.npz import write_npz

    n, shape = 8000, (32, 32, 3)
    rng = np.random.default_rng(0)
    write_npz(tmp_path / "in.npz", (n, *shape), (rng.integers(0, 256, size=(500, *shape), dtype=np.uint8)
                                                 for _ in range(n // 500)), np.arange(n) % 10)
    array_bytes = n * int(np.prod(shape))
    tracemalloc.start()
    try:
        store = import_npz(tmp_path / "in.npz", tmp_path / "s", shard_size=128)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == n
    assert peak < array_bytes / 8, f"import peak {peak:,} bytes traced for a {array_bytes:,}-byte array"


def test_npz_import_refuses_a_file_larger_than_the_free_disk_before_writing(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    from dreamset.cli import main

    images = np.zeros((3000, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "in.npz", image=images, label=np.arange(3000) % 10)
    usage = namedtuple("usage", "total used free")
    # 3,000 images of 192 bytes fit in 1 MB; with their labels and provenance lines they do not
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    assert main(["import", str(tmp_path / "in.npz"), str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "in.npz: 3,000 images of (3, 8, 8) need about" in err and "only 1.0 MB are free" in err, err
    assert not (tmp_path / "store").exists()


def test_npz_import_of_a_fortran_ordered_image_member_is_bounded(tmp_path, monkeypatch):
    """Fortran order spreads each image over the whole member: it is read whole when that fits the
    memory bound (same store as the C-ordered file), and refused with one line saying how to re-save it."""
    from dreamset.files import verify

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(40, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "f.npz", image=np.asfortranarray(images), label=np.arange(40) % 4)
    store = import_npz(tmp_path / "f.npz", tmp_path / "s", shard_size=16)
    assert np.array_equal(store.get_uint8(range(40))[0], images.transpose(0, 3, 1, 2))
    monkeypatch.setattr(verify, "available_memory", lambda: 6 * 1000)
    with pytest.raises(BadInputError, match=r"f\.npz: key 'image' is 2,048 bytes .* Fortran-ordered.*ascontiguousarray") as info:
        import_npz(tmp_path / "f.npz", tmp_path / "s2", shard_size=16)
    assert "\n" not in str(info.value) and not (tmp_path / "s2").exists()


def test_imagefolder_export_with_metadata_and_no_path_traversal(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "in.npz", image=images, label=np.array([0, 1, 1, 2, 0]))
    store = import_npz(tmp_path / "in.npz", tmp_path / "s", class_names=["cat", "../x", ".."])
    out = tmp_path / "deep" / "out"
    export_imagefolder(store, out)
    assert not (tmp_path / "deep" / "x").exists() and not (tmp_path / "x").exists()
    assert sorted(p.name for p in out.iterdir()) == ["__", "___x", "cat", "metadata.csv"]
    with open(out / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class_name"] for r in rows] == ["cat", "../x", "../x", "..", "cat"]
    assert {"path", "index", "label", "generator", "seed", "prompt", "steps", "guidance", "scheduler"} <= set(rows[0])
    from PIL import Image

    for row in rows:
        target = (out / row["path"]).resolve()
        assert target.parent.parent == out.resolve()
        assert np.array_equal(np.asarray(Image.open(target)), images[int(row["index"])])


def test_imagefolder_export_refuses_colliding_class_folders(tmp_path):
    source = TensorImageSet(torch.zeros(2, 1, 2, 2), [0, 1], ["a/b", "a_b"])
    with pytest.raises(BadInputError, match="collide"):
        export_imagefolder(source, tmp_path / "out")


def test_sample_grid_one_row_per_class_for_any_source(tmp_path):
    from PIL import Image

    images = torch.stack([torch.full((1, 2, 3), v / 10) for v in range(10)])
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    source = TensorImageSet(images, labels, ["a", "b", "c"])
    save_sample_grid(source, tmp_path / "grid.png", per_class=3, seed=0)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (1 + 3 * 3, 1 + 3 * 4)
    values = to_uint8_images(images)[:, 0, 0, 0].numpy()
    for row, cls in enumerate(range(3)):
        cells = [int(grid[1 + row * 3, 1 + col * 4]) for col in range(3)]
        members = set(values[labels.numpy() == cls].tolist())
        filled = [c for c in cells if c in members]
        assert len(filled) == min(3, len(members)), (row, cells)
    assert int(grid[1 + 1 * 3, 1 + 2 * 4]) == 0  # class b has 2 images: the 3rd cell stays black
    assert int(grid[0, 0]) == 128 and int(grid[3, 5]) == 128  # the lattice between cells


# -- generator conformance ---------------------------------------------------------------------------

def test_check_generator_accepts_the_toy_generator():
    check_generator(ToyGenerator(), CLASSES, SHAPE)


class _BatchDependent(ToyGenerator):
    def generate(self, labels, seeds, class_names):
        out = super().generate(labels, seeds, class_names)
        out.images = (out.images + 0.01 * len(seeds)).clamp(0, 1)  # depends on the batch size
        return out


class _WrongLabels(ToyGenerator):
    def generate(self, labels, seeds, class_names):
        out = super().generate(labels, seeds, class_names)
        out.labels = torch.zeros_like(out.labels)
        return out


class _Unseeded(ToyGenerator):
    def generate(self, labels, seeds, class_names):
        return super().generate(labels, [0] * len(seeds), class_names)


@pytest.mark.parametrize("broken, message", [(_BatchDependent, "generated alone"), (_WrongLabels, "not the requested"),
                                             (_Unseeded, "provenance.*seed")])
def test_check_generator_rejects_broken_generators(broken, message):
    with pytest.raises(AssertionError, match=message):
        check_generator(broken(), CLASSES, SHAPE)


def test_generate_to_store_rejects_a_generator_breaking_the_contract(tmp_path):
    with pytest.raises(StoreError, match="labels"):
        generate_to_store(_WrongLabels(), tmp_path / "s", **dict(PLAN, count=4))
