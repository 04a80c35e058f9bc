"""What the worker knows about a running job's progress, in the shape the status views read.

``ProgressTracker.update(stage, done, total)`` is fed every progress report of the
evaluation; ``doc()`` is the job document's ``progress``::

    {"stage", "done", "total",
     "stage_started_at": ISO time the running stage started,
     "updated_at": ISO time of the last change of (stage, done, total),
     "rate": items/s of the running stage so far, or None (nothing counted yet)}

``stage_rates()`` gives ``{stage: items/s}`` measured over the whole job (stages that
counted items), recorded on the finished job so that ETAs of queued jobs can be
estimated from past jobs; ``stage_seconds()`` the wall-clock seconds per stage.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable


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

    def update(self, stage: str, done: int, total: int) -> bool:
        """Record a report; True if (stage, done, total) changed (real progress)."""
        if (stage, done, total) == (self.stage, self.done, self.total):
            return False
        t = self._clock()
        if stage != self.stage:
            self._close_stage(t)
            self.stage, self.stage_started, self.first_done = stage, t, done
        self.done, self.total = done, total
        self.last_change = t
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

    def _iso(self, t: float) -> str:
        return dt.datetime.fromtimestamp(self._wall0 + t, dt.UTC).isoformat(timespec="milliseconds")

    def doc(self) -> dict:
        return {"stage": self.stage, "done": self.done, "total": self.total,
                "stage_started_at": self._iso(self.stage_started), "updated_at": self._iso(self.last_change),
                "rate": self.rate()}

    def _totals(self) -> tuple[dict, dict, dict]:
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
