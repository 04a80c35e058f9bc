"""Evaluation functions for worker tests, and process-tree checks.

The worker runs its evaluation in a child process (``leaderboard.jobs.evalproc``), so a
test's evaluation function must be module-level (picklable); these talk to the test
through small files next to the job's ``work_dir`` (``<work-root>/<job-id>/eval``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TAG_VAR = "GENBENCH_TEST_TAG"  # inherited by every process a test's worker starts


def _job_dir(work_dir) -> Path:
    return Path(work_dir).parent


def _wait_for_file(path: Path, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


def gated_evaluate(inputs, config, data, work_dir, progress):
    """The real evaluation; once validity is complete it waits for ``<job>/proceed``."""
    from evaluator.pipeline import evaluate

    def spy(stage, done, total):
        progress(stage, done, total)
        if stage == "validity" and done == total > 0:
            _wait_for_file(_job_dir(work_dir) / "proceed")

    return evaluate(inputs, config, data, work_dir=work_dir, progress=spy)


RECORD_FILE = "evaluation.pkl"


def recorded_evaluate(inputs, config, data, work_dir, progress):
    """The real evaluation, also pickled to ``<job>/evaluation.pkl`` so that a test can
    compare what the worker published with what the evaluation returned."""
    import pickle

    from evaluator.pipeline import evaluate

    evaluation = evaluate(inputs, config, data, work_dir=work_dir, progress=progress)
    (_job_dir(work_dir) / RECORD_FILE).write_bytes(pickle.dumps(evaluation))
    return evaluation


def broken_evaluate(inputs, config, data, work_dir, progress):
    """An infrastructure failure; each call is logged in ``<work-root>/calls.txt``."""
    with open(_job_dir(work_dir).parent / "calls.txt", "a") as fh:
        fh.write(f"{work_dir}\n")
    raise RuntimeError("CUDA error: out of memory")


def slow_evaluate(inputs, config, data, work_dir, progress):
    """200 small steps, each logged in ``<job>/ticks.txt``; must be stopped from outside."""
    ticks = _job_dir(work_dir) / "ticks.txt"
    for i in range(200):
        progress("slow", i, 200)
        with open(ticks, "a") as fh:
            fh.write(f"{i}\n")
        time.sleep(0.05)
    raise AssertionError("should have been stopped")


HANG = ("import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True: time.sleep(60)\n")


def stuck_evaluate(inputs, config, data, work_dir, progress):
    """Reports one stage, starts a grandchild that ignores SIGTERM (its pid in
    ``<job>/grandchild.pid``), then hangs with SIGTERM blocked: a stage stuck for good."""
    progress("novelty", 0, 5)
    progress("novelty", 1, 5)
    child = subprocess.Popen([sys.executable, "-c", HANG])
    (_job_dir(work_dir) / "grandchild.pid").write_text(str(child.pid))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    while True:
        time.sleep(60)


# ------------------------------------------------------------------ process trees
def tagged_processes(tag: str) -> list[int]:
    """Live (non-zombie) processes whose environment has ``GENBENCH_TEST_TAG=tag``."""
    needle = f"{TAG_VAR}={tag}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            out.append(int(entry))
    return out


def describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: " + open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()[:200])
        except OSError:
            out.append(f"{pid}: (gone)")
    return out


HOLD_VAR = "GENBENCH_TEST_HOLD_AT"  # "stage prefix" at which held_evaluate stops moving


def held_evaluate(inputs, config, data, work_dir, progress):
    """The real evaluation, except that once a stage starting with ``$GENBENCH_TEST_HOLD_AT``
    has counted one item, it holds there (the stage stays in progress: pools alive) and
    writes ``<job>/held`` so the test knows the worker is mid-stage."""
    from evaluator.pipeline import evaluate

    hold = os.environ.get(HOLD_VAR)

    def spy(stage, done, total):
        progress(stage, done, total)
        if hold and stage.startswith(hold) and done >= 1:
            (_job_dir(work_dir) / "held").write_text(f"{stage} {done}/{total}\n")
            while True:
                time.sleep(60)

    return evaluate(inputs, config, data, work_dir=work_dir, progress=spy)


def path_leaking_evaluate(inputs, config, data, work_dir, progress):
    """An infrastructure failure whose message names a server path (the work folder)."""
    raise FileNotFoundError(f"[Errno 2] No such file or directory: '{work_dir}/reference/mp20_hull.parquet'")


PID_FILE = "eval.pid"


def pid_gated_evaluate(inputs, config, data, work_dir, progress):
    """``gated_evaluate``, writing the evaluation process's pid to ``<job>/eval.pid`` first."""
    (_job_dir(work_dir) / PID_FILE).write_text(str(os.getpid()))
    return gated_evaluate(inputs, config, data, work_dir, progress)
