"""``dataset:npz`` — labelled images from ``.npz`` files with ``image`` and ``label`` arrays.

The format of the generated sets released with "Better Diffusion Models Further Improve Adversarial
Training" (Wang et al., 2023, DM-Improves-AT) and Rebuffi et al. (2021): ``image`` ``uint8 N×H×W×C``,
``label`` integer ``N``. ``N×C×H×W`` (C ∈ {1,3}) and grey ``N×H×W`` are accepted too; float images
must lie in [0,1]. ``path`` is the training file; ``test_path`` an optional test file, otherwise a
deterministic ``test_fraction`` of ``path`` is held out. Returned images: ``uint8 N×C×H×W`` in memory
(``get`` gives float32 [0,1]).

Each array is read whole, so its size (from its ``.npy`` header, read without inflating anything)
must fit ``max_array_bytes``, by default a sixth of the memory available when the file is read
(:func:`dreamset.files.verify.memory_bound`): a 2.5 MB file declaring 2.56 GB of images is one line
naming the array and its size, not gigabytes of memory. Raise the option to read a larger file.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Dataset


class NpzOptions(Options):
    path: str = Field(min_length=1, description=".npz with image/label arrays (training split)")
    test_path: str | None = Field(default=None, description=".npz for the test split")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="held out of `path` when no test_path")
    class_names: list[str] | None = Field(default=None, description="default: '0'..'K-1'")
    seed: int = Field(default=0, ge=0)
    max_array_bytes: int | None = Field(default=None, ge=1, description="largest array read into memory "
                                        "(default: a sixth of the available memory; raise it to read a larger file)")


def read_npz_images(path: Path, max_bytes: int | None = None):
    """``(images uint8|float32 N×C×H×W, labels int64 N)`` from an ``image``/``label`` .npz; one-line
    errors name the file and key. An array larger than ``max_bytes`` (default
    :func:`dreamset.files.verify.memory_bound`) is refused before it is read."""
    import numpy as np

    if not path.is_file():
        raise BadInputError(f"{path}: .npz file not found (give the path to a file with 'image' and 'label' arrays)")
    import zipfile

    from dreamset.files.verify import check_npz_members

    try:
        with zipfile.ZipFile(path) as zf:  # sizes and dtypes checked before any member is inflated
            check_npz_members(zf, path, bound=max_bytes, hint="; raise dataset:npz's max_array_bytes to read it anyway")
        archive = np.load(path, allow_pickle=False)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc})") from None
    with archive:
        for key in ("image", "label"):
            if key not in archive.files:
                raise BadInputError(f"{path}: missing array '{key}' (found {', '.join(archive.files) or 'none'})")
        images, labels = archive["image"], archive["label"]
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    elif not (images.ndim == 4 and images.shape[1] in (1, 3)):
        raise BadInputError(f"{path}: 'image' must be N×H×W×C, N×C×H×W or N×H×W with C in (1, 3), got shape {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise BadInputError(f"{path}: 'label' must have shape ({images.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise BadInputError(f"{path}: 'label' must be integers, got {labels.dtype}")
    if images.dtype != np.uint8:
        images = images.astype(np.float32)
        if np.isnan(images).any() or images.min() < 0 or images.max() > 1:
            raise BadInputError(f"{path}: float 'image' values must be in [0,1] without NaN")
    if len(labels) and labels.min() < 0:
        raise BadInputError(f"{path}: 'label' has negative values")
    return np.ascontiguousarray(images), labels.astype(np.int64)


@register(description=".npz with image/label arrays (DM-Improves-AT format)")
class NpzDataset(Dataset):
    """Images and labels from ``image``/``label`` .npz files."""

    key = "dataset:npz"

    Options = NpzOptions

    def load(self, split: str):
        import numpy as np
        import torch

        from dreamset.contracts.data import TensorImageSet

        if split not in ("train", "test"):
            raise BadInputError(f"dataset:npz: split must be 'train' or 'test', got {split!r}")
        path = Path(self.options.path).expanduser()
        bound = self.options.max_array_bytes
        if self.options.test_path is not None:
            images, labels = read_npz_images(Path(self.options.test_path).expanduser() if split == "test" else path, bound)
        else:
            images, labels = read_npz_images(path, bound)
            order = np.random.default_rng(self.options.seed).permutation(len(labels))
            n_test = max(1, int(round(len(labels) * self.options.test_fraction)))
            idx = np.sort(order[:n_test] if split == "test" else order[n_test:])
            images, labels = images[idx], labels[idx]
        names = self.options.class_names
        num_classes = int(labels.max()) + 1 if len(labels) else 0
        if names is None:
            names = [str(i) for i in range(num_classes)]
        elif num_classes > len(names):
            raise BadInputError(f"dataset:npz.class_names: {len(names)} names but labels go up to {num_classes - 1}")
        return TensorImageSet(torch.from_numpy(images), torch.from_numpy(labels), names, name=f"{path.name}/{split}")
