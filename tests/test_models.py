"""``model:timm`` and ``model:wide-resnet`` beyond the generic conformance check: local weights
(values, channel adaptation, refusals), architecture-name errors, resizing, WRN depth rules and the
WRN-28-10 parameter count, and one training step of a tiny model of each."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import dreamset.registry as registry
from dreamset.conformance.models import check_model
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.nn import Classifier
from dreamset.files.checkpoints import save_checkpoint
from dreamset.orchestration.recipe import TrainStage
from dreamset.training.trainer import train_classifier

timm = pytest.importorskip("timm")

SOURCE_ARCH = "test_efficientnet"  # ~0.1M parameters, ImageNet mean/std in its pretrained_cfg


def _source_state(seed: int = 1, num_classes: int = 7) -> dict[str, torch.Tensor]:
    """A timm checkpoint as another program would save it: the full model, classifier included."""
    torch.manual_seed(seed)
    source = timm.create_model(SOURCE_ARCH, pretrained=False, num_classes=num_classes, in_chans=3)
    return {k: v.clone() for k, v in source.state_dict().items()}


def _timm_body(model: Classifier):
    return model.body[1] if isinstance(model.body, torch.nn.Sequential) else model.body


# -- model:timm ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_local_weights_are_loaded_exactly(tmp_path, suffix):
    state = _source_state()
    path = tmp_path / f"weights{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    torch.manual_seed(99)  # a different random init: equality can only come from the file
    model = registry.create("model:timm", name=SOURCE_ARCH, weights=str(path)).build((3, 16, 16), 4)
    loaded = model.body.state_dict()
    body_keys = [k for k in state if not k.startswith("classifier.")]
    assert sorted(loaded) == sorted(body_keys)
    for key in body_keys:
        assert torch.equal(loaded[key], state[key]), key
    assert model.head.out_features == 4
    cfg = timm.create_model(SOURCE_ARCH, num_classes=0).pretrained_cfg
    assert torch.allclose(model.mean.flatten(), torch.tensor(cfg["mean"]))
    assert torch.allclose(model.std.flatten(), torch.tensor(cfg["std"]))
    check_model(registry.create("model:timm", name=SOURCE_ARCH, weights=str(path)), (3, 16, 16), 4)


def test_timm_weights_without_file_use_half_normalisation():
    model = registry.create("model:timm", name=SOURCE_ARCH).build((3, 16, 16), 4)
    assert torch.equal(model.mean.flatten(), torch.full((3,), 0.5))
    assert torch.equal(model.std.flatten(), torch.full((3,), 0.5))


def test_timm_rgb_weights_adapted_to_grey_images(tmp_path):
    state = _source_state()
    path = tmp_path / "rgb.safetensors"
    save_file(state, str(path))
    model = registry.create("model:timm", name=SOURCE_ARCH, weights=str(path)).build((1, 8, 8), 3)
    stem = _timm_body(model).conv_stem.weight
    assert stem.shape[1] == 1
    assert torch.allclose(stem, state["conv_stem.weight"].sum(dim=1, keepdim=True))  # timm's 3 -> 1 rule
    cfg_mean = timm.create_model(SOURCE_ARCH, num_classes=0).pretrained_cfg["mean"]
    assert model.mean.shape == (1, 1, 1, 1)
    assert model.mean.item() == pytest.approx(sum(cfg_mean) / 3)


def test_timm_dreamset_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    first = registry.create("model:timm", name="test_resnet").build((1, 8, 8), 3)
    path = tmp_path / "classifier.safetensors"
    save_checkpoint(path, first.state_dict())
    torch.manual_seed(4)
    again = registry.create("model:timm", name="test_resnet", weights=str(path)).build((1, 8, 8), 3)
    for key, value in first.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    other_head = registry.create("model:timm", name="test_resnet", weights=str(path)).build((1, 8, 8), 5)
    assert other_head.head.out_features == 5
    for key, value in first.body.state_dict().items():
        assert torch.equal(other_head.body.state_dict()[key], value), key


def test_timm_missing_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "resnet.safetensors"
    with pytest.raises(BadInputError, match="nowhere/resnet.safetensors"):
        registry.create("model:timm", name="test_resnet", weights=str(missing))


def test_timm_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "efficientnet.safetensors"
    save_file(_source_state(), str(path))
    with pytest.raises(BadInputError, match=r"efficientnet\.safetensors: weights do not fit timm 'test_resnet'"):
        registry.create("model:timm", name="test_resnet", weights=str(path)).build((3, 16, 16), 3)


class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_timm_weights_refuse_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.0.weight": torch.zeros(1), "payload": _CreatesMarker(marker)}, path)
    with pytest.raises(BadInputError, match="evil.pth: refused to load"):
        registry.create("model:timm", name="test_resnet", weights=str(path)).build((3, 16, 16), 3)
    assert not marker.exists()
    unsafe = torch.load(path, weights_only=False)  # control: the payload is real, a plain unpickle runs it
    unsafe["payload"].close()
    assert marker.exists()


def test_timm_unknown_architecture_lists_close_matches():
    with pytest.raises(BadInputError, match=r"model:timm\.name: unknown timm architecture 'resnet19'; close matches: .*resnet18"):
        registry.create("model:timm", name="resnet19")
    with pytest.raises(BadInputError, match="vit_tiny_patch16_224"):
        registry.create("model:timm", name="vit_tiny_patch16")


def test_timm_options_are_validated():
    with pytest.raises(BadInputError, match="mutually exclusive"):
        registry.create("model:timm", name="test_resnet", weights="x.pth", hub=True)
    with pytest.raises(BadInputError, match=r"create_kwargs.*num_classes"):
        registry.create("model:timm", name="test_resnet", create_kwargs={"num_classes": 3})
    with pytest.raises(BadInputError, match=r"create_kwargs: timm 'test_resnet' rejected.*no_such_arg"):
        registry.create("model:timm", name="test_resnet", create_kwargs={"no_such_arg": 1}).build((3, 16, 16), 3)
    with pytest.raises(BadInputError, match="input_size"):
        registry.create("model:timm", name="test_resnet", input_size=4)


def _record_body_input(model: Classifier) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    _timm_body(model).register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    return seen


def test_timm_input_size_resizes_inside_the_model():
    model = registry.create("model:timm", name="test_vit", input_size=32).build((1, 8, 8), 3)
    seen = _record_body_input(model)
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 3) and seen == [(2, 1, 32, 32)]
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_timm_vit_is_built_for_the_image_size_without_resizing():
    model = registry.create("model:timm", name="test_vit").build((3, 32, 32), 10)  # test_vit's default is 160×160
    seen = _record_body_input(model)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert seen == [(2, 3, 32, 32)]
    assert tuple(_timm_body(model).patch_embed.img_size) == (32, 32)
    with pytest.raises(BadInputError, match=r"cannot take 1×8×8 images.*set input_size"):
        registry.create("model:timm", name="test_vit").build((1, 8, 8), 3)  # 16-pixel patches > 8×8 images
    small_patches = registry.create("model:timm", name="test_vit", create_kwargs={"patch_size": 4}).build((1, 8, 8), 3)
    assert small_patches(torch.rand(2, 1, 8, 8)).shape == (2, 3)


# -- model:wide-resnet ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [11, 27, 29, 101])
def test_wide_resnet_depth_must_be_6n_plus_4(depth):
    with pytest.raises(BadInputError, match=r"model:wide-resnet\.depth: .*\(depth - 4\) % 6"):
        registry.create("model:wide-resnet", depth=depth)


def _parameter_count(image_shape, num_classes, **options) -> int:
    factory = registry.create("model:wide-resnet", **options)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = factory.build(image_shape, num_classes)
    return sum(p.numel() for p in model.parameters())


def test_wide_resnet_parameter_counts_match_the_papers():
    assert _parameter_count((3, 32, 32), 10) == pytest.approx(36.5e6, rel=0.002)  # WRN-28-10 (default)
    assert _parameter_count((3, 32, 32), 10, depth=70, width=16) == pytest.approx(266.8e6, rel=0.002)  # WRN-70-16
    assert _parameter_count((3, 32, 32), 10, depth=28, width=10) == 36_479_194  # the exact CIFAR-10 figure


def test_wide_resnet_structure_follows_the_options():
    model = registry.create("model:wide-resnet", depth=16, width=2, activation="silu", dropout=0.3).build((1, 8, 8), 3)
    blocks = [m for m in model.body.modules() if type(m).__name__ == "PreActBlock"]
    assert len(blocks) == 3 * 2  # (16 - 4) / 6 blocks per group
    assert any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in model.modules()) == 6
    assert model.features(torch.rand(2, 1, 8, 8)).shape == (2, 64 * 2)
    for shape, classes in (((1, 8, 8), 3), ((3, 32, 32), 10), ((3, 8, 8), 5), ((1, 32, 32), 2)):
        check_model(registry.create("model:wide-resnet", depth=10, width=1), shape, classes)


def test_small_cnn_batch_norm_follows_the_option():
    plain = registry.create("model:small-cnn", width=4).build((1, 28, 28), 10)
    normed = registry.create("model:small-cnn", width=4, batch_norm=True).build((1, 28, 28), 10)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in normed.modules())
    assert convs == 4 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in normed.modules()) == convs
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    normed.eval()
    assert normed(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert normed.features(torch.rand(3, 1, 28, 28)).shape == (3, 16)


# -- one training step of each --------------------------------------------------------------------

@pytest.mark.parametrize("key,options", [("model:timm", {"name": "test_resnet"}),
                                         ("model:wide-resnet", {"depth": 10, "width": 1}),
                                         ("model:small-cnn", {"width": 4, "batch_norm": True})])
def test_tiny_model_trains_one_step(tmp_path, key, options):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 1, 8, 8, generator=g)
    data = TensorImageSet(images, torch.arange(8) % 3, ["a", "b", "c"])
    torch.manual_seed(0)
    model = registry.create(key, **options).build((1, 8, 8), 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = TrainStage(model=key, epochs=1, batch_size=8, lr=0.05, mixed_precision=False)
    trained = train_classifier(None, model, mixer=registry.create("mixer:ratio", real_fraction=1.0), real=data,
                               synthetic=None, attacker=None, settings=settings, seed=0, checkpoint_dir=tmp_path)
    changed = [k for k, v in trained.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("head.") for k in changed) and any(k.startswith("body.") for k in changed)
    assert all(torch.isfinite(v).all() for v in trained.state_dict().values() if v.is_floating_point())
    assert (tmp_path / "final.safetensors").exists() and not trained.training
