"""TensorBoard tracker: the training curves and the run's final numbers as TensorBoard scalars.

Turned on by ``report.trackers: [tensorboard]``. Writes event files under ``<run>/tensorboard``
with :class:`torch.utils.tensorboard.SummaryWriter` (needs the ``tensorboard`` package:
``pip install 'dreamset[trackers]'``); view with ``tensorboard --logdir <run>/tensorboard``.

* per epoch (``after_epoch``): ``<arm>/seed<s>/<name>`` for ``loss``, ``train_accuracy``, ``lr``,
  ``val_clean_accuracy``, ``val_robust_accuracy``, at global step = optimizer steps so far;
* at the end (``log_metrics``): ``final/<arm>/clean_accuracy`` ... and ``final/metrics/<m>/<key>``.

Example::

    report: {trackers: [tensorboard]}
"""
from __future__ import annotations

from dreamset import hookimpl

NAME = "tensorboard"
_writers: dict[str, object] = {}


def _writer(context):
    if NAME not in context.recipe.report.trackers:
        return None
    key = str(context.run_dir)
    if key not in _writers:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from dreamset.errors import BadInputError

            raise BadInputError("report.trackers: 'tensorboard' needs the tensorboard package "
                                "(pip install 'dreamset[trackers]')") from None
        _writers[key] = SummaryWriter(log_dir=str(context.run_dir / "tensorboard"))
    return _writers[key]


@hookimpl
def before_stage(stage, context):
    if stage == "data":
        _writer(context)  # a missing package is reported before any work


@hookimpl
def after_epoch(context, arm, seed, epoch, metrics):
    writer = _writer(context)
    if writer is None:
        return
    step = int(metrics.get("step", epoch))
    for name, value in metrics.items():
        if name not in ("epoch", "step") and isinstance(value, (int, float)):
            writer.add_scalar(f"{arm}/seed{seed}/{name}", value, step)


@hookimpl
def log_metrics(context, metrics, step):
    writer = _writer(context)
    if writer is None:
        return
    for name, value in metrics.items():
        writer.add_scalar(f"final/{name}", value, step or 0)
    writer.close()
    _writers.pop(str(context.run_dir), None)
