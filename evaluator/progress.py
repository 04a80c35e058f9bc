"""How a long evaluation reports progress: a leaf module every stage may import.

A ``Progress`` callback receives ``(stage, done, total)``: ``stage`` names what runs
("validity", "stability relax", ...), ``done`` of ``total`` items are finished
(``total`` 0 = unknown). Callers must not rely on a callback being fast or on being
called for every item.

A stage whose items are long (an MLIP relaxation of a large cell takes minutes) also
reports *within* its items, when the callback can take it: a callback that has a
``steps(stage, done, total, detail)`` method (:class:`StepReporter`) gets a
:class:`StepProgress` (which cells are being relaxed, at which step, and the work done
in atoms × FIRE steps out of the expected total) about once a second. A plain
callback sees only the item counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CellStep:
    """One running relaxation: an ``atoms``-atom cell at FIRE step ``step`` of at most ``limit``."""

    atoms: int
    step: int
    limit: int


@dataclass(frozen=True)
class StepProgress:
    """Progress inside the items of a stage: the running relaxations, and the work in
    atoms × FIRE steps done so far and expected in all (finished cells count their real
    steps, running and waiting ones their expected steps, never fewer than taken)."""

    running: tuple[CellStep, ...]
    work_done: int
    work_total: int

    def text(self) -> str:
        """'relaxing 123-atom cell, step 140/300' (the largest running cells first)."""
        cells = sorted(self.running, key=lambda c: (-c.atoms, -c.step))
        if not cells:
            return ""
        first = f"{cells[0].atoms}-atom cell, step {cells[0].step}/{cells[0].limit}"
        if len(cells) == 1:
            return f"relaxing {first}"
        rest = ", ".join(f"{c.atoms} atoms step {c.step}/{c.limit}" for c in cells[1:3])
        more = f" and {len(cells) - 3} more" if len(cells) > 3 else ""
        return f"relaxing {len(cells)} cells: {first}; {rest}{more}"


class StepReporter:
    """Base class of a progress callback that also takes progress inside items (see the
    module doc); stages test ``isinstance(progress, StepReporter)``. This base ignores both."""

    def __call__(self, stage: str, done: int, total: int) -> None:
        return None

    def steps(self, stage: str, done: int, total: int, detail: StepProgress) -> None:
        return None


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress report, as passed between processes; ``detail`` (text),
    ``work_done`` and ``work_total`` (atoms × steps; 0 = not reported) carry a
    :class:`StepProgress` when the stage reports inside its items."""

    stage: str
    done: int
    total: int
    detail: str | None = None
    work_done: int = 0
    work_total: int = 0


def no_progress(stage: str, done: int, total: int) -> None:
    """The callback that ignores progress."""
    return None
