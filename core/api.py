"""The Python API: run a recipe and read a run folder from a notebook or a script.

    import dreamset

    report = dreamset.run("digits-robust", out="runs/demo", overrides={"train.epochs": 3})
    report.arms["real+synthetic"]["robust_accuracy"]
    report.comparisons                       # paired differences with 95% intervals
    report.pair_comparisons                  # the same for the recipe's evaluate.pairs
    report.curves("real")                    # per-epoch loss / accuracies of seed 0
    report                                   # in Jupyter: the headline block of report.html

    old = dreamset.load_run("runs/demo")     # the same object, from report.json

``dreamset.run`` is ``dreamset run`` without the terminal: same validation (a bad recipe raises
:class:`dreamset.BadInputError` before anything is written), same run folder, same report.json.
Importing ``dreamset`` does not import torch; calling :func:`run` does.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.progress import DEFAULT_EVERY
from dreamset.report.tables import arm_steps


class RunReport(Mapping):
    """A run's ``report.json`` as a read-only mapping, with the run folder and a few shortcuts."""

    def __init__(self, data: dict[str, Any], folder: Path) -> None:
        self._data = data
        self.folder = Path(folder)

    # -- the mapping: report["arms"], dict(report), json.dumps(dict(report)) ----------------------
    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # -- shortcuts -------------------------------------------------------------------------------
    @property
    def recipe(self) -> dict[str, Any]:
        return self._data.get("recipe") or {}

    @property
    def arms(self) -> dict[str, Any]:
        return self._data.get("arms") or {}

    @property
    def metrics(self) -> dict[str, Any]:
        return self._data.get("metrics") or {}

    @property
    def comparisons(self) -> dict[str, Any]:
        return self._data.get("comparisons") or {}

    @property
    def pair_comparisons(self) -> list[dict[str, Any]]:
        """The recipe's ``evaluate.pairs``: one entry per ``[arm, baseline]`` (``arm``, ``baseline``, quantities)."""
        return self._data.get("pair_comparisons") or []

    @property
    def html_path(self) -> Path:
        return self.folder / "report.html"

    def curves(self, arm: str, seed: int | str | None = None) -> list[dict[str, Any]]:
        """The training curve of ``arm`` (one dict per epoch) for ``seed`` (default: the first)."""
        if arm not in self.arms:
            raise KeyError(f"no arm {arm!r}; arms are {', '.join(self.arms)}")
        per_seed = self.arms[arm].get("per_seed") or {}
        key = str(seed) if seed is not None else next(iter(per_seed), None)
        return list(((per_seed.get(key) or {}).get("training") or {}).get("curves") or [])

    def table(self) -> list[dict[str, Any]]:
        """One row per arm: clean and robust accuracy (mean and std over seeds), optimizer steps;
        ``pandas.DataFrame(report.table())`` makes it a frame."""
        rows = []
        for name, arm in self.arms.items():
            rows.append({"arm": name, "clean_accuracy": arm.get("clean_accuracy"),
                         "clean_accuracy_std": arm.get("clean_accuracy_std"),
                         "robust_accuracy": arm.get("robust_accuracy"),
                         "robust_accuracy_std": arm.get("robust_accuracy_std"),
                         "optimizer_steps": arm_steps(arm)})
        return rows

    def __repr__(self) -> str:
        arms = ", ".join(f"{r['arm']} {100 * r['clean_accuracy']:.1f}/{100 * (r['robust_accuracy'] or 0):.1f}"
                         for r in self.table() if isinstance(r["clean_accuracy"], (int, float)))
        return f"<RunReport {self.recipe.get('name', '?')} at {self.folder}: clean/robust % {arms}>"

    def _repr_html_(self) -> str:
        from dreamset.report.html import render_headline

        return render_headline(self._data)


def _recipe_data(recipe: str | Path | Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    from dreamset.orchestration.recipe import find_recipe, read_recipe_file

    if isinstance(recipe, Mapping):
        return copy.deepcopy(dict(recipe)), "recipe"
    path = find_recipe(None if recipe is None else str(recipe))
    return copy.deepcopy(read_recipe_file(path)), str(path)


def _override_texts(overrides: Mapping[str, Any] | list[str] | tuple[str, ...] | None) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, Mapping):  # {"train.epochs": 3} -> "train.epochs=3" (values as YAML/JSON)
        return [f"{key}={json.dumps(value) if not isinstance(value, str) else value}" for key, value in overrides.items()]
    return [str(item) for item in overrides]


def run(recipe: str | Path | Mapping[str, Any] | None = None, out: str | Path | None = None,
        overrides: Mapping[str, Any] | list[str] | None = None, console=None, progress_every: float = DEFAULT_EVERY) -> RunReport:
    """Run ``recipe`` — a shipped recipe name, a YAML/TOML path, a dict, or ``None`` for the default
    recipe — into ``out`` (default ``runs/<recipe name>``; re-running into it resumes), after
    applying ``overrides`` (``{"train.epochs": 3}`` or ``["train.epochs=3"]``, as ``--set``).
    Returns the :class:`RunReport`. Progress bars show when ``console`` (a rich Console) is a
    terminal; otherwise progress is logged as plain lines at most every ``progress_every`` seconds
    (0: none; ``dreamset run --progress-every``). Log lines go wherever the ``dreamset`` logger's
    handlers send them (and to the run folder's ``run.log``)."""
    import dreamset.registry as registry_module
    from dreamset.orchestration.pipeline import run_recipe
    from dreamset.orchestration.recipe import apply_override, parse_override, validate_recipe

    data, source = _recipe_data(recipe)
    for text in _override_texts(overrides):
        parts, value = parse_override(text)
        apply_override(data, parts, value)
    model = validate_recipe(data, registry_module.get_registry(), source=source)
    folder = Path(out) if out is not None else Path("runs") / model.name
    report = run_recipe(model, data, folder, console=console, progress_every=progress_every)
    return RunReport(report, folder)


def load_run(folder: str | Path) -> RunReport:
    """The :class:`RunReport` of a finished run folder (its ``report.json``)."""
    folder = Path(folder)
    path = folder / "report.json"
    if not path.is_file():
        raise BadInputError(f"{path}: no report.json in this run folder")
    try:
        return RunReport(json.loads(path.read_text()), folder)
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON ({exc})") from None
