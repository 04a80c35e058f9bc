"""The state a metric family sees: the per-structure table and what it needs.

The context loads nothing itself: the run's reference comes from a loader the caller
injects (``evaluator.pipeline.reference_loader`` builds the usual one), so this module
stays below the reference registry in the layers; it names the ``Reference`` type only
for the type checker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd

from evaluator.columns import PARSE_OK
from evaluator.config import EvalConfig
from evaluator.counts import counted
from evaluator.data import DataDir
from evaluator.families.validity.metrics import VALID
from evaluator.progress import Progress, no_progress

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

    from evaluator.reference import Reference

T = TypeVar("T")


class EvalContext:
    """Shared by every family of one evaluation.

    table: one row per submitted structure, indexed 0..n-1 in upload order.
    structures: the parsed pymatgen Structure of each row (None where parsing failed).
    work_dir: where families may keep checkpoints (None = no checkpointing).
    reference_loader: returns the run's reference (an ``evaluator.reference.Reference``
        for ``config.reference``); called once, on first use of ``reference``.
        ``evaluator.pipeline`` supplies the usual one when a context built without it is
        run through the pipeline.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        structures: list[Structure | None],
        config: EvalConfig,
        data: DataDir,
        work_dir: Path | None = None,
        progress: Progress = no_progress,
        reference_loader: Callable[[], Reference] | None = None,
    ):
        self.table = table
        self.structures = structures
        self.config = config
        self.data = data
        self.work_dir = Path(work_dir) if work_dir else None
        self.progress = progress
        self.reference_loader = reference_loader

    @property
    def n_submitted(self) -> int:
        return len(self.table)

    @property
    def valid_index(self) -> list[int]:
        """Rows later families evaluate: valid ones (parsed ones before validity ran)."""
        col = VALID.name if VALID.name in self.table else PARSE_OK.name
        rows: list[int] = self.table.index[self.table[col].fillna(False).astype(bool)].tolist()
        return rows

    def structure(self, row: int) -> Structure:
        """The parsed structure of ``row``; ValueError for a row that did not parse
        (rows in ``valid_index`` always have one)."""
        s = self.structures[row]
        if s is None:
            raise ValueError(f"row {row} has no parsed structure")
        return s

    @property
    def n_valid(self) -> int:
        return len(self.valid_index)

    def counted(self, name: str, count: int) -> dict[str, int | float | None]:
        """``name_count`` with fractions of submitted and of valid structures."""
        return counted(name, count, self.n_submitted, self.n_valid)

    @cached_property
    def reference(self) -> Reference:
        """The run's reference, loaded once by ``reference_loader``."""
        if self.reference_loader is None:
            raise RuntimeError("this EvalContext has no reference loader: pass reference_loader= "
                               "(evaluator.pipeline.reference_loader(config, data)) or run it "
                               "through evaluator.pipeline.run_families")
        return self.reference_loader()

    @property
    def loaded_reference(self) -> Reference | None:
        """The reference if a family has loaded it, else None (loads nothing)."""
        return self.__dict__.get("reference")

    def checkpoint_dir(self, family: str) -> Path | None:
        if self.work_dir is None:
            return None
        d = self.work_dir / "checkpoints" / family
        d.mkdir(parents=True, exist_ok=True)
        return d

    def track(self, items: Iterable[T], stage: str, total: int | None = None) -> Iterator[T]:
        """Iterate ``items`` reporting progress as ``stage``."""
        if total is None:
            items = list(items)
            total = len(items)
        self.progress(stage, 0, total)
        for i, item in enumerate(items, 1):
            yield item
            self.progress(stage, i, total)
