"""``augmentation:augmix`` — AugMix (Hendrycks, Mu, Cubuk, Zoph, Gilmer & Lakshminarayanan, 2020,
arXiv:1912.02781), torchvision ``v2.AugMix``.

``mixture_width`` chains of ``chain_depth`` operations (random depth 1–3 when ``-1``) at
``severity``, mixed with Dirichlet(``alpha``) weights and blended with the original by a
Beta(``alpha``, ``alpha``) weight. The augmentation Bansal & Grover (2023, arXiv:2302.02503) compare
generated data against under distribution shift. Only the augmentation: AugMix's Jensen–Shannon
consistency loss is not used. Per image, on ``uint8`` (as torchvision's reference recipe), returned as
``float32 C×H×W`` in [0,1]. Defaults are torchvision's (= the paper's).
Example: ``augment: {real: [{key: augmix, options: {severity: 3}}]}``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionImageAugmentation


class AugMixOptions(Options):
    severity: int = Field(default=3, ge=1, le=10, description="severity of the base operations")
    mixture_width: int = Field(default=3, ge=1, le=16, description="number of augmentation chains")
    chain_depth: int = Field(default=-1, ge=-1, le=16, description="operations per chain; -1 = random in [1, 3]")
    alpha: float = Field(default=1.0, gt=0, le=100, description="Dirichlet / Beta parameter")
    all_ops: bool = Field(default=True, description="also use the operations that overlap common corruptions")


@register(description="AugMix (Hendrycks et al. 2020; torchvision v2.AugMix)")
class AugMix(TorchvisionImageAugmentation):
    """AugMix's mixed augmentation chains."""

    key = "augmentation:augmix"

    Options = AugMixOptions
    uint8 = True

    def transform(self, image_shape):
        from torchvision.transforms import v2

        o = self.options
        return v2.AugMix(severity=o.severity, mixture_width=o.mixture_width, chain_depth=o.chain_depth,
                         alpha=o.alpha, all_ops=o.all_ops)
