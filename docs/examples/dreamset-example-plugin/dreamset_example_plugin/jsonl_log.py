"""``tracker:jsonl-log`` — the worked Tracker example (docs/kinds/tracker.md).

Card
----
* Tracks: every number a run reports — each epoch's loss, training accuracy, learning rate and
  validation accuracies, then the final numbers — as one JSON line per ``log`` call in
  ``<run>/<file>``: ``{"step": 40, "metrics": {"real/seed0/loss": 0.61, ...}}``. No paper: the
  simplest tracker there is, readable with ``pandas.read_json(path, lines=True)``.
* Input shapes: none (no tensors); ``log(metrics, step)`` receives ``{name: float}`` (finite Python floats,
  names ``<arm>/seed<s>/<name>`` and ``final/...``) and an ``int`` step (optimizer steps so far;
  0 for the final numbers). The base class :class:`dreamset.contracts.interfaces.Tracker` drops NaN and
  bookkeeping and owns the hooks.
* Needs no package (``requires`` is empty). Defaults: ``file = "metrics.jsonl"``.

Example::

    report: {trackers: [jsonl-log]}
"""
from __future__ import annotations

import json

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Tracker


class JsonlLogOptions(dreamset.Options):
    file: str = Field(default="metrics.jsonl", pattern=r"^[^/\\]+$", description="file name inside the run folder")


@dreamset.register
class JsonlLogTracker(Tracker):
    """One JSON line per logged step in the run folder."""

    key = "tracker:jsonl-log"
    Options = JsonlLogOptions
    handle = None  # the open file while the run lasts

    def start(self, run_dir, name, params):
        self.handle = open(run_dir / self.options.file, "a", encoding="utf-8")

    def log(self, metrics, step):
        self.handle.write(json.dumps({"step": step, "metrics": metrics}) + "\n")
        self.handle.flush()

    def close(self, failed=False):
        if self.handle is not None:
            self.handle.close()
            self.handle = None
