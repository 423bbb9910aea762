"""Evaluation: clean and robust accuracy on the test set and every shifted set, on one subset.

* **The evaluation subset** (:func:`stratified_subset`): one seeded, class-stratified subset of the
  test set, chosen once per run (``evaluate.robust_samples`` images, ``evaluate.subset_seed``) and
  used for every arm, every attacker, every shifted set (the same rows: shifted sets are copies of
  the test set in its order) and the metrics that attack (``metric:robust-accuracy``). Its indices
  are saved as ``evaluation_subset.json`` in the run folder. ``robust_samples: null`` means the
  whole test set.
* **Robust accuracy is a per-sample worst case** (:func:`worst_case_correct`): a sample counts as
  robust only if the model classifies it correctly clean *and* under every evaluation attacker
  (AutoAttack's convention, Croce & Hein 2020, arXiv:2003.01690). Every attacker runs on every sample
  of the subset, so each attacker's own accuracy (``robust_accuracy_by_attacker``, also counting only
  clean-correct samples) stays beside the worst case, which is ≤ each of them.

Accuracies are fractions in [0,1]. Inputs are ``float32 N×C×H×W`` images in [0,1] and ``int64`` labels.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Attacker, ImageSource


def largest_remainders(weights, n: int) -> np.ndarray:
    """``n`` split in proportion to ``weights`` (non-negative, not all 0) as integers: the floors of
    the shares, then one more each to the largest remainders (ties: first index first)."""
    weights = np.asarray(weights, dtype=np.float64)
    share = weights * n / weights.sum()
    take = np.floor(share).astype(int)
    for i in np.argsort(-(share - take), kind="stable")[: n - int(take.sum())]:
        take[i] += 1
    return take


def stratified_subset(labels, n: int | None, seed: int = 0, field: str = "evaluate.robust_samples") -> np.ndarray:
    """Sorted indices of a seeded, class-stratified subset of ``n`` of ``labels``: each class gets
    its proportional share of ``n`` (largest remainders; at least one image each), drawn without replacement by
    ``numpy.random.default_rng(seed)``. ``n=None`` or ``n >= len(labels)`` gives every index."""
    labels = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    total = len(labels)
    if n is None or n >= total:
        return np.arange(total, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    if n < len(classes):
        raise BadInputError(f"{field}: {n} is fewer than the {len(classes)} classes of the test set; "
                            f"a stratified subset needs at least one image per class")
    take = largest_remainders(counts, n)  # proportional shares
    while (take == 0).any():  # every class at least once: taken from the class with the most
        take[np.argmax(take)] -= 1
        take[np.flatnonzero(take == 0)[0]] += 1
    take = np.minimum(take, counts)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take)]
    missing = n - int(take.sum())  # only when a small class could not hold its share
    if missing:
        rest = np.setdiff1d(np.arange(total), np.concatenate(chosen))
        chosen.append(rng.choice(rest, size=missing, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def correct(model: torch.nn.Module, source: ImageSource, device: torch.device | str = "cpu", batch_size: int = 256,
            attacker: Attacker | None = None, local: bool = False, advance: Callable[[int], Any] | None = None) -> torch.Tensor:
    """``bool N``: whether ``model`` classifies each image of ``source`` correctly (under
    ``attacker`` when given). The model's train/eval mode is restored. ``local``: computed by this
    process alone, without the other ranks (see below), for work that only one rank does.
    ``advance(n)``: called with the number of images of each chunk done (progress).

    Chunks of ``batch_size`` images are attacked each on a fork of torch's random state seeded by
    one draw from it plus the chunk's number, so random starts do not depend on how chunks are
    shared out: under torchrun chunk ``c`` runs on rank ``c mod W`` and the flags are all-reduced
    (:func:`dreamset.orchestration.distributed.split_rows`), with the same result as one process."""
    from dreamset.orchestration.distributed import broadcast_int, split_rows
    from dreamset.orchestration.guards import checked_attack
    from dreamset.orchestration.seeding import forked_rng

    device = torch.device(device)
    draw = int(torch.randint(2**62, (1,))) if attacker is not None else 0
    base = draw if local or attacker is None else broadcast_int(draw)

    def rows(chunk: int, lo: int, hi: int) -> torch.Tensor:
        x, y = source.get(range(lo, hi))
        x, y = x.to(device), y.to(device)
        if attacker is not None:
            with forked_rng(device, base + chunk):
                x = checked_attack(attacker, model, x, y)  # its output checked on every batch
        with torch.no_grad():
            flags = model(x).argmax(dim=1) == y
        if advance is not None:
            advance(hi - lo)
        return flags

    was_training = model.training
    model.eval()
    try:
        return split_rows(len(source), batch_size, rows, local=local)
    finally:
        model.train(was_training)


def _mean(flags: torch.Tensor) -> float:
    """The fraction of ``True`` in ``flags``, exactly (a count over a count, not a float32 mean)."""
    return int(flags.sum()) / len(flags) if len(flags) else float("nan")


def accuracy(model: torch.nn.Module, source: ImageSource, device: torch.device | str = "cpu", batch_size: int = 256,
             attacker: Attacker | None = None, advance: Callable[[int], Any] | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``source``, optionally under attack (``nan`` when empty)."""
    return _mean(correct(model, source, device, batch_size, attacker, advance=advance))


def attacker_labels(attackers: Sequence[Attacker]) -> list[str]:
    """Report names of the evaluation attackers: the key, with ``#i`` where a key repeats."""
    keys = [a.key for a in attackers]
    return [k if keys.count(k) == 1 else f"{k}#{i}" for i, k in enumerate(keys)]


def worst_case_correct(model: torch.nn.Module, source: ImageSource, attackers: Sequence[Attacker],
                       device: torch.device | str = "cpu", batch_size: int = 256,
                       advance: Callable[[int], Any] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """``(clean, by_attacker, worst)`` boolean masks over ``source``: clean correctness, per attacker
    ``clean & correct under that attack``, and the per-sample worst case ``clean & every attack``."""
    clean = correct(model, source, device, batch_size, advance=advance)
    by_attacker = {label: clean & correct(model, source, device, batch_size, attacker, advance=advance)
                   for label, attacker in zip(attacker_labels(attackers), attackers)}
    worst = clean.clone()
    for flags in by_attacker.values():
        worst &= flags
    return clean, by_attacker, worst


def evaluation_passes(attackers: Sequence[Attacker], real, settings, generated=None) -> int:
    """The images :func:`evaluate_classifier` passes through the model with these inputs (an image
    attacked by two attackers and checked clean counts three times): the total its ``advance`` reaches."""
    rows = real.evaluation_subset
    subset = len(real.test) if rows is None else len(rows)
    passes = 1 + len(attackers) if attackers else 0
    total = len(real.test) + passes * subset
    for source in real.shifted.values():
        total += len(source) + passes * (len(source) if rows is None else len(rows))
    generated = generated or {}
    total += sum(len(source) for source in generated.values())
    if attackers:
        total += passes * sum(len(generated[s.name]) for s in settings.sets if s.robust and s.name in generated)
    return total


def evaluate_classifier(model: torch.nn.Module, attackers: list[Attacker], real, settings, device,
                        generated=None, advance: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """One arm's evaluation on ``real`` (:class:`dreamset.contracts.inputs.RealData`) with the ``evaluate``
    ``settings``: ``clean_accuracy`` (the whole test set), ``clean_accuracy_subset``,
    ``robust_accuracy`` (worst case over ``attackers``) and ``robust_accuracy_by_attacker`` on the
    run's evaluation subset (``real.evaluation_subset``; all of the test set when unset),
    ``n_evaluated`` (its size), ``shifted`` (clean accuracy per shifted set), ``shifted_robust``
    (worst case per shifted set, same subset rows), and for ``generated`` evaluation sets (name ->
    images) ``generated`` (clean accuracy per set) and ``generated_robust`` (worst case, sets with
    ``robust: true``). ``advance(n)``: progress, in images through the model
    (:func:`evaluation_passes` in all)."""
    bs = settings.batch_size
    rows = real.evaluation_subset

    def subset(source):
        return source if rows is None else source.subset(rows)

    result: dict[str, Any] = {"clean_accuracy": accuracy(model, real.test, device, bs, advance=advance)}
    if attackers:
        clean, by_attacker, worst = worst_case_correct(model, subset(real.test), attackers, device, bs, advance)
        result.update({"clean_accuracy_subset": _mean(clean), "robust_accuracy": _mean(worst),
                       "robust_accuracy_by_attacker": {k: _mean(v) for k, v in by_attacker.items()},
                       "n_evaluated": int(len(worst))})
    result["shifted"] = {label: accuracy(model, source, device, bs, advance=advance) for label, source in real.shifted.items()}
    if attackers:
        result["shifted_robust"] = {label: _mean(worst_case_correct(model, subset(source), attackers, device, bs, advance)[2])
                                    for label, source in real.shifted.items()}
    generated = generated or {}
    if generated:  # generated evaluation sets (dreamset.orchestration.generated_sets): every image, like a shifted set
        result["generated"] = {name: accuracy(model, source, device, bs, advance=advance) for name, source in generated.items()}
        robust = [s.name for s in settings.sets if s.robust and s.name in generated]
        if attackers and robust:
            result["generated_robust"] = {name: _mean(worst_case_correct(model, generated[name], attackers, device, bs, advance)[2])
                                          for name in robust}
    return result
