"""How a long evaluation reports progress: a leaf module every stage may import.

A ``Progress`` callback receives ``(stage, done, total)``: ``stage`` names what runs
("validity", "stability relax", ...), ``done`` of ``total`` items are finished
(``total`` 0 = unknown). Callers must not rely on a callback being fast or on being
called for every item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress report, as passed between processes."""

    stage: str
    done: int
    total: int


def no_progress(stage: str, done: int, total: int) -> None:
    """The callback that ignores progress."""
    return None
