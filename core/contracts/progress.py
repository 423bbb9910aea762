"""Progress, for code that may run with or without a console (library use, tests, batch jobs).

One call serves every loop that takes a while: ``progress(services, description, total, unit)``
yields ``advance(n=1)``. In a terminal it draws a rich bar; when the output is not a terminal (a log
file, a scheduler's job, CI) the same call logs a plain line through the ``dreamset`` logger at most
every ``services.progress_every`` seconds (``dreamset run --progress-every``, default
:data:`DEFAULT_EVERY`; 0: none) — what, done/total with units, rate and ETA::

    12:04:31 INFO    train real (seed 0): 1,200/6,000 steps (20%), 41.2 steps/s, ETA 1m57s

A loop that ends before the first interval says nothing. Components use it through
:class:`dreamset.contracts.inputs.Services` (``services.progress(...)``) or :func:`progress`.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import math
import time
from typing import Any, Callable, Iterator

#: seconds between two plain progress lines when none is given (``--progress-every``)
DEFAULT_EVERY = 30.0

log = logging.getLogger("dreamset")


def _silent(n: int = 1) -> None:
    return None


@contextlib.contextmanager
def progress(services: Any, description: str, total: int | None, unit: str = "items", done: int = 0) -> Iterator[Any]:
    """``services.progress(...)`` (:class:`dreamset.contracts.inputs.Services`, or an old run context), or a
    silent ``advance`` when there is none (library use) or a stand-in without ``progress``. ``unit``
    names what is counted (``steps``, ``images``); ``done``: work already done before this loop (a
    resumed one), counted in done/total but not in the rate."""
    method = getattr(services, "progress", None) if services is not None else None
    if method is None:
        yield _silent
        return
    if _accepts(method, "unit"):
        with method(description, total, unit=unit, done=done) as advance:
            yield advance
    else:  # a stand-in written against (description, total)
        with method(description, total) as advance:
            if done:
                advance(done)
            yield advance


def _accepts(function: Callable, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


@contextlib.contextmanager
def progress_bar(console: Any, description: str, total: int | None, unit: str = "items", done: int = 0,
                 every: float = DEFAULT_EVERY) -> Iterator[Any]:
    """Progress on ``console``: a rich bar in a terminal; otherwise plain log lines at most every
    ``every`` seconds (:class:`ProgressLines`; ``every <= 0``: silent). No console: silent. Yields
    ``advance(n=1)``."""
    if console is None:
        yield _silent
        return
    if not console.is_terminal:
        if every and every > 0:
            lines = ProgressLines(description, total, unit, every, done=done)
            yield lines.advance
        else:
            yield _silent
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total, completed=done)
        yield lambda n=1: bar.advance(task, n)


class ProgressLines:
    """The plain-line form of a progress bar: :meth:`advance` counts, and logs :meth:`line` when
    ``every`` seconds have passed since the loop started or since the last line. The rate counts
    the work of this loop only (``done`` given at the start, a resumed loop's, is left out of it)."""

    def __init__(self, description: str, total: int | None, unit: str = "items", every: float = DEFAULT_EVERY,
                 done: int = 0, emit: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description, self.total, self.unit, self.every = description, total, unit, float(every)
        self.done = self.start_done = int(done)
        self.clock, self.emit = clock, emit or (lambda text: log.info("%s", text))
        self.started = self.last = clock()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.emit(self.line(now))

    def line(self, now: float | None = None) -> str:
        """``train real (seed 0): 1,200/6,000 steps (20%), 41.2 steps/s, ETA 1m57s``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self.start_done) / elapsed
        if self.total:
            text = f"{self.description}: {self.done:,}/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text = f"{self.description}: {self.done:,} {self.unit}"
        text += f", {rate_text(rate, self.unit)}"
        if self.total:
            left = max(self.total - self.done, 0)
            text += f", ETA {duration(left / rate) if rate > 0 else '?'}"
        return text


def rate_text(rate: float, unit: str) -> str:
    """``41.2 steps/s``, or ``12.5 s/step`` when slower than one a second."""
    if rate >= 100:
        return f"{rate:,.0f} {unit}/s"
    if rate >= 1 or rate <= 0:
        return f"{rate:.3g} {unit}/s"
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{1 / rate:.3g} s/{singular}"


def duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``: a duration as a person reads it."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def check_every(value: Any, field: str = "--progress-every") -> float:
    """``value`` as seconds between progress lines (a number >= 0); raises the one-line bad-input error."""
    from dreamset.contracts.errors import BadInputError

    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{field}: expected seconds (a number >= 0), got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise BadInputError(f"{field}: expected seconds (a number >= 0; 0 turns progress lines off), got {value!r}")
    return seconds
