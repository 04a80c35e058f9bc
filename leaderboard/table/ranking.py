"""Filtering and ranking the rows of a results table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from leaderboard.table.measures import DEFAULT_RANK, DEFAULT_SHOW, Measure
from leaderboard.table.metadata import meta_column


def norm_bool(value: Any) -> bool | None:
    """True/False from a stored flag (bool or text such as "yes"); None when unknown."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "yes", "1", "y"):
            return True
        if v in ("false", "no", "0", "n", ""):
            return False
        return None
    return bool(value)


def filter_rows(df: pd.DataFrame, search: str = "", training_set: str | None = None,
                task: str | None = None, relaxed: str | None = None) -> pd.DataFrame:
    """Rows matching a free-text search (any text column) and the filters.

    ``training_set``/``task``: exact value or None/"All"; ``relaxed``: "yes", "no" or None/"All".
    """
    mask = pd.Series(True, index=df.index)
    if search and search.strip():
        needle = search.strip().lower()
        text_cols = [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])]
        hit = pd.Series(False, index=df.index)
        for c in text_cols:
            hit |= df[c].astype(str).str.lower().str.contains(needle, regex=False, na=False)
        mask &= hit
    for canonical, wanted in (("training_set", training_set), ("task", task)):
        col = meta_column(df, canonical)
        if wanted and wanted != "All" and col is not None:
            mask &= df[col].astype(str) == str(wanted)
    col = meta_column(df, "relaxed")
    if relaxed and relaxed != "All" and col is not None:
        want = relaxed.lower() in ("yes", "true", "relaxed")
        mask &= df[col].map(norm_bool) == want
    return df[mask]


def choices(df: pd.DataFrame, canonical: str) -> list[str]:
    """Distinct values of a metadata field, for filter dropdowns ("All" first)."""
    col = meta_column(df, canonical)
    if col is None or df.empty:
        return ["All"]
    vals = sorted({str(v) for v in df[col].dropna()})
    return ["All", *vals]


def rank(df: pd.DataFrame, measures: list[Measure], rank_by: str = DEFAULT_RANK,
         show: str = DEFAULT_SHOW, ascending: bool | None = None) -> pd.DataFrame:
    """Sort ``df`` by measure ``rank_by`` (best first per its direction; NaN last).

    Falls back to the first directed measure when ``rank_by`` is absent. Adds a
    1-based ``__rank__`` column (ties share the better rank).
    """
    df = df.copy()
    by = {m.key: m for m in measures}
    m = by.get(rank_by) or next((x for x in measures if x.direction), None)
    if m is None or df.empty:
        df["__rank__"] = range(1, len(df) + 1)
        return df
    # Counts are not comparable across submissions of different sizes: rank by
    # the fraction of submitted structures when counts are displayed.
    col = m.column("frac_submitted" if show == "count" else show)
    values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)
    asc = (m.direction < 0) if ascending is None else ascending
    order = values.sort_values(ascending=asc, na_position="last", kind="mergesort").index
    df = df.loc[order]
    ranked = values.loc[order].rank(ascending=asc, method="min")
    df["__rank__"] = ranked.astype("Int64")
    return df
