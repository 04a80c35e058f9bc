"""Bounded process pools: the one way the evaluator runs work in child processes.

``run_bounded(fn, items, workers=2, timeout_s=30)`` runs ``fn(item)`` for every item in
child processes and yields one :class:`Outcome` per item, in completion order. It exists
because the standard pools fail the evaluator's needs in three ways:

* **No fork.** The worker and the app run threads (heartbeat, Gradio, torch's pools);
  forking a threaded process can copy a lock in its held state and deadlock the child.
  Children start with ``forkserver`` (default) or ``spawn``; ``fork`` is refused.
* **A bound per item.** ``concurrent.futures`` cannot stop one running task. Here an item
  that runs past ``timeout_s`` has its child killed (SIGKILL) and replaced, and gets
  ``Outcome(ok=False, timed_out=True)``; the other items go on. A child that dies (crash,
  out of memory) costs only the item it was running.
* **No orphans.** Each child dies with the process that started the pool, whatever kills
  it (Linux parent-death signal, plus a watchdog thread on the caller's pid, since a
  forkserver child's parent is the fork server, not the caller). Leaving the ``with``
  block early (a break, or an exception such as the worker's abort) kills and reaps every
  child at once instead of waiting for it; :func:`terminate_all` does the same for every
  live pool of the process (signal handlers).

``fn`` must be a module-level function and the items picklable. Use it as
``with run_bounded(...) as outcomes: for o in outcomes: ...``; plain iteration works too.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext, SpawnContext
from typing import Any, TypeAlias

START_METHODS = ("forkserver", "spawn")
START_TIMEOUT_S = 600.0  # a child must import and run its initializer within this
PARENT_WATCH_S = 0.5
REAP_TIMEOUT_S = 5.0
MAX_ERROR_CHARS = 500
_PR_SET_PDEATHSIG = 1

# Child -> parent messages: ("ready",), ("init_error", why), or ("done", index, ok, value, error).
Done: TypeAlias = tuple[str, int, bool, Any, str | None]


@dataclass(frozen=True)
class Outcome:
    """What became of one item: ``value`` when ok, else ``error`` in words."""

    index: int
    ok: bool
    value: Any = None
    error: str | None = None
    timed_out: bool = False


# ---------------------------------------------------------------- child side

def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL, *, pdeathsig: bool = True,
                    whole_group: bool = False) -> None:
    """Make the calling process die when ``parent_pid`` ends.

    ``pdeathsig``: set the Linux parent-death signal ``sig``. It fires when the *thread*
    that started this process ends, so use it only when that thread lives as long as its
    process (a fork server, a main thread). A watchdog thread on ``parent_pid`` (which
    need not be the direct parent: a forkserver child's parent is the fork server) covers
    every case; it kills this process's whole group when ``whole_group``.
    """
    if pdeathsig:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))
        except (OSError, AttributeError):  # not Linux: the watchdog below still works
            pass

    def watch() -> None:
        while pid_alive(parent_pid):
            time.sleep(PARENT_WATCH_S)
        if whole_group:
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def _child_main(conn: Connection, fn: Callable[[Any], Any], initializer: Callable[..., None] | None,
                initargs: tuple[Any, ...], caller_pid: int, use_pdeathsig: bool,
                max_memory_bytes: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's business
    die_with_parent(caller_pid, pdeathsig=use_pdeathsig)
    try:
        if max_memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
        if initializer is not None:
            initializer(*initargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, then this child ends
        conn.send(("init_error", _describe(exc)))
        return
    conn.send(("ready",))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, item = task
        reply: Done
        try:
            reply = ("done", index, True, fn(item), None)
        except MemoryError:
            reply = ("done", index, False, None, "MemoryError: ran out of memory"
                     + (f" (limit {max_memory_bytes / 2**30:.1f} GiB)" if max_memory_bytes else ""))
        except BaseException as exc:  # noqa: BLE001 - one item's failure, reported as its outcome
            reply = ("done", index, False, None, _describe(exc))
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
            conn.send(("done", index, False, None, f"result could not be sent back: {_describe(exc)}"))


# ---------------------------------------------------------------- parent side

class _Child:
    def __init__(self, run: _Run) -> None:
        self.conn, child_conn = run.ctx.Pipe()
        self.proc = run.ctx.Process(
            target=_child_main, daemon=True, name="procpool-child",
            args=(child_conn, run.fn, run.initializer, run.initargs, os.getpid(),
                  run.use_pdeathsig, run.max_memory_bytes))
        self.proc.start()
        child_conn.close()
        self.ready = False
        self.started = time.monotonic()
        self.task: int | None = None
        self.deadline = self.started + START_TIMEOUT_S

    def assign(self, index: int, item: Any, timeout_s: float | None) -> None:
        self.task = index
        self.deadline = time.monotonic() + timeout_s if timeout_s else float("inf")
        self.conn.send((index, item))

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(REAP_TIMEOUT_S)
        self.conn.close()

    def stop(self) -> None:
        """Ask an idle child to exit, then make sure it has."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(REAP_TIMEOUT_S)
        self.kill()

    def died_how(self) -> str:
        code = self.proc.exitcode
        if code is not None and code < 0:
            return f"worker process died (signal {-code})"
        return f"worker process died (exit code {code})"


_LIVE: weakref.WeakSet[_Run] = weakref.WeakSet()


class _Run(Iterator[Outcome]):
    def __init__(self, fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int,
                 timeout_s: float | None, start_method: str, preload: Sequence[str],
                 initializer: Callable[..., None] | None, initargs: tuple[Any, ...],
                 max_memory_bytes: int | None) -> None:
        self.ctx: ForkServerContext | SpawnContext
        if start_method == "forkserver":
            self.ctx = mp.get_context("forkserver")
            if preload:
                # Takes effect only if this process's fork server is not running yet.
                self.ctx.set_forkserver_preload(list(preload))
        elif start_method == "spawn":
            self.ctx = mp.get_context("spawn")
        else:
            raise ValueError(f"start_method must be one of {START_METHODS} (fork can deadlock "
                             f"in a threaded process), got {start_method!r}")
        # The parent-death signal fires when the *thread* that forked the child ends, so it
        # is safe only for forkserver children (forked by the fork server's single thread)
        # or children started from the main thread; the pid watchdog covers the rest.
        self.use_pdeathsig = (start_method == "forkserver"
                              or threading.current_thread() is threading.main_thread())
        self.fn, self.initializer, self.initargs = fn, initializer, initargs
        self.max_memory_bytes = max_memory_bytes
        self.timeout_s = timeout_s
        self.pending: deque[tuple[int, Any]] = deque(enumerate(items))
        self.workers = max(1, min(int(workers), len(self.pending)))
        self.children: list[_Child] = []
        self.ready: deque[Outcome] = deque()
        self.closed = False
        self.init_error: str | None = None
        _LIVE.add(self)

    # -- context manager and iterator
    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __next__(self) -> Outcome:
        while not self.ready:
            if self.closed or not (self.pending or any(c.task is not None for c in self.children)):
                self.close()
                raise StopIteration
            self._step()
        return self.ready.popleft()

    def close(self) -> None:
        """Kill and reap every child now (idempotent)."""
        if self.closed:
            return
        self.closed = True
        _LIVE.discard(self)
        for child in self.children:
            if child.task is None and child.ready and child.proc.is_alive():
                child.stop()
            else:
                child.kill()
        self.children.clear()

    # -- scheduling
    def _spawn(self) -> None:
        self.children.append(_Child(self))

    def _fail_pending(self, error: str) -> None:
        while self.pending:
            index, _ = self.pending.popleft()
            self.ready.append(Outcome(index, False, error=error))

    def _step(self) -> None:
        while len(self.children) < self.workers and self.pending and self.init_error is None:
            self._spawn()
        for child in self.children:
            if child.ready and child.task is None and self.pending:
                index, item = self.pending.popleft()
                child.assign(index, item, self.timeout_s)
        if not self.children:  # nothing can run any more
            self._fail_pending(self.init_error or "no worker process could be started")
            return
        waits: list[Any] = []
        for child in self.children:
            waits += [child.conn, child.proc.sentinel]
        deadline = min(c.deadline for c in self.children)
        wait(waits, timeout=None if deadline == float("inf") else max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        for child in list(self.children):
            if child.conn.poll():
                self._receive(child)
            elif not child.proc.is_alive():
                self._lost(child, None)
            elif now >= child.deadline:
                if child.task is None:
                    self._lost(child, f"worker process did not start within {START_TIMEOUT_S:g} s")
                else:
                    self._lost(child, f"timed out after {self.timeout_s:g} s", timed_out=True)

    def _receive(self, child: _Child) -> None:
        try:
            msg = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child, None)
            return
        if msg[0] == "ready":
            child.ready = True
            child.deadline = float("inf")
        elif msg[0] == "init_error":
            self.init_error = f"worker process could not start: {msg[1]}"
            self.children.remove(child)
            child.kill()
        else:
            _, index, ok, value, error = msg
            child.task = None
            child.deadline = float("inf")
            self.ready.append(Outcome(index, ok, value=value, error=error))

    def _lost(self, child: _Child, error: str | None, timed_out: bool = False) -> None:
        """Drop a child (killing it if needed); error None: it died by itself."""
        self.children.remove(child)
        child.kill()
        error = error or child.died_how()
        if child.task is not None:
            self.ready.append(Outcome(child.task, False, error=error, timed_out=timed_out))
        elif not child.ready:  # died while starting: do not respawn forever
            self.init_error = self.init_error or f"worker process could not start: {error}"


def run_bounded(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int = 1,
                timeout_s: float | None = None, start_method: str = "forkserver",
                preload: Sequence[str] = (), initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = (), max_memory_bytes: int | None = None) -> _Run:
    """Run ``fn(item)`` for each item in up to ``workers`` child processes; see the module doc.

    timeout_s bounds each item's run time (the child's start-up is not counted);
    max_memory_bytes caps each child's address space (RLIMIT_AS), so a runaway item
    gets a MemoryError outcome instead of exhausting the machine.
    """
    return _Run(fn, items, workers=workers, timeout_s=timeout_s, start_method=start_method,
                preload=preload, initializer=initializer, initargs=initargs,
                max_memory_bytes=max_memory_bytes)


def call_bounded(fn: Callable[[Any], Any], arg: Any, *, timeout_s: float | None,
                 start_method: str = "forkserver", preload: Sequence[str] = (),
                 max_memory_bytes: int | None = None) -> Outcome:
    """``fn(arg)`` in a child process, bounded in time (and memory): one Outcome."""
    with run_bounded(fn, [arg], workers=1, timeout_s=timeout_s, start_method=start_method,
                     preload=preload, max_memory_bytes=max_memory_bytes) as outcomes:
        return next(outcomes)


def terminate_all() -> None:
    """Kill every child of every live pool in this process (for signal handlers and shutdown)."""
    for run in list(_LIVE):
        run.close()
