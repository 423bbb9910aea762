"""Font probe for ``context-agnostic-mnist`` (issue 28): how much of the gap to Jin & Rinard's baseline
is the glyph font? Trains the recipe's ``naive`` arm twice in one run — on the recipe's DejaVu Sans
glyphs and on the authors' own ten glyph PNGs — so the difference is paired by seed.

The authors' glyphs (github.com/charlesjin/synthetic_data, ``mnist/data/font/{0..9}.png`` at commit
e757535, MIT License) are not shipped with dreamset; point ``--glyphs`` at a folder holding them.
This script converts them to an ``.npz`` source (white on black, as dreamset's glyphs: ``255 − L``,
``uint8 N×28×28×1``, label = file name) and writes a two-arm recipe built from the shipped
``context-agnostic-mnist-short`` recipe (its generator, mixer, model, optimizer, augmentation;
``--epochs`` and the augmentation ramp scaled as the paper's 2→52 of 300 epochs):

    python benchmarks/paper_glyphs.py --glyphs /work/shared/jin-rinard-font --out /tmp/font_probe --epochs 30
    dreamset run /tmp/font_probe/recipe.yaml --out /tmp/font_probe/run --set report.html=false
    python benchmarks/claims.py --from-run /tmp/font_probe/run --block context-agnostic-mnist-font-probe --write
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml


def paper_npz(folder: Path, out: Path) -> Path:
    """``out`` (.npz, ``image`` uint8 10×28×28×1 white-on-black, ``label``) from ``folder/{0..9}.png``."""
    from PIL import Image

    images, labels = [], []
    for digit in range(10):
        path = folder / f"{digit}.png"
        if not path.is_file():
            sys.exit(f"--glyphs: {path} not found (the authors' mnist/data/font/{digit}.png)")
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.uint8)
        if grey.shape != (28, 28):
            sys.exit(f"--glyphs: {path} is {grey.shape}, expected 28×28")
        images.append(255 - grey)
        labels.append(digit)
    np.savez(out, image=np.stack(images)[..., None], label=np.array(labels, dtype=np.int64))
    return out


def probe_recipe(npz: Path, epochs: int) -> dict:
    """The short recipe with two sources (DejaVu glyphs, the authors' glyphs) and one naive arm each."""
    from dreamset.registry.catalogue import recipe_path

    raw = yaml.safe_load(recipe_path("context-agnostic-mnist-short").read_text())
    ours = raw["generate"]
    raw["name"] = "context-agnostic-mnist-font-probe"
    raw["description"] = "issue 28 font probe: the naive arm on DejaVu Sans glyphs vs on the authors' glyph PNGs"
    raw["generate"] = {"dejavu": ours, "paper": {**ours, "source": str(npz)}}
    naive = raw["arms"]["naive"]
    raw["arms"] = {"naive": {**naive, "synthetic": ["dejavu"]}, "naive-paper-glyphs": {**naive, "synthetic": ["paper"]}}
    raw["train"]["epochs"] = epochs
    raw["train"]["augment"]["synthetic"][0]["options"] = {"ramp_start": round(2 * epochs / 300, 3),
                                                          "ramp_epochs": round(50 * epochs / 300, 3)}
    raw["evaluate"].pop("pairs", None)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glyphs", type=Path, required=True, help="folder with the authors' 0.png .. 9.png")
    parser.add_argument("--out", type=Path, required=True, help="folder for paper_glyphs.npz and recipe.yaml")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of 20 optimizer steps (the paper: 300)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    npz = paper_npz(args.glyphs, args.out / "paper_glyphs.npz")
    recipe = args.out / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(probe_recipe(npz.resolve(), args.epochs), sort_keys=False))
    print(f"wrote {npz} and {recipe}; run: dreamset run {recipe} --out {args.out / 'run'} --set report.html=false")


if __name__ == "__main__":
    main()
