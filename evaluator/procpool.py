"""Bounded process pools: the one way the evaluator runs work in child processes.

``run_bounded(fn, items, workers=2, timeout_s=30)`` runs ``fn(item)`` for every item in
child processes and yields one :class:`Outcome` per item, in completion order. It exists
because the standard pools fail the evaluator's needs in these ways:

* **No fork.** The worker and the app run threads (heartbeat, Gradio, torch's pools);
  forking a threaded process can copy a lock in its held state and deadlock the child.
  Children start with ``forkserver`` (default) or ``spawn``; ``fork`` is refused.
* **A bound per item.** ``concurrent.futures`` cannot stop one running task. Here an item
  that runs past ``timeout_s`` has its child killed (SIGKILL) and replaced, and gets
  ``Outcome(ok=False, timed_out=True)`` (once it timed out again alone, below); the other
  items go on.
* **The machine's failures are not the items'.** A child that dies (crash, out of
  memory, a signal) costs its item nothing at first: the item is run again in another
  worker process, alone (no other item running in the pool), and only an item that
  kills or times out its worker again, alone, gets ``Outcome(ok=False)`` with the reason
  (``item_attempts`` runs in all). When worker processes keep failing whatever they run
  (``max_lost_workers`` losses in a row without any item completing: they cannot start,
  memory pressure, a signal; or several items "killed" their workers and none completed)
  or an initializer fails, the run raises :class:`PoolFailure`
  (an infrastructure failure: its callers must not turn it into per-item failures).
* **Whatever drives the caller.** Children never re-run the caller's ``__main__``
  (multiprocessing does so for ``spawn``/``forkserver`` children, which breaks when the
  caller is a script read from standard input, where ``__main__.__file__`` is
  ``"<stdin>"`` and every child dies at start, and re-runs unguarded scripts), unless
  ``fn`` or the initializer is defined there; then ``__main__`` must be a real file or
  module, else the call is refused with a clear ValueError (a notebook, stdin).
* **No orphans.** Each child dies with the process that started the pool, whatever kills
  it (Linux parent-death signal, plus a watchdog thread on the caller's pid, since a
  forkserver child's parent is the fork server, not the caller). Leaving the ``with``
  block early (a break, or an exception such as the worker's abort) kills and reaps every
  child at once instead of waiting for it; :func:`terminate_all` does the same for every
  live pool of the process (signal handlers).

``fn`` must be a module-level function and the items picklable (by reference to
importable modules: a class defined in a ``__main__`` read from stdin cannot be sent). Use it as
``with run_bounded(...) as outcomes: for o in outcomes: ...``; plain iteration works too.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.spawn as mp_spawn
import os
import pickle
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
ITEM_ATTEMPTS = 2  # runs of an item whose worker died or timed out before it is blamed (the last alone)
# Worker losses in a row (no item completing meanwhile) before the run fails as infrastructure:
# by default 2 * workers + 4, above the 2 * workers that ``workers`` bad items in a row cost
# (each dies once beside the others, then once alone).
LOST_WORKERS_MARGIN = 4
_PR_SET_PDEATHSIG = 1

# Child -> parent messages: ("ready",), ("init_error", why), ("task_error", why) or
# ("done", index, ok, value, error).
Done: TypeAlias = tuple[str, int, bool, Any, str | None]


class PoolFailure(RuntimeError):
    """The pool's worker processes failed for reasons that are not the items': they could
    not start, their initializer failed, or they kept dying whatever they ran. An
    infrastructure failure: no per-item result of the run may stand in for it."""


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
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            task = pickle.loads(raw)
        except BaseException as exc:  # noqa: BLE001 - e.g. a class only the caller's __main__ has
            conn.send(("task_error", f"a task could not be read in the worker process: {_describe(exc)}"))
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

# multiprocessing prepares each spawn/forkserver child by re-running the caller's __main__
# (``spawn.get_preparation_data`` -> ``init_main_from_path`` / ``init_main_from_name``). With
# ``python - < script.py`` __main__.__file__ is "<stdin>", which the child takes for a path:
# FileNotFoundError, and every child dies before it starts. Our children need __main__ only
# when fn or the initializer lives there, so while a pool starts a child that does not, the
# preparation data leaves __main__ out. The hook changes nothing for other callers (the flag
# is this thread's, set only around our own Process.start()).
_LAUNCH = threading.local()
_ORIGINAL_PREPARATION = mp_spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    data: dict[str, Any] = _ORIGINAL_PREPARATION(name)
    if getattr(_LAUNCH, "without_main", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


if getattr(mp_spawn.get_preparation_data, "__module__", None) != __name__:
    mp_spawn.get_preparation_data = _preparation_data


def _in_main(obj: object) -> bool:
    return getattr(obj, "__module__", None) in ("__main__", "__mp_main__")


def main_importable() -> bool:
    """Whether a child process could import the caller's ``__main__`` (a module run with
    ``-m``, or a script file that exists); not for stdin, ``-c`` or a notebook."""
    import sys

    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True
    path = getattr(main, "__file__", None)
    if not path:
        return False
    from multiprocessing import process

    origin = getattr(process, "ORIGINAL_DIR", None)  # where multiprocessing resolves a relative __file__
    if not os.path.isabs(path) and origin is not None:
        path = os.path.join(origin, path)
    return os.path.isfile(path)


def needs_main(fn: Callable[..., Any], initializer: Callable[..., None] | None) -> bool:
    """Whether children must import ``__main__`` to run ``fn`` and ``initializer``; raises
    ValueError when they must but cannot (defined in stdin, ``-c`` or a notebook)."""
    inside = [f for f in (fn, initializer) if f is not None and _in_main(f)]
    if inside and not main_importable():
        names = ", ".join(getattr(f, "__qualname__", repr(f)) for f in inside)
        raise ValueError(f"{names} is defined in __main__, which worker processes cannot import here "
                         f"(a script read from standard input, python -c or a notebook): define it in "
                         f"a module, or run the script from a file")
    return bool(inside)

class _Child:
    def __init__(self, run: _Run) -> None:
        self.conn, child_conn = run.ctx.Pipe()
        self.proc = run.ctx.Process(
            target=_child_main, daemon=True, name="procpool-child",
            args=(child_conn, run.fn, run.initializer, run.initargs, os.getpid(),
                  run.use_pdeathsig, run.max_memory_bytes))
        _LAUNCH.without_main = not run.needs_main
        try:
            self.proc.start()
        finally:
            _LAUNCH.without_main = False
            child_conn.close()
        self.ready = False
        self.started = time.monotonic()
        self.task: int | None = None
        self.item: Any = None
        self.alone = False  # no other item has run in the pool during this task
        self.deadline = self.started + START_TIMEOUT_S

    def assign(self, index: int, item: Any, timeout_s: float | None, alone: bool) -> None:
        self.task, self.item, self.alone = index, item, alone
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
                 max_memory_bytes: int | None, item_attempts: int = ITEM_ATTEMPTS,
                 max_lost_workers: int | None = None) -> None:
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
        self.needs_main = needs_main(fn, initializer)
        # The parent-death signal fires when the *thread* that forked the child ends, so it
        # is safe only for forkserver children (forked by the fork server's single thread)
        # or children started from the main thread; the pid watchdog covers the rest.
        self.use_pdeathsig = (start_method == "forkserver"
                              or threading.current_thread() is threading.main_thread())
        self.fn, self.initializer, self.initargs = fn, initializer, initargs
        self.max_memory_bytes = max_memory_bytes
        self.timeout_s = timeout_s
        self.item_attempts = max(1, int(item_attempts))
        self.pending: deque[tuple[int, Any]] = deque(enumerate(items))
        self.workers = max(1, min(int(workers), len(self.pending)))
        self.max_lost_workers = max(1, int(max_lost_workers if max_lost_workers is not None
                                           else 2 * self.workers + LOST_WORKERS_MARGIN))
        self.children: list[_Child] = []
        self.ready: deque[Outcome] = deque()
        self.closed = False
        self.failure: str | None = None  # why the run failed as infrastructure (PoolFailure)
        self.suspects: deque[tuple[int, Any]] = deque()  # to run again, alone
        self.solo: int | None = None  # the suspect running alone now (nothing else starts meanwhile)
        self.runs: dict[int, int] = {}  # index -> runs that killed or timed out their worker
        self.lost_in_a_row = 0  # workers lost since an item last completed
        self.last_loss = ""
        self.n_items = len(self.pending)
        self.completed_any = False  # some item completed: the workers can work
        self.deferred: list[Outcome] = []  # verdicts held until workers are shown to work
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
            if self.failure is not None:
                self.close()
                raise PoolFailure(self.failure)
            if self.closed or not (self.pending or self.suspects or self._busy()):
                if self.deferred and not self.closed:
                    self._settle_deferred()
                    continue
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
    def _busy(self) -> list[_Child]:
        return [c for c in self.children if c.task is not None]

    def _fail_run(self, why: str) -> None:
        self.failure = self.failure or why

    def _step(self) -> None:
        # a suspect runs alone: nothing new starts until the running items are done, nor
        # while it runs
        exclusive = bool(self.suspects) or self.solo is not None
        wanted = 1 if exclusive else min(self.workers, len(self.pending) + len(self._busy()))
        while len(self.children) < max(wanted, 1) and (self.pending or self.suspects) and self.failure is None:
            self._spawn()
        if self.failure is not None or not self.children:
            return
        idle = [c for c in self.children if c.ready and c.task is None]
        if exclusive:
            if idle and not self._busy() and self.solo is None:
                index, item = self.suspects.popleft()
                self.solo = index
                idle[0].assign(index, item, self.timeout_s, alone=True)
        else:
            for child in idle:
                if not self.pending:
                    break
                index, item = self.pending.popleft()
                for other in self._busy():
                    other.alone = False
                child.assign(index, item, self.timeout_s, alone=not self._busy())
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

    def _spawn(self) -> None:
        try:
            self.children.append(_Child(self))
        except Exception as exc:  # noqa: BLE001 - e.g. out of processes or memory: the machine's failure
            self._worker_lost(f"worker process could not be started: {_describe(exc)}")

    def _receive(self, child: _Child) -> None:
        try:
            msg = child.conn.recv()
        except (EOFError, OSError):
            self._lost(child, None)
            return
        if msg[0] == "ready":
            child.ready = True
            child.deadline = float("inf")
        elif msg[0] in ("init_error", "task_error"):
            self.children.remove(child)
            child.kill()
            self._fail_run(f"worker process could not start: {msg[1]}" if msg[0] == "init_error" else msg[1])
        else:
            _, index, ok, value, error = msg
            if index == self.solo:
                self.solo = None
            child.task = child.item = None
            child.deadline = float("inf")
            self.lost_in_a_row = 0  # a worker completed an item: workers can work
            self.completed_any = True
            self.ready.append(Outcome(index, ok, value=value, error=error))
            self.ready.extend(self.deferred)
            self.deferred.clear()

    def _settle_deferred(self) -> None:
        """The run is over and items killed their workers but none completed: one item
        alone may be at fault; several say the workers die whatever they run."""
        if self.completed_any or self.n_items == 1:
            self.ready.extend(self.deferred)
            self.deferred.clear()
        else:
            self._fail_run(f"none of the {self.n_items} items completed: every worker process died, "
                           f"whatever it ran (last: {self.last_loss}): a failure of the machine, "
                           f"not of the items")

    def _worker_lost(self, why: str) -> None:
        """Count a worker lost for no reason of its item; too many in a row fail the run."""
        self.lost_in_a_row += 1
        self.last_loss = why
        if self.lost_in_a_row >= self.max_lost_workers:
            self._fail_run(f"worker processes keep failing ({self.lost_in_a_row} in a row with no item "
                           f"completed; last: {why}): a failure of the machine, not of the items")

    def _lost(self, child: _Child, error: str | None, timed_out: bool = False) -> None:
        """Drop a child (killing it if needed); error None: it died by itself."""
        self.children.remove(child)
        child.kill()
        error = error or child.died_how()
        if child.task is None:  # died (or hung) while starting, or while idle
            self._worker_lost(error if child.ready else f"worker process could not start: {error}")
            return
        index, item, alone = child.task, child.item, child.alone
        if index == self.solo:
            self.solo = None
        if not timed_out:
            self._worker_lost(error)
        runs = self.runs[index] = self.runs.get(index, 0) + 1
        if runs >= self.item_attempts and alone:
            # reproducible, and not the pool's doing: this item's own failure
            how = f"{error}; {runs} times, the last alone in its worker" if runs > 1 else error
            if timed_out:
                self.ready.append(Outcome(index, False, error=error, timed_out=True))
            elif self.completed_any:
                self.ready.append(Outcome(index, False, error=how))
            else:  # blamed only once some item shows that the workers can work
                self.deferred.append(Outcome(index, False, error=how))
        else:
            self.suspects.append((index, item))


def run_bounded(fn: Callable[[Any], Any], items: Iterable[Any], *, workers: int = 1,
                timeout_s: float | None = None, start_method: str = "forkserver",
                preload: Sequence[str] = (), initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = (), max_memory_bytes: int | None = None,
                item_attempts: int = ITEM_ATTEMPTS, max_lost_workers: int | None = None) -> _Run:
    """Run ``fn(item)`` for each item in up to ``workers`` child processes; see the module doc.

    timeout_s bounds each item's run time (the child's start-up is not counted);
    max_memory_bytes caps each child's address space (RLIMIT_AS), so a runaway item
    gets a MemoryError outcome instead of exhausting the machine. An item whose worker
    dies or times out runs again, alone, up to ``item_attempts`` runs in all; after
    ``max_lost_workers`` workers lost in a row (no item completing; default
    ``2 * workers + 4``) iterating raises :class:`PoolFailure`, as does an initializer
    that fails.
    """
    return _Run(fn, items, workers=workers, timeout_s=timeout_s, start_method=start_method,
                preload=preload, initializer=initializer, initargs=initargs,
                max_memory_bytes=max_memory_bytes, item_attempts=item_attempts,
                max_lost_workers=max_lost_workers)


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
