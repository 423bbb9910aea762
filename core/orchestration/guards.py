"""A run never trusts a component: every call into a plugin the pipeline makes goes through here.

* :func:`calling` — an exception raised inside a component becomes a
  :class:`~dreamset.contracts.errors.PluginFailure`: one line naming the component's key, its
  distribution (the installed package whose entry point registered it), the call and where it ran
  (stage, arm, seed). The stage runner appends the full traceback to the run folder's ``run.log``
  (:func:`record_traceback`). dreamset's own errors raised inside (bad input, an inner component's
  failure) pass through unchanged: the innermost component is the one named.
* :func:`check` — a component's output is checked against its kind's contract with the checks the
  conformance suite uses (:mod:`dreamset.contracts.checks`); a violation is a
  :class:`~dreamset.contracts.errors.ContractViolation`, the same kind of line, exit code 2.
* :func:`where` — the stage, arm and seed the lines name (a context variable the stages set).

The checks' own time is summed in :data:`GUARD_TIME` and lands in ``report.json`` as
``timings.contract_guards`` (seconds, part of the stages' time): the cost of keeping them on.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
import traceback
from pathlib import Path
from typing import Any, Iterable, Iterator

from dreamset.contracts.errors import ContractViolation, DreamsetError, PluginFailure
from dreamset.orchestration.runfolder import RUN_LOG  # the run's log file also keeps a failing plugin's traceback


_WHERE: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("dreamset_where", default={})


class GuardTime:
    """Seconds spent in the contract checks of this process (and how many ran), summed since the last
    :meth:`reset` (the start of a run)."""

    def __init__(self) -> None:
        self.seconds, self.checks = 0.0, 0

    def reset(self) -> None:
        self.seconds, self.checks = 0.0, 0


GUARD_TIME = GuardTime()


@contextlib.contextmanager
def where(**fields: Any) -> Iterator[None]:
    """Inside this block the guards' lines name ``fields`` (``stage``, ``arm``, ``seed``) as well as
    the outer blocks' (``None`` values are left out)."""
    token = _WHERE.set({**_WHERE.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _WHERE.reset(token)


def _place() -> str:
    fields = _WHERE.get()
    return ", ".join(f"{name} {fields[name]}" for name in ("stage", "arm", "seed") if name in fields)


def describe(component: Any) -> str:
    """``kind:name (distribution NAME VERSION)`` for a component instance (or its key)."""
    key = component if isinstance(component, str) else (getattr(component, "key", None) or type(component).__name__)
    try:
        import dreamset.registry as registry_module

        spec = registry_module.get_registry().specs.get(key)
    except Exception:  # noqa: BLE001 - naming must never fail
        spec = None
    if spec is None:
        return f"{key} (distribution unknown)"
    return f"{key} (distribution {spec.distribution} {spec.version})"


def _line(component: Any, text: str) -> str:
    place = _place()
    return f"{describe(component)} {text}" + (f" [{place}]" if place else "")


@contextlib.contextmanager
def calling(component: Any, call: str) -> Iterator[None]:
    """Run the block as ``component.call(...)``: an exception from it becomes a
    :class:`PluginFailure` naming the component, the call and where (dreamset's own errors pass)."""
    try:
        yield
    except DreamsetError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a plugin is named, not swallowed
        raise PluginFailure(_line(component, f"raised {type(exc).__name__} in {call}(): {exc}")) from exc


def iterate(component: Any, call: str, items: Iterable[Any]) -> Iterator[Any]:
    """``items`` (a component's generator, e.g. a mixer's batches) with each step under :func:`calling`."""
    iterator = iter(items)
    while True:
        with calling(component, call):
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def check(component: Any, problem_of, *args: Any, **kwargs: Any) -> None:
    """``problem_of(*args, **kwargs)`` (a check of :mod:`dreamset.contracts.checks`), timed into
    :data:`GUARD_TIME`; a problem raises :class:`ContractViolation` naming the component."""
    started = time.perf_counter()
    try:
        problem = problem_of(*args, **kwargs)
    finally:
        GUARD_TIME.seconds += time.perf_counter() - started
        GUARD_TIME.checks += 1
    if problem:
        raise ContractViolation(_line(component, f"broke its contract: {problem}"))


def checked_attack(attacker: Any, model, x, y, **kwargs: Any):
    """``attacker.attack(model, x, y, **kwargs)`` under :func:`calling`, its output checked
    (:func:`dreamset.contracts.checks.attack_output_problem` with the attacker's ``eps`` and
    ``options.norm``, default ``linf``)."""
    from dreamset.contracts.checks import attack_output_problem

    with calling(attacker, "attack"):
        x_adv = attacker.attack(model, x, y, **kwargs)
    check(attacker, attack_output_problem, x, x_adv, _eps(attacker), getattr(getattr(attacker, "options", None), "norm", "linf"))
    return x_adv


def _eps(attacker: Any) -> float | None:
    eps = getattr(attacker, "eps", None)
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None


def record_traceback(run_dir: Path | None, exc: BaseException) -> Path | None:
    """Append ``exc``'s line and full traceback (its cause's included) to ``run_dir/run.log``; the
    file's path, or ``None`` when there is no run folder or it cannot be written."""
    if run_dir is None:
        return None
    path = Path(run_dir) / RUN_LOG
    try:
        with path.open("a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {exc}\n")
            log.write("".join(traceback.format_exception(exc)))
            log.write("\n")
    except OSError:
        return None
    return path
