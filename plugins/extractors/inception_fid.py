"""``extractor:inception-fid`` — the Inception-v3 network of published FIDs (Heusel et al. 2017,
arXiv:1706.08500): TensorFlow's 2015-12-05 Inception graph as ported to PyTorch by pytorch-fid
(Seitzer, https://github.com/mseitzer/pytorch-fid) and torch-fidelity (Obukhov et al.), pool3
features, ``D = 2048``. Not torchvision's Inception-v3 (different weights and blocks): only this
network gives FIDs comparable with papers.

The network definition is pytorch-fid's own (``pytorch_fid.inception.fid_inception_v3``: reused,
not re-typed); the weights come from a local file, never downloaded. The file is
``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release; torch-fidelity's
``weights-inception-2015-12-05-6726825d.pth`` is the same tensors), looked up in order: the
``weights`` option, the ``DREAMSET_INCEPTION_WEIGHTS`` environment variable, then
``$TORCH_HOME/hub/checkpoints/`` (where pytorch-fid caches it after its own first download).

Preprocessing (``preprocessing`` option), both reproducing a reference implementation exactly:

- ``pytorch-fid`` (default): grey images replicated to 3 channels; bilinear resize to 299×299
  (``F.interpolate``, ``align_corners=False``); range [0,1] -> [-1,1] (``2x − 1``).
- ``torch-fidelity``: images quantised to uint8 (``round(255·x)``), TensorFlow-1-style bilinear
  resize (torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``; needs ``pip install
  torch-fidelity``), range ``(u − 128) / 128`` — torch-fidelity's FID to ~1e-3 on the same images.

Input ``float32 B×C×H×W`` in [0,1], ``C`` ∈ {1, 3}; output ``float32 B×2048``.
Example: ``{key: fid, options: {extractor: {key: extractor:inception-fid, options: {weights: /data/pt_inception-2015-12-05-6726825d.pth}}}}``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Extractor

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
ENV = "DREAMSET_INCEPTION_WEIGHTS"


def find_weights(weights: str | None) -> Path:
    """The local Inception weights file (option, then ``DREAMSET_INCEPTION_WEIGHTS``, then the torch
    hub cache); a one-line error saying how to provide it when there is none."""
    if weights:
        candidates = [Path(weights).expanduser()]
    elif os.environ.get(ENV):
        candidates = [Path(os.environ[ENV]).expanduser()]
    else:
        torch_home = Path(os.environ.get("TORCH_HOME", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"))
        candidates = [torch_home / "hub" / "checkpoints" / WEIGHTS_FILE]
    for path in candidates:
        if path.is_file():
            return path
    raise BadInputError(
        f"extractor:inception-fid: no weights file at {candidates[0]} (nothing is downloaded): download "
        f"{WEIGHTS_URL} on a connected machine and give its path as the 'weights' option or in {ENV}")


class InceptionFIDOptions(Options):
    weights: str | None = Field(default=None, min_length=1,
                                description=f"local {WEIGHTS_FILE} (default: ${ENV}, then the torch hub cache)")
    preprocessing: Literal["pytorch-fid", "torch-fidelity"] = Field(
        default="pytorch-fid", description="resize/range convention of the implementation to reproduce")


@register(description="the TF-ported FID Inception-v3 of pytorch-fid/torch-fidelity, local weights (Heusel et al. 2017)")
class InceptionFIDExtractor(Extractor):
    """pool3 features (2048-d) of the TF-ported FID Inception network."""

    key = "extractor:inception-fid"

    Options = InceptionFIDOptions

    def prepare(self, services) -> None:
        from unittest import mock

        import torch
        from pytorch_fid import inception

        path = find_weights(self.options.weights)
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        # fid_inception_v3 builds the network and loads its weights through load_state_dict_from_url:
        # hand it the local file's tensors instead (strict load_state_dict: a wrong file is an error)
        try:
            with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state):
                network = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=False,
                                                normalize_input=False, use_fid_inception=True)
        except RuntimeError as exc:
            raise BadInputError(f"extractor:inception-fid: {path} is not the FID Inception state dict: {str(exc)[:200]}") from None
        self._device = getattr(services, "device", None) or torch.device("cpu")
        self._network = network.eval().to(self._device)
        self._path = path

    def _preprocess(self, x):
        import torch
        import torch.nn.functional as F

        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.options.preprocessing == "pytorch-fid":
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return 2 * x - 1
        try:
            from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
        except ImportError:
            raise BadInputError("extractor:inception-fid: preprocessing 'torch-fidelity' needs `pip install torch-fidelity`") from None
        x = torch.round(x * 255)
        x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        return (x - 128) / 128

    def embed(self, images):
        import torch

        with torch.no_grad():
            x = self._preprocess(images.to(self._device, torch.float32))
            return self._network(x)[0].flatten(1).float().cpu()

    @property
    def preprocessing(self) -> dict:
        if self.options.preprocessing == "pytorch-fid":
            return {"convention": "pytorch-fid", "channels": "grey replicated to 3", "resize": "bilinear to 299x299, align_corners=False",
                    "range": "[0,1] -> [-1,1]"}
        return {"convention": "torch-fidelity", "channels": "grey replicated to 3", "quantise": "round(255 x)",
                "resize": "TF1 bilinear to 299x299", "range": "(u - 128) / 128"}

    def cache_identity(self) -> dict:
        from dreamset.toolkit.features import file_identity

        return {"key": "extractor:inception-fid", "weights": file_identity(find_weights(self.options.weights))}
