"""The recipe catalogue: recipes shipped as package data in ``dreamset/registry/recipes``."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

RECIPE_SUFFIXES = (".yaml", ".yml", ".toml")
DEFAULT_RECIPE = "digits-robust"


def _recipes_dir():
    return resources.files("dreamset.registry").joinpath("recipes")


def recipe_names() -> list[str]:
    """Names of the shipped recipes (file names without suffix), sorted."""
    names = []
    for entry in _recipes_dir().iterdir():
        if entry.name.endswith(RECIPE_SUFFIXES):
            names.append(entry.name.rsplit(".", 1)[0])
    return sorted(names)


def recipe_path(name: str) -> Path | None:
    """Path of the shipped recipe ``name``, or None."""
    for suffix in RECIPE_SUFFIXES:
        entry = _recipes_dir().joinpath(name + suffix)
        try:
            if entry.is_file():
                return Path(str(entry))
        except (OSError, ValueError):  # a name no file can have (too long, a NUL byte)
            return None
    return None
