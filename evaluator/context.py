"""The state a metric family sees: the per-structure table and what it needs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd

from evaluator.config import EvalConfig
from evaluator.data import DataDir
from evaluator.families.base import counted
from evaluator.progress import Progress, no_progress

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from evaluator.reference import Reference

T = TypeVar("T")


class EvalContext:
    """Shared by every family of one evaluation.

    table: one row per submitted structure, indexed 0..n-1 in upload order.
    structures: the parsed pymatgen Structure of each row (None where parsing failed).
    work_dir: where families may keep checkpoints (None = no checkpointing).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        structures: list[Structure | None],
        config: EvalConfig,
        data: DataDir,
        work_dir: Path | None = None,
        progress: Progress = no_progress,
    ):
        self.table = table
        self.structures = structures
        self.config = config
        self.data = data
        self.work_dir = Path(work_dir) if work_dir else None
        self.progress = progress

    @property
    def n_submitted(self) -> int:
        return len(self.table)

    @property
    def valid_index(self) -> list[int]:
        """Rows later families evaluate: valid ones (parsed ones before validity ran)."""
        col = "validity_valid" if "validity_valid" in self.table else "parse_ok"
        return self.table.index[self.table[col].fillna(False).astype(bool)].tolist()

    @property
    def n_valid(self) -> int:
        return len(self.valid_index)

    def counted(self, name: str, count: int) -> dict:
        """``name_count`` with fractions of submitted and of valid structures."""
        return counted(name, count, self.n_submitted, self.n_valid)

    @cached_property
    def reference(self) -> Reference:
        from evaluator.reference.registry import load_reference

        return load_reference(self.config.reference, self.data)

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
