"""What a run says while it runs: one ``logging`` line per stage start and result (logger
``dreamset``), and the handler the CLI installs.

In a terminal the lines go through rich (they print above the live progress bars); piped to a file
they are plain timestamped lines, so ``dreamset run > run.log`` is a readable log. The library
itself installs no handler: a notebook or an application decides where ``dreamset``'s log goes.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("dreamset")

#: verbosity -> level of the ``dreamset`` logger (``-q`` -1, default 0, ``-v`` 1)
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def setup_logging(console, verbosity: int = 0) -> logging.Handler:
    """Install (replacing an earlier one from this function) a handler for the ``dreamset`` logger
    writing to ``console``'s stream: rich in a terminal, plain ``HH:MM:SS message`` lines otherwise."""
    for handler in list(log.handlers):
        if getattr(handler, "_dreamset_cli", False):
            log.removeHandler(handler)
    if console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False, markup=False,
                                               rich_tracebacks=False, log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _ConsoleLines(console)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler._dreamset_cli = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(LEVELS[max(-1, min(1, verbosity))])
    return handler


class _ConsoleLines(logging.Handler):
    """Plain lines to the console's current stream (looked up at each record, as rich does)."""

    def __init__(self, console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.console.file
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """Inside the block, the ``dreamset`` logger's lines are appended to ``run_dir/run.log`` too
    (plain ``YYYY-MM-DD HH:MM:SS LEVEL message`` lines, progress lines included; what
    ``dreamset status`` shows the last of). The logger's level is left as it is."""
    from dreamset.orchestration.runfolder import RUN_LOG

    handler = logging.FileHandler(Path(run_dir) / RUN_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()


def seed_estimate(seconds: float, seeds_left: int, metrics: int) -> str:
    """The log line after the first seed: how long it took and what is left at that pace."""
    from dreamset.contracts.progress import duration

    rest = f", then {metrics} metrics and the report" if metrics else ", then the report"
    if not seeds_left:
        return f"run: the seed took {duration(seconds)}; left: no more seeds{rest}"
    return (f"run: the first seed took {duration(seconds)}; about {duration(seeds_left * seconds)} left for "
            f"{seeds_left} more seed{'s' if seeds_left > 1 else ''}{rest}")


def metric_summary(result: Any, limit: int = 4) -> str:
    """The first few scalar entries of a metric's result, rounded: ``fid 12.3, n_real 500``."""
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return f"{result:.4g}"
    if not isinstance(result, dict):
        return type(result).__name__
    parts = [f"{k} {v:.4g}" for k, v in result.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)][:limit]
    return ", ".join(parts) or "done"


def final_scalars(report: dict[str, Any]) -> dict[str, float]:
    """The run's headline numbers as a flat ``{name: float}`` (what trackers log at the end):
    ``<arm>/clean_accuracy``, ``<arm>/robust_accuracy``, ``metrics/<metric>/<key>``."""
    out: dict[str, float] = {}
    for arm, entry in (report.get("arms") or {}).items():
        for key in ("clean_accuracy", "robust_accuracy"):
            if isinstance(entry.get(key), (int, float)):
                out[f"{arm}/{key}"] = float(entry[key])
    for name, result in (report.get("metrics") or {}).items():
        items = result.items() if isinstance(result, dict) else [("value", result)]
        for key, value in items:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"metrics/{name}/{key}"] = float(value)
    return out


def plugin_versions() -> dict[str, Any]:
    """The versions behind a run: dreamset, python, torch and the other libraries it stands on
    (``report.json``'s ``versions``; each component's distribution and version are in
    ``components``, :mod:`dreamset.orchestration.provenance`)."""
    import platform
    from importlib import metadata

    from dreamset import __version__

    versions: dict[str, Any] = {"dreamset": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "torchattacks", "diffusers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
