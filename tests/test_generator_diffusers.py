"""``generator:diffusers`` on tiny random DDPM pipelines saved and loaded back through
``DiffusionPipeline.from_pretrained`` (no network)."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import tiny_pipelines  # noqa: E402

from dreamset import BadInputError  # noqa: E402
from dreamset.conformance.generators import check_generator  # noqa: E402
from dreamset.contracts.data import TensorImageSet  # noqa: E402
from dreamset.plugins.generators.diffusers_pipeline import (  # noqa: E402
    DiffusersPipelineGenerator,
    DiffusersPipelineOptions,
    fit_shape,
    looks_like_path,
)

CLASSES = ["zéro", "один", "二"]


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return SimpleNamespace(
        uncond=str(tiny_pipelines.save_tiny_ddpm(root / "uncond")),
        cond=str(tiny_pipelines.save_tiny_ddpm(root / "cond", num_class_embeds=len(CLASSES))),
    )


@pytest.fixture
def real():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(12) % len(CLASSES)
    return TensorImageSet(torch.rand(12, 1, 6, 6, generator=gen), labels, CLASSES, name="real")


def make_context(num_classes=len(CLASSES), shape=(1, 6, 6)):
    """A stand-in RunContext: CPU device and a fixed linear reference classifier (counts its calls)."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(shape[0] * shape[1] * shape[2], num_classes))
    model.train()  # the generator must restore this mode
    calls = []

    def reference_classifier():
        calls.append(1)
        return model

    return SimpleNamespace(device=torch.device("cpu"), reference=SimpleNamespace(model=reference_classifier), model=model,
                           calls=calls)


def make(**options):
    gen = DiffusersPipelineGenerator(DiffusersPipelineOptions(**options))
    gen.key = "generator:diffusers"
    return gen


def test_plugin_module_is_torch_free():
    code = ("import sys; import dreamset.plugins.generators.diffusers_pipeline, dreamset.plugins.generators.stable_diffusion; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pseudo_labels_come_from_the_reference_classifier(pipelines, real, tmp_path):
    context = make_context()
    gen = make(model=pipelines.uncond, steps=2, batch_size=2, labels="pseudo")
    gen.fit(real, tmp_path, context)
    assert context.calls == [1]  # taken once, in fit
    requested = torch.tensor([0, 1, 2], dtype=torch.int64)
    seeds = [11, 12, 13]
    out = gen.generate(requested, seeds, CLASSES)
    assert out.images.shape == (3, 1, 6, 6) and out.images.dtype == torch.float32
    assert 0 <= float(out.images.min()) and float(out.images.max()) <= 1
    # oracle: the classifier applied to the returned images
    with torch.no_grad():
        probs = torch.softmax(context.model.eval()(out.images), dim=1)
    context.model.train()
    assert torch.equal(out.labels, probs.argmax(1))
    for i, record in enumerate(out.provenance):
        assert record["label"] == int(out.labels[i]) and record["class_name"] == CLASSES[record["label"]]
        assert record["requested_label"] == int(requested[i]) and record["seed"] == seeds[i]
        assert record["confidence"] == pytest.approx(float(probs[i].max()), abs=1e-6)
        assert record["steps"] == 2 and record["scheduler"] == "ddim" and (record["width"], record["height"]) == (6, 6)
    assert context.model.training  # mode restored
    assert gen.assigns_labels and not make(model=pipelines.uncond, labels="conditional").assigns_labels
    # image i depends only on its seed: in a batch, alone, and whatever label was requested
    again = gen.generate(torch.tensor([2, 2, 2]), seeds, CLASSES)
    assert torch.equal(again.images, out.images) and torch.equal(again.labels, out.labels)
    alone = gen.generate(torch.tensor([0]), [seeds[2]], CLASSES)
    assert torch.equal(alone.images[0], out.images[2])
    assert not torch.equal(gen.generate(torch.tensor([0]), [99], CLASSES).images[0], out.images[0])


def test_pseudo_needs_context(pipelines, real, tmp_path):
    with pytest.raises(BadInputError, match="reference classifier"):
        make(model=pipelines.uncond, steps=1).fit(real, tmp_path, None)


def test_class_conditional_unet_follows_the_contract(pipelines, real, tmp_path):
    gen = make(model=pipelines.cond, steps=2, batch_size=3, labels="conditional", scheduler="ddpm")
    gen.fit(real, tmp_path, make_context())
    assert gen.image_shape(real) == (1, 6, 6)
    check_generator(gen, CLASSES, (1, 6, 6), n=4)
    # the label conditions the image: same seed, different class -> different image
    a = gen.generate(torch.tensor([0, 1]), [5, 5], CLASSES).images
    assert not torch.equal(a[0], a[1])


def test_native_shape_without_resize(pipelines, real, tmp_path):
    gen = make(model=pipelines.cond, steps=1, labels="conditional", resize=False, scheduler="default")
    gen.fit(real, tmp_path, None)
    size = tiny_pipelines.DDPM_SIZE
    assert gen.image_shape(real) == (3, size, size)
    out = gen.generate(torch.tensor([1]), [3], CLASSES)
    assert out.images.shape == (1, 3, size, size)
    assert out.provenance[0]["width"] == size and out.provenance[0]["scheduler"] == "default"


@pytest.mark.parametrize("name, cls", [("default", "DDPMScheduler"), ("ddim", "DDIMScheduler"),
                                       ("dpm-solver++", "DPMSolverMultistepScheduler"), ("euler", "EulerDiscreteScheduler")])
def test_scheduler_choice(pipelines, real, tmp_path, name, cls):
    gen = make(model=pipelines.uncond, steps=2, scheduler=name)
    gen.fit(real, tmp_path, make_context())
    assert type(gen.pipe.scheduler).__name__ == cls
    assert gen.pipe.scheduler.config.num_train_timesteps == 100  # same noise schedule
    out = gen.generate(torch.tensor([0, 1]), [1, 2], CLASSES)
    assert torch.isfinite(out.images).all() and out.images.shape == (2, 1, 6, 6)


def test_conditional_on_unconditional_pipeline_is_refused(pipelines, real, tmp_path):
    with pytest.raises(BadInputError, match="not class-conditional"):
        make(model=pipelines.uncond, labels="conditional").fit(real, tmp_path, None)


@pytest.mark.parametrize("model", ["./no/such/folder", "/definitely/missing", "~/missing-dreamset-pipeline", "a/b/c"])
def test_missing_local_folder_names_the_path(model, real, tmp_path):
    with pytest.raises(BadInputError, match="does not exist") as info:
        make(model=model, labels="conditional").fit(real, tmp_path, None)
    assert model in str(info.value) and "\n" not in str(info.value)


def test_folder_without_model_index(real, tmp_path):
    with pytest.raises(BadInputError, match="model_index.json"):
        make(model=str(tmp_path), labels="conditional").fit(real, tmp_path, None)


def test_uncached_hub_id_is_one_clear_error(real, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BadInputError) as info:
        make(model="dreamset-test/no-such-pipeline", local_files_only=True, labels="conditional").fit(real, tmp_path, None)
    message = str(info.value)
    assert "dreamset-test/no-such-pipeline" in message and "download" in message and "local folder" in message
    assert "\n" not in message


def test_path_or_hub_id():
    assert looks_like_path("/abs") and looks_like_path("./rel") and looks_like_path("../up") and looks_like_path("~/x")
    assert looks_like_path("a/b/c") and looks_like_path(".")
    assert not looks_like_path("google/ddpm-cifar10-32") and not looks_like_path("gpt2")


def test_float16_refused_on_cpu(pipelines, real, tmp_path):
    with pytest.raises(BadInputError, match="torch_dtype"):
        make(model=pipelines.uncond, torch_dtype="float16").fit(real, tmp_path, make_context())


@pytest.mark.parametrize("bad", [{"steps": 0}, {"batch_size": -1}, {"guidance": -1.0}, {"labels": "random"},
                                 {"scheduler": "magic"}, {"model": ""}, {"colour": 1}, {}])
def test_bad_options_rejected(bad):
    options = {"model": "org/name", **bad} if bad else {}
    with pytest.raises(ValueError):
        DiffusersPipelineOptions(**options)


def test_registered_and_created_by_key(pipelines):
    import dreamset.registry as registry

    gen = registry.get_registry().create("generator:diffusers", model=pipelines.uncond)
    assert isinstance(gen, DiffusersPipelineGenerator) and gen.key == "generator:diffusers"


def test_fit_shape_converts_channels_and_size():
    rgb = torch.rand(2, 3, 8, 8)
    grey = fit_shape(rgb, (1, 8, 8))
    expected = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert torch.allclose(grey[:, 0], expected, atol=1e-6)
    back = fit_shape(grey, (3, 4, 4))
    assert back.shape == (2, 3, 4, 4) and torch.equal(back[:, 0], back[:, 2])
    assert torch.allclose(back[:, 0].mean(), grey.mean(), atol=0.05)
    flat = fit_shape(torch.full((1, 4, 8, 8), 0.25), (3, 5, 3))  # RGBA -> RGB, any size; constants stay
    assert flat.shape == (1, 3, 5, 3) and torch.allclose(flat, torch.full_like(flat, 0.25))


def test_pseudo_without_resize_needs_matching_shape(pipelines, real, tmp_path):
    with pytest.raises(BadInputError, match="resize"):
        make(model=pipelines.uncond, resize=False).fit(real, tmp_path, make_context())


def test_conditional_samples_fill_a_store(pipelines, real, tmp_path):
    from dreamset.contracts.data import to_uint8_images
    from dreamset.store.format import plan_labels, plan_seeds
    from dreamset.store.generation import generate_to_store

    gen = make(model=pipelines.cond, steps=2, labels="conditional")
    gen.fit(real, tmp_path / "fit", None)
    store = generate_to_store(gen, tmp_path / "store", count=3, batch_size=2, shard_size=2, class_names=CLASSES,
                              image_shape=gen.image_shape(real))
    idx = list(range(3))
    labels = torch.from_numpy(plan_labels(torch.arange(3).numpy(), "balanced", 0, len(CLASSES)))
    direct = gen.generate(labels, plan_seeds(torch.arange(3).numpy(), 0), CLASSES)
    images, stored_labels = store.get(idx)
    assert torch.equal(stored_labels, labels)
    assert torch.equal(to_uint8_images(images), to_uint8_images(direct.images))
    assert store.provenance(1)["model"] == pipelines.cond and store.provenance(1)["scheduler"] == "ddim"
