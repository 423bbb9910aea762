"""The paper-scale catalogue recipes run end to end on CPU through `--set` overrides that swap in fake
data and tiny models: every component they name, and the way they combine them, is exercised.

- cifar10-generated-at: a CIFAR-shaped .npz stands in for torchvision CIFAR-10, and the synthetic set
  is an imported .npz (the DM-Improves-AT release format) -- confidence sampler, 0.3 real ratio,
  TRADES on a (tiny) WideResNet with EMA, AutoAttack + PGD evaluation, FID and PRDC.
- imagenet-sd-shift: an ImageFolder of tiny RGB images, a tiny Stable Diffusion pipeline saved by the
  test (class names x CLIP templates), a timm model, effective robustness and FID.
- context-agnostic-digits: ten glyphs, cut-paste vs biregular, plus an arm with masked-PGD refinement of
  the context (its `region: given` refuses to run without the mixer's context mask).
- context-agnostic-mnist-biregular: the same at 28x28 on real MNIST digits (dataset:mnist, no training
  split), every arm and ablation, and a check that the shipped recipe's arms take equal steps per epoch.
- context-agnostic-mnist (and -short): Jin & Rinard's protocol (issue 28): one glyph per class, the
  glyph-warp ramp, their CNN, Adam, batches of 10 accumulated over 5 (batch_groups), Greedy Bias
  Correction with blended-ascent refinement per arm; every arm and ablation at tiny size.
- mnist-robust: a (tiny) DDPM trained on real MNIST digits and font glyphs, PGD-AT real vs real+synthetic (DDPM) and
  real+glyphs, PGD evaluation.
- cifar10-edm-1m: Wang et al.'s released-.npz setting on a tiny .npz (generate.source, no generator),
  0.3 real at fixed steps per epoch, TRADES on a (tiny) WideResNet with EMA, crop + flip, AutoAttack.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from dreamset.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import tiny_pipelines  # noqa: E402


def _run(recipe: str, out: Path, sets: list[str]) -> dict:
    args = ["run", recipe, "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text())


def _fake_images(n: int, classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×H×W×3 images: class c is a bright square at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, size=(n, size, size, 3), dtype=np.uint8)
    step = size // 4
    for i, c in enumerate(labels):
        r, col = divmod(int(c) % 16, 4)
        images[i, r * step:(r + 1) * step, col * step:(col + 1) * step, int(c) % 3] = 230
    return images, labels.astype(np.int64)


def _cifar_sized_run(tmp_path: Path, recipe: str, sets: list[str]) -> dict:
    """A CIFAR recipe on stand-ins: a fake CIFAR .npz as the real set, a fake generated .npz (the
    DM-Improves-AT release format) as generate.source, a WRN-10-1, one epoch, AutoAttack on ten images."""
    real_x, real_y = _fake_images(200, 10, 16, seed=0)
    syn_x, syn_y = _fake_images(300, 10, 16, seed=1)
    np.savez(tmp_path / "cifar.npz", image=real_x, label=real_y)
    np.savez(tmp_path / "generated.npz", image=syn_x, label=syn_y)
    return _run(recipe, tmp_path / "run", [
        "device=cpu",
        f"data.dataset={{key: npz, options: {{path: {tmp_path / 'cifar.npz'}, test_fraction: 0.3}}}}",
        f"generate.source={tmp_path / 'generated.npz'}", "generate.count=300",
        "train.model.options={depth: 10, width: 1, activation: silu}",
        "train.epochs=1", "train.batch_size=64", "train.attacker.options.steps=2", "train.lr=0.05",
        "evaluate.robust_samples=10", "evaluate.batch_size=64", *sets,
    ])


def test_cifar10_generated_at_tiny_variant(tmp_path):
    report = _cifar_sized_run(tmp_path, "cifar10-generated-at", ["reference.epochs=1", "evaluate.attackers.1.options.steps=3"])
    arms = report["arms"]
    assert set(arms) == {"real", "real+synthetic"}
    for arm in arms.values():
        assert set(arm["robust_accuracy_by_attacker"]) == {"attacker:autoattack", "attacker:pgd"}
        # the per-sample worst case over both attacks
        assert arm["robust_accuracy"] <= min(arm["robust_accuracy_by_attacker"].values())
    assert {"fid", "prdc"} <= set(report["metrics"])
    assert report["metrics"]["fid"]["fid"] >= 0
    # the confidence sampler kept half of the imported synthetic set
    kept = np.load(tmp_path / "run" / "selections" / "real_plus_synthetic-seed0.npz")["indices"]
    assert len(kept) == 150
    crop_flip = ["augmentation:random-crop", "augmentation:horizontal-flip"]
    for augment in report["augmentation"].values():  # the papers' crop (pad 4) + flip on both sources
        assert [a["key"] for a in augment["real"]] == crop_flip == [a["key"] for a in augment["synthetic"]]
        assert augment["real"][0]["options"]["padding"] == 4 and augment["batch"] == []


def test_cifar10_edm_1m_has_wang_et_al_settings():
    """The settings docs/recipes.md cites from DM-Improves-AT (README's train-wa.py command, its parser
    defaults): a drift in the recipe fails here, not silently in a days-long GPU run."""
    import math

    from dreamset.orchestration.recipe import load_recipe

    recipe, _ = load_recipe("cifar10-edm-1m", [])
    train = recipe.train
    assert recipe.generate.generator is None and recipe.generate.source.endswith(".npz")
    assert (train.batch_size, train.epochs, train.lr, train.weight_decay) == (512, 400, 0.2, 5e-4)
    assert (train.label_smoothing, train.ema_decay, train.objective.options["beta"]) == (0.1, 0.995, 5.0)
    assert train.model.options == {"depth": 28, "width": 10, "activation": "silu"}
    assert train.attacker.options == {"eps": 8 / 255, "alpha": 2 / 255, "steps": 10}
    mixers = {name: arm.mixer.options for name, arm in recipe.arms.items()}
    assert mixers["real+synthetic"]["real_fraction"] == 0.3  # their unsup-fraction 0.7
    # their sampler: ceil(len(CIFAR-10 train) / batch) batches an epoch, whatever the generated set's size
    assert {m["epoch_steps"] for m in mixers.values()} == {math.ceil(50_000 / 512)}
    assert [a.key for a in recipe.evaluate.attackers] == ["autoattack"]
    assert [a.key for a in train.augment.synthetic] == ["random-crop", "horizontal-flip"] == [a.key for a in train.augment.real]


def test_cifar10_edm_1m_tiny_variant(tmp_path):
    report = _cifar_sized_run(tmp_path, "cifar10-edm-1m", [
        "arms.real.mixer.options.epoch_steps=2", "arms.real+synthetic.mixer.options.epoch_steps=2", "report.html=false"])
    arms = report["arms"]
    assert set(arms) == {"real", "real+synthetic"}
    for arm in arms.values():
        assert set(arm["robust_accuracy_by_attacker"]) == {"attacker:autoattack"}
        assert 0 <= arm["robust_accuracy"] <= arm["clean_accuracy"] <= 1
    steps = {name: arm["training"]["optimizer_steps"] for name, arm in arms.items()}
    assert steps == {"real": 2, "real+synthetic": 2}
    seen = arms["real+synthetic"]["training"]["images_seen"]
    assert seen["real"] == 2 * round(0.3 * 64) and seen["synthetic"] == 2 * (64 - round(0.3 * 64))
    store = json.loads((tmp_path / "run" / "synthetic" / "store.json").read_text())
    assert store["count"] == 300 and store["generator"]["key"] == "import:npz" and len(store["generator"]["sha256"]) == 64


def test_digits_shift_tiny_variant(tmp_path):
    """Generated data vs augmentation (Bansal & Grover 2023): real, real+synthetic, real+augmix and
    real+crop, compute-matched, four shifts, a generated test set from held-out DDPM seeds and
    effective robustness with an interval per arm."""
    report = _run("digits-shift", tmp_path / "run", [
        "seeds=[0,1]", "data.dataset.options.train_size=100", "generate.count=60",
        "generate.generator.options={train_steps: 3, steps: 2, block_out_channels: [16, 32]}",
        "train.epochs=1", "train.batch_size=32", "evaluate.sets.0.count=20",
        "evaluate.metrics.0.options={testbed_sizes: [0.5, 1.0], testbed_epochs: [1]}", "report.html=false",
    ])
    arms = report["arms"]
    assert list(arms) == ["real", "real+synthetic", "real+augmix", "real+crop"]
    steps = {name: arm["training"]["optimizer_steps"] for name, arm in arms.items()}
    assert len(set(steps.values())) == 1 and not report["notes"]  # compute-matched
    for arm in arms.values():
        assert len(arm["shifted"]) == 4 and set(arm["generated"]) == {"ddpm-heldout"}
    assert report["augmentation"]["real+augmix"]["real"][0]["key"] == "augmentation:augmix"
    assert report["augmentation"]["real+crop"]["real"][0]["options"]["padding"] == 1
    assert report["augmentation"]["real"]["real"] == [] and report["augmentation"]["real+synthetic"]["synthetic"] == []
    er = report["metrics"]["effective_robustness"]
    assert set(er["arms"]) == set(arms)
    for name in arms:
        assert er["arms"][name]["interval"]["n"] == 2 and er["arms"][name]["interval"]["low"] is not None
    assert set(report["comparisons"]) == {"real+synthetic", "real+augmix", "real+crop"}
    assert report["evaluation"]["generated_sets"]["ddpm-heldout"]["image_seeds"] == [10**9, 10**9 + 19]


def test_imagenet_sd_shift_tiny_variant(tmp_path):
    from PIL import Image

    classes = ["goldfish", "tabby cat", "church"]
    for split, n in (("train", 8), ("test", 6)):
        images, labels = _fake_images(n * len(classes), len(classes), 16, seed=2 if split == "train" else 3)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "imagenet" / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    sd = tiny_pipelines.save_tiny_stable_diffusion(tmp_path / "sd")
    report = _run("imagenet-sd-shift", tmp_path / "run", [
        "device=cpu",
        f"data.dataset.options={{root: {tmp_path / 'imagenet'}, channels: 3, image_size: 16}}",
        f"generate.generator.options={{model: {sd}, mode: text, templates: clip80, steps: 2, guidance: 2.0, "
        f"width: {tiny_pipelines.SD_SIZE}, height: {tiny_pipelines.SD_SIZE}, torch_dtype: float32, batch_size: 4}}",
        "generate.count=12", "generate.batch_size=4", "generate.shard_size=6",
        "train.model.options={name: resnet10t}", "train.epochs=1", "train.batch_size=16",
        "reference.epochs=1",
        "evaluate.metrics.0.options={testbed_sizes: [0.5, 1.0], testbed_epochs: [1]}",
    ])
    assert set(report["arms"]) == {"real", "real+synthetic"}
    assert len(report["arms"]["real"]["shifted"]) == 4
    er = report["metrics"]["effective_robustness"]
    assert set(er["arms"]) >= {"real", "real+synthetic"}
    store = json.loads((tmp_path / "run" / "synthetic" / "store.json").read_text())
    assert store["count"] == 12 and store["class_names"] == sorted(classes)  # ImageFolder order


def test_context_agnostic_digits_tiny_variant_with_context_refinement(tmp_path):
    """The recipe plus the refinement arm docs/recipes.md describes (an override, not in the recipe)."""
    biregular = "{key: biregular, options: {backgrounds: procedural, n_backgrounds: 10, object_degree: 4, superimpose: 0.3}}"
    report = _run("context-agnostic-digits", tmp_path / "run", [
        "train.epochs=1", "arms.naive.mixer.options.repeats=4", f"arms.context-agnostic.mixer={biregular}",
        "arms.naive.standard=true", "arms.context-agnostic.standard=true",
        f"arms.refined={{real: false, synthetic: true, mixer: {biregular}}}",
        "train.attacker={key: masked-pgd, options: {region: given, eps: 0.05, steps: 1}}",
    ])
    assert set(report["arms"]) == {"naive", "context-agnostic", "refined"}
    for arm in report["arms"].values():
        assert 0 <= arm["clean_accuracy"] <= 1


def _arm_steps(recipe_name: str, sets: list[str] = ()) -> dict[str, int]:
    """Optimizer steps per epoch of every arm of a shipped recipe (the mixers' own count), without
    training: the objects are the recipe's generate.count images, the real set its training split."""
    import dreamset.registry as registry
    from dreamset.contracts.data import TensorImageSet
    from dreamset.orchestration.recipe import load_recipe

    recipe, _ = load_recipe(recipe_name, list(sets))
    real = registry.create(recipe.data.dataset.key, **recipe.data.dataset.options).load("train")
    sources = recipe.generate if isinstance(recipe.generate, dict) else {"": recipe.generate}

    def synthetic_of(arm):  # the arm's sources (all of them for ``synthetic: true``), as one set
        names = list(sources) if arm.synthetic is True else list(arm.synthetic)
        count = sum(sources[name].count for name in names)
        return TensorImageSet(torch.zeros(count, *real.image_shape), torch.arange(count) % 10, real.class_names)

    steps = {}
    for name, arm in recipe.arms.items():
        mixer = registry.create(arm.mixer.key, kind="mixer", **arm.mixer.options)
        steps[name] = mixer.steps_per_epoch(real if arm.real else None, synthetic_of(arm) if arm.synthetic else None,
                                            recipe.train.batch_size)
    return steps


def test_context_agnostic_mnist_biregular_arms_are_compute_matched():
    steps = _arm_steps("context-agnostic-mnist-biregular")
    assert set(steps) == {"naive", "context-agnostic", "no-refinement", "no-superimpose", "no-biregular"}
    assert len(set(steps.values())) == 1, steps


def test_context_agnostic_mnist_biregular_trains_on_one_rendering_per_class():
    """The recipe's glyphs vary only by augmentation of each class's one rendering: no render jitter,
    one font, and the generated images are class-balanced variants."""
    from dreamset.orchestration.recipe import load_recipe

    recipe, _ = load_recipe("context-agnostic-mnist-biregular", [])
    options = recipe.generate.generator.options
    assert isinstance(options["font"], str)
    assert all(options[f"jitter_{name}"] == 0 for name in ("offset", "scale", "stroke", "rotation"))
    assert recipe.generate.count % 10 == 0


def test_mnist_robust_arms_are_compute_matched():
    steps = _arm_steps("mnist-robust")
    assert set(steps) == {"real", "real+synthetic", "real+glyphs"} and len(set(steps.values())) == 1, steps


def test_context_agnostic_mnist_biregular_tiny_variant(tmp_path):
    """Every arm of the recipe at 28x28, tested on real MNIST digits only (no MNIST image is trained on)."""
    report = _run("context-agnostic-mnist-biregular", tmp_path / "run", [
        "seeds=[0]", "data.dataset.options={train_size: 0, test_size: 100}", "train.epochs=1",
        "generate.count=20", "generate.batch_size=20", "generate.shard_size=20",
        "train.model.options.width=8", "train.attacker.options.steps=1", "report.html=false",
        "report.curve_every=1", "report.curve_samples=20",  # a validation point after the one epoch
        "arms.no-biregular.mixer.options={backgrounds: procedural, n_backgrounds: 10, repeats: 1}",
        *[f"arms.{arm}.mixer.options.{key}={value}" for arm in ("context-agnostic", "no-refinement", "no-superimpose")
          for key, value in (("n_backgrounds", 10), ("object_degree", 1))],
    ])
    assert set(report["arms"]) == {"naive", "context-agnostic", "no-refinement", "no-superimpose", "no-biregular"}
    assert set(report["comparisons"]) == {"context-agnostic", "no-refinement", "no-superimpose", "no-biregular"}
    assert [(p["arm"], p["baseline"]) for p in report["pair_comparisons"]] == [
        ("context-agnostic", "no-refinement"), ("context-agnostic", "no-superimpose"), ("context-agnostic", "no-biregular"),
        ("no-biregular", "no-superimpose")]
    store = json.loads((tmp_path / "run" / "synthetic" / "store.json").read_text())
    assert store["count"] == 20  # two augmentations of each class's one glyph are all the training data
    for arm in report["arms"].values():
        assert 0 <= arm["clean_accuracy"] <= 1
        # the curve validates clean only: masked-PGD needs the mixer's context mask, which test digits lack
        (point,) = arm["per_seed"]["0"]["training"]["curves"]
        assert "val_clean_accuracy" in point and "val_robust_accuracy" not in point
        # 100 test digits: accuracies are multiples of 1/100
        assert abs(arm["clean_accuracy"] * 100 - round(arm["clean_accuracy"] * 100)) < 1e-9


def test_context_agnostic_mnist_follows_the_papers_schedule():
    """The paper's protocol (docs/recipes.md's table): one glyph per class, 20 optimizer steps of 5×10
    images per epoch for every arm, 300 epochs, Adam 1e-4 with L2 weight decay 1e-4, constant lr; the
    short recipe differs only in epochs, the ramp and the dropped arm."""
    from dreamset.orchestration.recipe import load_recipe

    for name, epochs in (("context-agnostic-mnist", 300), ("context-agnostic-mnist-short", 10)):
        steps = _arm_steps(name)
        assert set(steps.values()) == {20}, steps
        recipe, _ = load_recipe(name, [])
        train = recipe.train
        assert (recipe.generate.count, train.epochs, train.batch_size, train.batch_groups) == (10, epochs, 50, 5)
        assert (train.optimizer, train.lr, train.weight_decay, train.schedule) == ("adam", 1e-4, 1e-4, "constant")
        assert train.model.key == "mnist-cnn" and train.attacker.key == "blended-ascent"
        assert recipe.arms["naive"].standard and recipe.arms["no-refinement"].objective.options == {"refine": False}
    assert "no-persistence" in load_recipe("context-agnostic-mnist", [])[0].arms


def test_context_agnostic_mnist_tiny_variant(tmp_path):
    """Every arm of the paper-protocol recipe at tiny size: the per-arm objectives train (the refined
    arms spend attack passes, the others none) and every model is tested on real MNIST digits only."""
    report = _run("context-agnostic-mnist", tmp_path / "run", [
        "seeds=[0]", "data.dataset.options={train_size: 0, test_size: 100}", "train.epochs=1",
        "train.model.options={width: 4, hidden: 16}", "train.attacker.options.steps=1", "report.html=false",
        *[f"arms.{arm}.mixer.options.repeats=10" for arm in ("naive", "context-agnostic", "no-refinement", "no-persistence")],
    ])
    assert set(report["arms"]) == {"naive", "context-agnostic", "no-refinement", "no-persistence"}
    assert [(p["arm"], p["baseline"]) for p in report["pair_comparisons"]] == [
        ("context-agnostic", "no-refinement"), ("context-agnostic", "no-persistence")]
    passes = {name: arm["per_seed"]["0"]["training"]["attack_forward_backward_passes"] for name, arm in report["arms"].items()}
    assert passes["naive"] == passes["no-refinement"] == 0 and passes["context-agnostic"] > 0 and passes["no-persistence"] > 0
    steps = {arm["per_seed"]["0"]["training"]["optimizer_steps"] for arm in report["arms"].values()}
    assert steps == {2}  # 10 glyphs × 10 repeats / 50
    for arm in report["arms"].values():
        assert 0 <= arm["clean_accuracy"] <= 1


def test_mnist_robust_tiny_variant(tmp_path):
    report = _run("mnist-robust", tmp_path / "run", [
        "seeds=[0]", "data.dataset.options={train_size: 100, test_size: 50}",
        *[f"generate.{s}.{k}={v}" for s in ("ddpm", "glyphs") for k, v in (("count", 40), ("batch_size", 20), ("shard_size", 20))],
        "generate.ddpm.generator.options={block_out_channels: [8, 16], train_steps: 2, steps: 2, batch_size: 16}",
        "train.epochs=1", "train.model.options.width=8", "train.attacker.options.steps=1",
        *[f"arms.{arm}.mixer.options.epoch_steps=2" for arm in ("real", "real+synthetic", "real+glyphs")],
        "evaluate.attackers.0.options.steps=2", "evaluate.robust_samples=20", "reference.epochs=1",
        "report.html=false",
    ])
    assert set(report["arms"]) == {"real", "real+synthetic", "real+glyphs"}
    for arm in report["arms"].values():
        assert 0 <= arm["robust_accuracy"] <= 1 and 0 <= arm["clean_accuracy"] <= 1
    for source in ("ddpm", "glyphs"):  # each source measured on its own
        assert report["metrics"]["fid"][source]["fid"] >= 0
        assert 0 <= report["metrics"]["label_agreement"][source]["agreement"] <= 1
        store = json.loads((tmp_path / "run" / "synthetic" / source / "store.json").read_text())
        assert store["count"] == 40
    # the reference classifier's most confident half per class is what the DDPM arm trains on; the glyphs all
    assert (report["selections"]["real+synthetic"]["0"]["selected"], report["selections"]["real+synthetic"]["0"]["of"]) == (20, 40)
    assert report["selections"]["real+glyphs"]["0"]["selected"] == 40


def test_generator_comparison_tiny_variant(tmp_path):
    sources = ["ddpm", "ddpm-mid", "ddpm-short", "gan", "gan-truncated", "vae", "glyphs"]
    gan = "train_steps: 3, width: 8, disc_width: 8, latent_dim: 8, batch_size: 16"
    report = _run("generator-comparison", tmp_path / "run", [
        "device=cpu", "data.dataset.options.train_size=100",
        *[f"generate.{s}.{k}={v}" for s in sources for k, v in (("count", 40), ("batch_size", 20), ("shard_size", 20))],
        "generate.ddpm.generator.options={block_out_channels: [8, 16], train_steps: 3, steps: 2, batch_size: 16}",
        "generate.ddpm-mid.generator.options={block_out_channels: [8, 16], train_steps: 2, steps: 2, batch_size: 16}",
        "generate.ddpm-short.generator.options={block_out_channels: [8, 16], train_steps: 1, steps: 2, batch_size: 16}",
        f"generate.gan.generator.options={{{gan}}}", f"generate.gan-truncated.generator.options={{{gan}, truncation: 0.2}}",
        "generate.vae.generator.options={train_steps: 3, width: 8, latent_dim: 8, batch_size: 16}",
        "train.epochs=1", "train.model.options.width=4", "train.attacker.options.steps=1", "reference.epochs=1",
        "evaluate.attackers.0.options.steps=1", "evaluate.robust_samples=30",
        "evaluate.metrics.1.options.num_subsets=5",
        "evaluate.metrics.4.options={eps_max: 0.15, points: 2, epochs: 1, max_samples: 20, attack_steps: 1, eval_steps: 1}",
    ])
    assert set(report["arms"]) == {"real", *(f"real+{s}" for s in sources)}
    # every distribution metric per source; one store per source, one checkpoint folder per trained generator
    for metric in ("fid", "kid", "prdc", "label_agreement", "arc"):
        assert set(sources) <= set(report["metrics"][metric]), metric
    for s in sources:
        assert json.loads((tmp_path / "run" / "synthetic" / s / "store.json").read_text())["count"] == 40
        if s != "glyphs":  # rendered, nothing to train
            assert any((tmp_path / "run" / "generator" / s).iterdir())
    table = report["generator_table"]
    assert [row[0] for row in table["rows"]] == sources and table["baseline"] == "real"
    for s, entry in table["sources"].items():
        assert entry["FID"] == report["metrics"]["fid"][s]["fid"]
        assert entry["ARC"] in (report["metrics"]["arc"][s]["arc"], None)  # None: collapsed, a lower bound left out of rho
        assert entry["robust_gain"]["n"] == 3  # paired over the recipe's three seeds
        assert entry["robust_gain"]["mean"] == report["comparisons"][f"real+{s}"]["robust_accuracy"]["mean"]
    # every per-source headline value with a direction (ARC only where its discriminator did not collapse)
    assert {"FID", "KID", "precision", "recall", "density", "coverage", "label agreement"} <= set(table["spearman"])
    for column, r in table["spearman"].items():
        assert r["n"] <= len(sources) and (r["rho"] is None) == (r["p_value"] is None), column
        assert r["rho"] is None or -1 <= r["rho"] <= 1
    assert (tmp_path / "run" / "generator_metrics_vs_gain.png").is_file()
    assert "generators: Spearman" in (tmp_path / "run" / "report.html").read_text()
