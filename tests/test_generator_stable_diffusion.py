"""``generator:stable-diffusion`` on tiny random Stable Diffusion pipelines saved and loaded back
through ``from_pretrained`` (no network): text, image-variation and image+label modes."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

import tiny_pipelines  # noqa: E402

from dreamset import BadInputError  # noqa: E402
from dreamset.conformance.generators import check_generator  # noqa: E402
from dreamset.contracts.data import TensorImageSet  # noqa: E402
from dreamset.plugins.generators.stable_diffusion import (  # noqa: E402
    CLIP_IMAGENET_TEMPLATES,
    StableDiffusionGenerator,
    StableDiffusionOptions,
)

CLASSES = ["goldfish", "café crème", "猫", "Ωmega"]
SIZE = tiny_pipelines.SD_SIZE


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    return SimpleNamespace(text=str(tiny_pipelines.save_tiny_stable_diffusion(root / "text")),
                           variation=str(tiny_pipelines.save_tiny_image_variation(root / "variation")))


def make_real(seed=0, n=12):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    return TensorImageSet(torch.rand(n, 1, 8, 8, generator=gen), labels, CLASSES, name="real")


def fitted(model, real=None, **options):
    gen = StableDiffusionGenerator(StableDiffusionOptions(model=model, steps=2, **options))
    gen.key = "generator:stable-diffusion"
    gen.fit(real if real is not None else make_real(), None, SimpleNamespace(device=torch.device("cpu")))
    return gen


def test_clip_templates():
    assert len(CLIP_IMAGENET_TEMPLATES) == 80 and len(set(CLIP_IMAGENET_TEMPLATES)) == 80
    assert all(t.count("{}") == 1 for t in CLIP_IMAGENET_TEMPLATES)
    assert CLIP_IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and CLIP_IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."


def test_text_mode_contract_and_prompts(pipelines):
    gen = fitted(pipelines.text, resize=False)
    assert gen.image_shape() == (3, SIZE, SIZE)
    check_generator(gen, CLASSES, (3, SIZE, SIZE), n=4)
    seeds = list(range(40))
    labels = torch.arange(40) % len(CLASSES)
    records = [gen.prompt(int(y), s, CLASSES) for y, s in zip(labels, seeds)]
    allowed = {t.replace("{}", c) for t in CLIP_IMAGENET_TEMPLATES for c in CLASSES}
    assert all(prompt in allowed and CLASSES[int(y)] in prompt for (_, prompt), y in zip(records, labels))
    assert len({template for template, _ in records}) > 10  # seeds spread over the templates
    # a class's templates are not tied to the class by consecutive seeds
    assert len({template for (template, _), y in zip(records, labels) if int(y) == 0}) > 3
    out = gen.generate(torch.tensor([1, 2]), [7, 8], CLASSES)
    for record, y, s in zip(out.provenance, (1, 2), (7, 8)):
        assert (record["template"], record["prompt"]) == gen.prompt(y, s, CLASSES)
        assert record["prompt"] == record["template"].replace("{}", CLASSES[y])
        assert record["guidance"] == 7.5 and record["steps"] == 2 and record["mode"] == "text"


def test_text_conditioning_and_negative_prompt_reach_the_pipeline(pipelines):
    gen = fitted(pipelines.text, resize=False, templates=["{}"])
    x = gen.generate(torch.tensor([0, 2]), [3, 3], CLASSES)
    assert [r["prompt"] for r in x.provenance] == ["goldfish", "猫"]
    assert not torch.equal(x.images[0], x.images[1])  # same seed, different class name
    negative = fitted(pipelines.text, resize=False, templates=["{}"], negative_prompt="blurry")
    y = negative.generate(torch.tensor([0]), [3], CLASSES)
    assert y.provenance[0]["negative_prompt"] == "blurry"
    assert not torch.equal(y.images[0], x.images[0])


def test_photo_template_and_resize_to_real_shape(pipelines):
    gen = fitted(pipelines.text, templates="photo")
    assert gen.image_shape() == (1, 8, 8)
    out = gen.generate(torch.tensor([3]), [0], CLASSES)
    assert out.images.shape == (1, 1, 8, 8) and 0 <= float(out.images.min()) <= float(out.images.max()) <= 1
    assert out.provenance[0]["prompt"] == "a photo of a Ωmega"
    assert (out.provenance[0]["width"], out.provenance[0]["height"]) == (8, 8)


def test_image_plus_label_mode(pipelines):
    real = make_real()
    gen = fitted(pipelines.text, real=real, mode="image+label", strength=0.5, resize=False)
    check_generator(gen, CLASSES, (3, SIZE, SIZE), n=4)
    out = gen.generate(torch.tensor([0, 1, 2, 3]), [5, 6, 7, 8], CLASSES)
    for record in out.provenance:
        assert int(real.labels[record["source_index"]]) == record["label"]  # a real image of its own class
        assert record["strength"] == 0.5 and CLASSES[record["label"]] in record["prompt"]
    # the real image conditions the output: other real pixels, same labels/seeds -> other images
    other = fitted(pipelines.text, real=make_real(seed=1), mode="image+label", strength=0.5, resize=False)
    assert not torch.equal(other.generate(torch.tensor([0]), [5], CLASSES).images[0], out.images[0])


def test_image_variation_mode(pipelines):
    real = make_real()
    gen = fitted(pipelines.variation, real=real, mode="image-variation", guidance=3.0)
    assert gen.image_shape() == (1, 8, 8)
    check_generator(gen, CLASSES, (1, 8, 8), n=4)
    out = gen.generate(torch.tensor([2, 3]), [1, 2], CLASSES)
    for record in out.provenance:
        assert record["prompt"] is None and record["mode"] == "image-variation"
        assert int(real.labels[record["source_index"]]) == record["label"]
    other = fitted(pipelines.variation, real=make_real(seed=1), mode="image-variation", guidance=3.0)
    assert not torch.equal(other.generate(torch.tensor([2]), [1], CLASSES).images[0], out.images[0])


def test_image_mode_needs_real_images_of_the_class(pipelines):
    labels = torch.tensor([0, 0, 1, 1])  # no image of classes 2 and 3
    real = TensorImageSet(torch.rand(4, 1, 8, 8), labels, CLASSES)
    gen = fitted(pipelines.text, real=real, mode="image+label")
    with pytest.raises(BadInputError, match="猫"):
        gen.generate(torch.tensor([2]), [0], CLASSES)


def test_wrong_pipeline_kind_is_a_clear_error(pipelines):
    with pytest.raises(BadInputError, match="model"):
        fitted(pipelines.variation, mode="text")


def test_missing_folder_and_uncached_hub_id(tmp_path, monkeypatch):
    with pytest.raises(BadInputError, match="does not exist") as info:
        fitted(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(info.value)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BadInputError, match="download") as info:
        fitted("dreamset-test/no-such-sd", local_files_only=True)
    assert "dreamset-test/no-such-sd" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [
    {"templates": ["no placeholder"]}, {"templates": ["{} and {}"]}, {"templates": []}, {"templates": "imagenet"},
    {"width": 30}, {"height": 0}, {"strength": 0.0}, {"strength": 1.5}, {"steps": 0}, {"guidance": -1},
    {"mode": "image-variation", "negative_prompt": "x"}, {"mode": "image+label", "steps": 2, "strength": 0.3},
    {"mode": "video"}, {"batch_size": 0}, {"torch_dtype": "int8"}, {"unknown": 1},
])
def test_bad_options_rejected(bad):
    with pytest.raises(ValueError):
        StableDiffusionOptions(model="org/name", **bad)


def test_model_is_required_and_registered():
    import dreamset.registry as registry

    with pytest.raises(ValueError):
        StableDiffusionOptions()
    gen = registry.get_registry().create("generator:stable-diffusion", model="org/name", templates=["a {} photo"])
    assert isinstance(gen, StableDiffusionGenerator) and gen.key == "generator:stable-diffusion"


# -- prompt strategies (Bansal & Grover 2023; Sariyildiz et al. 2023) -----------------------------

def test_prompt_strategies_single_random_backgrounds_file(pipelines, tmp_path):
    from dreamset.plugins.generators.stable_diffusion import SCENE_BACKGROUNDS

    labels, seeds = torch.tensor([0, 1, 2, 3]), [11, 12, 13, 14]
    single = fitted(pipelines.text, resize=False, templates="photo")
    out = single.generate(labels, seeds, CLASSES)
    assert [r["prompt"] for r in out.provenance] == [f"a photo of a {c}" for c in CLASSES]
    assert {r["prompt_strategy"] for r in out.provenance} == {"single-template"}
    assert {r["background"] for r in out.provenance} == {None}
    assert fitted(pipelines.text, resize=False).generate(labels, seeds, CLASSES).provenance[0]["prompt_strategy"] \
        == "templates-at-random"

    scenes = fitted(pipelines.text, resize=False, templates="clip80", backgrounds="scenes")
    records = [scenes.conditioning(i % 4, s, CLASSES) for i, s in enumerate(range(200))]
    assert len({b for _, _, b in records}) > 8 and len({t for t, _, _ in records}) > 20  # both vary, by seed
    for (template, prompt, background), i in zip(records, range(200)):
        filled = template.replace("{}", CLASSES[i % 4])
        assert background in SCENE_BACKGROUNDS and prompt == f"{filled[:-1]} {background}."
    out = scenes.generate(labels, seeds, CLASSES)
    assert all(r["prompt_strategy"] == "templates×backgrounds" and r["background"] in r["prompt"] for r in out.provenance)
    own = fitted(pipelines.text, resize=False, templates=["{}"], backgrounds=["at night"])
    assert own.generate(torch.tensor([0]), [1], CLASSES).provenance[0]["prompt"] == "goldfish at night"

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("goldfish: [a goldfish, a small orange fish in a bowl]\ncafé crème: coffee with cream\n"
                       "猫: [a cat]\nΩmega: [the letter omega, a horseshoe-shaped glyph]\n", encoding="utf-8")
    from_file = fitted(pipelines.text, resize=False, prompts_file=str(prompts))
    out = from_file.generate(labels, seeds, CLASSES)
    assert out.provenance[1]["prompt"] == "coffee with cream" and out.provenance[2]["prompt"] == "a cat"
    assert out.provenance[0]["prompt"] in {"a goldfish", "a small orange fish in a bowl"}
    assert all(r["prompt_strategy"] == "file" and r["template"] is None for r in out.provenance)
    assert len({from_file.prompt(0, s, CLASSES)[1] for s in range(40)}) == 2  # the seed picks among a class's prompts


def test_prompt_strategy_errors_name_the_option(pipelines, tmp_path):
    with pytest.raises(ValueError, match="prompts_file: .* is not a file"):
        StableDiffusionOptions(model=pipelines.text, prompts_file=str(tmp_path / "missing.yaml"))
    (tmp_path / "p.json").write_text('{"goldfish": ["a fish"]}')
    with pytest.raises(ValueError, match="remove backgrounds"):
        StableDiffusionOptions(model=pipelines.text, prompts_file=str(tmp_path / "p.json"), backgrounds="scenes")
    with pytest.raises(ValueError, match="backgrounds: give at least one"):
        StableDiffusionOptions(model=pipelines.text, backgrounds=[])
    incomplete = fitted(pipelines.text, resize=False, prompts_file=str(tmp_path / "p.json"))
    with pytest.raises(BadInputError, match=r"prompts_file: .*p\.json has no list of prompts for class 'café crème'"):
        incomplete.generate(torch.tensor([0]), [1], CLASSES)
