"""Background banks for cut-and-paste mixers: ``float32 N×C×H×W`` in [0,1], deterministic given seed.

* ``plain`` — constant black (the naive baseline: objects on an empty backdrop).
* ``procedural`` — random textures made in code: a sum of random sinusoidal gratings plus smoothed
  noise, contrast-normalised (no files needed).
* ``natural`` — random crops of the photographs scikit-learn ships (``load_sample_images``:
  china.jpg, flower.jpg), resized.
* ``folder:PATH`` — random crops of the images in a folder.

The bank is built in memory (it is drawn from at random for every composite), so its size is capped
(:data:`BANK_LIMIT_BYTES`, 2 GiB) with a one-line error naming ``n_backgrounds``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamset.contracts.errors import BadInputError


def _procedural(n: int, shape, generator: torch.Generator) -> torch.Tensor:
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = torch.zeros(n, c, h, w)
    for _ in range(3):  # gratings of random frequency, angle and phase per image and channel
        freq = 1 + 4 * torch.rand(n, c, 1, 1, generator=generator)
        angle = math.pi * torch.rand(n, c, 1, 1, generator=generator)
        phase = 2 * math.pi * torch.rand(n, c, 1, 1, generator=generator)
        out += torch.sin(2 * math.pi * freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
    noise = torch.rand(n, c, max(2, h // 2), max(2, w // 2), generator=generator)
    out = out / 3 + F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False) - 0.5
    low = out.amin(dim=(2, 3), keepdim=True)
    high = out.amax(dim=(2, 3), keepdim=True)
    return (out - low) / (high - low).clamp_min(1e-6)


def _crops(pictures: list[np.ndarray], n: int, shape, generator: torch.Generator) -> torch.Tensor:
    c, h, w = shape
    out = torch.zeros(n, c, h, w)
    for i in range(n):
        picture = pictures[int(torch.randint(len(pictures), (1,), generator=generator))]
        ph, pw = picture.shape[:2]
        size = int(torch.randint(max(8, min(ph, pw) // 8), min(ph, pw) + 1, (1,), generator=generator))
        top = int(torch.randint(0, ph - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, pw - size + 1, (1,), generator=generator))
        crop = torch.from_numpy(picture[top:top + size, left:left + size].astype(np.float32) / 255).permute(2, 0, 1)
        crop = F.interpolate(crop[None], size=(h, w), mode="area")[0]
        out[i] = crop.mean(0, keepdim=True).expand(c, h, w) if c == 1 else crop[:c]
    return out


def _folder_pictures(folder: Path) -> list[np.ndarray]:
    from PIL import Image

    if not folder.is_dir():
        raise BadInputError(f"backgrounds: folder {folder} not found")
    pictures = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"}:
            try:
                with Image.open(path) as image:
                    pictures.append(np.asarray(image.convert("RGB")))
            except OSError as exc:
                raise BadInputError(f"{path}: cannot decode background image ({exc})") from None
    if not pictures:
        raise BadInputError(f"backgrounds: no images in {folder}")
    return pictures


#: the bank is held in RAM (float32): at most this many bytes (2 GiB: 174,762 backgrounds of 3×32×32)
BANK_LIMIT_BYTES = 2 * 1024**3


def background_bank(kind: str, n: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """``n`` backgrounds of ``shape`` (C, H, W) from ``kind``: plain | procedural | natural | folder:PATH.
    The bank lives in memory, so ``n·C·H·W·4`` bytes may not exceed :data:`BANK_LIMIT_BYTES`."""
    need = int(n) * int(np.prod(shape)) * 4
    if need > BANK_LIMIT_BYTES:
        raise BadInputError(f"n_backgrounds: {n:,} backgrounds of {tuple(shape)} need {need / 2**30:.1f} GiB in memory; "
                            f"the bank is held in RAM and capped at {BANK_LIMIT_BYTES / 2**30:.0f} GiB: use fewer backgrounds")
    generator = torch.Generator().manual_seed(int(seed))
    if kind == "plain":
        return torch.zeros(n, *shape)
    if kind == "procedural":
        return _procedural(n, shape, generator)
    if kind == "natural":
        from sklearn.datasets import load_sample_images

        return _crops(list(load_sample_images().images), n, shape, generator)
    if kind.startswith("folder:"):
        return _crops(_folder_pictures(Path(kind[7:]).expanduser()), n, shape, generator)
    raise BadInputError(f"backgrounds: {kind!r} is not plain, procedural, natural or folder:PATH")
