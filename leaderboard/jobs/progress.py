"""What the worker knows about a running job's progress, in the shape the status views read.

``ProgressTracker.update(stage, done, total)`` is fed every progress report of the
evaluation; ``doc()`` is the job document's ``progress``::

    {"stage", "done", "total",
     "stage_started_at": ISO time the running stage started,
     "updated_at": ISO time of the last change of (stage, done, total),
     "rate": items/s of the running stage so far, or None (nothing counted yet),
     "detail": what runs inside the items, e.g. "relaxing 123-atom cell, step 140/300" (or None),
     "work_done", "work_total": work inside the items (atoms × FIRE steps for the relaxation;
         the total is an expectation that settles as cells finish), 0 when not reported,
     "work_rate": work units/s of the running stage so far, or None,
     "work_rates": {stage: work units/s} of every stage that reported work (kept on the
         finished job, so later jobs' estimates can use the measured relaxation speed)}

A change of the detail or of the work counts is progress as much as a finished item: a
large cell relaxing step by step keeps the stall watchdog quiet, a hang does not.

``stage_rates()`` gives ``{stage: items/s}`` measured over the whole job (stages that
counted items), recorded on the finished job so that ETAs of queued jobs can be
estimated from past jobs; ``stage_seconds()`` the wall-clock seconds per stage.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from leaderboard.jobs.documents import Progress


# the stage of a job whose results wait for the store to answer (leaderboard.worker)
STORE_UNAVAILABLE_STAGE = "publishing: store unavailable, retrying"


class ProgressTracker:
    """Stage timing and rates from (stage, done, total) reports.

    Durations use ``clock`` (monotonic seconds), so a wall-clock step (NTP) can neither
    fake a stall nor hide one; the ISO times are the wall clock at the start plus those.
    """

    def __init__(self, stage: str = "starting", clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        t = clock()
        self._wall0 = time.time() - t
        self.started = t
        self.stage, self.done, self.total = stage, 0, 0
        self.stage_started = t
        self.first_done = 0
        self.last_change = t
        self._items: dict[str, int] = {}
        self._seconds: dict[str, float] = {}
        self._counted_s: dict[str, float] = {}
        self.detail: str | None = None
        self.work_done = self.work_total = self.first_work = 0
        self.work_started: float | None = None  # first work report of the running stage
        self._work_rates: dict[str, float] = {}

    def update(self, stage: str, done: int, total: int, detail: str | None = None, work_done: int = 0,
               work_total: int = 0) -> bool:
        """Record a report; True if anything changed (real progress: an item, or a step inside one)."""
        new = (stage, done, total, detail, work_done, work_total)
        if new == (self.stage, self.done, self.total, self.detail, self.work_done, self.work_total):
            return False
        t = self._clock()
        if stage != self.stage:
            self._close_stage(t)
            self.stage, self.stage_started, self.first_done = stage, t, done
            self.work_started, self.first_work = None, 0
        if work_total and self.work_started is None:
            self.work_started, self.first_work = t, work_done
        self.done, self.total = done, total
        self.detail, self.work_done, self.work_total = detail, work_done, work_total
        self.last_change = t
        rate = self.work_rate()
        if rate is not None:
            self._work_rates[stage] = rate
        return True

    def _close_stage(self, t: float) -> None:
        s = self.stage
        self._seconds[s] = self._seconds.get(s, 0.0) + (t - self.stage_started)
        counted = self.done - self.first_done
        if counted > 0 and self.last_change > self.stage_started:
            self._items[s] = self._items.get(s, 0) + counted
            self._counted_s[s] = self._counted_s.get(s, 0.0) + (self.last_change - self.stage_started)

    def idle_s(self) -> float:
        """Seconds since the last change."""
        return self._clock() - self.last_change

    def elapsed_s(self) -> float:
        return self._clock() - self.started

    def rate(self) -> float | None:
        """Items/s of the running stage (from its start to its last change), None if none counted."""
        counted = self.done - self.first_done
        span = self.last_change - self.stage_started
        return round(counted / span, 4) if counted > 0 and span > 0 else None

    def work_rate(self) -> float | None:
        """Work units/s of the running stage (from its first work report to the last change)."""
        if self.work_started is None:
            return None
        counted, span = self.work_done - self.first_work, self.last_change - self.work_started
        return round(counted / span, 4) if counted > 0 and span > 0 else None

    def _iso(self, t: float) -> str:
        return dt.datetime.fromtimestamp(self._wall0 + t, dt.UTC).isoformat(timespec="milliseconds")

    def doc(self) -> Progress:
        return {"stage": self.stage, "done": self.done, "total": self.total,
                "stage_started_at": self._iso(self.stage_started), "updated_at": self._iso(self.last_change),
                "rate": self.rate(), "detail": self.detail, "work_done": self.work_done,
                "work_total": self.work_total, "work_rate": self.work_rate(), "work_rates": dict(self._work_rates)}

    def _totals(self) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
        items, seconds, counted = dict(self._items), dict(self._seconds), dict(self._counted_s)
        s, t = self.stage, self._clock()
        seconds[s] = seconds.get(s, 0.0) + (t - self.stage_started)
        n = self.done - self.first_done
        if n > 0 and self.last_change > self.stage_started:
            items[s] = items.get(s, 0) + n
            counted[s] = counted.get(s, 0.0) + (self.last_change - self.stage_started)
        return items, seconds, counted

    def stage_rates(self) -> dict[str, float]:
        """{stage: items/s} of every stage that counted items so far."""
        items, _, counted = self._totals()
        return {s: round(items[s] / counted[s], 4) for s in items if counted.get(s, 0) > 0}

    def stage_seconds(self) -> dict[str, float]:
        """{stage: wall-clock seconds} of every stage so far."""
        return {s: round(v, 3) for s, v in self._totals()[1].items()}
