"""Every ``GENBENCH_*`` environment variable the leaderboard reads: name, meaning, default
and parsing in one place, as ``evaluator.config`` does for the evaluator's own.

Each variable is a ``Variable``; modules read it with ``VARIABLE.read()`` (at the time
they need it, so a test's or an operator's change is seen) and get its parsed value or
its default. A value that does not parse raises ``SettingError`` naming the variable,
its value and what it expects; display code that must keep serving uses
``read_or_default`` (logged once per value, then the default).

Variables of the evaluator's run configuration (``GENBENCH_FAMILIES``, ``_REFERENCE``,
``_MLIP``, ``_MLIP_MODEL``, ``_DEVICE``, ``_DTYPE``, ``_RELAX_STEPS``, ``_OPTIONS``,
``_PROTOCOL``, ``_EXECUTOR``, ``_RAY_ACTORS``) are read through
``evaluator.config.build_config``, and ``GENBENCH_DATA_DIR`` through
``evaluator.data.DataDir`` (``EVALUATOR_VARIABLES``): the leaderboard never reads them itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
log = logging.getLogger("leaderboard.settings")


class SettingError(ValueError):
    """A ``GENBENCH_*`` variable holds a value that does not parse; the message names it."""


def _text(raw: str) -> str:
    return raw


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("expected a whole number >= 0")
    return value


def _positive_number(raw: str, what: str = "number") -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a {what}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"expected a positive {what}")
    return value


def _positive_seconds(raw: str) -> float:
    return _positive_number(raw, "number of seconds")


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, what it sets, how its text is parsed, its default."""

    name: str
    meaning: str
    parse: Callable[[str], T]
    default: T

    def read(self, env: Mapping[str, str] | None = None) -> T:
        """The parsed value of the variable in ``env`` (default: the process's environment),
        or the default when it is unset or empty; SettingError when it does not parse."""
        raw = (os.environ if env is None else env).get(self.name)
        if raw is None or not raw.strip():
            return self.default
        try:
            return self.parse(raw.strip())
        except ValueError as exc:
            raise SettingError(f"{self.name}={raw!r}: {exc}") from None

    def read_or_default(self, env: Mapping[str, str] | None = None) -> T:
        """``read``, but the default (and a log line) for a value that does not parse."""
        try:
            return self.read(env)
        except SettingError as exc:
            if str(exc) not in _warned:
                _warned.add(str(exc))
                log.warning("%s; using the default %r", exc, self.default)
            return self.default


_warned: set[str] = set()

# -- stores (leaderboard.store)
STORE = Variable[str | None](
    "GENBENCH_STORE", "the requests store URI (private: uploads, queue); default ./state/requests", _text, None)
RESULTS_STORE = Variable[str | None](
    "GENBENCH_RESULTS_STORE", "the results store URI (public); default ./state/results beside the default "
    "requests store", _text, None)

# -- the worker (leaderboard.worker, leaderboard.jobs)
WORK_DIR = Variable("GENBENCH_WORK_DIR", "the worker's per-job work and checkpoint folder", _text, "state/work")
STALL_TIMEOUT = Variable("GENBENCH_STALL_TIMEOUT", "seconds without progress before the worker stops a job and "
                         "retries it (also the queue's heartbeat stall limit)", _positive_seconds, 600.0)
START_TIMEOUT = Variable("GENBENCH_START_TIMEOUT", "the stall limit (s) while the evaluation process starts, "
                         "when longer than the stall timeout", _positive_seconds, 300.0)
JOB_BUDGET = Variable("GENBENCH_JOB_BUDGET", "wall-clock seconds one attempt may take before the job fails",
                      _positive_seconds, 86400.0)
EXPECT_PROTOCOL = Variable[str | None](
    "GENBENCH_EXPECT_PROTOCOL", "the protocol the service pins (an id or a named protocol); leaderboard.serve "
    "sets it for its worker", _text, None)
WORKER_PARENT_PID = Variable[int | None](
    "GENBENCH_WORKER_PARENT_PID", "the process whose end stops the worker (set by leaderboard.serve)", _count, None)

# -- the status view (leaderboard.jobs.eta, leaderboard.ui)
STALL_WARN = Variable[float | None](
    "GENBENCH_STALL_WARN_S", "seconds without progress after which the status view says a job stalled; "
    "default half the stall timeout", _positive_seconds, None)
LOCAL_USER = Variable("GENBENCH_LOCAL_USER", "the identity that acts in the app when not on a Space", _text,
                      "local-user")

# -- submissions (leaderboard.intake.submissions: SubmissionPolicy; None keeps the policy's default)
RATE_LIMIT = Variable[int | None](
    "GENBENCH_RATE_LIMIT", "submissions per user per window (0: unlimited); default 5", _count, None)
RATE_WINDOW_DAYS = Variable[float | None](
    "GENBENCH_RATE_WINDOW_DAYS", "the rate limit's window in days; default 7", _positive_number, None)
MAX_UPLOAD_MB = Variable[float | None](
    "GENBENCH_MAX_UPLOAD_MB", "the largest upload (all files) in MiB; default 200", _positive_number, None)
MAX_ATTEMPTS = Variable[int | None](
    "GENBENCH_MAX_ATTEMPTS", "evaluation attempts of a job on infrastructure failures; default 3", _count, None)

# -- publishing (leaderboard.publishing.card)
RESULTS_LICENSE = Variable("GENBENCH_RESULTS_LICENSE", "the license of the published results dataset", _text,
                           "cc-by-4.0")

class Setting(Protocol):
    """What every ``Variable`` has, whatever its value's type."""

    @property
    def name(self) -> str: ...

    @property
    def meaning(self) -> str: ...

    def read(self, env: Mapping[str, str] | None = None) -> object: ...


VARIABLES: tuple[Setting, ...] = (
    STORE, RESULTS_STORE, WORK_DIR, STALL_TIMEOUT, START_TIMEOUT, JOB_BUDGET, EXPECT_PROTOCOL, WORKER_PARENT_PID,
    STALL_WARN, LOCAL_USER, RATE_LIMIT, RATE_WINDOW_DAYS, MAX_UPLOAD_MB, MAX_ATTEMPTS, RESULTS_LICENSE)

# read by the evaluator's configuration (evaluator.config.build_config, evaluator.data.DataDir), which the
# leaderboard uses for them
EVALUATOR_VARIABLES = ("GENBENCH_FAMILIES", "GENBENCH_REFERENCE", "GENBENCH_MLIP", "GENBENCH_MLIP_MODEL",
                       "GENBENCH_DEVICE", "GENBENCH_DTYPE", "GENBENCH_RELAX_STEPS", "GENBENCH_OPTIONS",
                       "GENBENCH_PROTOCOL", "GENBENCH_EXECUTOR", "GENBENCH_RAY_ACTORS", "GENBENCH_DATA_DIR")


def check(env: Mapping[str, str] | None = None) -> None:
    """SettingError for the first variable whose value does not parse (a worker checks at start)."""
    for variable in VARIABLES:
        variable.read(env)


__all__ = ["EVALUATOR_VARIABLES", "SettingError", "VARIABLES", "Variable", "check"] + [
    "EXPECT_PROTOCOL", "JOB_BUDGET", "LOCAL_USER", "MAX_ATTEMPTS", "MAX_UPLOAD_MB", "RATE_LIMIT", "RATE_WINDOW_DAYS",
    "RESULTS_LICENSE", "RESULTS_STORE", "START_TIMEOUT", "STALL_TIMEOUT", "STALL_WARN", "STORE", "WORK_DIR",
    "WORKER_PARENT_PID"]
