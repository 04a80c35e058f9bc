"""Maximum mean discrepancy with a Gaussian kernel k(x, y) = exp(-|x-y|² / (2σ²)).

Two estimators against a fixed reference sample Y (n rows) for a generated X (m rows):
- ``mmd_biased_1d``: LeMat-GenBench's V-statistic, mean(Kxx) + mean(Kyy) - 2 mean(Kxy)
  with the diagonals included, on one raw-unit feature (σ = 1). It is ≥ 0 and biased
  upwards by about (1 - mean off-diagonal k)/m for small m.
- ``mmd_unbiased``: the U-statistic MMD²_u (Gretton et al. 2012, eq. 3) without the
  diagonal terms; unbiased, may be slightly negative when X and Y match.

Kernel sums are exact (up to float rounding): the 1-D sum compresses repeated values and
skips pairs farther apart than 38.6 σ, whose kernel underflows to 0.0 in float64; the
reference self-sums are cached per process and in ``$GENBENCH_CACHE_DIR`` (keyed by the
reference file's sha256 and the bandwidth).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from evaluator.families.distribution.embedding_reference import cache_dir

_UNDERFLOW_RADIUS = math.sqrt(2 * 745.2)  # exp(-t) is exactly 0.0 in float64 for t > 745.14
CacheKey = tuple[Hashable, ...]  # e.g. ("nd", <reference file sha256>, ..., sigma)
_SELF_SUMS: dict[CacheKey, float] = {}


def gaussian_kernel_sum_1d(x: npt.ArrayLike, y: npt.ArrayLike, sigma: float = 1.0, block: int = 256) -> float:
    """Σ_ij exp(-(x_i - y_j)² / (2σ²)) for 1-D samples x, y."""
    ux, wx = np.unique(np.asarray(x, dtype=float), return_counts=True)
    uy, wy = np.unique(np.asarray(y, dtype=float), return_counts=True)
    wx, wy = wx.astype(float), wy.astype(float)
    r = sigma * _UNDERFLOW_RADIUS
    inv = 1.0 / (2.0 * sigma * sigma)
    total = 0.0
    for i in range(0, ux.size, block):
        xb, wb = ux[i:i + block], wx[i:i + block]
        lo = np.searchsorted(uy, xb[0] - r, "left")
        hi = np.searchsorted(uy, xb[-1] + r, "right")
        if hi > lo:
            d = xb[:, None] - uy[None, lo:hi]
            total += float(wb @ np.exp(-(d * d) * inv) @ wy[lo:hi])
    return total


def _sq_dists(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.zeros((a.shape[0], b.shape[0]))
    for k in range(a.shape[1]):  # exact differences: zero on a diagonal
        d = a[:, k, None] - b[None, :, k]
        out += d * d
    return out


def gaussian_kernel_sum(x: npt.ArrayLike, y: npt.ArrayLike, sigma: float, block: int = 512) -> float:
    """Σ_ij k(x_i, y_j) for samples x (m, d), y (n, d)."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    inv = 1.0 / (2.0 * sigma * sigma)
    return float(sum(np.exp(-_sq_dists(x[i:i + block], y) * inv).sum() for i in range(0, len(x), block)))


def gaussian_kernel_self_sum(y: npt.ArrayLike, sigma: float, block: int = 512) -> float:
    """Σ_ij k(y_i, y_j) over all ordered pairs (diagonal included), using symmetry."""
    y = np.atleast_2d(y)
    inv = 1.0 / (2.0 * sigma * sigma)
    total = 0.0
    for i in range(0, len(y), block):
        yi = y[i:i + block]
        total += np.exp(-_sq_dists(yi, yi) * inv).sum()
        if i + block < len(y):
            total += 2.0 * np.exp(-_sq_dists(yi, y[i + block:]) * inv).sum()
    return float(total)


def _disk_cache_path() -> Path:
    return cache_dir() / "mmd_reference_self_sums.json"


def _cached_self_sum(key: CacheKey | None, compute: Callable[[], float]) -> float:
    """Memoise a reference self-sum per process and, for keys naming a file hash, on disk."""
    if key is None:
        return compute()
    if key in _SELF_SUMS:
        return _SELF_SUMS[key]
    skey = json.dumps([str(k) for k in key])
    path = _disk_cache_path()
    stored: dict[str, float] = {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    if skey in stored:
        value = float(stored[skey])
    else:
        value = compute()
        stored[skey] = value
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(stored, indent=1))
            os.replace(tmp, path)
        except OSError:
            pass  # read-only cache: recompute next time
    _SELF_SUMS[key] = value
    return value


def mmd_biased_1d(x: npt.ArrayLike, y: npt.ArrayLike, sigma: float = 1.0,
                  ref_key: CacheKey | None = None) -> float:
    """LeMat-GenBench MMD: mean(Kxx) + mean(Kyy) - 2·mean(Kxy), one feature, raw units."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    m, n = x.size, y.size
    syy = _cached_self_sum(None if ref_key is None else ("1d", ref_key, sigma),
                           lambda: gaussian_kernel_sum_1d(y, y, sigma))
    sxx = gaussian_kernel_sum_1d(x, x, sigma)
    sxy = gaussian_kernel_sum_1d(x, y, sigma)
    return sxx / m**2 + syy / n**2 - 2.0 * sxy / (m * n)


def mmd_unbiased(x: npt.ArrayLike, y: npt.ArrayLike, sigma: float, ref_key: CacheKey | None = None) -> float:
    """Unbiased MMD² (U-statistic) for x (m, d), y (n, d); needs m, n ≥ 2."""
    x, y = np.atleast_2d(np.asarray(x, dtype=float)), np.atleast_2d(np.asarray(y, dtype=float))
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("unbiased MMD needs at least 2 samples on each side")
    syy = _cached_self_sum(None if ref_key is None else ("nd", ref_key, sigma),
                           lambda: gaussian_kernel_self_sum(y, sigma))
    sxx = gaussian_kernel_self_sum(x, sigma)
    sxy = gaussian_kernel_sum(x, y, sigma)
    return (sxx - m) / (m * (m - 1)) + (syy - n) / (n * (n - 1)) - 2.0 * sxy / (m * n)


def median_heuristic(y: npt.ArrayLike, max_rows: int = 2000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance among (a fixed random subset of) rows of y."""
    from scipy.spatial.distance import pdist

    y = np.atleast_2d(np.asarray(y, dtype=float))
    if len(y) > max_rows:
        y = y[np.random.default_rng(seed).choice(len(y), max_rows, replace=False)]
    return float(np.median(pdist(y)))
