"""``sampler:uniform`` — a uniform random subset of the synthetic store, optionally class-balanced.

The baseline every selection method is compared with (Sehwag et al., ICLR 2022, arXiv:2104.09425, use all — i.e.
uniformly many — generated images). Budget: ``count`` images or a ``fraction`` of the store (one of
the two; neither = all). With ``class_balanced`` the budget is split evenly over classes
(remainder to the lowest class indices); a class with too few images gives an error naming it.
Deterministic given ``seed``; indices are returned sorted (store order = read locality).
Output: a ``Selection`` of sorted unique ``int64`` indices into the store (shape ``(count,)``), no
scores. Example: ``sampler: {key: uniform, options: {fraction: 0.5, class_balanced: true}}``.
"""
from __future__ import annotations

from pydantic import Field, model_validator

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Sampler, Selection


class UniformOptions(Options):
    count: int | None = Field(default=None, ge=1, description="number of samples to keep")
    fraction: float | None = Field(default=None, gt=0, le=1, description="fraction of the store to keep")
    class_balanced: bool = False

    @model_validator(mode="after")
    def _one_budget(self):
        if self.count is not None and self.fraction is not None:
            raise ValueError("count, fraction: give one budget, not both")
        return self


def budget(n: int, count: int | None, fraction: float | None) -> int:
    """The number of samples a ``count``/``fraction`` budget keeps out of ``n``."""
    if count is not None:
        if count > n:
            raise BadInputError(f"sampler count {count} exceeds the {n} synthetic samples available")
        return count
    if fraction is not None:
        return max(1, int(round(fraction * n)))
    return n


def per_class_budgets(total: int, labels) -> dict[int, int]:
    """``total`` split evenly over the classes present in ``labels`` (numpy int array), the remainder
    to the lowest class indices."""
    import numpy as np

    present = np.unique(labels).tolist()
    base, extra = divmod(total, len(present))
    return {c: base + (1 if i < extra else 0) for i, c in enumerate(present)}


@register(description="uniform random subset (optionally class-balanced)")
class UniformSampler(Sampler):
    """Uniform random selection with an exact budget."""

    key = "sampler:uniform"

    Options = UniformOptions

    def select(self, synthetic, real, services, seed: int) -> Selection:
        import numpy as np

        n = len(synthetic)
        total = budget(n, self.options.count, self.options.fraction)
        rng = np.random.default_rng(seed)
        if not self.options.class_balanced:
            return Selection(indices=np.sort(rng.choice(n, size=total, replace=False)).astype(np.int64))
        labels = synthetic.labels.numpy()
        chosen = []
        for c, k in per_class_budgets(total, labels).items():
            members = np.flatnonzero(labels == c)
            if k > len(members):
                raise BadInputError(
                    f"sampler:uniform: class {synthetic.class_names[c]!r} has {len(members)} synthetic samples, budget needs {k}"
                )
            chosen.append(rng.choice(members, size=k, replace=False))
        return Selection(indices=np.sort(np.concatenate(chosen)).astype(np.int64))
