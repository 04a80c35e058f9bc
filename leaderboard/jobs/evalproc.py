"""One evaluation in a child process that the worker can always stop.

The worker never runs evaluator code itself: :class:`EvalProcess` starts the
evaluation in a child (``forkserver`` by default, never ``fork``: the worker runs
threads) that leads its own process group, so every process the evaluation
starts (relaxation and validity pools, their fork servers, multiprocessing's
resource tracker) is in that group. :meth:`EvalProcess.kill` sends SIGKILL to the
whole group, which works even when a stage is stuck in C code or in a child
ignoring SIGTERM. The child dies with the worker, however the worker ends
(parent-death signal, plus a watchdog thread on the worker's pid that kills the
group).

An :class:`EvalProcess` starts idle, imports the evaluator (``WARM``) and waits for
its one job, so a worker keeps a spare one ready and a job does not wait for the
imports (seconds on a loaded machine).

The worker sends the child one :class:`EvalJob`; the child answers over the same
pipe with typed messages (:data:`ChildMessage`):

* :class:`~evaluator.progress.ProgressUpdate`: only when (stage, done, total) or the step
  detail inside a stage's items changes (e.g. "relaxing 123-atom cell, step 140/300" and
  the work done in atoms × steps, about once a second while a cell relaxes);
* :class:`Done`: the evaluation itself as the bytes of its two files, ``summary.json``
  (with the worker's own provenance, e.g. its lifecycle limits, added before it is
  serialized) and ``structures.parquet`` (``evaluator.outputs.serialize``, the one
  serialization); nothing is written to disk for it, the worker publishes these bytes
  (only the evaluator's checkpoints live in ``work_dir``);
* :class:`UserError`: :class:`~evaluator.ingest.types.IngestError` (unusable upload);
* :class:`Failed`: any other exception, with its traceback.

A message cut short (the child killed while sending) ends the stream like the
child's death; one that cannot be decoded sets :attr:`EvalProcess.broken`. The
worker treats both as an infrastructure failure.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import threading
import traceback
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

from evaluator.data import DataDir
from evaluator.ingest.types import IngestError
from evaluator.procpool import die_with_parent
from evaluator.progress import ProgressUpdate, StepProgress, StepReporter

# Nothing is preloaded into the fork server: importing pandas starts threads (pyarrow's
# jemalloc background thread and others), and a fork server must stay single-threaded, or
# it forks the very hazard it exists to avoid. The child imports the evaluator itself.
PRELOAD: tuple[str, ...] = ()
# What an idle (spare) evaluation process imports while it waits for its job.
WARM = ("evaluator.pipeline", "evaluator.outputs", "evaluator.ingest", "evaluator.families.validity.family",
        "evaluator.families.validity.preload")  # the last loads the validity tables (seconds)
REAP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class EvalJob:
    """The one job of an evaluation process. ``evaluate``: a module-level (picklable)
    function with the signature of ``evaluator.pipeline.evaluate``; None is that one."""

    evaluate: Callable[..., Any] | None
    inputs: list[Path]
    config: Any  # an evaluator.config.EvalConfig
    data_dir: str | None
    work_dir: Path  # the evaluator's checkpoints (kept across attempts: resume)
    provenance: dict[str, Any] = field(default_factory=dict)  # added to the summary's provenance


@dataclass(frozen=True)
class Done:
    """A finished evaluation: the bytes of ``summary.json`` and of ``structures.parquet``,
    as the worker publishes them."""

    summary_json: bytes
    table_parquet: bytes


@dataclass(frozen=True)
class UserError:
    """The upload is unusable (an IngestError): the job fails for good with ``message``."""

    message: str


@dataclass(frozen=True)
class Failed:
    """Any other exception in the evaluation (an infrastructure failure, retried)."""

    type: str
    message: str
    traceback: str


ChildMessage = ProgressUpdate | Done | UserError | Failed
CHILD_MESSAGES = (ProgressUpdate, Done, UserError, Failed)


def _child_main(conn: Connection, worker_pid: int, warm: tuple[str, ...]) -> None:
    os.setsid()  # lead a new process group: the worker kills the group, grandchildren included
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C and SIGTERM are the worker's business
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(worker_pid, whole_group=True)
    for module in warm:  # import while waiting for a job (a spare evaluation process)
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the job itself will report the import error
            pass
    try:
        job = conn.recv()
    except (EOFError, OSError):
        return  # the worker no longer needs us
    if not isinstance(job, EvalJob):
        return  # not ours: the worker sees the process end without a result

    progress = _Relay(conn)
    try:
        if job.evaluate is not None:
            fn = job.evaluate
        else:
            from evaluator.pipeline import evaluate as fn
        evaluation = fn(job.inputs, job.config, DataDir(job.data_dir), work_dir=job.work_dir, progress=progress)
        from evaluator.outputs import serialize

        if job.provenance:  # the worker's own records, in the summary before its one serialization
            from evaluator.summary import Summary

            provenance = {**evaluation.summary["provenance"], **job.provenance}
            # the summary's provenance with the worker's entries beside the evaluator's (the
            # TypedDict declares only the evaluator's own keys: a cast, not a conversion)
            summary = cast(Summary, {**evaluation.summary, "provenance": provenance})
            evaluation = dataclasses.replace(evaluation, summary=summary)
        serialized = serialize(evaluation)
        conn.send(Done(serialized.summary_json, serialized.table_parquet))
    except IngestError as exc:
        conn.send(UserError(str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the worker, which decides
        conn.send(Failed(type(exc).__name__, str(exc), traceback.format_exc()))
    finally:
        conn.close()


class _Relay(StepReporter):
    """The evaluation's progress callback: sends a ProgressUpdate when (stage, done, total)
    or, inside a stage's items, the step detail changes (a ``StepReporter``). Thread-safe:
    the relaxation's pool reports steps from a reader thread."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.last: ProgressUpdate | None = None
        self.lock = threading.Lock()

    def _send(self, msg: ProgressUpdate) -> None:
        with self.lock:
            if msg != self.last:  # pools re-call progress with unchanged counts: not progress
                self.last = msg
                self.conn.send(msg)

    def __call__(self, stage: str, done: int, total: int) -> None:
        last = self.last
        keep = last is not None and (last.stage, last.done, last.total) == (stage, done, total)
        # a step report stays until the next one or the next item count of another stage
        self._send(ProgressUpdate(str(stage), int(done), int(total),
                                  *((last.detail, last.work_done, last.work_total) if keep and last else ())))

    def steps(self, stage: str, done: int, total: int, detail: StepProgress) -> None:
        self._send(ProgressUpdate(str(stage), int(done), int(total), detail.text() or None,
                                  int(detail.work_done), int(detail.work_total)))


@dataclass
class Received:
    """What one read of the pipe got: the messages, whether the stream ended (the
    child closed it or died, possibly in the middle of a message) and, if a message
    could not be decoded, why."""

    messages: list[ChildMessage]
    closed: bool = False
    broken: str | None = None


def receive(conn: Connection) -> Received:
    """Every message waiting on ``conn`` (without blocking for the next one)."""
    out = Received([])
    try:
        while conn.poll():
            msg = conn.recv()
            if not isinstance(msg, CHILD_MESSAGES):
                out.broken = f"evaluation process sent an unknown message ({type(msg).__name__})"
                return out
            out.messages.append(msg)
    except (EOFError, OSError):  # closed; "got end of file during message": killed while sending
        out.closed = True
    except Exception as exc:  # noqa: BLE001 - any undecodable message: the evaluation cannot be trusted
        out.broken = f"evaluation process sent a broken message ({type(exc).__name__}: {exc})"
    return out


class EvalProcess:
    """An evaluation process; see the module docstring.

    Created idle: it imports ``warm`` modules and waits, so a worker can keep a spare
    one ready while it runs or waits for a job. :meth:`run` hands it its one job.
    """

    def __init__(self, start_method: str = "forkserver", warm: tuple[str, ...] = WARM):
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be forkserver or spawn, got {start_method!r}")
        ctx = mp.get_context("forkserver") if start_method == "forkserver" else mp.get_context("spawn")
        if start_method == "forkserver" and PRELOAD:
            ctx.set_forkserver_preload(list(PRELOAD))  # only if this process's server is not running yet
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child_main, name="evaluation",
                                args=(child_conn, os.getpid(), tuple(warm)))
        self.proc.start()
        child_conn.close()
        self._eof = False
        self.broken: str | None = None  # why the last message could not be read

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def run(self, evaluate: Callable[..., Any] | None, inputs: list[Path], config: Any,
            data_dir: str | Path | None, work_dir: Path, provenance: dict[str, Any] | None = None) -> None:
        """Start the job. ``evaluate``: a module-level function with the signature of
        ``evaluator.pipeline.evaluate`` (None: that one); it must be picklable.
        ``provenance``: entries added to the summary's provenance (e.g. ``lifecycle``)."""
        self.conn.send(EvalJob(evaluate, list(inputs), config, None if data_dir is None else str(data_dir),
                               Path(work_dir), dict(provenance or {})))

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def messages(self, timeout: float) -> list[ChildMessage]:
        """Messages received within ``timeout`` seconds (returns early when one arrives).
        A message that cannot be decoded sets :attr:`broken` and ends the stream."""
        if self._eof:
            self.proc.join(timeout)
            return []
        wait([self.conn, self.proc.sentinel], timeout=timeout)
        got = receive(self.conn)
        if got.broken is not None:
            self.broken = got.broken
        self._eof = got.closed or got.broken is not None
        return got.messages

    @property
    def finished(self) -> bool:
        """The child has exited and every message it sent was read."""
        if self.proc.is_alive():
            return False
        if not self._eof:
            try:
                if self.conn.poll():
                    return False
            except (EOFError, OSError):
                pass
        return True

    def exit_description(self) -> str:
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"evaluation process died ({name})"
        return f"evaluation process died (exit code {code})"

    def kill(self) -> None:
        """SIGKILL the evaluation's whole process group and reap the child."""
        pid = self.proc.pid
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)  # the child leads its group (setsid)
            except (ProcessLookupError, PermissionError):
                pass
            if self.proc.is_alive():  # killed before it could call setsid
                self.proc.kill()
        self.proc.join(REAP_TIMEOUT_S)
        self.conn.close()

    def close(self) -> None:
        """After a normal exit: kill anything the child left in its group, then reap it."""
        wait([self.proc.sentinel], timeout=REAP_TIMEOUT_S)  # exited (a zombie still holds the group id)
        self.kill()
