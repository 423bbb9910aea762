"""``mixer:ratio`` — every batch holds a fixed fraction of real samples.

The mixing used by the papers dreamset reproduces: 0.5 real / 0.5 generated in Sehwag et al.
(ICLR 2022, "Robust Learning Meets Generative Models"), 0.3 real / 0.7 generated in Gowal et al.
(2021, "Improving Robustness using Generated Data") and Wang et al. (2023, DM-Improves-AT).

A batch of ``B`` holds ``round(real_fraction·B)`` real samples and the rest synthetic. One epoch is
one pass over the real set without replacement (``ceil(N_real / n_real)`` batches; the last batch may
be short) — or over the synthetic set when the arm has no real data — unless ``epoch_steps`` fixes the
number of batches per epoch: then real samples too come from successive permutations (full batches
only), so a real-only arm and a real+synthetic arm can take the same optimizer steps (compute-matched
arms: set the same ``epoch_steps`` on both). Synthetic samples are drawn
without replacement through a fresh permutation each time the synthetic set is exhausted, or with
replacement (``with_replacement: true``). Everything is a deterministic function of ``(seed, epoch)``.

Several synthetic sources (Bartoldson et al. 2024 mix three generators): when the synthetic set is a
:class:`~dreamset.orchestration.sources.MixedSource` with ``proportions`` (an arm's ``synthetic: {ddpm: 0.7, gan:
0.3}`` or a list of sources), the real fraction is kept and the synthetic share of every batch is split
across the sources by those proportions — the counts of a batch are the proportions times its
synthetic share, rounded so that the running totals stay within one image of exact — each source
drawn through its own stream (with or without replacement as above)::

    arms:
      real+mix:
        synthetic: {ddpm: 0.5, gan: 0.25, vae: 0.25}
        mixer: {key: ratio, options: {real_fraction: 0.3}}   # 30% real, 35% ddpm, 17.5% gan, 17.5% vae
Reads go through ``ImageSource.get``, so the memory-mapped store is never loaded whole.
Yields ``(float32 B×C×H×W in [0,1], int64 B)``.
"""
from __future__ import annotations

import math

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Mixer
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.mixers import epoch_generator

torch = lazy_module("torch")


class RatioOptions(Options):
    real_fraction: float = Field(default=0.5, ge=0, le=1, description="fraction of each batch that is real")
    with_replacement: bool = Field(default=False, description="draw synthetic samples with replacement")
    epoch_steps: int | None = Field(default=None, ge=1, le=100_000_000,
                                    description="batches per epoch; None = one pass over the real (else synthetic) set")


@register(description="fixed real:synthetic ratio per batch")
class RatioMixer(Mixer):
    """Batches with a fixed real : synthetic ratio."""

    key = "mixer:ratio"

    Options = RatioOptions

    def _counts(self, real, synthetic, batch_size: int) -> tuple[int, int]:
        fraction = self.options.real_fraction
        if real is None or len(real) == 0:
            fraction = 0.0
        if synthetic is None or len(synthetic) == 0:
            fraction = 1.0
        if (real is None or len(real) == 0) and (synthetic is None or len(synthetic) == 0):
            raise BadInputError("mixer:ratio: neither real nor synthetic data to train on")
        n_real = int(round(fraction * batch_size))
        if fraction > 0 and n_real == 0:
            n_real = 1
        if fraction < 1 and n_real == batch_size:
            n_real = batch_size - 1
        return n_real, batch_size - n_real

    def steps_per_epoch(self, real, synthetic, batch_size: int) -> int:
        n_real, n_syn = self._counts(real, synthetic, batch_size)
        if self.options.epoch_steps is not None:
            return self.options.epoch_steps
        if n_real > 0:
            return math.ceil(len(real) / n_real)
        return math.ceil(len(synthetic) / n_syn)

    def composition(self, real, synthetic, batch_size: int) -> tuple[float, float]:
        n_real, _ = self._counts(real, synthetic, batch_size)
        return n_real / batch_size, 1 - n_real / batch_size

    def batches(self, real, synthetic, batch_size: int, epoch: int, seed: int):
        n_real, n_syn = self._counts(real, synthetic, batch_size)
        generator = epoch_generator(seed, epoch)
        steps = self.steps_per_epoch(real, synthetic, batch_size)
        fixed = self.options.epoch_steps is not None
        real_order = torch.randperm(len(real), generator=generator) if n_real and not fixed else None
        real_stream = _IndexStream(len(real), generator, False) if n_real and fixed else None
        syn_stream = None
        if n_syn:
            proportions = getattr(synthetic, "proportions", None)
            syn_stream = (_SourceStreams(synthetic, proportions, generator, self.options.with_replacement)
                          if proportions and len(proportions) > 1
                          else _IndexStream(len(synthetic), generator, self.options.with_replacement))
        for step in range(steps):
            xs, ys = [], []
            if n_real:
                idx = real_stream.take(n_real) if fixed else real_order[step * n_real:(step + 1) * n_real]
                x, y = real.get(idx)
                xs.append(x)
                ys.append(y)
            if n_syn:
                # a short last real batch keeps the ratio
                count = n_syn if not n_real else max(1, round(n_syn * len(ys[0]) / n_real))
                x, y = synthetic.get(syn_stream.take(count))
                xs.append(x)
                ys.append(y)
            yield torch.cat(xs), torch.cat(ys)


class _IndexStream:
    """Indices into a source: successive permutations (without replacement) or uniform draws."""

    def __init__(self, n: int, generator, with_replacement: bool) -> None:
        self.n, self.generator, self.with_replacement = n, generator, with_replacement
        self.order = torch.randperm(n, generator=generator)
        self.position = 0

    def take(self, count: int):
        if self.with_replacement:
            return torch.randint(0, self.n, (count,), generator=self.generator)
        out = []
        while count > 0:
            if self.position == self.n:
                self.order = torch.randperm(self.n, generator=self.generator)
                self.position = 0
            chunk = self.order[self.position:self.position + count]
            self.position += len(chunk)
            count -= len(chunk)
            out.append(chunk)
        return torch.cat(out)


class _SourceStreams:
    """Rows of a mixed synthetic set drawn source by source at fixed proportions: each ``take(n)``
    gives every source its share of ``n``, rounded so that the running totals stay within one row of
    ``proportion × rows taken so far`` (largest remainder first, ties in source order)."""

    def __init__(self, synthetic, proportions: dict[str, float], generator, with_replacement: bool) -> None:
        self.names = list(proportions)
        self.weights = [proportions[name] for name in self.names]
        self.rows = [synthetic.rows_of(name) for name in self.names]
        self.streams = [_IndexStream(len(rows), generator, with_replacement) for rows in self.rows]
        self.taken = [0] * len(self.names)
        self.total = 0

    def take(self, count: int):
        self.total += count
        owed = [w * self.total - t for w, t in zip(self.weights, self.taken)]
        counts = [max(0, math.floor(o)) for o in owed]
        left = count - sum(counts)
        for i in sorted(range(len(owed)), key=lambda i: counts[i] - owed[i])[:max(0, left)]:
            counts[i] += 1
        out = []
        for i, n in enumerate(counts):
            if n:
                self.taken[i] += n
                out.append(self.rows[i][self.streams[i].take(n)])
        return torch.cat(out)
