"""Step-level progress of a relaxation run: which cells are being relaxed, at which step.

:class:`StepBoard` collects, from every relaxation path, the FIRE step of each running
structure (``step(key, atoms, step, limit)``) and each finished one (``finish``), and
reports both through the run's progress callback: the item count ``(stage, done,
total)`` at every finished structure, and about once a second a
:class:`~evaluator.progress.StepProgress` ("relaxing 123-atom cell, step 140/300", the work
in atoms × steps done out of the expected total) to a callback that takes it
(:class:`~evaluator.progress.StepReporter`). So a large cell that takes minutes keeps
the progress moving, and a stall watchdog fires only on a real hang.

Pool workers run in other processes: :class:`PoolSteps` is a lock-free side channel (a
shared-memory array with one slot per worker process, written with a sequence number)
that a thread of the calling process reads twice a second into the board, while the
calling thread waits on the pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from evaluator.mlip.relax_result import RelaxResult
from evaluator.progress import CellStep, Progress, StepProgress, StepReporter

STEP_REPORT_S = 1.0  # at most one step report a second


class StepBoard:
    """See the module doc. ``expected``: {key: (atoms, expected atoms × steps)} of the
    structures to relax now; ``done``/``total``: structures done (e.g. from a checkpoint)
    and in all. Thread-safe: pool step reports arrive from a reader thread."""

    def __init__(self, stage: str, expected: Mapping[str, tuple[int, int]], progress: Progress | None,
                 done: int, total: int, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = STEP_REPORT_S):
        self.stage, self.progress = stage, progress
        self.expected = dict(expected)
        self.done, self.total = done, total
        self.running: dict[str, CellStep] = {}
        self.finished_work = 0
        self._pending_work = sum(w for _, w in self.expected.values())
        self._lock = threading.RLock()
        self._clock, self._interval = clock, interval_s
        self._last_report = -float("inf")
        self.error: BaseException | None = None  # raised by the callback in the reader thread
        self.reports = 0  # step reports sent (tests, provenance)

    def detail(self) -> StepProgress:
        with self._lock:
            running_work = sum(c.atoms * c.step for c in self.running.values())
            running_total = sum(max(c.atoms * c.step, self.expected.get(k, (0, 0))[1])
                                for k, c in self.running.items())
            return StepProgress(tuple(self.running.values()), self.finished_work + running_work,
                                self.finished_work + running_total + self._pending_work)

    def step(self, key: str, atoms: int, step: int, limit: int) -> None:
        """A running relaxation of ``key`` is at FIRE step ``step`` of at most ``limit``."""
        with self._lock:
            if key not in self.expected:  # finished already (a late report) or not ours
                return
            if key not in self.running:
                self._pending_work -= self.expected[key][1]
            self.running[key] = CellStep(int(atoms), int(step), int(limit))
        self.report()

    def finish(self, key: str, result: RelaxResult) -> None:
        """``key`` is finished (its result is checkpointed): count it and report."""
        with self._lock:
            atoms, expected = self.expected.pop(key, (0, 0))
            cell = self.running.pop(key, None)
            if cell is None:
                self._pending_work -= expected
            self.finished_work += atoms * (result.steps or 0)
            self.done += 1
            if self.progress is not None:
                self.progress(self.stage, self.done, self.total)
        self.report(force=bool(self.running))

    def report(self, force: bool = False) -> None:
        """Send the step detail if a second has passed since the last one (or ``force``)."""
        if not isinstance(self.progress, StepReporter):
            return
        with self._lock:
            now = self._clock()
            if not force and now - self._last_report < self._interval:
                return
            self._last_report = now
            self.reports += 1
            self.progress.steps(self.stage, self.done, self.total, self.detail())

    def raise_error(self) -> None:
        """Re-raise, in the calling thread, what the callback raised in the reader thread."""
        if self.error is not None:
            err, self.error = self.error, None
            raise err


# ---- pool side channel --------------------------------------------------------------------
_FIELDS = 5  # seq, item index + 1 (0: idle), atoms, step, limit
_SLOT: tuple[Any, int] | None = None  # (shared array, slot) of this pool worker


def attach_worker(array: Any, counter: Any, slots: int) -> None:
    """In a pool worker (its initializer): claim a slot of the shared array."""
    global _SLOT
    with counter.get_lock():
        slot = counter.value % slots
        counter.value += 1
    _SLOT = (array, slot)


def worker_step(index: int, atoms: int, step: int, limit: int) -> None:
    """In a pool worker: item ``index`` (0-based) is at ``step`` (``index`` -1: idle)."""
    if _SLOT is None:
        return
    array, slot = _SLOT
    base = slot * _FIELDS
    seq = array[base]
    array[base] = seq + 1  # odd: being written
    array[base + 1], array[base + 2], array[base + 3], array[base + 4] = index + 1, atoms, step, limit
    array[base] = seq + 2


class PoolSteps:
    """The side channel of one pool run (see the module doc); a context manager that runs
    the reader thread. ``keys[i]`` is the key of the pool's item ``i``."""

    def __init__(self, ctx: Any, workers: int, keys: list[str], board: StepBoard, poll_s: float = 0.5):
        self.slots = max(1, workers) * 4  # replacement workers claim fresh slots
        self.array = ctx.RawArray("q", self.slots * _FIELDS)
        self.counter = ctx.Value("q", 0)
        self.keys, self.board, self.poll_s = keys, board, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="relax-steps", daemon=True)

    @property
    def initargs(self) -> tuple[Any, Any, int]:
        return self.array, self.counter, self.slots

    def __enter__(self) -> PoolSteps:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def read_once(self) -> None:
        for slot in range(self.slots):
            base = slot * _FIELDS
            seq = self.array[base]
            fields = list(self.array[base + 1: base + _FIELDS])
            if seq % 2 or self.array[base] != seq or fields[0] <= 0:
                continue  # being written (read it next time) or idle
            index, atoms, step, limit = fields
            if index - 1 < len(self.keys):
                self.board.step(self.keys[index - 1], atoms, step, limit)

    def _read(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.read_once()
            except BaseException as exc:  # noqa: BLE001 - e.g. a shutdown request from the callback
                self.board.error = exc
                return
