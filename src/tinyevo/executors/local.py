"""In-process and isolated local executors.

:class:`LocalPoolExecutor` (the default, ``--executor local``; also ``process``) runs each task in one of
``workers`` **persistent** worker processes (``spawn`` start method: safe with torch's thread pools). A worker
is started once and reused for every task, one task at a time, so modules, data sets and estimators it loads
stay loaded between trials; ``fn`` is sent to a worker once, not with every task. A worker that dies (a
segfault, an ``abort()``, the out-of-memory killer) or runs past ``timeout_s`` is replaced; the task it ran is
reported as failed with the reason (``WorkerCrashed: ...``, ``WorkerKilled: ...``, ``TrialTimeout: ...``) and the
tasks of the other workers are not touched. A crashed task is re-run at most ``retries`` more times (only that
task is charged); a timed-out one is not re-run.

:class:`InProcessExecutor` (``--executor inprocess``) runs tasks in the calling process: no isolation and no
time limit, for debugging and profiling.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from tinyevo.errors import ConfigError
from tinyevo.executors.base import EXECUTORS, TaskResult, run_task

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

_STOP_GRACE_S = 2.0  # how long a worker asked to stop may take before it is killed


class InProcessExecutor:
    """Runs each task in the calling process, one after the other (no isolation: a native crash in a task
    ends the calling process; no time limit)."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[TaskResult[R]]:
        for i, item in enumerate(items):
            value, error, worker, dur = run_task(fn, item)
            yield TaskResult(i, value, error, worker, dur)

    def close(self) -> None:
        pass


# --- the worker process ---------------------------------------------------------------------------------------


def _watch(parent_pid: int, peak_rss_kib: Any) -> None:
    """Worker thread: record the process's peak RSS (for the driver's report when the worker is killed) and
    end the worker when its driver is gone (a driver killed with SIGKILL cannot stop it)."""
    import resource

    while True:
        peak_rss_kib.value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        if os.getppid() != parent_pid:
            os._exit(3)
        time.sleep(1.0)


def _worker_main(
    conn: Connection, parent_pid: int, threads: int | None, peak_rss_kib: Any, preload: tuple[str, ...] = ()
) -> None:
    """Import the ``preload`` modules, then serve tasks from ``conn`` one at a time until told to stop or the driver
    goes away."""
    try:
        os.setpgid(0, 0)  # own process group: a timeout kills the worker's children too; Ctrl-C goes to the driver
    except OSError:  # pragma: no cover - not permitted on this platform
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops workers on Ctrl-C
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        if "torch" in sys.modules:  # pragma: no cover - depends on what the main module imports
            sys.modules["torch"].set_num_threads(threads)
    threading.Thread(target=_watch, args=(parent_pid, peak_rss_kib), daemon=True).start()
    for module in preload:  # while the driver prepares the run; tasks sent meanwhile wait in the pipe
        try:
            importlib.import_module(module)
        except Exception:  # only a head start: the task imports what it needs (and reports why not)
            log.debug("could not preload %s", module, exc_info=True)
    fn: Callable[[Any], Any] | None = None
    fn_token = -1
    fn_error = ""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "stop":
            return
        if kind == "fn":
            fn_token = msg[1]
            try:
                fn, fn_error = pickle.loads(msg[2]), ""
            except Exception as exc:  # noqa: BLE001 - reported with each task
                fn, fn_error = None, f"cannot load the task function in the worker: {type(exc).__name__}: {exc}"
            continue
        _, token, index, blob = msg
        conn.send(("start", index))  # the time limit counts from here (not from the worker's start-up)
        if fn is None or token != fn_token:
            out: tuple[Any, ...] = (index, None, fn_error or "internal error: no task function", "", 0.0)
        else:
            try:
                item = pickle.loads(blob)
            except Exception as exc:  # noqa: BLE001
                out = (index, None, f"cannot load the task in the worker: {type(exc).__name__}: {exc}", "", 0.0)
            else:
                out = (index, *run_task(fn, item))
        try:
            conn.send(("done", *out))
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
            conn.send(("done", index, None, f"{type(exc).__name__}: cannot send the result: {exc}", out[3], out[4]))


# --- the driver side ------------------------------------------------------------------------------------------


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def death_reason(exitcode: int | None) -> str:
    """The failure reason for a worker that ended with ``exitcode`` (``multiprocessing`` convention: ``-N``
    for signal N) while running a task."""
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        if sig == signal.SIGKILL:
            return f"WorkerKilled: the evaluation process was killed by signal {sig} (SIGKILL; likely out of memory)"
        return f"WorkerCrashed: the evaluation process died with signal {sig} ({_signal_name(sig)})"
    return f"WorkerCrashed: the evaluation process exited with code {exitcode} before returning a result"


def _kill_group(pid: int | None) -> None:
    """SIGKILL the worker ``pid`` and every process in its process group (its children)."""
    if pid is None:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
            return
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class _Worker:
    """One persistent worker process and the driver's end of its pipe."""

    def __init__(self, ctx: Any, threads: int | None, preload: tuple[str, ...] = ()) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.peak_rss_kib = ctx.RawValue("q", 0)
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), threads, self.peak_rss_kib, preload),
            name="tinyevo-worker",
        )
        self.proc.start()
        child.close()
        self.fn_token = -1
        self.task: int | None = None  # the index of the task it runs
        self.deadline = float("inf")
        self.served = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def kill(self) -> int | None:
        """Kill the worker and its children; returns its exit code (``-9`` if this killed it)."""
        _kill_group(self.proc.pid)
        self.proc.join(5.0)
        code = self.proc.exitcode
        self._release()
        return code

    def stop(self) -> None:
        """Ask an idle worker to exit (kill it if it does not), or kill a busy one. A worker that never ran a task
        (started ahead, :meth:`LocalPoolExecutor.start`, and perhaps still importing) holds nothing to finish:
        it is killed at once."""
        if self.task is None and self.served == 0:
            _kill_group(self.proc.pid)
            self.proc.join(5.0)
        elif self.task is None and self.proc.is_alive():
            try:
                self.conn.send(("stop",))
            except OSError:
                pass
            self.proc.join(_STOP_GRACE_S)
        if self.proc.is_alive() or self.task is not None:
            _kill_group(self.proc.pid)
            self.proc.join(5.0)
        self._release()

    def _release(self) -> None:
        self.conn.close()
        if self.proc.exitcode is not None:
            self.proc.close()


def _stop_all(workers: list[_Worker]) -> None:
    for w in list(workers):
        try:
            w.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            log.debug("could not stop a worker", exc_info=True)
    workers.clear()


class LocalPoolExecutor:
    """``workers`` persistent, isolated local worker processes, each running one task at a time.

    ``fn`` and the items must be picklable (and importable in a spawned process). ``timeout_s`` (``None``: no
    limit) bounds each task's run time: a task past it has its worker process (and the worker's children)
    killed and is reported as ``TrialTimeout``. A task whose worker dies is re-run at most ``retries`` more times
    and then reported as ``WorkerCrashed`` / ``WorkerKilled``; the other tasks are not charged. ``threads`` sets
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (torch's default thread count) in each worker.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        retries: int = 1,
        timeout_s: float | None = None,
        threads: int | None = None,
        start_method: str = "spawn",
    ) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        if timeout_s is not None and not timeout_s > 0:
            raise ConfigError(f"the trial timeout must be positive (or none), got {timeout_s!r}")
        self.workers = workers
        self.retries = retries
        self.timeout_s = timeout_s
        self.threads = threads
        self._ctx = multiprocessing.get_context(start_method)
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._fn: Any = None
        self._fn_blob = b""
        self._fn_token = 0
        self._finalizer = weakref.finalize(self, _stop_all, self._all)

    # --- helpers ---
    def _token_for(self, fn: Callable[[T], R]) -> int:
        """Pickle ``fn`` once per distinct function object (held, so its id stays unique)."""
        if fn is not self._fn:
            self._fn_blob = pickle.dumps(fn)
            self._fn = fn
            self._fn_token += 1
        return self._fn_token

    def _worker(self) -> _Worker:
        if self._idle:
            return self._idle.pop()
        w = _Worker(self._ctx, self.threads)
        self._all.append(w)
        return w

    def _discard(self, w: _Worker) -> int | None:
        """Kill and forget worker ``w``; returns its exit code (how it died, if it had died)."""
        if w in self._all:
            self._all.remove(w)
        if w in self._idle:
            self._idle.remove(w)
        return w.kill()

    def start(self, *, count: int | None = None, preload: Sequence[str] = ()) -> None:
        """Start ``count`` (default and at most: ``workers``) worker processes now instead of at the first task,
        each importing the ``preload`` modules (e.g. the estimators, which import torch) while the caller goes on
        (loads the data, builds the run). Tasks then find them started; a worker that starts later (a
        replacement) imports what it needs with its first task. Starting ahead changes when the workers start,
        not what they compute. Safe to call again (it starts only the missing ones)."""
        want = self.workers if count is None else max(0, min(count, self.workers))
        while len(self._all) < want:
            w = _Worker(self._ctx, self.threads, tuple(preload))
            self._all.append(w)
            self._idle.append(w)

    def worker_pids(self) -> list[int]:
        """The process ids of the running workers (for tests and diagnostics)."""
        return [w.pid for w in self._all if w.pid is not None]

    # --- the protocol ---
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[TaskResult[R]]:
        n = len(items)
        try:
            token = self._token_for(fn)
        except Exception as exc:  # noqa: BLE001 - an unpicklable function fails every task, not the driver
            for i in range(n):
                yield TaskResult(i, None, f"{type(exc).__name__}: cannot send the task function: {exc}")
            return
        attempts = [0] * n
        queue = deque(range(n))
        busy: dict[Connection, _Worker] = {}
        try:
            while queue or busy:
                while queue and len(busy) < self.workers:
                    i = queue.popleft()
                    try:
                        blob = pickle.dumps(items[i])
                    except Exception as exc:  # noqa: BLE001
                        yield TaskResult(i, None, f"{type(exc).__name__}: cannot send the task: {exc}")
                        continue
                    w = self._worker()
                    attempts[i] += 1
                    try:
                        if w.fn_token != token:
                            w.conn.send(("fn", token, self._fn_blob))
                            w.fn_token = token
                        w.conn.send(("task", token, i, blob))
                    except OSError:  # the worker died while idle (or at start-up)
                        code = self._discard(w)
                        if w.served:  # not this task's fault
                            attempts[i] -= 1
                            queue.appendleft(i)
                        else:
                            yield from self._charge(i, code, w, attempts, queue)
                        continue
                    w.task = i
                    w.deadline = float("inf")  # until the worker says it started the task
                    busy[w.conn] = w
                if not busy:
                    continue
                deadline = min(w.deadline for w in busy.values())
                timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
                ready = set(wait([*busy, *(w.proc.sentinel for w in busy.values())], timeout))
                now = time.monotonic()
                for conn, w in list(busy.items()):
                    i = w.task
                    assert i is not None
                    if conn in ready:
                        try:
                            msg = conn.recv()
                        except (EOFError, OSError):  # died before or while sending
                            pass
                        else:
                            if msg[0] == "start":
                                if self.timeout_s is not None:
                                    w.deadline = now + self.timeout_s
                                continue
                            _, index, value, error, worker, dur = msg
                            del busy[conn]
                            w.task, w.served = None, w.served + 1
                            self._idle.append(w)
                            yield TaskResult(index, value, error, worker, dur, attempts[i])
                            continue
                    if conn in ready or w.proc.sentinel in ready:
                        del busy[conn]
                        code = self._discard(w)
                        yield from self._charge(i, code, w, attempts, queue)
                    elif now >= w.deadline:
                        del busy[conn]
                        self._discard(w)
                        log.warning("task %d exceeded the time limit of %g s; its worker was killed", i, self.timeout_s)
                        yield TaskResult(i, None, f"TrialTimeout: exceeded {self.timeout_s:g} s", "", 0.0, attempts[i])
        finally:
            for w in busy.values():  # left early (an error or Ctrl-C in the caller): their results are stale
                self._discard(w)

    def _charge(
        self, i: int, exitcode: int | None, w: _Worker, attempts: list[int], queue: deque[int]
    ) -> Iterator[TaskResult[Any]]:
        """Task ``i``'s worker died (with ``exitcode``): re-run it, or report it failed after ``retries``
        re-runs."""
        reason = death_reason(exitcode)
        kib = w.peak_rss_kib.value  # sampled every 1 s: a lower bound (logged only, the record stays deterministic)
        peak = f"peak RSS >= {kib / 1024:.0f} MiB" if kib else "peak RSS unknown"
        if attempts[i] <= self.retries:
            log.warning("%s (task %d, %s); running it again", reason, i, peak)
            queue.appendleft(i)
            return
        log.warning("%s (task %d, %s); giving up after %d attempt(s)", reason, i, peak, attempts[i])
        suffix = f" ({attempts[i]} attempts)" if attempts[i] > 1 else ""
        yield TaskResult(i, None, reason + suffix, "", 0.0, attempts[i])

    def close(self) -> None:
        self._idle.clear()
        _stop_all(self._all)


def _check_local(workers: int, scheduler: str | None) -> None:
    if scheduler is not None:
        raise ConfigError("--scheduler needs --executor dask")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")


@EXECUTORS.register("local", help="persistent isolated worker processes (default): crashes and hangs fail one trial")
def create_local(
    *, workers: int = 1, scheduler: str | None = None, timeout_s: float | None = None, threads: int | None = None
) -> LocalPoolExecutor:
    """``workers`` persistent isolated worker processes."""
    _check_local(workers, scheduler)
    return LocalPoolExecutor(workers=workers, timeout_s=timeout_s, threads=threads)


@EXECUTORS.register("process", help="the same as local (persistent isolated worker processes)")
def create_process(
    *, workers: int = 1, scheduler: str | None = None, timeout_s: float | None = None, threads: int | None = None
) -> LocalPoolExecutor:
    """``workers`` persistent isolated worker processes (kept for configurations that name it)."""
    _check_local(workers, scheduler)
    return LocalPoolExecutor(workers=workers, timeout_s=timeout_s, threads=threads)


@EXECUTORS.register("inprocess", help="in the calling process, one at a time (no isolation, no time limit; debugging)")
def create_inprocess(
    *, workers: int = 1, scheduler: str | None = None, timeout_s: float | None = None, threads: int | None = None
) -> InProcessExecutor:
    """Tasks run in the calling process: a native crash ends the search; ``timeout_s`` is not enforced."""
    _check_local(workers, scheduler)
    if workers != 1:
        raise ConfigError("--executor inprocess runs one evaluation at a time; use --workers 1")
    return InProcessExecutor()
