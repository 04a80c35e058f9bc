"""What every command of ``python -m evaluator`` shares: the error exit and progress bars (the
executor flags, also the worker's, are ``evaluator.execution.add_executor_arguments``)."""

from __future__ import annotations

import sys
from typing import Any

from evaluator.progress import StepProgress, StepReporter

USAGE_ERROR = 2  # the exit status of a refused command (bad input, configuration or data)
INFRASTRUCTURE_ERROR = 3  # the machine failed (e.g. worker processes that cannot start): try again


def fail(message: object, status: int = USAGE_ERROR) -> int:
    """Print ``error: <message>`` on stderr; returns ``status`` (default: a refused command's)."""
    print(f"error: {message}", file=sys.stderr)
    return status


def bar(desc: str, total: int | None, unit: str = "struct") -> Any:
    """A tqdm bar on stderr that disappears when closed."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, mininterval=1.0)


class StageBars(StepReporter):
    """A ``Progress`` callback drawing one bar per stage (``min_total``: only for stages
    with at least that many items); a stage's step detail (the relaxation's "relaxing
    123-atom cell, step 140/300") shows after its bar."""

    def __init__(self, min_total: int = 0) -> None:
        self.min_total = min_total
        self.stage: str | None = None
        self._bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            if total >= self.min_total:
                self._bar = bar(stage, total)
        if self._bar is not None:
            if total and self._bar.total != total:
                self._bar.total = total
            if done >= self._bar.n:
                self._bar.update(done - self._bar.n)  # redraws at most once a second
            else:
                self._bar.n = done
                self._bar.refresh()

    def steps(self, stage: str, done: int, total: int, detail: StepProgress) -> None:
        self(stage, done, total)
        if self._bar is not None:
            self._bar.set_postfix_str(detail.text(), refresh=False)  # drawn at the bar's next refresh

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
