"""Statistical ties on the rank metric, in a few characters per row.

Two submissions are statistically tied on a rate when their confidence intervals on it
overlap: their order is not distinguishable at that level. A row lists how many other rows
it is tied with and the ranks they span ("12 (#3–#15)"), not their names: at a few hundred
submissions a list of names is thousands of characters per cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

TIED_HEADER = "Tied with (rank metric)"
NO_INTERVAL = "—"


def tied_counts(lo: Sequence[float] | np.ndarray, hi: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per row, the other rows whose interval [lo, hi] overlaps its own (an n × n boolean
    matrix, False on the diagonal and for rows without a finite interval)."""
    a = np.asarray(lo, dtype=float)
    b = np.asarray(hi, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    overlap: np.ndarray = (a[:, None] <= b[None, :]) & (a[None, :] <= b[:, None]) & ok[:, None] & ok[None, :]
    np.fill_diagonal(overlap, False)
    return overlap


def tied_text(lo: Sequence[float] | np.ndarray, hi: Sequence[float] | np.ndarray,
              ranks: Iterable[object]) -> list[str]:
    """Per row: "N (#a–#b)" (tied with N other rows, whose ranks together with its own span
    #a to #b), "0" when its interval overlaps no other, ``NO_INTERVAL`` when it has none.
    ``ranks``: the rank shown in the row's "#" column (missing ranks are left out of spans)."""
    overlap = tied_counts(lo, hi)
    ok = np.isfinite(np.asarray(lo, dtype=float)) & np.isfinite(np.asarray(hi, dtype=float))
    r = np.array([float(x) if isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
                  else np.nan for x in ranks], dtype=float)
    counts = overlap.sum(axis=1)
    with np.errstate(invalid="ignore"):
        span = np.where(overlap | np.eye(len(r), dtype=bool), r[None, :], np.nan)
    out = []
    for i in range(len(r)):
        if not ok[i]:
            out.append(NO_INTERVAL)
            continue
        n = int(counts[i])
        if n == 0:
            out.append("0")
            continue
        row = span[i][np.isfinite(span[i])]
        out.append(f"{n} (#{int(row.min())}–#{int(row.max())})" if len(row) else str(n))
    return out


def tied_caption(level: str) -> str:
    """What the tied column means (for the caption under the controls)."""
    return (f"**{TIED_HEADER}**: how many other submissions' {level} confidence intervals on the rank "
            "metric overlap this row's (statistically tied: their order is not distinguishable), and the "
            "ranks those rows and this one span")
