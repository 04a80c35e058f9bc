"""Readable ties, pages of the table, the view cache and Pareto label thinning (issue 26 item 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leaderboard.table.pages import PAGE_SIZE, ViewCache, freeze, page_of
from leaderboard.table.ties import NO_INTERVAL, tied_text
from leaderboard.ui.pareto_labels import labelled


def test_tied_text_counts_overlaps_and_their_rank_span():
    lo = [0.50, 0.45, 0.30, np.nan, 0.10]
    hi = [0.60, 0.55, 0.40, np.nan, 0.20]
    out = tied_text(lo, hi, [1, 2, 3, 4, 5])
    assert out == ["1 (#1–#2)", "1 (#1–#2)", "0", NO_INTERVAL, "0"]


def test_tied_text_stays_short_at_2000_rows():
    rng = np.random.default_rng(0)
    mid = np.sort(rng.uniform(0.2, 0.8, 2000))[::-1]
    out = tied_text(mid - 0.05, mid + 0.05, pd.Series(range(1, 2001), dtype="Int64"))
    assert max(len(s) for s in out) <= len("1999 (#1000–#2000)")
    n, span = out[1000].split(" ", 1)
    assert int(n) > 100 and span.startswith("(#") and span.endswith(")")


def test_tied_text_with_missing_ranks():
    out = tied_text([0.1, 0.1], [0.2, 0.2], pd.Series([pd.NA, pd.NA], dtype="Int64"))
    assert out == ["1", "1"]


def test_pages_cover_every_row_once():
    n = 2 * PAGE_SIZE + 7
    pages = [page_of(n, k) for k in range(1, 4)]
    rows = [i for p in pages for i in range(p.start, p.stop)]
    assert rows == list(range(n))
    assert pages[-1].n_pages == 3 and pages[-1].label.startswith(f"rows {2 * PAGE_SIZE + 1}–{n} of {n}")
    assert page_of(n, 99).number == 3 and page_of(n, 0).number == 1 and page_of(0, 1).label == "no rows"


def test_view_cache_reuses_and_forgets_on_a_new_version():
    cache: ViewCache[int] = ViewCache(size=2)
    calls = []

    def make(v: int):
        return lambda: calls.append(v) or v

    assert cache.get(1, freeze(["a", ["x"]]), make(10)) == 10
    assert cache.get(1, freeze(["a", ["x"]]), make(11)) == 10  # cached: not rendered again
    assert cache.get(2, freeze(["a", ["x"]]), make(12)) == 12  # reloaded results: rendered again
    cache.get(2, "b", make(13)), cache.get(2, "c", make(14))
    assert cache.get(2, freeze(["a", ["x"]]), make(15)) == 15  # evicted (size 2)
    assert calls == [10, 12, 13, 14, 15] and cache.misses == 5


def test_pareto_labels_at_most_k_and_apart():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, 200), rng.uniform(0, 1, 200)
    mask = labelled(x, y, k=10)
    assert 1 <= mask.sum() <= 10
    idx = np.flatnonzero(mask)
    for a in idx:
        for b in idx:
            if a < b:
                assert abs(x[a] - x[b]) >= 0.07 * np.ptp(x) or abs(y[a] - y[b]) >= 0.035 * np.ptp(y)
    # the priority order decides who gets a label first
    assert labelled([0.0, 0.001, 1.0], [0.0, 0.0, 1.0], priority=[1, 0, 2]).tolist() == [False, True, True]
