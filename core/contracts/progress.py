"""Progress bars, for code that may run with or without a console (library use, tests)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def progress(services: Any, description: str, total: int | None) -> Iterator[Any]:
    """``services.progress(...)`` (:class:`dreamset.contracts.inputs.Services`, or an old run context), or a
    silent ``advance`` when there is none (library use) or a stand-in without ``progress``."""
    if services is None or not hasattr(services, "progress"):
        yield lambda n=1: None
    else:
        with services.progress(description, total) as advance:
            yield advance


@contextlib.contextmanager
def progress_bar(console: Any, description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar on ``console`` (none: silent); yields ``advance(n=1)``."""
    if console is None:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
