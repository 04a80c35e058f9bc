"""Which points of a scatter get a text label: at 200 submissions labelling every point (or
even every non-dominated one) prints names on top of each other. Labelled: at most ``k``
points, chosen greedily in the given priority order, each at least ``min_sep`` away (in
axis-normalised units) from every label already placed; the others keep their hover text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_LABELS = 10
MIN_SEPARATION = 0.07  # of each axis' data range


def labelled(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
             priority: Sequence[int] | np.ndarray | None = None, k: int = MAX_LABELS,
             min_sep: float = MIN_SEPARATION) -> np.ndarray:
    """Boolean mask of the points to label (see the module docstring). ``priority``: point
    indices best first (default: the given order)."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    out = np.zeros(len(xs), dtype=bool)
    if len(xs) == 0:
        return out

    def unit(v: np.ndarray) -> np.ndarray:
        finite = v[np.isfinite(v)]
        if len(finite) == 0:
            return np.zeros_like(v)
        span = float(finite.max() - finite.min())
        return (v - float(finite.min())) / span if span > 0 else np.zeros_like(v)

    ux, uy = unit(xs), unit(ys)
    placed: list[int] = []
    for i in (range(len(xs)) if priority is None else priority):
        if len(placed) >= k:
            break
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        if all(abs(ux[i] - ux[j]) >= min_sep or abs(uy[i] - uy[j]) >= min_sep / 2 for j in placed):
            placed.append(int(i))
            out[i] = True
    return out
