"""``dreamset status RUN_DIR``: where a run folder stands — finished, running or stopped half way.

It only reads, so it works beside a running run and on the folder of a killed one:

* the recipe the run was started with (``recipe.json``) gives the planned work: the stages, the
  arms and seeds, the shards of each synthetic store;
* the stage journal (``stages.jsonl``, :func:`dreamset.orchestration.runfolder.record_stage`) says
  which stages finished in the latest run into the folder, and the files say what is kept for a
  resume: the shards of each store, each arm's training checkpoints (``final.safetensors``, or the
  epoch of ``last.safetensors``);
* the lock (``.dreamset.lock``) is *probed*, never taken: on Linux ``/proc/locks`` lists the process
  holding its ``flock`` (the run's PID); elsewhere the PID the journal recorded at the start is
  checked for life;
* the last line of ``run.log`` and its age, and for a finished run the headline table
  (:func:`dreamset.report.tables.compact_rows`, drawn by :func:`dreamset.report.writer.print_summary`).

:func:`run_status` returns it all as a dict (``dreamset status --json``); :func:`print_status` draws it.
A path that is not a run folder is a :class:`~dreamset.contracts.errors.BadInputError`.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from dreamset.contracts.errors import BadInputError
from dreamset.orchestration.runfolder import JOURNAL, LOCK, RUN_LOG

#: how much of the end of run.log is read for its last line
_TAIL = 16384


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path}: not readable as JSON ({exc})") from None


def journal(run_dir: Path) -> list[dict[str, Any]]:
    """The journal's records of the latest run into the folder (those after its last ``start``);
    a line cut short by a kill is skipped."""
    path = Path(run_dir) / JOURNAL
    records: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return records
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("event") == "start":
            records = []
        records.append(record)
    return records


def lock_holder(run_dir: Path, started_pid: int | None = None) -> dict[str, Any]:
    """``{"held": bool | None, "pid": int | None, "how": ...}`` without taking the lock: the
    ``flock`` on the lock file as ``/proc/locks`` lists it (Linux), else whether the PID that
    started the latest run is alive (``held`` None: unknown)."""
    lock = Path(run_dir) / LOCK
    try:
        st = lock.stat()
    except OSError:
        return {"held": False, "pid": None, "how": "no lock file"}
    try:
        with open("/proc/locks", encoding="ascii") as handle:
            table = handle.read().splitlines()
    except OSError:
        table = None
    if table is not None:
        ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for row in table:
            fields = row.split()
            if len(fields) >= 6 and fields[1] != "->" and fields[5] == ident:
                return {"held": True, "pid": int(fields[4]), "how": "/proc/locks"}
        return {"held": False, "pid": None, "how": "/proc/locks"}
    if started_pid is None:
        return {"held": None, "pid": None, "how": "unknown (no /proc/locks)"}
    try:
        os.kill(started_pid, 0)
    except ProcessLookupError:
        return {"held": False, "pid": None, "how": "the starting process is gone"}
    except PermissionError:
        pass
    return {"held": True, "pid": started_pid, "how": "the starting process is alive"}


def last_log_line(run_dir: Path, now: float | None = None) -> dict[str, Any] | None:
    """The last line of ``run.log`` and the seconds since the file was last written."""
    path = Path(run_dir) / RUN_LOG
    try:
        size, mtime = path.stat().st_size, path.stat().st_mtime
        with open(path, "rb") as handle:
            handle.seek(max(0, size - _TAIL))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    lines = [line for line in lines if line.strip()]
    if not lines:
        return None
    return {"line": lines[-1], "age_seconds": round(max(0.0, (now or time.time()) - mtime), 1)}


def _sources(recipe: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], bool]:
    """(source name -> generate block, whether the sources are named), as recipe.json holds them
    (one generate block: the source ``synthetic``)."""
    from dreamset.orchestration.sources import SINGLE

    generate = recipe.get("generate")
    if not isinstance(generate, dict):
        return {}, False
    if {"generator", "source", "count"} & set(generate):
        return {SINGLE: generate}, False
    return {name: block for name, block in generate.items() if isinstance(block, dict)}, True


def _shards(run_dir: Path, recipe: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per generated source: the shards of its store written, and planned."""
    from dreamset.contracts.errors import DreamsetError
    from dreamset.orchestration.sources import source_folders
    from dreamset.store.reader import SyntheticStore

    out = {}
    sources, is_named = _sources(recipe)
    for name, block in sources.items():
        if block.get("source"):
            continue  # an imported or existing store: not generated here
        folder = source_folders(run_dir, name, is_named)[0]
        total = math.ceil(int(block.get("count") or 0) / max(1, int(block.get("shard_size") or 1)))
        done = 0
        if (folder / "store.json").is_file():
            try:
                done = len(SyntheticStore.open(folder, verify=False)._shards)
            except (DreamsetError, OSError, ValueError):
                done = None  # being written or damaged: dreamset run says which
        out[name] = {"done": done, "total": total}
    return out


def _training(run_dir: Path, recipe: dict[str, Any], arm: str, seed: int) -> dict[str, Any]:
    """An arm's training for one seed as its checkpoints keep it: ``done``; or the epochs and
    optimizer steps of its last saved epoch (of the budget, when the recipe gives it as a number);
    or not started."""
    from dreamset.orchestration.recipe import arm_folder

    folder = run_dir / "checkpoints" / f"{arm_folder(arm)}-seed{seed}"
    if (folder / "final.safetensors").is_file():
        return {"state": "done"}
    if not (folder / "last.safetensors").is_file():
        return {"state": "not started"}
    from dreamset.files.checkpoints import read_checkpoint_meta

    try:
        meta = read_checkpoint_meta(folder / "last.safetensors")
        epochs, steps = int(meta["epoch"]) + 1, int(meta["cost"]["optimizer_steps"])
    except (BadInputError, KeyError, TypeError, ValueError):
        return {"state": "started"}
    budget = ((recipe.get("arms") or {}).get(arm) or {}).get("budget") or (recipe.get("train") or {}).get("budget")
    of = f"/{budget:,}" if isinstance(budget, int) and not isinstance(budget, bool) else ""
    return {"state": f"{epochs} epochs saved, {steps:,}{of} optimizer steps", "epochs_done": epochs,
            "optimizer_steps": steps, "budget": budget}


def run_status(run_dir: str | Path, now: float | None = None) -> dict[str, Any]:
    """Where ``run_dir`` stands (see the module docstring); raises BadInputError when it is no run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInputError(f"{run_dir}: not a run folder (no such folder)")
    if not (run_dir / "recipe.json").is_file():
        raise BadInputError(f"{run_dir}: not a dreamset run folder (no recipe.json)")
    recipe = _read_json(run_dir / "recipe.json")
    if not isinstance(recipe, dict):
        raise BadInputError(f"{run_dir / 'recipe.json'}: not a recipe (a JSON object)")
    records = journal(run_dir)
    started = next((r for r in records if r.get("event") == "start"), None)
    lock = lock_holder(run_dir, started.get("pid") if started else None)
    finished_stages = {(r.get("stage"), r.get("seed")): r for r in records if r.get("event", "stage") == "stage"}
    report_path = run_dir / "report.json"
    arms = list((recipe.get("arms") or {}).keys())
    seeds = [int(s) for s in recipe.get("seeds") or [0]]
    shards = _shards(run_dir, recipe)

    plan: list[tuple[str, int | None]] = [("data", None)]
    if recipe.get("generate"):
        plan.append(("generate", None))
    if (recipe.get("evaluate") or {}).get("sets"):
        plan.append(("generate-eval", None))
    for seed in seeds:
        plan += [("select", seed), ("train", seed), ("evaluate", seed)]
    plan += [("metrics", None), ("report", None)]
    kept = None if records else _kept(run_dir, recipe, report_path.is_file(), shards)  # a folder from before the journal
    stages = []
    for name, seed in plan:
        record = finished_stages.get((name, seed))
        entry: dict[str, Any] = {"stage": name, "seed": seed,
                                 "done": record is not None or (kept is not None and kept(name, seed))}
        if record is not None:
            entry["seconds"] = record.get("seconds")
            entry["summary"] = record.get("summary")
        if name == "train":
            entry["arms"] = {arm: _training(run_dir, recipe, arm, seed) for arm in arms}
        stages.append(entry)
    # finished: report.json written by the latest run (a folder from before the journal: report.json alone)
    finished = report_path.is_file() and (not records or ("report", None) in finished_stages)
    state = "running" if lock["held"] else "finished" if finished else "stopped"
    out: dict[str, Any] = {
        "run_dir": str(run_dir), "recipe": recipe.get("name"), "state": state,
        "lock": lock, "arms": arms, "seeds": seeds, "shards": shards, "stages": stages,
        "done": sum(s["done"] for s in stages), "left": [_label(s) for s in stages if not s["done"]],
        "last_log": last_log_line(run_dir, now),
    }
    if state == "finished":
        from dreamset.report.tables import compact_rows

        report = _read_json(report_path)
        header, rows = compact_rows(report)
        out["headline"] = {"header": header, "rows": rows}
    return out


def _kept(run_dir: Path, recipe: dict[str, Any], finished: bool, shards: dict[str, dict[str, int]]):
    """For a run folder without a journal (made before it existed): whether a stage's work is kept,
    judged from its files — everything once report.json is there; else the evaluation subset, the
    complete stores, the selections and the final checkpoints (an evaluation leaves no file)."""
    from dreamset.orchestration.recipe import arm_folder

    arms = recipe.get("arms") or {}

    def kept(name: str, seed: int | None) -> bool:
        if finished:
            return True
        if name == "data":
            return (run_dir / "evaluation_subset.json").is_file()
        if name == "generate":
            return all(s["done"] == s["total"] for s in shards.values())
        if name == "select":
            return all((run_dir / "selections" / f"{arm_folder(a)}-seed{seed}.npz").is_file()
                       for a, spec in arms.items() if (spec or {}).get("synthetic") not in (False, None))
        if name == "train":
            return bool(arms) and all(_training(run_dir, recipe, a, seed)["state"] == "done" for a in arms)
        return False
    return kept


def _label(stage: dict[str, Any]) -> str:
    return stage["stage"] + (f" (seed {stage['seed']})" if stage["seed"] is not None else "")


def print_status(status: dict[str, Any], console) -> None:
    """``status`` (:func:`run_status`) as a few lines, with the headline table of a finished run."""
    from rich.markup import escape

    from dreamset.contracts.progress import duration

    lock = status["lock"]
    state = {"running": f"running (pid {lock['pid']} holds the lock)" if lock.get("pid") else "running",
             "finished": "finished",
             "stopped": "stopped before the end (no process holds the lock); re-run the same command to resume"}[status["state"]]
    console.print(f"[bold]{escape(status['run_dir'])}[/]: {escape(str(status['recipe']))} — {state}", soft_wrap=True)
    total = len(status["stages"])
    console.print(f"stages: {status['done']} of {total} done" + (f"; left: {', '.join(status['left'])}" if status["left"] else ""),
                  soft_wrap=True)
    for name, shard in status["shards"].items():
        done = "?" if shard["done"] is None else shard["done"]
        console.print(f"  store {escape(name)}: {done}/{shard['total']} shards")
    for stage in status["stages"]:
        mark = "done" if stage["done"] else "left"
        line = f"  {_label(stage)}: {mark}"
        if stage.get("seconds") is not None:
            line += f" in {duration(stage['seconds'])}"
        if "arms" in stage and not stage["done"]:
            line += " — " + ", ".join(f"{arm} {info['state']}" for arm, info in stage["arms"].items())
        console.print(escape(line), soft_wrap=True)
    last = status.get("last_log")
    if last:
        console.print(f"last log line ({duration(last['age_seconds'])} ago): {escape(last['line'])}", soft_wrap=True)
    if status["state"] == "finished":
        from dreamset.report.writer import print_summary

        print_summary(_read_json(Path(status["run_dir"]) / "report.json"), console, quiet=True)
