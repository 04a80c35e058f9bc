"""Store outages: telling one from other errors, and logging a repeated error once.

``store_unavailable(exc)``: the store could not be reached or written (network, Hub
5xx past its own retries, disk I/O), as opposed to a lost compare-and-swap, a missing
file or a bug. The worker waits such an outage out instead of failing the job for it.

``RepeatedErrorLog``: the first occurrence of an error is logged with its traceback;
while the same error repeats it is only counted, and one line gives the count and the
duration when it stops (recovery, or another error). A store that is down for a minute
makes one traceback and one summary line, not one traceback per retry.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from leaderboard.store.base import PreconditionFailed, StoreError


# what varies between two reports of one error (request ids, counters, times) is left out of
# the comparison: a Hub 503 carries a new request id each time
_VARYING = re.compile(r"[0-9a-fA-F-]{8,}|\d+")


def _same_error_key(exc: BaseException) -> tuple[str, str]:
    first_line = (str(exc).splitlines() or [""])[0]
    return type(exc).__name__, _VARYING.sub("#", first_line)


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store did not answer or could not write (an outage)."""
    if isinstance(exc, (PreconditionFailed, FileNotFoundError)):
        return False  # the store answered: a lost compare-and-swap, a file that is not there
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return False  # the Hub answered and refused the request: waiting will not change that
    return isinstance(exc, (StoreError, OSError))  # OSError: network (requests, Hub) and disk errors


class RepeatedErrorLog:
    """Log an error once, count its repeats, summarise them when it stops."""

    def __init__(self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic):
        self.logger, self.what, self._clock = logger, what, clock
        self.key: tuple[str, str] | None = None
        self.first = ""  # the first report's text
        self.count = 0
        self.since = 0.0

    def error(self, exc: BaseException) -> None:
        """Record one occurrence of ``exc`` (logged only if it differs from the last one)."""
        key = _same_error_key(exc)
        if key == self.key:
            self.count += 1
            return
        self._summarise("")
        self.key, self.count, self.since = key, 1, self._clock()
        self.first = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        self.logger.error("%s: %s (logged once; repeats are counted)", self.what, self.first, exc_info=exc)

    def ok(self) -> None:
        """The operation succeeded: summarise the errors before it, if any."""
        self._summarise("; it works again")
        self.key, self.count = None, 0

    def _summarise(self, end: str) -> None:
        if self.key is None:
            return
        self.logger.warning("%s: %s happened %d time(s) in %.0f s%s", self.what, self.first, self.count,
                            self._clock() - self.since, end)
