"""Cut-and-paste composites per second: ``mixer:cut-paste`` against a per-image PIL ``paste`` loop.

Both paste the same objects (``--size``×``--size`` RGB, a bright disc-and-bar shape on a black
backdrop, masked by ``dreamset.toolkit.masks.object_masks``) onto backgrounds drawn from the same bank
(``dreamset.plugins.mixers.backgrounds.background_bank('procedural')``) with the same kind of random placement:
scale in [0.7, 1], rotation in ±15°, translation in ±15% of the size, brightness ×U(0.8, 1.2).

- dreamset: ``CutPasteMixer.batches`` — whole batches (``--batch``) warped with one
  ``affine_grid``/``grid_sample`` call and alpha-blended in torch (:func:`dreamset.plugins.mixers.compositing.composite`).
- baseline: the textbook loop — for each object, ``PIL.Image.rotate``/``resize`` of the object and
  its mask, ``ImageEnhance.Brightness``, then ``background.paste(object, offset, mask)`` — and the
  conversion of the results to a ``float32 B×C×H×W`` tensor, which training needs either way.

Each contender runs ``--repeats`` times (alternating, after ``--warmup`` untimed runs); the median
rate is reported with its range. Printed: composites/s of both and the ratio dreamset/PIL.

Run: ``python benchmarks/cut_paste.py [--size 32] [--objects 64] [--repeats-per-object 40]
[--batch 256] [--threads 1]``.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageEnhance

import dreamset.registry
import harness
from dreamset.plugins.mixers.backgrounds import background_bank
from dreamset.toolkit.masks import object_masks
from dreamset.contracts.data import TensorImageSet


def make_objects(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``float32 n×3×size×size`` in [0,1]: a coloured disc plus a bar, on black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros((n, 3, size, size), np.float32)
    for i in range(n):
        cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.3)
        shape = ((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2) | ((np.abs(yy - cy) < 0.05) & (np.abs(xx - cx) < 0.4))
        out[i] = shape[None] * rng.uniform(0.5, 1.0, size=(3, 1, 1))
    return torch.from_numpy(out)


def dreamset_composites(objects: torch.Tensor, repeats: int, batch: int) -> int:
    mixer = dreamset.registry.create("mixer:cut-paste", repeats=repeats, backgrounds="procedural", n_backgrounds=200)
    source = TensorImageSet(objects, torch.arange(len(objects)) % 10, [str(i) for i in range(10)])
    made = 0
    for x, *_ in mixer.batches(source, None, batch, epoch=0, seed=0):
        made += len(x)
    return made


def pil_composites(objects: torch.Tensor, repeats: int, batch: int) -> int:
    size = objects.shape[-1]
    bank = background_bank("procedural", 200, tuple(objects.shape[1:]), 0)
    bank_pil = [Image.fromarray((b.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for b in bank]
    masks = object_masks(objects)
    objects_pil = [Image.fromarray((o.permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for o in objects]
    masks_pil = [Image.fromarray((m[0].numpy() * 255).astype(np.uint8), mode="L") for m in masks]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(objects) * repeats) % len(objects)
    made = 0
    for start in range(0, len(order), batch):
        out = []
        for i in order[start:start + batch]:
            scale, angle = rng.uniform(0.7, 1.0), rng.uniform(-15, 15)
            side = max(1, round(size * scale))
            obj = objects_pil[i].rotate(angle, resample=Image.BILINEAR).resize((side, side), Image.BILINEAR)
            mask = masks_pil[i].rotate(angle, resample=Image.BILINEAR).resize((side, side), Image.BILINEAR)
            obj = ImageEnhance.Brightness(obj).enhance(rng.uniform(0.8, 1.2))
            canvas = bank_pil[rng.integers(len(bank_pil))].copy()
            offset = (size - side) // 2
            dx, dy = (int(round(rng.uniform(-0.15, 0.15) * size)) for _ in range(2))
            canvas.paste(obj, (offset + dx, offset + dy), mask)
            out.append(np.asarray(canvas))
        x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div_(255)
        made += len(x)
    return made


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, warmup=0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--repeats-per-object", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    objects = make_objects(args.objects, args.size)
    ours, pil = "dreamset mixer:cut-paste (batched torch)", "per-image PIL paste loop"
    timings = harness.measure({ours: lambda: dreamset_composites(objects, args.repeats_per_object, args.batch),
                               pil: lambda: pil_composites(objects, args.repeats_per_object, args.batch)},
                              args.repeats, args.warmup)
    n = args.objects * args.repeats_per_object
    results = harness.Results("cut-and-paste composites per second", vars(args))
    section = results.section(f"cut-and-paste of {n} composites, {args.size}x{args.size} RGB, batch {args.batch}, "
                              f"{args.threads} thread(s), median of {args.repeats}")
    section.rate(ours, timings[ours], n, "composites/s", baseline=pil)
    section.rate(pil, timings[pil], n, "composites/s")
    results.emit(args)


if __name__ == "__main__":
    main()
