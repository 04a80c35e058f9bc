"""The leaderboard as downloaded: every metric column, with the rank and in the order the
leaderboard shows - as it opens (``ranked_table``: every row), or as a visitor has ranked and
filtered it (``view_table``: the rows shown)."""

from __future__ import annotations

from collections.abc import Hashable

import pandas as pd

from leaderboard.table.measures import DEFAULT_RANK
from leaderboard.table.metadata import meta_column
from leaderboard.table.protocols import protocol_choices, rows_of
from leaderboard.table.view import View, build_view

RANK_COLUMN = "rank"
RANKED_BY_COLUMN = "ranked_by"


def view_table(rows: pd.DataFrame, v: View, rank_by: str) -> pd.DataFrame | None:
    """The rows view ``v`` shows (``rows``: the results it was built from), with every column,
    in its order, after a ``rank`` column (its ``#``) and ``ranked_by`` (the measure key);
    None when the rows have no submission ids to match."""
    sid = meta_column(rows, "submission_id")
    if sid is None:
        return None
    at = {str(s): i for i, s in zip(rows.index, rows[sid])}
    picked = [at[s] for s in v.submission_ids if s in at]
    out = rows.loc[picked].reset_index(drop=True)
    ranks = v.frame["#"].tolist() if "#" in v.frame else [pd.NA] * len(v.frame)
    shown = dict(zip(v.submission_ids, ranks))
    rank = pd.Series([shown.get(str(s), pd.NA) for s in out[sid]], dtype="Int64")
    out.insert(0, RANK_COLUMN, rank)
    out.insert(1, RANKED_BY_COLUMN, [rank_by if pd.notna(r) else None for r in rank])
    return out


def ranked_table(results: pd.DataFrame, pinned: str | None = None, rank_by: str = DEFAULT_RANK) -> pd.DataFrame:
    """``results`` with a leading ``rank`` column (the leaderboard's ``#``, within the row's
    protocol; empty for rows never ranked, e.g. of an unknown protocol) and ``ranked_by``
    (the measure key), in the on-screen order: protocols as the selector lists them (the
    service's pinned one first), each in its ranked order (``build_view`` with its defaults)."""
    parts: list[pd.DataFrame] = []
    placed: set[Hashable] = set()
    for _, proto in protocol_choices(results, pinned):
        part = rows_of(results, proto)
        if part.empty:
            continue
        placed.update(part.index)
        shown = view_table(part, build_view(part, view="compact", rank_by=rank_by), rank_by)
        if shown is None or len(shown) != len(part):  # no usable ids: the stored order, unranked
            shown = _unranked(part)
        parts.append(shown)
    rest = results.loc[[i for i in results.index if i not in placed]]  # none expected; never drop a row
    if len(rest) or not parts:
        parts.append(_unranked(rest))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _unranked(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.reset_index(drop=True)
    out.insert(0, RANK_COLUMN, pd.Series(pd.NA, index=out.index, dtype="Int64"))
    out.insert(1, RANKED_BY_COLUMN, pd.Series([None] * len(out), index=out.index, dtype=object))
    return out
