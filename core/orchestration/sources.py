"""Named synthetic sources: several generators (or imported stores) in one recipe.

A recipe's ``generate`` is either one generate block — one source named ``synthetic``, stored in
``<run>/synthetic/`` with its generator checkpoint in ``<run>/generator/`` (the layout of every run
folder before sources had names, so old folders resume) — or a mapping of named blocks::

    generate:
      ddpm: {generator: ddpm, count: 2000}
      gan:  {generator: {key: gan, options: {truncation: 0.5}}, count: 2000}
      old:  {generator: ddpm, count: 5000, source: /data/earlier-run/synthetic}   # an existing store

each with its own store ``<run>/synthetic/<name>/`` and checkpoint folder ``<run>/generator/<name>/``,
fitted, filled and resumed independently. An arm chooses its sources (:func:`arm_sources`):
``synthetic: true`` = every source as one set; ``[ddpm, gan]`` = equal parts; ``{ddpm: 0.7, gan:
0.3}`` = those proportions of each batch's synthetic share (``mixer:ratio`` keeps them per batch).

Samplers and mixers see one :class:`MixedSource`: the arm's sources concatenated, labels as generated,
``provenance(i)`` the store's record plus ``"source"``. Distribution metrics of ``scope = "source"``
(FID, KID, PRDC, ARC, label agreement) run once per source (:func:`dreamset.orchestration.stages.compute_metric`)
and report ``metrics.<metric>.<source>``; a recipe with one generate block keeps the old shape
``metrics.<metric>``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import ImageSource

#: a recipe (:class:`dreamset.orchestration.recipe.Recipe`) and one generate block of it
#: (:class:`~dreamset.orchestration.recipe.GenerateStage`): named, not imported, because the recipe
#: module reaches this one through closed_loop (no import cycle, not even one for type checkers)
Recipe = Any
GenerateStage = Any

#: the name of the only source of a recipe with one generate block
SINGLE = "synthetic"
#: names a source may not take: they are keys of a metric's result
RESERVED = frozenset({"tables", "warnings"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def named(recipe: Recipe) -> bool:
    """``generate`` is a mapping of named sources (not one generate block)."""
    return isinstance(recipe.generate, dict)


def generate_stages(recipe: Recipe) -> dict[str, tuple[str, GenerateStage]]:
    """Source name -> (field path, generate block), in recipe order."""
    if recipe.generate is None:
        return {}
    if not named(recipe):
        return {SINGLE: ("generate", recipe.generate)}
    return {name: (f"generate.{name}", stage) for name, stage in recipe.generate.items()}


def arm_sources(recipe: Recipe, arm) -> tuple[list[str], dict[str, float] | None]:
    """The arm's source names and their proportions (summing to 1; ``None`` for ``synthetic: true``,
    which draws from the union of every source)."""
    names = list(generate_stages(recipe))
    if arm.synthetic is True:
        return names, None
    if arm.synthetic is False:
        return [], None
    if isinstance(arm.synthetic, list):
        chosen = list(dict.fromkeys(arm.synthetic))
        return chosen, {name: 1.0 / len(chosen) for name in chosen}
    total = sum(arm.synthetic.values())
    return list(arm.synthetic), {name: value / total for name, value in arm.synthetic.items()}


def check_sources(recipe: Recipe) -> None:
    """Source names are usable as folder and report keys; every arm's sources exist."""
    stages = generate_stages(recipe)
    if named(recipe):
        if not stages:
            raise ValueError("generate: name at least one source (or give one generate block)")
        for name in stages:
            if not _NAME.match(name) or name in RESERVED:
                raise ValueError(f"generate.{name}: a source name is letters, digits, '_' and '-' "
                                 f"(not {', '.join(sorted(RESERVED))})")
    for arm_name, arm in recipe.arms.items():
        if arm.synthetic is False:
            continue
        if not stages:
            raise ValueError(f"arms.{arm_name}.synthetic: the arm uses synthetic data but the recipe has no generate stage")
        chosen, _ = arm_sources(recipe, arm)
        unknown = [name for name in chosen if name not in stages]
        if unknown:
            raise ValueError(f"arms.{arm_name}.synthetic: unknown source {unknown[0]!r} (sources: {', '.join(stages)})")


def store_folders(run_dir, recipe: Recipe, name: str):
    """``(store folder, generator checkpoint folder)`` of source ``name``."""
    return source_folders(run_dir, name, named(recipe))


def source_folders(run_dir, name: str, is_named: bool):
    """``(store folder, generator checkpoint folder)`` of source ``name`` of a recipe whose
    ``generate`` is (``is_named``) or is not a mapping of named sources."""
    run_dir = Path(run_dir)
    if not is_named:
        return run_dir / "synthetic", run_dir / "generator"
    return run_dir / "synthetic" / name, run_dir / "generator" / name


class MixedSource(ImageSource):
    """Several named sources read as one: row ``i`` is row ``local[i]`` of part ``part[i]``.

    ``proportions`` (name -> fraction, or ``None``) tell a mixer how to split each batch's synthetic
    share; :meth:`rows_of` gives the rows of one part. :meth:`subset` keeps the structure, so a
    sampler's selection of a mixed set is still mixed. Images ``float32 B×C×H×W`` in [0,1]."""

    def __init__(self, parts: dict[str, ImageSource], proportions: dict[str, float] | None = None,
                 part=None, local=None) -> None:
        import torch

        if not parts:
            raise BadInputError("synthetic: no sources to combine")
        first = next(iter(parts.values()))
        for name, source in parts.items():
            if list(source.class_names) != list(first.class_names) or tuple(source.image_shape) != tuple(first.image_shape):
                raise BadInputError(f"generate.{name}: its images or classes differ from those of the other sources "
                                    f"({tuple(source.image_shape)} vs {tuple(first.image_shape)})")
        self.parts = dict(parts)
        self.names = list(parts)
        self.proportions = proportions
        self.class_names = list(first.class_names)
        if part is None:
            part = torch.cat([torch.full((len(s),), i, dtype=torch.int64) for i, s in enumerate(parts.values())])
            local = torch.cat([torch.arange(len(s), dtype=torch.int64) for s in parts.values()])
        self.part, self.local = part, local

    def __len__(self) -> int:
        return int(self.part.shape[0])

    @property
    def image_shape(self):
        return next(iter(self.parts.values())).image_shape

    @property
    def labels(self):
        import torch

        out = torch.empty(len(self), dtype=torch.int64)
        for i, source in enumerate(self.parts.values()):
            mask = self.part == i
            out[mask] = source.labels[self.local[mask]]
        return out

    def get(self, indices):
        import torch

        from dreamset.contracts.interfaces import as_index_tensor

        idx = as_index_tensor(indices)
        part, local = self.part[idx], self.local[idx]
        c, h, w = self.image_shape
        images = torch.empty((len(idx), c, h, w), dtype=torch.float32)
        labels = torch.empty(len(idx), dtype=torch.int64)
        for i, source in enumerate(self.parts.values()):
            mask = part == i
            if mask.any():
                images[mask], labels[mask] = source.get(local[mask])
        return images, labels

    def subset(self, indices) -> "MixedSource":
        from dreamset.contracts.interfaces import as_index_tensor

        idx = as_index_tensor(indices)
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise BadInputError(f"subset indices out of range for a source of {len(self)} images")
        return MixedSource(self.parts, self.proportions, self.part[idx], self.local[idx])

    def rows_of(self, name: str):
        """Rows (``int64``) of this set that come from source ``name``."""
        import torch

        return torch.nonzero(self.part == self.names.index(name)).flatten()

    def source_of(self, index: int) -> str:
        return self.names[int(self.part[index])]

    def provenance(self, index: int) -> dict[str, Any]:
        """The source store's provenance record of row ``index``, plus ``source`` (its name)."""
        name = self.source_of(index)
        source = self.parts[name]
        record = source.provenance(int(self.local[index])) if hasattr(source, "provenance") else {}
        return {**record, "source": name}


def arm_synthetic(recipe: Recipe, sources: "dict[str, ImageSource]", arm) -> ImageSource | None:
    """The synthetic set an arm's sampler chooses from: its ``sources``, with their proportions (one
    source: that source's store itself, as before sources had names)."""
    if arm.synthetic is False:
        return None
    chosen, proportions = arm_sources(recipe, arm)
    if len(chosen) == 1:
        return sources[chosen[0]]
    return MixedSource({name: sources[name] for name in chosen}, proportions)


def check_selection(arm_name: str, synthetic: ImageSource) -> None:
    """Every source an arm mixes at a fixed proportion must keep at least one selected image."""
    proportions = getattr(synthetic, "proportions", None)
    for name in proportions or {}:
        if len(synthetic.rows_of(name)) == 0:
            raise BadInputError(f"arms.{arm_name}.sampler: kept no image of source {name!r}, which the arm mixes "
                                f"at a proportion of {proportions[name]:.3g}")
