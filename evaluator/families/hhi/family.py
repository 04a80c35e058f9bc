"""Supply risk: Herfindahl-Hirschman index of the elements (METRICS.md section 7).

Per structure, with atomic fractions x_el of the cell composition:
    hhi_production = Σ x_el · HHI_production(el) / 1000
    hhi_reserve    = Σ x_el · HHI_reserve(el) / 1000
    hhi_combined   = 0.25 · hhi_production + 0.75 · hhi_reserve
on the 0-10 scale (MatterGen, LeMat-GenBench); lower is better. Element values are
pymatgen's table (``pymatgen/analysis/hhi_data.csv``, Gaultois et al. 2013). An element
without data (e.g. H, Tc, the noble gases but He) counts as the maximum, 10, and is
listed in ``hhi_missing_elements`` (a JSON list). Note pymatgen's own
``HHIModel.get_hhi`` weights by mass fraction; we weight by atomic fraction, as
LeMat-GenBench does.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult, NoOptions, finite_or_none
from evaluator.families.hhi.metrics import METRICS
from evaluator.structure_features import N_ELEMENTS, element_tables, structure_features

MAX_HHI = 10.0  # 10,000 / 1000: a single-country monopoly
PRODUCTION_WEIGHT, RESERVE_WEIGHT = 0.25, 0.75

_TABLE: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def hhi_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(production, reserve, has_data) arrays indexed by Z-1, on the 0-10 scale."""
    global _TABLE
    if _TABLE is None:
        from pymatgen.analysis.hhi import HHIModel

        _, _, symbols = element_tables()
        # {symbol: (production, reserve)} on 0-10,000
        data = HHIModel().symbol_hhip_hhir  # type: ignore[no-untyped-call]
        prod, res, has = np.full(N_ELEMENTS, MAX_HHI), np.full(N_ELEMENTS, MAX_HHI), np.zeros(N_ELEMENTS, bool)
        for z, sym in enumerate(symbols):
            if sym in data:
                prod[z], res[z] = data[sym][0] / 1000.0, data[sym][1] / 1000.0
                has[z] = True
        _TABLE = (prod, res, has)
    return _TABLE


def hhi_of_amounts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Production and reserve HHI (0-10) of rows of element amounts, and missing elements."""
    prod, res, has = hhi_tables()
    _, _, symbols = element_tables()
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = counts / total
    missing = [[symbols[z] for z in np.flatnonzero((row > 0) & ~has)] for row in counts]
    return x @ prod, x @ res, missing


def run(ctx: EvalContext, options: NoOptions) -> FamilyResult:
    feats = structure_features(ctx)
    t, counts = feats.table, feats.counts
    ok = counts.sum(axis=1) > 0
    p, r, missing = hhi_of_amounts(counts)
    p[~ok], r[~ok] = np.nan, np.nan
    combined = PRODUCTION_WEIGHT * p + RESERVE_WEIGHT * r
    cols = pd.DataFrame({
        "hhi_production": p,
        "hhi_reserve": r,
        "hhi_combined": combined,
        "hhi_missing_elements": [json.dumps(m) if okk else None for m, okk in zip(missing, ok)],
        "hhi_status": np.where(ok, "ok", "failed"),
        "hhi_reason": [None if okk else (err or "no composition") for okk, err in zip(ok, t["error"])],
    }, index=t.index)
    result = FamilyResult(cols)
    m = result.metrics
    n = int(ok.sum())
    m["n_structures"] = n
    if n == 0:
        for name in ("production_mean", "reserve_mean", "combined_mean",
                     "production_median", "reserve_median", "combined_median"):
            result.absent(name, "no valid structures with a composition")
    else:
        for name, v in (("production", p[ok]), ("reserve", r[ok]), ("combined", combined[ok])):
            m[f"{name}_mean"] = finite_or_none(v.mean())
            m[f"{name}_median"] = finite_or_none(np.median(v))
    m.update(ctx.counted("missing_data", sum(bool(mm) for mm, okk in zip(missing, ok) if okk)))
    from pymatgen.analysis.hhi import HHI_CSV_PATH

    result.provenance = {
        "table": "pymatgen.analysis.hhi hhi_data.csv (Gaultois et al. 2013)",
        "table_file": str(HHI_CSV_PATH).rsplit("site-packages/", 1)[-1],
        "scale": "HHI / 1000 (0-10)",
        "weights": "atomic fractions",
        "combined": f"{PRODUCTION_WEIGHT} * production + {RESERVE_WEIGHT} * reserve",
        "missing_element_value": MAX_HHI,
    }
    return result


FAMILY = Family(name="hhi", requires=("validity",), options=NoOptions, metrics=METRICS, run=run,
                description="supply risk")
