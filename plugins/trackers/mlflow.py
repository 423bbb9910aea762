"""``tracker:mlflow`` — the training curves, the final numbers, the resolved recipe and the run's
files as one MLflow run, in a local file store by default (works offline).

Card
----
* What: one MLflow run per dreamset run (MLflow, no paper; Databricks' open-source ML lifecycle
  platform, 2018) through MLflow's fluent API: ``mlflow.start_run`` (named after the recipe,
  tagged ``dreamset.run_dir``; nested when a run is already active, as in a notebook),
  ``mlflow.log_params`` (the resolved recipe flattened to ``train.epochs`` ..., values as text),
  ``mlflow.log_metrics(..., step=...)``, ``mlflow.log_artifact`` (``recipe.json``, ``report.json``,
  ``report.html``) and ``mlflow.end_run`` (``FAILED`` when the dreamset run raised).
* Input shapes: none (no tensors); it reads the numbers the :class:`~dreamset.contracts.interfaces.Tracker` hooks hand
  it, plain Python floats — per epoch ``<arm>.seed<s>.<name>`` at step = optimizer steps so far, at
  the end ``final.<arm>.clean_accuracy`` ... ``final.metrics.<m>.<key>`` at step 0 (``/`` written
  ``.`` and ``+`` written ``_plus_``, which MLflow metric names do not all accept).
* Store: ``options.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else ``file:<run>/mlruns``
  (``mlflow ui --backend-store-uri <run>/mlruns``); experiment ``options.experiment``.
* Optional, not a dreamset dependency: ``pip install mlflow-skinny`` upgrades ``requests`` past the
  ``requests~=2.25.1`` torchattacks 3.5.1 pins (recent releases need databricks-sdk, hence
  requests>=2.28.1); ``mlflow-skinny==2.14.3`` is the newest that resolves with the pin — at your
  own risk either way (docs/run-page.md). A missing ``mlflow`` is refused before the run starts,
  naming this tracker and the pip command.

Example::

    report: {trackers: [mlflow]}
    report: {trackers: [{key: mlflow, options: {experiment: digits}}]}
"""
from __future__ import annotations

import json
import os

from pydantic import Field

import dreamset
from dreamset.contracts.errors import shorten
from dreamset.contracts.interfaces import Tracker

#: the longest parameter value MLflow accepts on every backend (older servers: 500 characters)
MAX_PARAM = 500


class MLflowOptions(dreamset.Options):
    experiment: str = Field(default="dreamset", min_length=1, description="MLflow experiment the run is logged under")
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI; null: $MLFLOW_TRACKING_URI, else file:<run>/mlruns")


@dreamset.register
class MLflowTracker(Tracker):
    """One MLflow run (``tracker:mlflow``): recipe as params, curves and final numbers as metrics."""

    key = "tracker:mlflow"
    Options = MLflowOptions
    requires = (("mlflow", "pip install mlflow-skinny — it upgrades requests past torchattacks' pin "
                           "requests~=2.25.1; mlflow-skinny==2.14.3 keeps it; see docs/run-page.md"),)

    def __init__(self, options=None):
        super().__init__(options)
        self.mlflow = None
        self._previous_uri = None

    def start(self, run_dir, name, params):
        import mlflow

        uri = self.options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        self._previous_uri = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(self.options.experiment)
        mlflow.start_run(run_name=name, tags={"dreamset.run_dir": str(run_dir)}, nested=mlflow.active_run() is not None)
        self.mlflow = mlflow
        mlflow.log_params({key: shorten(value if isinstance(value, str) else json.dumps(value), MAX_PARAM)
                           for key, value in params.items()})

    def metric_name(self, name):
        return name.replace("/", ".").replace("+", "_plus_")

    def log(self, metrics, step):
        self.mlflow.log_metrics(metrics, step=step)

    def log_files(self, paths):
        for path in paths:
            self.mlflow.log_artifact(str(path))

    def close(self, failed=False):
        if self.mlflow is not None:
            self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
            self.mlflow.set_tracking_uri(self._previous_uri)
            self.mlflow = None
