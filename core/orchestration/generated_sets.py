"""Generated evaluation sets: classifiers tested *on* generated images (Bansal & Grover, 2023,
"Leaving Reality to Imagination", arXiv:2302.02503: "a generative model can also be utilized for
benchmarking the progress of the classifiers", their ImageNet-G-v1).

A recipe lists them under ``evaluate.sets``::

    evaluate:
      sets:
        - {name: ddpm-heldout, seed: 1, count: 500}            # the recipe's generator, held-out seeds
        - {name: glyphs, generator: glyphs, seed: 0, count: 200} # another generator

* ``generator: null`` (default) is the recipe's own ``generate.generator`` — the same fitted model
  (its checkpoint in ``run_dir/generator`` is reused) — asked for images at seeds
  ``seed * 10**9 + i``, ``i < count``, exactly as the store numbers its images. The training images
  use ``generate.seed * 10**9 + j``, ``j < generate.count``; a set whose seed range intersects that
  range is **refused** when the recipe is validated (:func:`check_generated_sets`), so a generated
  test image is never a training image. Another generator is fitted in ``run_dir/eval-sets/<name>/generator``.
* Each set is written as a synthetic store (``run_dir/eval-sets/<name>/store``, resumable like the
  training store) and evaluated per arm like a shifted set: ``generated[<name>]`` (clean accuracy on
  every image) and, with ``robust: true``, ``generated_robust[<name>]`` (worst case over the
  evaluation attackers). ``report.json:evaluation.generated_sets`` holds each set's provenance.

Images are ``float32 N×C×H×W`` in [0,1] with the real test set's shape (else refused), labels ``int64 N``.
"""
from __future__ import annotations

from typing import Any

from dreamset.contracts.errors import BadInputError

#: seed of image i of a plan seeded s: s * SEED_STRIDE + i (dreamset.store.format's numbering)
SEED_STRIDE = 10**9


def seed_range(seed: int, count: int) -> tuple[int, int]:
    """``[first, last]`` image seeds of a plan of ``count`` images seeded ``seed``."""
    return seed * SEED_STRIDE, seed * SEED_STRIDE + count - 1


def _same_generator(spec, generate) -> bool:
    if spec.generator is None:
        return True
    strip = lambda key: key.split(":", 1)[-1]  # noqa: E731
    return strip(spec.generator.key) == strip(generate.generator.key) and spec.generator.options == generate.generator.options


def check_generated_sets(recipe) -> None:
    """Refuse (``ValueError``, one line naming the field) duplicate set names, a set without a
    generator, and a set whose image seeds overlap the training images' seeds."""
    names: set[str] = set()
    stages = recipe.generate_stages() if recipe.generate is not None else {}
    # a set without a generator of its own reuses the recipe's one generate block; with several
    # named sources that would be ambiguous
    several = len(stages) > 1 or (recipe.generate is not None and not hasattr(recipe.generate, "generator"))
    for i, spec in enumerate(recipe.evaluate.sets):
        if spec.name in names:
            raise ValueError(f"evaluate.sets.{i}.name: {spec.name!r} is used twice")
        names.add(spec.name)
        if spec.generator is None and not stages:
            raise ValueError(f"evaluate.sets.{i}.generator: the recipe has no generate stage; name a generator")
        if spec.generator is None and several:
            raise ValueError(f"evaluate.sets.{i}.generator: the recipe has several synthetic sources; name the generator")
        if spec.generator is None and next(iter(stages.values()))[1].generator is None:
            raise ValueError(f"evaluate.sets.{i}.generator: the recipe's generate block names a source, no generator; name one")
        first, last = seed_range(spec.seed, spec.count)
        for path, generate in stages.values():
            if generate.source is not None or not _same_generator(spec, generate):
                continue
            train_first, train_last = seed_range(generate.seed, generate.count)
            if first <= train_last and train_first <= last:
                raise ValueError(
                    f"evaluate.sets.{i}.seed: the generated test set {spec.name!r} (seeds {first}..{last}) overlaps the "
                    f"training images' seeds {train_first}..{train_last} ({path}.seed {generate.seed}); use a held-out seed")


def build_generated_sets(run, real) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Fit (or reuse) each set's generator on the real training split ``real`` and fill its store;
    return ``(name -> ImageSource, name -> provenance)``. ``run``: the :class:`dreamset.orchestration.stages.Run`."""
    import numpy as np
    import torch

    from dreamset.contracts.legacy import call_fit
    from dreamset.store.generation import check_store_origin, generate_to_store, store_manifest, store_origin

    recipe = run.recipe
    sources, provenance = {}, {}
    for i, spec in enumerate(recipe.evaluate.sets):
        folder = run.run_dir / "eval-sets" / spec.name
        own = spec.generator is None
        ref = recipe.generate.generator if own else spec.generator
        path = "generate.generator" if own else f"evaluate.sets.{i}.generator"
        generator = run.registry.create(ref.key, kind="generator", field_path=f"{path}.options", **ref.options)
        generator_dir = run.run_dir / "generator" if own else folder / "generator"
        shape = tuple(generator.image_shape(real))
        if shape != tuple(real.image_shape):
            raise BadInputError(f"evaluate.sets.{i}: {generator.key} makes {shape} images but the test set's are "
                                f"{tuple(real.image_shape)}; a generated test set needs the test set's shape")
        plan = dict(count=spec.count, shard_size=min(spec.count, 4096), labels=spec.labels, seed=spec.seed,
                    class_names=real.class_names, image_shape=shape)
        # like the training store: made by other settings, data or checkpoint -> refused, or moved aside
        # with --fresh (its own generator with it; the recipe's generator is the generate stage's)
        check_store_origin(folder / "store", store_manifest(generator, **plan, made_by=store_origin(real, generator_dir)),
                           run_dir=run.run_dir, fresh=run.fresh, generator_dir=None if own else generator_dir)
        torch.manual_seed(recipe.generate.seed if own else spec.seed)
        call_fit(generator, real, generator_dir, run.services)
        store = generate_to_store(generator, folder / "store", **plan, batch_size=spec.batch_size, context=run.services,
                                  made_by=store_origin(real, generator_dir))
        sources[spec.name] = store
        counts = np.bincount(store.labels.numpy(), minlength=real.num_classes)
        first, last = seed_range(spec.seed, spec.count)
        provenance[spec.name] = {
            "generator": generator.describe(), "same_generator_as_training": own, "count": spec.count,
            "seed": spec.seed, "image_seeds": [first, last], "labels": spec.labels, "robust": spec.robust,
            "store": str((folder / "store").relative_to(run.run_dir)),
            "per_class": {name: int(c) for name, c in zip(real.class_names, counts)},
        }
        if own and recipe.generate.source is None:
            provenance[spec.name]["training_image_seeds"] = list(seed_range(recipe.generate.seed, recipe.generate.count))
    return sources, provenance
