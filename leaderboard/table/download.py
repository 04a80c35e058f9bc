"""The leaderboard as downloaded: every row and metric column, with the rank and in the
order the leaderboard shows when it opens (``ranked_table``)."""

from __future__ import annotations

from collections.abc import Hashable

import pandas as pd

from leaderboard.table.measures import DEFAULT_RANK
from leaderboard.table.metadata import meta_column
from leaderboard.table.protocols import protocol_choices, rows_of
from leaderboard.table.view import build_view

RANK_COLUMN = "rank"
RANKED_BY_COLUMN = "ranked_by"


def ranked_table(results: pd.DataFrame, pinned: str | None = None, rank_by: str = DEFAULT_RANK) -> pd.DataFrame:
    """``results`` with a leading ``rank`` column (the leaderboard's ``#``, within the row's
    protocol; empty for rows never ranked, e.g. of an unknown protocol) and ``ranked_by``
    (the measure key), in the on-screen order: protocols as the selector lists them (the
    service's pinned one first), each in its ranked order (``build_view`` with its defaults)."""
    out = results.copy()
    if out.empty:
        out.insert(0, RANK_COLUMN, pd.Series(dtype="Int64"))
        out.insert(1, RANKED_BY_COLUMN, pd.Series(dtype=object))
        return out
    sid = meta_column(out, "submission_id")
    ranks = pd.Series(pd.NA, index=out.index, dtype="Int64")
    order: list[Hashable] = []
    for _, proto in protocol_choices(out, pinned):
        part = rows_of(out, proto)
        if part.empty:
            continue
        v = build_view(part, view="compact", rank_by=rank_by)
        positions = {s: i for i, s in enumerate(v.submission_ids)}
        if sid is None or len(positions) != len(part):  # no usable ids: keep the stored order
            order.extend(part.index)
            continue
        idx = sorted(part.index, key=lambda i: positions.get(str(out.at[i, sid]), len(positions)))
        shown = v.frame["#"].tolist()
        for i in idx:
            ranks.at[i] = shown[positions[str(out.at[i, sid])]]
        order.extend(idx)
    placed = set(order)
    order.extend(i for i in out.index if i not in placed)  # none expected; never drop a row
    out.insert(0, RANK_COLUMN, ranks)
    out.insert(1, RANKED_BY_COLUMN, [rank_by if pd.notna(r) else None for r in ranks])
    return out.loc[order].reset_index(drop=True)
