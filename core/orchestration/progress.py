"""Progress for code that may run with or without a run context (library use, tests)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def progress(context: Any, description: str, total: int | None) -> Iterator[Any]:
    """``context.progress(...)``, or a silent ``advance`` when there is no context (library use) or
    a stand-in context without ``progress``."""
    if context is None or not hasattr(context, "progress"):
        yield lambda n=1: None
    else:
        with context.progress(description, total) as advance:
            yield advance
