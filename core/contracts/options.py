"""The base class of every component's options model."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict


class Options(BaseModel):
    """Base for component options: unknown keys are errors (``extra="forbid"``), values are
    validated on assignment, and models are immutable once built so a component cannot silently
    change the options recorded in a run's report."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


#: prefix of the tags of discriminated unions in option/recipe models (left out of error paths)
UNION_TAG = "~"


def format_validation_error(error, prefix: str = "") -> str:
    """One line naming the first failing field path and the reason, e.g.
    ``train.epochs: Input should be greater than 0 (got -1)``. Extra errors are counted."""
    errors = error.errors()
    first = errors[0]
    # a user-chosen key (an arm name, say) may hold a newline or other control characters: quote it
    # tags of a discriminated union (``~single``) say which form was read, not where: left out
    parts = [part for part in first.get("loc", ()) if not str(part).startswith(UNION_TAG)]
    loc = ".".join(str(part) if str(part).isprintable() else repr(part) for part in parts)
    path = ".".join(p for p in (prefix, loc) if p)
    message = first.get("msg", "invalid value")
    got = first.get("input")
    if path:
        text = f"{path}: {message}"
    else:  # a model-level check: its message names the fields itself
        text = message.removeprefix("Value error, ")
    if first.get("type") not in {"missing", "extra_forbidden"} and not isinstance(got, (dict, list)):
        text += f" (got {got!r})"
    if len(errors) > 1:
        text += f" [and {len(errors) - 1} more error(s)]"
    return text


def _fraction(value):
    """``"8/255"`` -> ``0.03137...``: radii and step sizes are written as fractions of 255 in the
    robustness literature (RobustBench); numbers and other strings pass through to validation."""
    if isinstance(value, str) and "/" in value:
        from fractions import Fraction

        try:
            return float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            return value  # pydantic reports "Input should be a valid number"
    return value


#: a float that may also be given as a fraction string (``eps: 8/255``), in recipes and ``--set``
FractionFloat = Annotated[float, BeforeValidator(_fraction)]
