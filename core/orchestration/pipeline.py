"""The pipeline, top to bottom:

    real data -> generator -> synthetic store -> sampler -> mixer -> trainer (+ attacker)
              -> evaluator (metrics) -> report

:func:`run_recipe` is that line, as the list of stages of :mod:`dreamset.orchestration.stages`. Every stage is
timed, announced to plugins through the ``before_stage``/``after_stage`` hooks, and resumable:
re-running into the same folder reuses the generator checkpoint, the complete shards of the store
and finished training checkpoints.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from dreamset.orchestration import distributed
from dreamset.files.atomic import atomic_write_bytes
from dreamset.orchestration.context import resolve_device
from dreamset.contracts.inputs import Services
from dreamset.contracts.progress import DEFAULT_EVERY
from dreamset.orchestration.recipe import Recipe
from dreamset.orchestration.stages import (DEFAULT_MIXER, DataStage, EvaluateStage, GeneratedSets, GenerateEvalStage,  # noqa: F401
                             GenerateStage, MetricsStage, ReportBuilder, ReportStage, Run, SelectStage, StageRunner,
                             SyntheticSets, TrainStage, arm_budgets, metric_report_name, summarize_arms)
from dreamset.files.verify import check_disk_space  # noqa: F401  (also imported from here)


@contextlib.contextmanager
def run_folder_lock(run_dir: Path):
    """Refuse a second run into the same folder; see :func:`dreamset.orchestration.runfolder.run_folder`.
    Inside, the run's log lines go to ``run_dir/run.log`` too (rank 0)."""
    from dreamset.orchestration.runfolder import record_start, run_folder
    from dreamset.orchestration.runlog import run_log

    with run_folder(run_dir), (run_log(run_dir) if distributed.is_main() else contextlib.nullcontext()):
        if distributed.is_main():
            record_start(run_dir)
        yield


def new_run(recipe: Recipe, resolved: dict[str, Any], run_dir: Path, console: Console | None = None,
            fresh: bool = False, progress_every: float = DEFAULT_EVERY) -> Run:
    """The run of ``recipe`` into ``run_dir``: its services (device, registry, progress bars and
    lines every ``progress_every`` seconds off a terminal)."""
    import dreamset.registry as registry_module
    from dreamset.contracts.progress import check_every

    services = Services(device=distributed.local_device(resolve_device(recipe.device)), registry=registry_module.get_registry(),
                        run_dir=run_dir, console=console or Console(), fresh=fresh,
                        progress_every=check_every(progress_every))
    return Run(recipe, resolved, services)


def _data_and_generate(run: Run, stage: StageRunner):
    """The first stages, shared by ``dreamset run`` and ``dreamset generate``: record the recipe,
    load the real data, then fill the synthetic stores and the generated evaluation sets. Returns
    the run with its reference classifier and the three outputs."""
    if distributed.is_main():  # under torchrun rank 0 owns the run folder's files
        atomic_write_bytes(run.run_dir / "recipe.json", json.dumps(run.resolved, indent=2, default=str).encode())
    real = stage(DataStage(run))
    run = stage.run = run.with_reference(real)
    synthetic = stage(GenerateStage(run), real) if run.recipe.generate is not None else SyntheticSets({})
    generated = stage(GenerateEvalStage(run), real) if run.recipe.evaluate.sets else GeneratedSets({}, {})
    return run, real, synthetic, generated


def generate_only(recipe: Recipe, resolved: dict[str, Any], run_dir: Path, console: Console | None = None,
                  progress_every: float = DEFAULT_EVERY):
    """``dreamset generate``: the data and generate stages of ``recipe`` into ``run_dir``; returns the
    synthetic store. A later ``dreamset run`` into the same folder reuses it."""
    run = new_run(recipe, resolved, run_dir, console, progress_every=progress_every)
    with distributed.main_holds("the run folder lock", lambda: run_folder_lock(run_dir)):
        _, _, synthetic, _ = _data_and_generate(run, StageRunner(run))
    return synthetic.combined


def run_recipe(recipe: Recipe, resolved: dict[str, Any], run_dir: Path, console: Console | None = None,
               fresh: bool = False, progress_every: float = DEFAULT_EVERY) -> dict[str, Any]:
    """Execute ``recipe`` into ``run_dir`` and return the report dict (also written as report.json).
    ``fresh``: checkpoints made with other settings are moved aside and retrained (else refused).
    ``progress_every``: seconds between plain progress lines off a terminal (0: none; no effect on
    the results)."""
    from dreamset.report.writer import write_report_json
    from dreamset.orchestration.guards import GUARD_TIME
    from dreamset.orchestration.runlog import final_scalars, log, seed_estimate
    from dreamset.orchestration.tracking import create_trackers, log_final_metrics, tracking

    run = new_run(recipe, resolved, run_dir, console, fresh, progress_every)
    trackers = create_trackers(run)  # a tracker's missing package is refused before anything is written
    GUARD_TIME.reset()  # the contract checks' own time (dreamset.orchestration.guards)
    with distributed.main_holds("the run folder lock", lambda: run_folder_lock(run_dir)), tracking(run, trackers):
        stage = StageRunner(run)
        run, real, synthetic, generated = _data_and_generate(run, stage)
        report, trained, results = ReportBuilder(run, stage.timings, stage.lines), None, {}
        for i, seed in enumerate(recipe.seeds):
            started = time.perf_counter()
            torch.manual_seed(seed)
            selections = stage(SelectStage(run), real, synthetic, seed)
            report.add_selections(selections)
            trained = stage(TrainStage(run), real, synthetic, selections)
            results = {**results, seed: stage(EvaluateStage(run), real, generated, trained)}
            if i == 0:  # what the whole run has left, at the first seed's pace
                log.info("%s", seed_estimate(time.perf_counter() - started, len(recipe.seeds) - 1, len(recipe.evaluate.metrics)))
        metrics_stage = MetricsStage(run)
        metrics = stage(metrics_stage, real, synthetic, trained, results, lambda: run.view(stage.outputs, stage.lines))
        stage.timings["contract_guards"] = GUARD_TIME.seconds  # part of the stages' time: what the guards cost
        report = report.build(real, synthetic, generated, trained, results, metrics, metrics_stage.failures)
        if distributed.is_main():
            stage(ReportStage(run), report, real, synthetic)
            write_report_json(run_dir, report)  # again, now with the report stage's own time
            log_final_metrics(run_dir, run.view(stage.outputs, stage.lines), final_scalars(report))
    return report
