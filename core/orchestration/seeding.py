"""Where every random draw of a run comes from: a seed derived from ``(recipe seed, purpose, index)``.

A model's initial weights are drawn on a *fork* of torch's global random state, seeded with
:func:`derive_seed` — never from whatever the global state holds at that moment. The global state
depends on what this process did before (a reference classifier trained here moves it; one loaded
from disk does not), so drawing from it made a resumed run start its next model elsewhere than an
uninterrupted run did. With derived seeds, the reference classifier, every effective-robustness
testbed model and every arm's classifier start from the same weights whether the models before them
were trained in this process or loaded from their checkpoints.

Purposes used by dreamset (``purpose``, ``index``):

* ``"classifier"``, 0 — every arm of one recipe seed (arms of a seed share one initialisation, so a
  paired difference between arms is not an initialisation difference);
* ``"reference"``, 0 — the run's real-only reference classifier;
* ``"effective-robustness-testbed"``, ``i`` — testbed model ``i``.

Example::

    from dreamset.orchestration.seeding import build_model
    model = build_model(factory, (1, 8, 8), 10, seed=0, purpose="classifier")
"""
from __future__ import annotations

import contextlib
import hashlib

from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")


def derive_seed(seed: int, purpose: str, index: int = 0) -> int:
    """A 63-bit seed that is a pure function of ``(seed, purpose, index)`` (sha256, so nearby
    inputs give unrelated seeds and no two purposes share a stream by accident)."""
    digest = hashlib.sha256(f"dreamset\0{int(seed)}\0{purpose}\0{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextlib.contextmanager
def forked_rng(device, seed: int | None = None):
    """Run the body on a fork of torch's global random state (CPU, and ``device``'s when it is a CUDA
    device), seeded with ``seed`` when given; the caller's state is back on exit."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def seeded(device, seed: int, purpose: str, index: int = 0):
    """:func:`forked_rng` seeded with :func:`derive_seed` ``(seed, purpose, index)``."""
    return forked_rng(device, derive_seed(seed, purpose, index))


def build_model(factory, image_shape, num_classes: int, *, seed: int, purpose: str, index: int = 0):
    """``factory.build(image_shape, num_classes)`` with its initial weights drawn from
    ``derive_seed(seed, purpose, index)`` (on the CPU; the global random state is left as it was)."""
    with seeded(None, seed, purpose, index):
        return factory.build(tuple(image_shape), int(num_classes))
