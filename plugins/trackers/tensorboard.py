"""``tracker:tensorboard`` — the training curves and the run's final numbers as TensorBoard scalars.

Card
----
* What: event files written with :class:`torch.utils.tensorboard.SummaryWriter` (TensorBoard, no
  paper; the TensorFlow visualisation toolkit, 2015) under ``<run>/<log_dir>``; view them with
  ``tensorboard --logdir <run>/tensorboard``. Works offline. Needs the ``tensorboard`` package
  (``pip install 'dreamset[trackers]'``); a missing one is refused before the run starts.
* Input shapes: none (no tensors); it reads the numbers the :class:`~dreamset.contracts.interfaces.Tracker` hooks hand
  it, plain Python floats — per epoch ``<arm>/seed<s>/<name>`` for ``loss``, ``train_accuracy``, ``lr``,
  ``val_clean_accuracy``, ``val_robust_accuracy`` at global step = optimizer steps so far; at the
  end ``final/<arm>/clean_accuracy`` ... and ``final/metrics/<m>/<key>`` at step 0.
* Options: ``log_dir`` (folder inside the run, default ``tensorboard``), ``flush_secs`` (default 30).

Example::

    report: {trackers: [tensorboard]}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Tracker


class TensorBoardOptions(dreamset.Options):
    log_dir: str = Field(default="tensorboard", min_length=1, pattern=r"^[^/\\]+$",
                         description="folder inside the run folder that receives the event files")
    flush_secs: int = Field(default=30, gt=0, le=3600, description="seconds between flushes to disk")


@dreamset.register
class TensorBoardTracker(Tracker):
    """TensorBoard scalars (``tracker:tensorboard``): curves per arm and seed, final numbers."""

    key = "tracker:tensorboard"
    Options = TensorBoardOptions
    requires = (("tensorboard", "pip install 'dreamset[trackers]'"),)

    def __init__(self, options=None):
        super().__init__(options)
        self.writer = None

    def start(self, run_dir, name, params):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / self.options.log_dir), flush_secs=self.options.flush_secs)

    def log(self, metrics, step):
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def close(self, failed=False):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
