"""Running under ``torchrun``: the process group, the device, barriers with timeouts, and what
happens when a rank dies. Everything the pipeline needs to know about several processes is here.

``torchrun --standalone --nproc_per_node N -m dreamset run RECIPE --out DIR`` (or ``generate``) starts
``N`` copies of the CLI with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set; two nodes run the same command with ``--nnodes 2 --rdzv-endpoint HOST:PORT``
and get the same variables. :func:`session` (entered by the CLI) then

* initialises the process group from those variables: ``nccl`` when the run's device is CUDA (each
  rank on ``cuda:LOCAL_RANK``, see :func:`local_device`), ``gloo`` on CPU; barriers and the small
  all-reduces of evaluation counts go through a ``gloo`` group in both cases;
* makes every wait finite: each collective has the process group's timeout and every
  :func:`barrier` its own (``DREAMSET_DIST_TIMEOUT`` seconds, default 1800; the ranks that wait while
  rank 0 alone fits the generator use ``DREAMSET_DIST_STAGE_TIMEOUT``, default 86400);
* keeps a heartbeat per rank (pid, host, time, in torchrun's key-value store), so a rank that finds a
  collective broken, a barrier timed out or itself stopped by torchrun (SIGTERM after a peer died)
  raises :class:`DistributedError` with one line that names the dead or stuck rank(s) — the CLI
  prints it and exits 1 instead of hanging or printing a traceback;
* destroys the process group on a clean exit (on an error it does not: a broken NCCL group can hang
  in teardown; the process is about to exit anyway).

Division of work (see :mod:`dreamset.orchestration.pipeline` and docs/scale.md): rank 0 owns the run folder
(lock, ``recipe.json``, the generator fit, the report); generation is split by shard (shard ``s`` on
rank ``s mod W``), training by rows of each global batch (DDP), evaluation by chunks of
``evaluate.batch_size`` images (:func:`split_rows`), so no result depends on the number of ranks.

Without ``torchrun`` (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) every function here is a no-op: rank 0
of 1, :func:`is_main` true.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator

from dreamset.contracts.errors import DreamsetError

log = logging.getLogger("dreamset")

#: seconds a barrier or collective may wait for the other ranks
TIMEOUT_ENV = "DREAMSET_DIST_TIMEOUT"
#: seconds the other ranks wait while rank 0 alone fits the generator
STAGE_TIMEOUT_ENV = "DREAMSET_DIST_STAGE_TIMEOUT"
HEARTBEAT_SECONDS = 1.0


class DistributedError(DreamsetError):
    """A rank died, stopped or did not reach a barrier in time (the message names it)."""


class _State:
    group = None  # the gloo group for barriers and counts (the default group when it is gloo)
    store = None  # torchrun's key-value store, for heartbeats
    rank, world = 0, 1
    stage = "start"
    heartbeat: threading.Thread | None = None
    stop = threading.Event()


_state = _State()


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        from dreamset.contracts.errors import BadInputError

        raise BadInputError(f"{name}: expected a number of seconds, got {value!r}") from None
    return seconds if seconds > 0 else default


def timeout() -> float:
    """Seconds a barrier or collective waits (``DREAMSET_DIST_TIMEOUT``, default 1800)."""
    return _seconds(TIMEOUT_ENV, 1800.0)


def stage_timeout() -> float:
    """Seconds the other ranks wait for a rank-0-only stage (``DREAMSET_DIST_STAGE_TIMEOUT``, default 86400)."""
    return _seconds(STAGE_TIMEOUT_ENV, 86400.0)


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or by hand with its variables) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if initialized() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes the run folder's shared files."""
    return rank() == 0


def local_device(device):
    """``device`` for this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (and is made current)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and device.index is None and launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            from dreamset.contracts.errors import BadInputError

            raise BadInputError(f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} CUDA device(s): "
                                "use --nproc_per_node <= the number of GPUs")
        device = torch.device("cuda", local)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


# -- liveness ----------------------------------------------------------------------------------------

def _agent_store():
    """A client of torchrun's key-value store (it lives in the torchrun agent, so it outlives any worker)."""
    import torch.distributed as dist

    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not host or not port:
        return None
    try:
        store = dist.TCPStore(host, int(port), is_master=False, timeout=datetime.timedelta(seconds=30))
    except Exception as exc:  # noqa: BLE001 - liveness is best effort; collectives still have timeouts
        log.warning("dreamset.orchestration.distributed: no key-value store for heartbeats (%s)", exc)
        return None
    return dist.PrefixStore(f"dreamset-{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/", store)


def _beat() -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname()}
    while not _state.stop.is_set():
        try:
            _state.store.set(f"alive/{_state.rank}", json.dumps({**record, "time": time.time(), "stage": _state.stage}))
        except Exception:  # noqa: BLE001 - the agent went away: nothing left to tell
            return
        _state.stop.wait(HEARTBEAT_SECONDS)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by torchrun) is dead too
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def dead_ranks(wait: float = 3 * HEARTBEAT_SECONDS) -> list[int]:
    """The other ranks that are gone: on this host, by their pid; elsewhere, by a heartbeat older
    than ``wait`` seconds (after waiting that long, so a live rank has beaten at least twice)."""
    if _state.store is None:
        return []
    me, here = _state.rank, socket.gethostname()
    records: dict[int, dict[str, Any]] = {}
    remote = False
    for other in range(_state.world):
        if other == me:
            continue
        try:
            records[other] = json.loads(_state.store.get(f"alive/{other}")) if _state.store.check([f"alive/{other}"]) else {}
        except Exception:  # noqa: BLE001
            return []
        remote |= records[other].get("host") != here
    if remote:
        time.sleep(wait)
    dead = []
    for other, record in records.items():
        if not record:
            continue  # never started: a barrier timeout reports it
        if record.get("host") == here:
            if not _pid_alive(int(record["pid"])):
                dead.append(other)
            continue
        try:
            now = json.loads(_state.store.get(f"alive/{other}"))
        except Exception:  # noqa: BLE001
            return dead
        if time.time() - float(now["time"]) > wait:
            dead.append(other)
    return dead


def _where() -> str:
    return f"rank {rank()} of {world_size()}"


def failure(what: str, cause: BaseException | str | None = None, missing: list[int] | None = None) -> DistributedError:
    """A :class:`DistributedError` for ``what`` failing on this rank, naming the ranks that died (or,
    when none died, the ranks ``missing`` from a barrier)."""
    dead = dead_ranks()
    if dead:
        names = ", ".join(str(r) for r in dead)
        line = f"{_where()}: rank {names} died during {_state.stage} (seen at {what})"
    elif missing:
        names = ", ".join(str(r) for r in missing)
        line = f"{_where()}: rank {names} did not reach {what} within the timeout (stuck or dead) during {_state.stage}"
    else:
        first = str(cause).strip().splitlines()[0] if cause else "no detail"
        line = f"{_where()}: {what} failed during {_state.stage}: {first[:200]}"
    return DistributedError(line + "; re-run the same command (same --out) to resume")


# -- the session -------------------------------------------------------------------------------------

def _on_sigterm(signum, frame):
    _state.stop.set()
    if sys.exc_info()[0] is not None:
        # an error is already on its way out (a broken collective, unwinding through a generator's
        # ``finally``): raising here would break that cleanup into an "Exception ignored" traceback;
        # the error in flight is reported instead, naming the dead rank the same way
        return
    raise failure("torchrun's SIGTERM", "torchrun stopped this rank: another rank failed or the job was cancelled")


@contextlib.contextmanager
def session(device) -> Iterator[Any]:
    """Under torchrun: initialise the process group (and heartbeats, a SIGTERM handler) for the body
    and tear it down after; yields this rank's device (``cuda:LOCAL_RANK`` on CUDA). Otherwise
    yields ``device`` and does nothing."""
    import torch.distributed as dist

    if not launched() or initialized():
        yield local_device(device)
        return
    device = local_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    limit = datetime.timedelta(seconds=timeout())
    kwargs = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(backend, timeout=limit, **kwargs)
    _state.rank, _state.world, _state.stage = dist.get_rank(), dist.get_world_size(), "start"
    _state.group = dist.new_group(backend="gloo", timeout=limit) if backend != "gloo" else dist.group.WORLD
    _state.store = _agent_store()
    _state.stop = threading.Event()
    if _state.store is not None:
        _state.heartbeat = threading.Thread(target=_beat, name="dreamset-heartbeat", daemon=True)
        _state.heartbeat.start()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    clean = False
    try:
        yield device
        barrier("the end of the run")
        clean = True
    except RuntimeError as exc:  # a collective broke when a peer went away; other errors pass through
        if isinstance(exc, dist.DistError) or dead_ranks():
            raise failure("a collective operation", exc) from exc
        raise
    finally:
        _state.stop.set()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if clean:
            dist.destroy_process_group()
        _state.store = _state.group = None


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Label what this rank is doing (named in failure messages). An error leaves the label on the
    stage it came from: the CLI names that stage when it reports the error, outside this block."""
    before, _state.stage = _state.stage, name
    yield
    _state.stage = before


def barrier(name: str, seconds: float | None = None) -> None:
    """Wait until every rank reaches the barrier ``name`` (at most ``seconds``, default :func:`timeout`);
    a dead or late rank raises :class:`DistributedError` naming it. No-op without a process group."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    limit = datetime.timedelta(seconds=seconds if seconds is not None else timeout())
    try:
        if _state.group is None and dist.get_backend() != "gloo":  # a group made by the caller, not session()
            dist.barrier()
        else:
            dist.monitored_barrier(group=_state.group, timeout=limit, wait_all_ranks=True)
    except RuntimeError as exc:
        found = re.search(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier", str(exc))
        missing = [int(v) for v in re.findall(r"\d+", found.group(1))] if found else None
        raise failure(f"the barrier '{name}'", exc, missing) from exc


def main_first(name: str, body: Callable[[], Any], seconds: float | None = None) -> Any:
    """Run ``body`` on rank 0, then on the other ranks (which wait at a barrier for rank 0, at most
    ``seconds``, default :func:`stage_timeout`). If rank 0's body raises, the others stop with
    :class:`DistributedError` too (rank 0 raises its own error). Returns ``body()``'s result."""
    if world_size() == 1:
        return body()
    ok = True
    result = None
    if is_main():
        try:
            result = body()
        except BaseException:
            ok = False
            _agree(False, name, seconds if seconds is not None else stage_timeout())
            raise
    if not _agree(ok, name, seconds if seconds is not None else stage_timeout()):
        raise DistributedError(f"{_where()}: rank 0 failed in {name} (its error is above); stopping")
    return body() if not is_main() else result


def _agree(ok: bool, name: str, seconds: float) -> bool:
    """Barrier ``name`` that also tells every rank whether rank 0 succeeded."""
    barrier(name, seconds)
    flag = sum_int([int(ok) if is_main() else 1])
    return bool(flag[0] == world_size())


def sum_int(values: list[int]) -> list[int]:
    """Element-wise sum over the ranks of a list of integers (identity without a process group)."""
    if world_size() == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.int64)
    try:
        dist.all_reduce(tensor, group=_state.group)
    except RuntimeError as exc:
        raise failure("an all-reduce", exc) from exc
    return tensor.tolist()


def split_rows(n: int, chunk: int, rows: Callable[[int, int], Any], local: bool = False):
    """``bool N`` flags computed chunk by chunk: chunk ``c`` (rows ``[c·chunk, (c+1)·chunk)``) runs
    ``rows(c, lo, hi)`` on rank ``c mod W``, and the flags are combined over the ranks (an all-reduce).
    Each chunk is computed the same way whatever ``W``, so the result does not depend on it.
    ``local``: this process computes every chunk itself and talks to no other rank (for work only
    rank 0 does, such as the training curves' validation)."""
    import torch

    flags = torch.zeros(n, dtype=torch.int64)
    me, world = (0, 1) if local else (rank(), world_size())
    for c, lo in enumerate(range(0, n, chunk)):
        if c % world == me:
            hi = min(lo + chunk, n)
            flags[lo:hi] = rows(c, lo, hi).to(torch.int64).cpu()
    if world > 1:
        import torch.distributed as dist

        try:
            dist.all_reduce(flags, group=_state.group)
        except RuntimeError as exc:
            raise failure("an all-reduce of evaluation results", exc) from exc
    return flags.bool()


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` on every rank (``value`` itself without a process group)."""
    return sum_int([int(value) if is_main() else 0])[0]


@contextlib.contextmanager
def main_holds(name: str, make: Callable[[], Any]) -> Iterator[None]:
    """Rank 0 enters the context manager ``make()`` (e.g. the run folder's lock) for the body; the
    other ranks wait until it has (and stop if it could not), and rank 0 leaves it only after every
    rank has finished the body."""
    with contextlib.ExitStack() as stack:
        main_first(name, lambda: stack.enter_context(make()) if is_main() else None, seconds=timeout())
        yield
        barrier(f"the end of {name}")


def env_rank() -> int:
    """``RANK`` from torchrun's environment (0 without it): usable before :func:`session`."""
    return int(os.environ.get("RANK", "0") or 0)
