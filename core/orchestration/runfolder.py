"""The run folder a ``dreamset run`` / ``dreamset generate`` writes into.

:func:`run_folder` makes it (a one-line error when it cannot be written: a file, a read-only mount,
``/proc/...``), takes its lock (``.dreamset.lock``: a second run into the same folder is refused),
removes the temporary files of atomic writers that a killed run left behind, and — when the run is
refused with a :class:`~dreamset.contracts.errors.BadInputError` — leaves nothing behind in a folder it
created: the folder goes again if it holds only the run's bookkeeping (``recipe.json``,
``evaluation_subset.json``, the lock, the log ``run.log`` and the stage journal ``stages.jsonl``).
A refused run into a folder holding earlier work keeps it, its bookkeeping files put back as they were
(the refused recipe does not replace the one that made the folder's artefacts).

What a run leaves for ``dreamset status`` (:mod:`dreamset.commands.status`) to read: ``run.log`` (the
run's log lines, progress lines included, appended run after run) and ``stages.jsonl`` (one JSON
line per finished stage: :func:`record_stage`).
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

from dreamset.contracts.errors import BadInputError
from dreamset.files.atomic import clean_temp_files

log = logging.getLogger("dreamset")

LOCK = ".dreamset.lock"
#: the run's log lines, appended by every run into the folder (:func:`dreamset.orchestration.runlog.run_log`)
RUN_LOG = "run.log"
#: one JSON line per finished stage (:func:`record_stage`)
JOURNAL = "stages.jsonl"
#: what a run writes before its first resumable piece of work
BOOKKEEPING = {"recipe.json", "evaluation_subset.json", LOCK, RUN_LOG, JOURNAL}


def record_stage(run_dir: Path, stage: str, seed: int | None, seconds: float, summary: str) -> None:
    """Append the finished ``stage`` (of ``seed`` for the per-seed stages) to the run's journal,
    ``stages.jsonl``: ``{"event": "stage", "stage", "seed", "seconds", "summary", "time"}``."""
    _journal(run_dir, {"event": "stage", "stage": stage, "seed": seed, "seconds": round(float(seconds), 3),
                       "summary": summary})


def record_start(run_dir: Path) -> None:
    """Append ``{"event": "start", "pid", "time"}`` to the journal: a run into the folder begins
    (``dreamset status`` reads the stages recorded after the last one)."""
    import os

    _journal(run_dir, {"event": "start", "pid": os.getpid()})


def _journal(run_dir: Path, record: dict) -> None:
    """One JSON line, written with one short ``write``, so a reader beside the run never sees half
    a record (a kill mid-line leaves one that readers skip)."""
    import datetime
    import json

    record["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with open(Path(run_dir) / JOURNAL, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BadInputError(f"--out {run_dir}: cannot write the run folder there ({reason})") from None


@contextlib.contextmanager
def run_folder(run_dir: Path):
    """Make, check, lock and clean ``run_dir`` for one run (see the module docstring)."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    created = not run_dir.exists()
    _writable(run_dir)
    lock = FileLock(str(run_dir / LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BadInputError(f"{run_dir}: another dreamset run is using this folder (lock {run_dir / LOCK})") from None
    try:
        for path in clean_temp_files(run_dir):
            log.info("removed a temporary file left by an interrupted run: %s", path)
        kept = {name: (run_dir / name).read_bytes() for name in BOOKKEEPING - {LOCK} if (run_dir / name).is_file()}
        yield run_dir
    except BadInputError:
        if created and {entry.name for entry in run_dir.iterdir()} <= BOOKKEEPING:
            lock.release()
            shutil.rmtree(run_dir, ignore_errors=True)
        elif not created:
            _put_back(run_dir, kept)
        raise
    finally:
        lock.release()


def _put_back(run_dir: Path, kept: dict[str, bytes]) -> None:
    """The bookkeeping files of ``run_dir`` as they were before a refused run (``kept``: name -> bytes)."""
    from dreamset.files.atomic import atomic_write_bytes

    for name in BOOKKEEPING - {LOCK}:
        path = run_dir / name
        if name in kept:
            if not path.is_file() or path.read_bytes() != kept[name]:
                atomic_write_bytes(path, kept[name])
        else:
            path.unlink(missing_ok=True)
