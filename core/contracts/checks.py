"""What a component's output must be, written once: the conformance suite (:mod:`dreamset.conformance`)
asserts these on its toy inputs, and every run checks them on every output it receives
(:mod:`dreamset.orchestration.guards`, docs/reliability.md). Each function returns ``None`` when the
output keeps the contract, else one short phrase saying what is wrong; the caller names the component
and where it ran. The checks cost a few reductions over tensors the component already produced (no
extra forward pass): cheap enough to stay on (``report.json`` ``timings.contract_guards``).

Importing this module does not import torch.
"""
from __future__ import annotations

import math
from typing import Any

#: slack for float round-off in the threat-model check (absolute, plus ``RELATIVE_TOLERANCE × eps``)
LINF_TOLERANCE = 1e-6
L2_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-6


def attack_output_problem(x, x_adv, eps: float | None = None, norm: str = "linf") -> str | None:
    """An attacker's ``x_adv`` for images ``x``: a tensor of ``x``'s shape, dtype and device, finite,
    in [0,1], and (when ``eps`` is not ``None``) within the ``norm`` ball of radius ``eps`` around
    ``x`` (``"linf"`` or ``"l2"``, per image; another norm is not checked)."""
    import torch

    if not isinstance(x_adv, torch.Tensor):
        return f"attack must return a tensor, got {type(x_adv).__name__}"
    if x_adv.shape != x.shape or x_adv.dtype != x.dtype or x_adv.device != x.device:
        return f"returned {x_adv.dtype} {tuple(x_adv.shape)} on {x_adv.device} for {x.dtype} {tuple(x.shape)} on {x.device}"
    if not x.numel():
        return None
    x_adv = x_adv.detach()
    low, high = (float(v) for v in torch.stack(torch.aminmax(x_adv)).tolist())  # one pass, NaN propagates
    if not (math.isfinite(low) and math.isfinite(high)):
        return "non-finite values"
    if low < 0.0 or high > 1.0:
        return f"values outside [0,1] (min {low:.6g}, max {high:.6g})"
    if eps is None or norm not in ("linf", "l2"):
        return None
    delta = (x_adv - x.detach()).flatten(1)
    if norm == "l2":
        size, slack, name = float(delta.norm(dim=1).max()), L2_TOLERANCE, "L2"
    else:
        size, slack, name = float(delta.abs().max()), LINF_TOLERANCE, "L-inf"
    if size > eps + slack + RELATIVE_TOLERANCE * eps:
        return f"{name} perturbation {size:.6g} > eps {eps:.6g}"
    return None


def loss_problem(loss) -> str | None:
    """An objective's loss: a finite 0-dim floating-point tensor."""
    import torch

    if not (isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.is_floating_point()):
        return (f"loss must be a 0-dim floating-point tensor, got {type(loss).__name__} "
                f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}".rstrip())
    value = float(loss.detach())
    if not math.isfinite(value):
        return f"non-finite loss {value} (a bug in the objective, or a diverging run: lower train.lr)"
    return None


def selection_problem(selection, size: int) -> str | None:
    """A sampler's :class:`~dreamset.contracts.interfaces.Selection` over a set of ``size`` samples:
    ``indices`` a 1-d array of distinct integers in ``[0, size)``; ``scores``, when given, one
    number per sample of the set (``size`` of them, chosen or not)."""
    import numpy as np

    indices, scores = getattr(selection, "indices", None), getattr(selection, "scores", None)
    if indices is None:
        return f"select must return a Selection with indices, got {type(selection).__name__}"
    indices = np.asarray(indices)
    if indices.ndim != 1:
        return f"indices must be 1-d, got shape {indices.shape}"
    if len(indices) and not (np.issubdtype(indices.dtype, np.integer) and indices.dtype != np.bool_):
        return f"indices must be integers, got {indices.dtype}"
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= size):
        return f"indices must lie in [0, {size}), got {int(indices.min())}..{int(indices.max())}"
    if len(np.unique(indices)) != len(indices):
        return f"duplicate indices ({len(indices) - len(np.unique(indices))} repeated)"
    if scores is not None:
        scores = np.asarray(scores)
        if scores.ndim != 1 or len(scores) != size:
            return f"scores must have one entry per synthetic sample ({size}), got shape {scores.shape}"
        if not np.issubdtype(scores.dtype, np.number):
            return f"scores must be numbers, got {scores.dtype}"
    return None


def json_problem(value: Any, path: str = "") -> str | None:
    """Where ``value`` is not plain, strict JSON (what ``json.dumps(value, allow_nan=False)`` writes
    and reads back alike): the path and what is there — a tensor, a numpy scalar, NaN, infinity."""
    if value is None or isinstance(value, (str, int)):  # bool is an int; numpy's int64 is not
        return None
    if isinstance(value, float):  # numpy's float64 is a float and json writes it as one
        return None if math.isfinite(value) else f"{value} at {path or 'the top'} (NaN and infinity are not JSON)"
    if isinstance(value, (list, tuple)):
        return next((p for i, item in enumerate(value) if (p := json_problem(item, f"{path}[{i}]"))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"key {key!r} ({type(key).__name__}) at {path or 'the top'}: keys must be strings"
            problem = json_problem(item, f"{path}.{key}" if path else key)
            if problem:
                return problem
        return None
    return f"a {type(value).__module__}.{type(value).__name__} at {path or 'the top'} (not plain JSON: convert with float()/int()/.tolist())"


def metric_result_problem(result: Any, *, require_dict: bool = True) -> str | None:
    """A metric's result: plain strict JSON (:func:`json_problem`); a non-empty dict (``require_dict``:
    what the contract asks; a run also stores a 0.1 metric's bare number); and a top-level value that
    is ``None`` — the metric could not compute it — names its reason in ``reasons``:
    ``{"fid": None, "reasons": {"fid": "fewer than 2 synthetic images"}}`` (docs/kinds/metric.md)."""
    if require_dict and not (isinstance(result, dict) and result):
        return f"compute() must return a non-empty dict, got {type(result).__name__} {result!r:.60}"
    problem = json_problem(result)
    if problem or not isinstance(result, dict):
        return problem
    reasons = result.get("reasons", {})
    if not isinstance(reasons, dict) or not all(isinstance(v, str) and v for v in reasons.values()):
        return "reasons must map a value's name to a non-empty string"
    silent = [key for key, value in result.items() if value is None and key not in reasons]
    if silent:
        return f"{', '.join(map(repr, silent))} is None without a reason (add reasons: {{{silent[0]!r}: 'why'}})"
    return None
