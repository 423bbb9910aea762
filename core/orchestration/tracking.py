"""The experiment trackers of a run (``report.trackers``, ``tracker:*`` components).

:func:`create_trackers` makes them before anything is written (a package a tracker needs and lacks
is a :class:`dreamset.BadInputError` naming ``report.trackers.<i>``, the tracker and the pip
command); :func:`tracking` then starts them, registers each with the plugin manager for the length
of the run — their ``after_epoch``/``log_metrics`` hook implementations, written once in
:class:`dreamset.contracts.interfaces.Tracker`, then receive the run's numbers — and closes and unregisters
them at the end, also when the run fails. Rank 0 alone tracks (the hooks run there only).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from dreamset.contracts.interfaces import Tracker
from dreamset.orchestration.runlog import log


def create_trackers(context) -> list[Tracker]:
    """The run's trackers, created and with their packages checked (none off rank 0)."""
    from dreamset.orchestration import distributed

    if not distributed.is_main():
        return []
    trackers = []
    for i, ref in enumerate(context.recipe.report.trackers):
        tracker = context.registry.create(ref.key, kind="tracker", field_path=f"report.trackers.{i}.options", **ref.options)
        tracker.check_requirements(f"report.trackers.{i}")
        trackers.append(tracker)
    return trackers


def log_final_metrics(run_dir, context, metrics: dict[str, float]) -> None:
    """The ``log_metrics`` hook with the run's headline numbers (``context``: the 0.1 run context)."""
    import dreamset.registry as registry_module

    registry_module.plugin_manager().hook.log_metrics(run_dir=run_dir, metrics=metrics, step=None, context=context)


@contextlib.contextmanager
def tracking(context, trackers: list[Tracker]) -> Iterator[list[Tracker]]:
    """Start ``trackers`` for ``context``'s run and keep them registered as hook plugins inside
    the block; close and unregister them when it ends (``close(failed=True)`` on an exception)."""
    import dreamset.registry as registry_module
    from dreamset.files.digests import flatten

    pm = registry_module.plugin_manager()
    params = flatten(context.recipe.model_dump(mode="json")) if trackers else {}
    started: list[Tracker] = []
    failed = False
    try:
        for tracker in trackers:
            started.append(tracker)  # closed even if start fails half-way
            tracker.start(context.run_dir, context.recipe.name, params)
            pm.register(tracker, name=f"{tracker.key}@{id(tracker):x}")
        yield trackers
    except BaseException:
        failed = True
        raise
    finally:
        for tracker in started:
            if pm.is_registered(tracker):
                pm.unregister(tracker)
            try:
                tracker.close(failed=failed)
            except Exception:
                if not failed:
                    raise
                log.warning("%s: closing after the failed run raised too", tracker.key, exc_info=True)
