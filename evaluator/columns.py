"""The per-structure table's columns, declared as data (``structures.parquet``).

The pipeline writes the columns of ``BASE_COLUMNS`` (one row per submitted structure);
each family declares the columns it adds next to its metrics
(``evaluator/families/<name>/metrics.py``, ``MetricSet.columns``), and the pipeline
refuses a column its family did not declare (``check_declared``). A counted metric
names the rows it counts as a ``Flag`` over its family's declared columns, so the
bootstrap intervals (``evaluator.uncertainty``) and readers of the table count from the
declarations instead of their own copies.

Pure data plus the one reading of a flag (``flag_values``): importing it loads no
science library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

ColumnType = Literal["bool", "int", "float", "text", "json"]
"""What a column holds (every one may be null where not evaluated): ``bool``, ``int``,
``float``, ``text``, or ``json`` (a JSON document as text)."""
COLUMN_TYPES: tuple[ColumnType, ...] = ("bool", "int", "float", "text", "json")

FlagTest = Literal["true", "finite", "equals", "nonempty"]
FLAG_TYPES: dict[FlagTest, ColumnType] = {"true": "bool", "finite": "float", "equals": "text", "nonempty": "json"}
"""The column type each flag test reads."""

Flags = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Column:
    """One column of the per-structure table: its full name (``validity_valid``), what it
    holds (``ColumnType``) and what it means, in one line."""

    name: str
    dtype: ColumnType
    description: str

    def __post_init__(self) -> None:
        if self.dtype not in COLUMN_TYPES:
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} is not one of {COLUMN_TYPES}")


@dataclass(frozen=True)
class Flag:
    """The rows a counted metric counts, as data.

    ``columns`` are named relative to the metric's block: the metric of block ``B`` reads
    the columns ``B_<column>`` (``stability`` -> ``stability_stable``, its group
    ``stability_unrelaxed`` -> ``stability_unrelaxed_stable``). A row counts when its column
    is true (``test="true"``, a bool column), finite (``"finite"``, a float column), equal to
    ``value`` (``"equals"``, a text column) or a non-empty JSON list (``"nonempty"``, a json
    column). Several columns (``"true"`` only): a row counts when any of them is true; they
    are disjoint (no row is true in two), so the count is the sum of theirs.
    """

    columns: tuple[str, ...]
    test: FlagTest = "true"
    value: str | None = None

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("a flag names at least one column")
        if len(self.columns) > 1 and self.test != "true":
            raise ValueError(f"a flag over several columns {self.columns} counts true values (test 'true')")
        if (self.value is not None) != (self.test == "equals"):
            raise ValueError(f"flag {self.columns}: a value goes with the test 'equals' (and only with it)")

    @property
    def dtype(self) -> ColumnType:
        """The type of the columns this flag reads."""
        return FLAG_TYPES[self.test]

    def names(self, block: str) -> tuple[str, ...]:
        """The full column names this flag reads for the metric of ``block``."""
        return tuple(f"{block}_{c}" for c in self.columns)


def true_in(*columns: str) -> Flag:
    """Rows where the bool column (any of the bool columns) is true."""
    return Flag(columns)


def finite(column: str) -> Flag:
    """Rows where the float column holds a finite number."""
    return Flag((column,), "finite")


def equals(column: str, value: str) -> Flag:
    """Rows where the text column equals ``value``."""
    return Flag((column,), "equals", value)


def nonempty(column: str) -> Flag:
    """Rows where the json column holds a non-empty list."""
    return Flag((column,), "nonempty")


INDEX = Column("index", "int", "Position of the structure in the upload")
SOURCE = Column("source", "text", "Where in the upload it came from (file, archive member, CSV row or CIF block)")
PARSE_OK = Column("parse_ok", "bool", "Whether the structure could be read")
PARSE_REASON = Column("parse_reason", "text", "Why it could not be read (null when it could)")
FORMULA = Column("formula", "text", "Chemical formula")
REDUCED_FORMULA = Column("reduced_formula", "text", "Reduced chemical formula")
CHEMSYS = Column("chemsys", "text", "Chemical system (elements joined by '-')")
NSITES = Column("nsites", "int", "Sites in the cell")
STRUCTURE = Column("structure", "json", "The structure as submitted (pymatgen JSON)")
BASE_COLUMNS: tuple[Column, ...] = (INDEX, SOURCE, PARSE_OK, PARSE_REASON, FORMULA, REDUCED_FORMULA, CHEMSYS,
                                    NSITES, STRUCTURE)
"""The columns the pipeline writes for every submitted structure, before any family runs."""


def status_column(family: str) -> Column:
    return Column(f"{family}_status", "text", "ok, failed or skipped")


def reason_column(family: str) -> Column:
    return Column(f"{family}_reason", "text",
                  "why it failed or was skipped (parse failed, invalid structure, ...); null when ok")


class UndeclaredColumn(ValueError):
    """A family wrote a column it does not declare."""


def check_declared(family: str, written: Iterable[str], declared: Iterable[Column]) -> None:
    """Raise ``UndeclaredColumn`` naming every column in ``written`` that ``family`` does not
    declare (``declared``: its ``MetricSet.declared_columns()``)."""
    known = {c.name for c in declared}
    undeclared = [str(c) for c in written if c not in known]
    if undeclared:
        raise UndeclaredColumn(
            f"family {family!r} wrote column(s) {undeclared} that it does not declare; declare each "
            f"column a family writes (name, dtype, meaning) in its MetricSet.columns "
            f"(evaluator/families/{family}/metrics.py)")


def _bool(column: pd.Series) -> Flags:
    return np.asarray(column.astype("boolean").fillna(False).to_numpy(bool), dtype=np.bool_)


def _nonempty(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return bool(json.loads(value))
    except ValueError:
        return False


def flag_values(table: pd.DataFrame, flag: Flag, block: str) -> Flags | None:
    """The rows of ``table`` that ``flag`` (of a metric of ``block``) counts; None when the
    table lacks one of its columns (the family did not run)."""
    names = flag.names(block)
    if any(n not in table for n in names):
        return None
    if flag.test == "true":
        out = np.zeros(len(table), dtype=np.bool_)
        for n in names:
            out |= _bool(table[n])
        return out
    column = table[names[0]]
    if flag.test == "finite":
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return np.asarray(np.isfinite(values), dtype=np.bool_)
    if flag.test == "equals":
        return np.asarray((column == flag.value).fillna(False).to_numpy(bool), dtype=np.bool_)
    return np.array([_nonempty(v) for v in column], dtype=np.bool_)


__all__ = ["BASE_COLUMNS", "COLUMN_TYPES", "Column", "ColumnType", "Flag", "FlagTest", "UndeclaredColumn",
           "check_declared", "equals", "finite", "flag_values", "nonempty", "reason_column", "status_column",
           "true_in"]
