"""Training augmentation (``augmentation:*``, :mod:`dreamset.training.augmenting`): the torchvision v2
components pass the conformance suite; per-source augmentation is deterministic per (seed, epoch,
read) and leaves torch's random stream alone; CutMix/MixUp give soft labels the loss takes as they
are (the training attack gets the dominant label); training with augmentation resumes bit for bit;
recipes validate and refuse misplaced components."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import dreamset.registry as registry
import dreamset.training.trainer as training
from dreamset.conformance.metrics import toy_row_images as blobs
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError
from dreamset.files.checkpoints import load_checkpoint
from dreamset.orchestration.recipe import AugmentSpec, TrainStage, validate_recipe
from dreamset.training.augmenting import AugmentationPlan, AugmentedSource, augmentation_plan


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorImageSet(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3, ["a", "b", "c"], name="toy")


def _plan(**parts) -> AugmentationPlan:
    return AugmentationPlan(**{name: [registry.create(k if ":" in k else f"augmentation:{k}", **o) for k, o in refs]
                               for name, refs in parts.items()})


def test_builtin_augmentations_are_registered():
    """Each passes the conformance suite in tests/test_conformance.py (every built-in is checked)."""
    assert registry.list("augmentation:*") == sorted(
        f"augmentation:{name}" for name in ("random-crop", "horizontal-flip", "randaugment", "autoaugment",
                                            "trivialaugment", "augmix", "cutmix", "mixup", "glyph-warp"))
    assert [registry.create(k).level for k in ("augmentation:cutmix", "augmentation:mixup", "augmentation:augmix")] \
        == ["batch", "batch", "image"]


def test_per_source_augmentation_is_deterministic_per_seed_epoch_and_read():
    source = _source()
    plan = _plan(real=[("random-crop", {"padding": 1}), ("augmix", {})])
    rows = [0, 1, 2, 3]

    def reads(seed, epoch):
        wrapped, _ = plan.sources(source, None, seed, epoch)
        assert isinstance(wrapped, AugmentedSource) and len(wrapped) == len(source)
        return [wrapped.get(rows)[0] for _ in range(2)]

    torch.manual_seed(5)
    a = reads(0, 1)
    after_a = torch.rand(3)
    torch.manual_seed(5)
    b = reads(0, 1)
    assert torch.equal(torch.rand(3), after_a), "augmentation moved torch's random stream"
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1]), "two reads of one epoch drew the same augmentation"
    assert not torch.equal(a[0], reads(0, 2)[0]) and not torch.equal(a[0], reads(1, 1)[0])
    assert not torch.equal(a[0], source.get(rows)[0])
    assert a[0].dtype == torch.float32 and 0 <= float(a[0].min()) and float(a[0].max()) <= 1
    assert torch.equal(source.get(rows)[1], plan.sources(source, None, 0, 1)[0].get(rows)[1])
    # no augmentation listed for a source: it is handed through unwrapped
    real, synthetic = plan.sources(source, source, 0, 0)
    assert synthetic is source and real is not source


def test_cutmix_mixup_give_soft_labels_one_per_batch():
    x, y = _source(16).get(range(16))
    plan = _plan(batch=[("cutmix", {}), ("mixup", {})])
    steps = [plan.mix(x, y, 3, seed=0, epoch=0, step=step) for step in range(6)]
    for mixed, soft in steps:
        assert mixed.shape == x.shape and soft.shape == (16, 3) and soft.dtype == torch.float32
        assert torch.allclose(soft.sum(1), torch.ones(16))
        # the label mass of each image goes to its own class and to its partner's (the batch rolled by one)
        partner = y.roll(1)
        assert torch.allclose(soft[torch.arange(16), y] + soft[torch.arange(16), partner] * (partner != y), torch.ones(16))
    # a draw may leave the batch as it is (CutMix's box can be empty on 8×8 images); most mix
    changed = [not torch.equal(mixed, x) for mixed, _ in steps]
    assert sum(changed) >= 4
    assert all(float(soft.max(1).values.min()) < 1 for (_, soft), c in zip(steps, changed) if c)
    again = [plan.mix(x, y, 3, seed=0, epoch=0, step=step) for step in range(6)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(again, steps))


def test_loss_takes_soft_labels_and_attacks_the_dominant_class():
    torch.manual_seed(0)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)
    x = torch.rand(6, 1, 8, 8)
    soft = torch.softmax(torch.randn(6, 3), dim=1)
    settings = TrainStage(model="small-cnn", mixed_precision=False)
    expected = -(soft * F.log_softmax(model(x), dim=1)).sum(1).mean()
    standard, pgd_at = registry.create("objective:standard"), registry.create("objective:pgd-at")
    assert torch.allclose(training._loss(model, x, soft, standard, settings), expected, atol=1e-6)

    seen = {}

    class Recording:
        key = "attacker:recording"

        def attack(self, model, x, y):
            seen["y"] = y
            return x.clamp(0, 1)

    loss = training._loss(model, x, soft, pgd_at, settings, Recording())
    assert torch.equal(seen["y"], soft.argmax(1)) and seen["y"].dtype == torch.int64
    assert torch.allclose(loss, expected, atol=1e-6)  # PGD-AT: soft-label CE on the (here unchanged) attack


def _train(tmp, data, plan, epochs=4, synthetic=None, interrupt_after=None):
    torch.manual_seed(1)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)
    settings = TrainStage(model="small-cnn", epochs=epochs, batch_size=20, optimizer="adamw", lr=0.01,
                          weight_decay=0.0, mixed_precision=False, ema_decay=0.9)
    mixer = registry.create("mixer:ratio", real_fraction=1.0 if synthetic is None else 0.5)
    return training.train_classifier(None, model, mixer=mixer, real=data, synthetic=synthetic, attacker=None,
                                     settings=settings, seed=1, checkpoint_dir=tmp, augment=plan)


def test_training_with_augmentation_resumes_bit_identically(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(1)
    data, synthetic = blobs(60, 3, 0.0, g), blobs(40, 3, 0.0, g)
    plan = _plan(real=[("random-crop", {"padding": 1}), ("augmix", {})], synthetic=[("trivialaugment", {})],
                 batch=[("cutmix", {}), ("mixup", {})])
    _train(tmp_path / "whole", data, plan, synthetic=synthetic)

    original, saved = training.save_checkpoint, []

    def save_then_die(path, tensors, meta):
        original(path, tensors, meta)
        saved.append(meta["epoch"])
        if meta["epoch"] == 1:
            raise KeyboardInterrupt  # killed right after epoch 1's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "killed", data, plan, synthetic=synthetic)
    monkeypatch.setattr(training, "save_checkpoint", original)
    assert saved == [0, 1] and (tmp_path / "killed" / "last.safetensors").exists()
    _train(tmp_path / "killed", data, plan, synthetic=synthetic)
    expected = load_checkpoint(tmp_path / "whole" / "final.safetensors")[0]
    got = load_checkpoint(tmp_path / "killed" / "final.safetensors")[0]
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), f"{key} differs after resume"
    # and the augmentation did something: without it the weights differ
    plain = load_checkpoint(tmp_path / "plain" / "final.safetensors")[0] if _train(
        tmp_path / "plain", data, AugmentationPlan(), synthetic=synthetic) is not None else None
    assert not all(torch.equal(plain[k], v) for k, v in expected.items())


@pytest.mark.parametrize("key, options", [
    ("random-crop", {"padding": 4}), ("random-crop", {"padding": 1, "padding_mode": "reflect"}),
    ("random-crop", {"padding": 3, "padding_mode": "edge"}), ("random-crop", {"padding": 2, "padding_mode": "symmetric"}),
    ("random-crop", {"padding": 0}), ("horizontal-flip", {}), ("horizontal-flip", {"p": 0.2}), ("horizontal-flip", {"p": 1.0}),
])
def test_batched_crop_and_flip_are_torchvisions_image_by_image_bit_for_bit(key, options):
    """The batched crop and flip draw what v2.RandomCrop / v2.RandomHorizontalFlip draw image by image
    (the base class's per-image loop, kept as the reference), from the default generator or from a
    generator of their own seeded alike."""
    from dreamset.toolkit.augmenting import TorchvisionImageAugmentation

    augmentation = registry.create(f"augmentation:{key}", **options)
    assert augmentation.draws_from_generator
    images = torch.rand(37, 3, 10, 12, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(37)
    torch.manual_seed(9)
    expected, _ = TorchvisionImageAugmentation.apply(augmentation, images, labels, 10)
    after = torch.rand(2)
    torch.manual_seed(9)
    batched, same_labels = augmentation.apply(images, labels, 10)
    assert torch.equal(torch.rand(2), after), "the batched version drew a different number of values"
    own, _ = augmentation.apply(images, labels, 10, generator=torch.Generator().manual_seed(9))
    assert torch.equal(batched, expected) and torch.equal(own, expected) and same_labels is labels
    assert batched.shape == images.shape and batched.dtype == torch.float32
    if options.get("padding", 1) and options.get("p", 0.5) > 0:
        assert not torch.equal(batched, images)


def test_crop_and_flip_run_on_the_prefetch_thread_with_the_same_weights(tmp_path, monkeypatch):
    """Per-source crop + flip draw from generators of their own, so the trainer prepares batches on its
    prefetch thread; the weights are those of the old way (the default generator, forked and seeded
    per read, on the training thread) bit for bit."""
    from dreamset.plugins.augmentations.horizontal_flip import HorizontalFlip
    from dreamset.plugins.augmentations.random_crop import RandomCrop
    from dreamset.training import prefetch

    g = torch.Generator().manual_seed(1)
    data, synthetic = blobs(60, 3, 0.0, g), blobs(40, 3, 0.0, g)
    crop_flip = [("random-crop", {"padding": 1}), ("horizontal-flip", {})]
    calls = []
    original = prefetch.prefetched
    monkeypatch.setattr(prefetch, "prefetched", lambda *a, **k: calls.append(1) or original(*a, **k))
    plan = _plan(real=crop_flip, synthetic=crop_flip)
    assert plan.per_source_thread_safe
    _train(tmp_path / "thread", data, plan, epochs=2, synthetic=synthetic)
    assert len(calls) == 2  # one prefetched epoch each
    for cls in (RandomCrop, HorizontalFlip):
        monkeypatch.setattr(cls, "draws_from_generator", False)
    assert not plan.per_source_thread_safe
    _train(tmp_path / "global", data, plan, epochs=2, synthetic=synthetic)
    assert len(calls) == 2  # the old way: not prefetched
    a = load_checkpoint(tmp_path / "thread" / "final.safetensors")[0]
    b = load_checkpoint(tmp_path / "global" / "final.safetensors")[0]
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def _recipe(**train_extra):
    return {"data": {"dataset": "digits"}, "arms": {"real": {}, "real+augmix": {"augment": {"real": ["augmix"]}}},
            "train": {"model": "small-cnn", **train_extra}}


def test_recipe_augment_blocks_validate_with_their_paths():
    recipe = validate_recipe(_recipe(augment={"real": [{"key": "random-crop", "options": {"padding": 1}}]}),
                             registry.get_registry())
    assert recipe.arms["real"].augment is None and recipe.arms["real+augmix"].augment.real[0].key == "augmix"
    paths = [path for path, kind, _ in recipe.component_refs() if kind == "augmentation"]
    assert paths == ["train.augment.real.0", "arms.real+augmix.augment.real.0"]
    with pytest.raises(BadInputError, match=r"train\.augment\.real\.0\.options.*padingg"):
        validate_recipe(_recipe(augment={"real": [{"key": "random-crop", "options": {"padingg": 1}}]}),
                        registry.get_registry())
    with pytest.raises(BadInputError, match=r"arms\.real\+augmix\.augment\.real\.0\.key"):
        validate_recipe({**_recipe(), "arms": {"real+augmix": {"augment": {"real": ["augmixx"]}}}}, registry.get_registry())


def test_misplaced_augmentation_level_is_refused_naming_the_field():
    context = SimpleNamespace(registry=registry.get_registry())
    with pytest.raises(BadInputError, match=r"^arms\.x\.augment\.real\.0: augmentation:cutmix is a batch-level .*augment\.batch$"):
        augmentation_plan(context, AugmentSpec(real=["cutmix"]), "arms.x.augment")
    with pytest.raises(BadInputError, match=r"^train\.augment\.batch\.0: augmentation:augmix is a image-level"):
        augmentation_plan(context, AugmentSpec(batch=["augmix"]), "train.augment")
    plan = augmentation_plan(context, AugmentSpec(real=["augmix"], batch=["cutmix"]), "train.augment")
    assert plan.describe()["real"][0]["key"] == "augmentation:augmix" and plan.describe()["synthetic"] == []
    assert not augmentation_plan(context, None, "train.augment")


@pytest.mark.parametrize("mixing", ["cutmix", "mixup"])
def test_a_run_with_cutmix_or_mixup_records_its_training_curve(tmp_path, mixing):
    """The curve recorder compared argmax predictions with the B×K soft labels of a mixed batch and
    crashed every CutMix/MixUp run; the training accuracy counts the dominant label now."""
    import dreamset

    recipe = {"name": "tiny-mix", "seeds": [0], "device": "cpu",
              "data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
              "arms": {"real": {"real": True}},
              "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1, "batch_size": 32,
                        "mixed_precision": False, "augment": {"batch": [mixing]}},
              "evaluate": {"robust_samples": 20, "attackers": []}, "report": {"html": False, "curve_every": 1}}
    report = dreamset.run(recipe, out=tmp_path / "run")
    curve = report["arms"]["real"]["per_seed"]["0"]["training"]["curves"]
    assert [entry["epoch"] for entry in curve] == [0]
    assert 0.0 <= curve[0]["train_accuracy"] <= 1.0 and 0.0 <= curve[0]["val_clean_accuracy"] <= 1.0
