"""``dataset:imagefolder`` — images in class sub-folders (the torchvision ``ImageFolder`` layout).

``root/train/<class>/*.png`` and ``root/test/<class>/*.png``; or, with ``split: auto``, one
``root/<class>/*`` tree split deterministically by ``test_fraction``. Images are decoded with Pillow,
converted explicitly to ``channels`` (1 = grey "L", 3 = "RGB"), resized to ``image_size`` if given
(all images must otherwise share one size) and returned as ``uint8 N×C×H×W`` (``get`` gives float32
[0,1]). A corrupt or truncated file is an error naming it; so is a class folder without images.

The folder may come from someone else: only regular files are read (a FIFO or device named
``x.png`` is skipped, never opened), and a symlink — class folder or file — that resolves outside
``root`` is an error unless ``allow_external_links: true``.

No paper: a file layout. Example: ``data: {dataset: {key: imagefolder, options: {root: data/pets}}}``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Dataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageFolderOptions(Options):
    root: str = Field(min_length=1, description="folder with train/ and test/ (or class folders, split: auto)")
    split: Literal["folders", "auto"] = "folders"
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    channels: Literal[1, 3] = 3
    image_size: int | None = Field(default=None, ge=1, le=4096, description="resize to image_size×image_size")
    seed: int = Field(default=0, ge=0)
    allow_external_links: bool = Field(default=False, description="follow symlinks that lead outside root")


def _inside(path: Path, root: Path | None) -> Path:
    """``path``, or an error when it is a symlink resolving outside ``root`` (``None``: allowed)."""
    if root is not None and path.is_symlink() and not path.resolve().is_relative_to(root):
        raise BadInputError(f"{path}: a symlink leading outside {root} (to {path.resolve()}); "
                            f"set allow_external_links: true to follow it")
    return path


def _class_folders(folder: Path, root: Path | None = None) -> list[Path]:
    if not folder.is_dir():
        raise BadInputError(f"{folder}: image folder not found (expected one sub-folder per class)")
    classes = sorted(_inside(p, root) for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise BadInputError(f"{folder}: no class sub-folders")
    return classes


@register(description="class sub-folders of images")
class ImageFolderDataset(Dataset):
    """Images from class sub-folders, decoded with Pillow."""

    key = "dataset:imagefolder"

    Options = ImageFolderOptions

    def _read(self, folder: Path, class_names: list[str] | None = None):
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        root = None if self.options.allow_external_links else Path(self.options.root).expanduser().resolve()
        classes = _class_folders(folder, root)
        names = [p.name for p in classes]
        if class_names is not None and names != class_names:
            raise BadInputError(f"{folder}: class folders {names} differ from the training split's {class_names}")
        mode = "L" if self.options.channels == 1 else "RGB"
        images, labels, shape = [], [], None
        for label, class_dir in enumerate(classes):
            files = sorted(_inside(p, root) for p in class_dir.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())  # regular files only (no FIFO)
            if not files:
                raise BadInputError(f"{class_dir}: class folder has no images")
            for file in files:
                try:
                    with Image.open(file) as image:
                        image = image.convert(mode)
                        if self.options.image_size:
                            image = image.resize((self.options.image_size,) * 2, Image.BILINEAR)
                        array = np.asarray(image, dtype=np.uint8)
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                    raise BadInputError(f"{file}: cannot decode image ({type(exc).__name__}: {exc})") from None
                array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
                if shape is None:
                    shape = array.shape
                elif array.shape != shape:
                    raise BadInputError(f"{file}: size {array.shape[1:]} differs from {shape[1:]}; set image_size to resize")
                images.append(array)
                labels.append(label)
        return np.stack(images), np.asarray(labels, dtype=np.int64), names

    def load(self, split: str):
        import numpy as np
        import torch

        from dreamset.contracts.data import TensorImageSet

        if split not in ("train", "test"):
            raise BadInputError(f"dataset:imagefolder: split must be 'train' or 'test', got {split!r}")
        root = Path(self.options.root).expanduser()
        if self.options.split == "folders":
            train_names = [p.name for p in _class_folders(root / "train")]
            images, labels, names = self._read(root / split, None if split == "train" else train_names)
        else:
            images, labels, names = self._read(root)
            order = np.random.default_rng(self.options.seed).permutation(len(labels))
            n_test = max(1, int(round(len(labels) * self.options.test_fraction)))
            idx = np.sort(order[:n_test] if split == "test" else order[n_test:])
            images, labels = images[idx], labels[idx]
        return TensorImageSet(torch.from_numpy(images), torch.from_numpy(labels), names, name=f"{root.name}/{split}")
