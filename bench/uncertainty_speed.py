"""Speed of the bootstrap confidence intervals (evaluator.uncertainty) on a 2,500-row table.

    .venv/bin/python bench/uncertainty_speed.py [--n 2500] [--resamples 1000]

The table is the synthetic one of tests/evaluator/test_uncertainty.py (validity, uniqueness,
novelty, stability columns) plus SUN/MSUN flags for both geometries. Baseline, in the
same run: the naive bootstrap (pandas ``sample(replace=True)`` per resample, recounting
every rate with pandas), timed on 50 resamples and scaled to the requested number.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "evaluator"))  # test_uncertainty.py

import numpy as np

from evaluator import uncertainty as U
from evaluator.families.base import counted
from test_uncertainty import synthetic


def with_sun(table, metrics):
    rng = np.random.default_rng(3)
    n = len(table)
    first = table["uniqueness_is_first"].fillna(False).to_numpy(bool)
    novel = table["novelty_novel"].fillna(False).to_numpy(bool)
    stable = table["stability_stable"].fillna(False).to_numpy(bool)
    meta = table["stability_metastable"].fillna(False).to_numpy(bool) & ~stable
    n_valid = metrics["validity"]["valid_count"]
    for geo, group in (("", "sun"), ("unrelaxed_", "sun_unrelaxed")):
        for kind in ("stable", "metastable"):
            table[f"stability_{geo}{kind}"] = table[f"stability_{kind}"]
        noise = rng.random(n) < 0.9
        sun, msun = first & novel & stable & noise, first & novel & meta & noise
        table[f"sun_{geo}sun"], table[f"sun_{geo}msun"] = sun, msun
        metrics[f"stability_{geo}".rstrip("_") if geo else "stability"] = metrics["stability"]
        metrics[group] = {**counted("sun", int(sun.sum()), n, n_valid), **counted("msun", int(msun.sum()), n, n_valid),
                          **counted("sun_plus_msun", int((sun | msun).sum()), n, n_valid)}
    return table, metrics


def naive(table, metrics, resamples: int, seed: int = 0) -> None:
    cols = {("validity", "valid"): "validity_valid", ("novelty", "novel"): "novelty_novel",
            ("uniqueness", "unique"): "uniqueness_is_first", ("stability", "stable"): "stability_stable",
            ("stability", "metastable"): "stability_metastable", ("sun", "sun"): "sun_sun",
            ("sun", "msun"): "sun_msun"}
    values = {k: [] for k in cols}
    for b in range(resamples):
        s = table.sample(frac=1.0, replace=True, random_state=seed + b)
        n_valid = s["validity_valid"].fillna(False).sum()
        for k, c in cols.items():
            count = s[c].fillna(False).astype(bool).sum()
            values[k].append((count / len(s), count / n_valid if n_valid else np.nan))
    for v in values.values():
        np.nanpercentile(np.array(v), [2.5, 97.5], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    table, metrics = with_sun(*synthetic(args.n))
    U.bootstrap_intervals(table, metrics, n_resamples=10)  # warm-up (imports, numpy)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ci, missing = U.bootstrap_intervals(table, metrics, n_resamples=args.resamples)
        times.append(time.perf_counter() - t0)
    n_ci = sum(len(v) for v in ci.values())
    t0 = time.perf_counter()
    naive(table, metrics, 50)
    t_naive = (time.perf_counter() - t0) * args.resamples / 50
    best = min(times)
    print(f"{args.n} rows, {args.resamples} resamples, {n_ci} intervals ({len(missing)} refused)")
    print(f"evaluator.uncertainty: best of 3 {best:.3f} s (runs: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"naive pandas bootstrap (50 resamples scaled to {args.resamples}): {t_naive:.2f} s")
    print(f"speed-up: {t_naive / best:.0f}x")


if __name__ == "__main__":
    main()
