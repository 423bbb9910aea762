"""MLflow tracker: the training curves, the final numbers and the resolved recipe as one MLflow
run, in a local file store (works offline).

Turned on by ``report.trackers: [mlflow]``. Needs ``mlflow`` (``pip install mlflow-skinny`` is
enough). The store is ``$MLFLOW_TRACKING_URI`` when set, else ``file:<run>/mlruns``; the MLflow run
is named after the recipe and tagged with the run folder. View with
``mlflow ui --backend-store-uri <run>/mlruns``.

* per epoch (``after_epoch``): metrics ``<arm>.seed<s>.<name>`` at step = optimizer steps so far
  (MLflow metric names may not contain ``/`` on every backend, hence the dots);
* at the end (``log_metrics``): ``final.<arm>.clean_accuracy`` ... plus the recipe as an artifact
  (``recipe.json``); the MLflow run is then ended.

Example::

    report: {trackers: [mlflow]}
"""
from __future__ import annotations

import os

from dreamset import hookimpl

NAME = "mlflow"
_runs: dict[str, object] = {}


def _clean(name: str) -> str:
    return name.replace("/", ".").replace("+", "_plus_")


def _client(context):
    """``(mlflow module, run id)`` for this dreamset run, started on first use; ``None`` when off."""
    if NAME not in context.recipe.report.trackers:
        return None
    key = str(context.run_dir)
    if key not in _runs:
        try:
            import mlflow
        except ImportError:
            from dreamset.errors import BadInputError

            raise BadInputError("report.trackers: 'mlflow' needs the mlflow package (pip install mlflow-skinny)") from None
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (context.run_dir / "mlruns").resolve().as_uri()
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("dreamset") or None
        experiment_id = experiment.experiment_id if experiment else client.create_experiment("dreamset")
        run = client.create_run(experiment_id, run_name=context.recipe.name,
                                tags={"dreamset.run_dir": str(context.run_dir)})
        _runs[key] = (client, run.info.run_id)
    return _runs[key]


@hookimpl
def before_stage(stage, context):
    if stage == "data":
        _client(context)


@hookimpl
def after_epoch(context, arm, seed, epoch, metrics):
    handle = _client(context)
    if handle is None:
        return
    client, run_id = handle
    step = int(metrics.get("step", epoch))
    for name, value in metrics.items():
        if name not in ("epoch", "step") and isinstance(value, (int, float)) and value == value:
            client.log_metric(run_id, _clean(f"{arm}.seed{seed}.{name}"), float(value), step=step)


@hookimpl
def log_metrics(context, metrics, step):
    handle = _client(context)
    if handle is None:
        return
    client, run_id = handle
    for name, value in metrics.items():
        if value == value:  # NaN is not a metric value
            client.log_metric(run_id, _clean(f"final.{name}"), float(value), step=step or 0)
    recipe = context.run_dir / "recipe.json"
    if recipe.is_file():
        client.log_artifact(run_id, str(recipe))
    client.set_terminated(run_id)
    _runs.pop(str(context.run_dir), None)
