"""``generator:ddpm``: contract for every scheduler, checkpoint reuse/retraining, determinism,
guidance, geometry, and (slow) sample quality judged by a real-digits classifier."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from pydantic import ValidationError
import torch

from dreamset import BadInputError
from dreamset.conformance.generators import check_generator
from dreamset.contracts.data import TensorImageSet
from dreamset.plugins.generators.ddpm import CHECKPOINT, MANIFEST, DDPMGenerator, DDPMOptions

TINY = dict(block_out_channels=(8, 16), train_steps=3, batch_size=8, warmup_steps=1, steps=3)


def make(**options) -> DDPMGenerator:
    generator = DDPMGenerator(DDPMOptions(**{**TINY, **options}))
    generator.key = "generator:ddpm"
    return generator


def tiny_real(channels=1, size=8, classes=3, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    return TensorImageSet(torch.rand(n, channels, size, size, generator=g), labels, [f"c{i}" for i in range(classes)])


class FakeContext:
    """The parts of RunContext that fit uses: device and progress(desc, total)."""

    device = torch.device("cpu")

    def __init__(self):
        self.advanced = 0
        self.totals = []

    @contextlib.contextmanager
    def progress(self, description, total):
        self.totals.append(total)

        def advance(n=1):
            self.advanced += n

        yield advance


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpm-solver++"])
def test_contract_every_scheduler(tmp_path, scheduler):
    """Shapes, range, labels, provenance, determinism and batch independence (bit-identical)."""
    real = tiny_real()
    generator = make(scheduler=scheduler)
    generator.fit(real, tmp_path)
    check_generator(generator, real.class_names, generator.image_shape(real), n=5)
    record = generator.generate(torch.tensor([2]), [7], real.class_names).provenance[0]
    assert record["scheduler"] == scheduler and record["steps"] == 3 and (record["width"], record["height"]) == (8, 8)


def test_checkpoint_written_reused_and_retrained(tmp_path, monkeypatch):
    real = tiny_real()
    context = FakeContext()
    first = make()
    first.fit(real, tmp_path, context)
    assert context.totals == [3] and context.advanced == 3
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["arch"]["image_shape"] == [1, 8, 8] and manifest["class_names"] == real.class_names
    assert not list(tmp_path.glob("*.tmp"))
    labels, seeds = torch.tensor([0, 1, 2]), [1, 2, 3]
    expected = first.generate(labels, seeds, real.class_names).images

    calls = []
    original = DDPMGenerator._train

    def counting(self, *args, **kwargs):
        calls.append(self.options)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DDPMGenerator, "_train", counting)
    # same training options (sampling options may differ): reuse, same weights
    reused = make(steps=5)
    reused.fit(real, tmp_path)
    assert calls == []
    same = make()
    same.fit(real, tmp_path)
    assert calls == [] and torch.equal(same.generate(labels, seeds, real.class_names).images, expected)
    # a training option changed: retrain and overwrite
    make(lr=1e-3).fit(real, tmp_path)
    assert len(calls) == 1
    assert json.loads((tmp_path / MANIFEST).read_text())["hash"] != manifest["hash"]
    # different real data: retrain
    make().fit(tiny_real(seed=1), tmp_path)
    assert len(calls) == 2
    # a corrupt checkpoint is not trusted
    (tmp_path / CHECKPOINT).write_bytes(b"garbage")
    make().fit(tiny_real(seed=1), tmp_path)
    assert len(calls) == 3


def test_training_is_deterministic(tmp_path):
    real = tiny_real()
    make().fit(real, tmp_path / "a")
    make().fit(real, tmp_path / "b")
    make(seed=1).fit(real, tmp_path / "c")
    a, b, c = ((tmp_path / d / CHECKPOINT).read_bytes() for d in "abc")
    assert a == b and a != c


def test_guidance_needs_label_dropout_and_changes_samples(tmp_path):
    real = tiny_real()
    plain = make(guidance=3.0)
    plain.fit(real, tmp_path / "plain")
    with pytest.raises(BadInputError, match="label_dropout"):
        plain.generate(torch.tensor([0]), [0], real.class_names)
    guided = make(label_dropout=0.2, guidance=3.0)
    guided.fit(real, tmp_path / "cfg")
    check_generator(guided, real.class_names, (1, 8, 8), n=3)
    unguided = make(label_dropout=0.2)
    unguided.fit(real, tmp_path / "cfg")  # sampling options only: reuses the checkpoint
    a = guided.generate(torch.tensor([1]), [4], real.class_names).images
    b = unguided.generate(torch.tensor([1]), [4], real.class_names).images
    assert not torch.equal(a, b)


def test_bfloat16_and_channels_last_sampling_stay_close_to_float32(tmp_path):
    real = tiny_real()
    reference = make()
    reference.fit(real, tmp_path / "m")
    labels, seeds = torch.tensor([0, 1, 2, 0]), [3, 4, 5, 6]
    full = reference.generate(labels, seeds, real.class_names).images
    layout = make(channels_last=True)
    layout.fit(real, tmp_path / "m")  # sampling options only: reuses the checkpoint
    assert layout.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(layout.generate(labels, seeds, real.class_names).images, full, atol=1e-4)
    half = make(precision="bfloat16", channels_last=True)
    half.fit(real, tmp_path / "m")
    check_generator(half, real.class_names, (1, 8, 8), n=3)
    low = half.generate(labels, seeds, real.class_names).images
    # bf16 keeps 8 bits of mantissa: close to float32 samples, not equal to them
    assert not torch.equal(low, full) and (low - full).abs().mean() < 0.05


def test_float16_sampling_on_cpu_is_refused_before_training(tmp_path):
    with pytest.raises(BadInputError, match="precision: float16 sampling needs a CUDA device"):
        make(precision="float16").fit(tiny_real(), tmp_path / "m", FakeContext())
    assert not (tmp_path / "m" / CHECKPOINT).exists()


def test_geometry_pad_and_resize(tmp_path):
    # three U-Net levels (attention in the lowest) need a multiple of 4: 6×6 is padded to 8×8, cropped back
    padded = make(block_out_channels=(8, 8, 16), attention=True)
    real = tiny_real(size=6)
    padded.fit(real, tmp_path / "pad")
    assert padded.arch["sample_size"] == 8 and type(padded.unet.down_blocks[-1]).__name__ == "AttnDownBlock2D"
    check_generator(padded, real.class_names, (1, 6, 6), n=3)
    # explicit sample_size: 3×6×6 images resized to 16×16 and back
    resized = make(sample_size=16)
    real3 = tiny_real(channels=3, size=6)
    resized.fit(real3, tmp_path / "resize")
    assert resized.unet.config.sample_size == 16 and resized.image_shape() == (3, 6, 6)
    check_generator(resized, real3.class_names, (3, 6, 6), n=3)


def test_bad_options_and_misuse(tmp_path):
    for bad in ({"block_out_channels": (12, 16)}, {"block_out_channels": ()}, {"micro_batch": 0}, {"sample_size": 9},
                {"steps": 0}, {"train_steps": -1}, {"lr": 0}, {"ema_decay": 1.0}, {"steps": 2000},
                {"scheduler": "euler"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            DDPMOptions(**bad)
    generator = make()
    with pytest.raises(BadInputError, match="fit"):
        generator.generate(torch.tensor([0]), [0], ["a"])
    real = tiny_real()
    generator.fit(real, tmp_path)
    with pytest.raises(BadInputError, match="labels"):
        generator.generate(torch.tensor([3]), [0], ["a", "b", "c", "d"])
    with pytest.raises(BadInputError, match="empty"):
        make().fit(real.subset([]), tmp_path / "empty")


def test_module_import_is_torch_free():
    code = ("import sys, dreamset.plugins.generators.ddpm, dreamset.plugins.generators.glyphs; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_default_options_learn_digits(tmp_path):
    """The tuned defaults on 500 real sklearn digits (stratified, seed 0): samples labelled as
    intended by a logistic regression trained on those 500 real digits >= 85% of the time.
    One thread (the autouse fixture): on a shared machine, more threads mostly spin."""
    import resource

    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    train, _ = train_test_split(np.arange(len(x)), train_size=500, stratify=digits.target, random_state=0)
    real = TensorImageSet(torch.from_numpy(x[train])[:, None], torch.from_numpy(digits.target[train]),
                          [str(i) for i in range(10)])
    classifier = LogisticRegression(max_iter=2000).fit(x[train].reshape(500, -1), digits.target[train])
    generator = DDPMGenerator()
    generator.key = "generator:ddpm"
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    generator.fit(real, tmp_path)
    wall, cpu = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
    labels = torch.arange(1000) % 10
    images = generator.generate(labels, list(range(1000)), real.class_names).images
    agreement = float((classifier.predict(images.reshape(1000, -1).numpy()) == labels.numpy()).mean())
    print(f"ddpm defaults: fit wall {wall:.0f}s user CPU {cpu:.0f}s, label agreement {agreement:.3f}")
    assert agreement >= 0.85
