"""``mixer:biregular`` — Jin & Rinard's balanced object/background pairing with confusing context
(Charles Jin and Martin Rinard, "Learning From Context-Agnostic Synthetic Data", arXiv:2005.14707, 2020;
NeurIPS 2021 as "Towards Context-Agnostic Learning Using Synthetic Data").

Each epoch draws a random **biregular bipartite graph** between the ``n_o`` objects and ``n_b``
backgrounds: every object is pasted on exactly ``d_o`` (``object_degree``) backgrounds and every
background carries exactly ``d_b = n_o·d_o / n_b`` objects, so no background co-occurs more with one
class than another and backgrounds carry no label information. ``n_o·d_o`` must be divisible by
``n_b`` and ``d_o ≤ n_b`` (else a one-line error naming the options). Built by the configuration
model (random matching of degree stubs) followed by random edge swaps that remove repeated pairs;
when the swaps cannot (dense graphs, e.g. ``object_degree = n_backgrounds``: the complete graph), by a
randomly relabelled circulant graph, so the graph is always simple.

**Superimposition** (their "confusing context"): with probability ``superimpose`` the previous
composite in the stream becomes the background of the next one; the new object's label is kept.
Yields ``(float32 B×C×H×W in [0,1], int64 B, context mask float32 B×1×H×W)``: the mask is 1 outside
the labelled object (a superimposed earlier object counts as context), for ``attacker:masked-pgd``'s
adversarial refinement of the context (Jin & Rinard's third ingredient); deterministic in ``(seed, epoch)``.
Objects are read from their source batch by batch (never all in memory); the epoch's graph holds
16 bytes per edge (``N × object_degree`` pairs of int64 indices).
"""
from __future__ import annotations

import math

from pydantic import Field

from dreamset import register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Mixer
from dreamset.plugins.mixers import CompositingOptions, compositing_inputs, epoch_generator, object_composition, object_source


class BiregularOptions(CompositingOptions):
    object_degree: int = Field(default=100, ge=1, le=10_000_000, description="backgrounds per object per epoch (d_o)")
    superimpose: float = Field(default=0.3, ge=0, le=1, description="probability the previous composite is the background")


def biregular_edges(n_objects: int, n_backgrounds: int, object_degree: int, generator):
    """``(objects, backgrounds)`` index tensors of a random simple biregular bipartite graph."""
    import torch

    total = n_objects * object_degree
    if object_degree > n_backgrounds or total % n_backgrounds:
        raise BadInputError(
            f"mixer:biregular: object_degree={object_degree} with {n_objects} objects and n_backgrounds="
            f"{n_backgrounds} has no biregular graph (need n_objects*object_degree divisible by n_backgrounds "
            f"and object_degree <= n_backgrounds)"
        )
    objects = torch.arange(n_objects).repeat_interleave(object_degree)
    backgrounds = torch.arange(n_backgrounds).repeat(total // n_backgrounds)[torch.randperm(total, generator=generator)]
    # repair repeated (object, background) pairs by swapping the background with a random other edge
    # (no attempts for the complete graph, object_degree = n_backgrounds: the circulant below is it)
    for _ in range(100 if object_degree < n_backgrounds else 0):
        keys = objects * n_backgrounds + backgrounds
        order = torch.argsort(keys, stable=True)
        sorted_keys = keys[order]
        dup = order[1:][sorted_keys[1:] == sorted_keys[:-1]]
        if len(dup) == 0:
            break
        partners = torch.randint(total, (len(dup),), generator=generator).tolist()
        for i, j in zip(dup.tolist(), partners):  # one swap at a time keeps every degree exact
            backgrounds[i], backgrounds[j] = backgrounds[j].clone(), backgrounds[i].clone()
    else:
        # dense graphs (object_degree near n_backgrounds) defeat the swaps: use a randomly relabelled
        # circulant graph instead — object i takes the d_o consecutive backgrounds from i·d_o (mod n_b),
        # simple because d_o <= n_b, and the blocks tile the cycle so every background gets d_b
        cycle = torch.randperm(n_backgrounds, generator=generator)
        slots = (torch.arange(n_objects)[:, None] * object_degree + torch.arange(object_degree)) % n_backgrounds
        rows = torch.randperm(n_objects, generator=generator)
        backgrounds = cycle[slots[rows]].flatten()
    return objects, backgrounds


@register(description="Jin & Rinard (arXiv:2005.14707) balanced pairing + superimposition")
class BiregularMixer(Mixer):
    """Balanced object/background pairing + superimposition."""

    key = "mixer:biregular"

    Options = BiregularOptions
    #: a feasible small graph for the conformance suite's 30 toy objects
    conformance_options = {"object_degree": 4, "n_backgrounds": 10}

    def steps_per_epoch(self, real, synthetic, batch_size: int) -> int:
        return math.ceil(len(object_source(real, synthetic)) * self.options.object_degree / batch_size)

    def composition(self, real, synthetic, batch_size: int) -> tuple[float, float]:
        return object_composition(real, synthetic)

    def batches(self, real, synthetic, batch_size: int, epoch: int, seed: int):
        import torch

        from dreamset.plugins.mixers.compositing import composite

        o = self.options
        fetch, labels, bank, placement = compositing_inputs(self, real, synthetic)
        generator = epoch_generator(seed, epoch)
        obj, bg = biregular_edges(len(labels), o.n_backgrounds, o.object_degree, generator)
        order = torch.randperm(len(obj), generator=generator)
        obj, bg = obj[order], bg[order]
        previous = None
        for start in range(0, len(obj), batch_size):
            o_idx, b_idx = obj[start:start + batch_size], bg[start:start + batch_size]
            images, masks = fetch(o_idx)
            x, placed = composite(images, masks, bank[b_idx], generator, placement)
            flags = torch.rand(len(o_idx), generator=generator) < o.superimpose
            for i in torch.nonzero(flags).flatten().tolist():  # a chain: each uses the one before it
                base = x[i - 1] if i > 0 else previous
                if base is None:
                    continue
                x[i : i + 1], placed[i : i + 1] = composite(images[i : i + 1], masks[i : i + 1], base[None], generator, placement)
            previous = x[-1].clone()
            yield x, labels[o_idx], 1 - placed
