"""Frames of leaderboard rows: each column of one type that parquet (and ``datasets``) read
back as it is, built from rows, updated with new rows and brought up to the current summary
without turning the whole table into Python records and back.

Pure functions of their inputs (the store is not touched). ``rows_to_frame`` is the rule;
``update_frame`` and ``upgrade_frame`` give exactly the frame it would build (tests compare
them on random mixes), with vectorised work in the rows they keep.
"""

from __future__ import annotations

import io
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

from evaluator.summary import ROW_UPGRADES, as_number

__all__ = ["frame_to_parquet", "is_null", "native", "read_frame", "read_rows", "records", "row_order", "rows_to_frame",
           "update_frame", "upgrade_frame"]


def is_null(v: object) -> bool:
    """Whether a cell is missing: None, NaN (Python or numpy), NaT or pandas' NA."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    if isinstance(v, np.datetime64):
        return bool(np.isnat(v))
    return False


def _is_bool(v: object) -> bool:
    return isinstance(v, (bool, np.bool_))


def _is_number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not _is_bool(v)


def _typed_by_value(raw: Sequence[Any], index: pd.Index) -> pd.Series:
    """``_typed`` value by value (the rule; ``_typed`` takes vectorised shortcuts to the same result)."""
    values = [v for v in raw if not is_null(v)]
    if not values:
        return pd.Series([None] * len(raw), index=index, dtype="object")
    if all(_is_bool(v) for v in values):
        return pd.Series(pd.array([None if is_null(v) else bool(v) for v in raw], dtype="boolean"), index=index)
    if all(isinstance(v, numbers.Integral) and not _is_bool(v) for v in values):
        return pd.Series(pd.array([None if is_null(v) else int(v) for v in raw], dtype="Int64"), index=index)
    if all(_is_number(v) for v in values):
        return pd.Series([float("nan") if is_null(v) else float(v) for v in raw], index=index, dtype="float64")
    return pd.Series([None if is_null(v) else v if isinstance(v, str) else json.dumps(v, default=str)
                      for v in raw], index=index, dtype="object")


def _typed(raw: Sequence[Any], index: pd.Index) -> pd.Series:
    """One column of ``rows_to_frame``: its values (nulls included) as the one type they share:
    all-bool ``boolean``, all-integer ``Int64``, all-number ``float64``, else text (``object``;
    other values as JSON). Columns of one plain kind are typed at once (pandas' own inference);
    any other mix value by value."""
    values = np.empty(len(raw), dtype=object)
    values[:] = raw
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "empty":
        return pd.Series([None] * len(values), index=index, dtype="object")
    if kind == "boolean":
        return pd.Series(pd.array(values, dtype="boolean"), index=index)
    if kind == "integer":
        return pd.Series(pd.array(values, dtype="Int64"), index=index)
    if kind in ("floating", "mixed-integer-float"):
        return pd.Series(pd.array(values, dtype="Float64").to_numpy(dtype="float64", na_value=np.nan), index=index)
    if kind == "string":
        column = pd.Series(values, index=index, dtype="object")
        return column.where(column.notna(), None)
    return _typed_by_value(raw, index)


def rows_to_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A parquet-safe DataFrame of rows (``LeaderboardRow``s or stored records): each column
    all-bool, all-int, all-float or all-string (nulls kept; dicts/lists as JSON strings), typed
    from the rows' own values (integers with a missing value stay integers). Columns come in
    the order the rows first name them."""
    cells = [dict(r) for r in rows]
    columns = dict.fromkeys(col for row in cells for col in row)
    if not cells or not columns:
        return pd.DataFrame({"submission_id": pd.Series([], dtype="object")})
    index = pd.RangeIndex(len(cells))
    return pd.DataFrame({col: _typed([row.get(col) for row in cells], index) for col in columns}, index=index)


_KINDS = ("boolean", "Int64", "float64")


def _kind(column: pd.Series) -> str | None:
    """The type ``rows_to_frame`` gave a column of its output ("boolean", "Int64", "float64",
    "object": strings), None when every value is null, "?" when it is not such a column."""
    if column.dtype == object:
        kind = pd.api.types.infer_dtype(column, skipna=True)
        return None if kind == "empty" else "object" if kind == "string" else "?"
    if not column.notna().any():
        return None
    return str(column.dtype) if str(column.dtype) in _KINDS else "?"


def native(v: object) -> object:
    """A cell as ``records`` gives it (numpy scalars as Python ones)."""
    return v.item() if isinstance(v, np.generic) else v


def row_order(row: Mapping[str, Any]) -> tuple[str, str]:
    """Where a row sits in the leaderboard table: by ``finished_at``, then id."""
    finished = row.get("finished_at")
    return ("" if is_null(finished) or not finished else str(finished), str(row.get("submission_id")))


def update_frame(frame: pd.DataFrame | None, keep: Iterable[str], rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``rows_to_frame`` of the rows of ``frame`` (a ``rows_to_frame`` table) whose
    ``submission_id`` is in ``keep``, plus ``rows``, in ``row_order`` - the same table, built
    without turning the kept rows into records and back: a column whose type the new rows
    share is joined as it is; only a column whose type changes is re-typed value by value.
    Vectorised work in the kept rows, Python work in the new ones."""
    if frame is None or "submission_id" not in frame:
        base = pd.DataFrame({"submission_id": pd.Series([], dtype="object")})
    else:
        base = frame[frame["submission_id"].isin(set(keep))].drop_duplicates("submission_id", keep="last")
        base = base.reset_index(drop=True)
    if not rows and base.empty:
        return rows_to_frame([])
    new = rows_to_frame(rows) if rows else pd.DataFrame()
    finished = base["finished_at"] if "finished_at" in base else [None] * len(base)
    keys = [(row_order({"finished_at": f, "submission_id": s}), 0, i)
            for i, (s, f) in enumerate(zip(base["submission_id"], finished))]
    keys += [(row_order(r), 1, i) for i, r in enumerate(rows)]
    keys.sort()
    # the columns in the order rows_to_frame meets them along the rows (a kept row has them all)
    columns: dict[str, None] = {}
    base_met = False
    for _, part, i in keys:
        if part == 1:
            columns.update(dict.fromkeys(rows[i]))
        elif not base_met:
            columns.update(dict.fromkeys(base.columns))
            base_met = True
    sizes = (len(base), len(rows))
    index = pd.RangeIndex(sum(sizes))
    out: dict[str, pd.Series] = {}
    for col in columns:
        parts = [p[col] if col in p else None for p in (base, new)]
        part_kinds = [None if p is None else _kind(p) for p in parts]
        kinds = {k for k in part_kinds if k is not None}
        if not kinds:
            out[col] = pd.Series([None] * len(index), index=index, dtype="object")
        elif len(kinds) == 1 and "?" not in kinds:
            dtype = pd.api.types.pandas_dtype(kinds.pop())
            pieces = [pd.Series([None] * n, dtype="object") if p is None or k is None else p
                      for p, k, n in zip(parts, part_kinds, sizes) if n]
            out[col] = pd.concat([p.astype(dtype) for p in pieces], ignore_index=True)
        else:  # the type changes: re-typed as rows_to_frame types the values (kept ones as records gives them)
            raw = [native(v) for v in base[col]] if col in base else [None] * len(base)
            out[col] = _typed(raw + [r.get(col) for r in rows], index)
    order = [i if part == 0 else len(base) + i for _, part, i in keys]
    return pd.DataFrame(out, index=index).iloc[order].reset_index(drop=True)


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as ``as_number`` reads its cells (float64; NaN where a cell is no number)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    cells = frame[column]
    if pd.api.types.is_bool_dtype(cells.dtype):
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    if pd.api.types.is_numeric_dtype(cells.dtype):
        return pd.Series(cells.to_numpy(dtype="float64", na_value=np.nan), index=frame.index)
    values = [as_number(native(v)) for v in cells]
    return pd.Series([np.nan if v is None else v for v in values], index=frame.index, dtype="float64")


def upgrade_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``rows_to_frame`` of ``evaluator.summary.upgrade_row`` of every row of ``frame`` (a
    ``rows_to_frame`` table): each of ``ROW_UPGRADES`` made on the whole column at once, and
    only a column it fills re-typed. A column it adds comes after the others, in the order
    the rows first name it."""
    out = frame
    added: dict[str, tuple[int, int]] = {}  # column -> (first row that has it, fill order)
    for order, up in enumerate(ROW_UPGRADES):
        parts = [_numbers(out, p) for p in up.parts]
        fill = _numbers(out, up.key).isna()
        for part in parts:
            fill &= part.notna()
        if not fill.any():
            continue
        total = sum(parts[1:], parts[0])
        cells: list[object] = [native(v) for v in out[up.key]] if up.key in out else [None] * len(out)
        for i in map(int, np.flatnonzero(fill.to_numpy())):
            cells[i] = int(total.iloc[i]) if up.integer else float(total.iloc[i])
        if up.key not in out:
            added[up.key] = (int(np.argmax(fill.to_numpy())), order)
        out = out.copy() if out is frame else out
        out[up.key] = _typed(cells, out.index)
    if added:
        kept = [c for c in out.columns if c not in added]
        out = out[kept + sorted(added, key=lambda c: added[c])]
    return out


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a stored leaderboard table as {column: value} records."""
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def read_frame(data: bytes | None) -> pd.DataFrame | None:
    """A parquet file as pandas reads it (text columns as pandas' string type), or None."""
    return None if data is None else pd.read_parquet(io.BytesIO(data))


@overload
def read_rows(data: bytes) -> pd.DataFrame: ...
@overload
def read_rows(data: None) -> None: ...
@overload
def read_rows(data: bytes | None) -> pd.DataFrame | None: ...
def read_rows(data: bytes | None) -> pd.DataFrame | None:
    """A stored table of rows (``rows_to_frame``'s output written as parquet) typed as
    ``rows_to_frame`` types it: text columns as Python strings with None for nulls."""
    if data is None:
        return None
    frame = pd.read_parquet(io.BytesIO(data))
    for col in frame.columns:
        cells = frame[col]
        if pd.api.types.is_string_dtype(cells.dtype) and cells.dtype != object:
            frame[col] = cells.astype(object).where(cells.notna(), None)
    return frame


