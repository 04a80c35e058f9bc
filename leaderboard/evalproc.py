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

Messages from the child (over a pipe):

* ``("progress", stage, done, total)``: only when they change;
* ``("done", summary_file, table_file)``: results written under ``out_dir``;
* ``("user_error", message)``: :class:`~evaluator.ingest.types.IngestError`;
* ``("error", type_name, message, traceback)``: anything else.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from evaluator.procpool import die_with_parent

# Nothing is preloaded into the fork server: importing pandas starts threads (pyarrow's
# jemalloc background thread and others), and a fork server must stay single-threaded, or
# it forks the very hazard it exists to avoid. The child imports the evaluator itself.
PRELOAD: tuple[str, ...] = ()
# What an idle (spare) evaluation process imports while it waits for its job.
WARM = ("evaluator.pipeline", "evaluator.outputs", "evaluator.ingest", "evaluator.families.validity.family",
        "evaluator.families.validity.preload")  # the last loads the validity tables (seconds)
REAP_TIMEOUT_S = 10.0


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
    evaluate, inputs, config, data_dir, work_dir, out_dir = job
    from evaluator.data import DataDir
    from evaluator.ingest.types import IngestError

    last: list = [None]

    def progress(stage: str, done: int, total: int) -> None:
        msg = ("progress", str(stage), int(done), int(total))
        if msg != last[0]:  # pools re-call progress with unchanged counts: not progress
            last[0] = msg
            conn.send(msg)

    try:
        fn = evaluate
        if fn is None:
            from evaluator.pipeline import evaluate as fn
        evaluation = fn(inputs, config, DataDir(data_dir), work_dir=work_dir, progress=progress)
        from evaluator.outputs import write_evaluation

        summary_file, table_file = write_evaluation(evaluation, out_dir)
        conn.send(("done", str(summary_file), str(table_file)))
    except IngestError as exc:
        conn.send(("user_error", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the worker, which decides
        conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc()))
    finally:
        conn.close()


class EvalProcess:
    """An evaluation process; see the module docstring.

    Created idle: it imports ``warm`` modules and waits, so a worker can keep a spare
    one ready while it runs or waits for a job. :meth:`run` hands it its one job.
    """

    def __init__(self, start_method: str = "forkserver", warm: tuple[str, ...] = WARM):
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be forkserver or spawn, got {start_method!r}")
        ctx = mp.get_context(start_method)
        if start_method == "forkserver" and PRELOAD:
            ctx.set_forkserver_preload(list(PRELOAD))  # only if this process's server is not running yet
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child_main, name="evaluation",
                                args=(child_conn, os.getpid(), tuple(warm)))
        self.proc.start()
        child_conn.close()
        self._eof = False

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()

    def run(self, evaluate: Callable | None, inputs: list[Path], config: Any, data_dir: str | None,
            work_dir: Path, out_dir: Path) -> None:
        """Start the job. ``evaluate``: a module-level function with the signature of
        ``evaluator.pipeline.evaluate`` (None: that one); it must be picklable."""
        self.conn.send((evaluate, list(inputs), config, None if data_dir is None else str(data_dir),
                        Path(work_dir), Path(out_dir)))

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def messages(self, timeout: float) -> list[tuple]:
        """Messages received within ``timeout`` seconds (returns early when one arrives)."""
        out: list[tuple] = []
        if self._eof:
            self.proc.join(timeout)
            return out
        wait([self.conn, self.proc.sentinel], timeout=timeout)
        try:
            while self.conn.poll():
                out.append(self.conn.recv())
        except (EOFError, OSError):
            self._eof = True
        return out

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
