"""SUN / MSUN counting: thresholds, uniqueness within each set, novelty, failures."""

from __future__ import annotations

import math

import pandas as pd
import pytest


def _rocksalt(a, b, lat):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _ctx(rows):
    """rows: (structure, e_hull relaxed, e_hull unrelaxed, novel)"""
    from evaluator.config import EvalConfig
    from evaluator.context import EvalContext
    from evaluator.data import DataDir
    from evaluator.pipeline import reference_loader

    n = len(rows)
    table = pd.DataFrame({
        "index": range(n), "parse_ok": True, "validity_valid": True,
        "stability_e_above_hull": [r[1] for r in rows],
        "stability_unrelaxed_e_above_hull": [r[2] for r in rows],
        "stability_reason": [None if not math.isnan(r[1]) else "relaxation failed" for r in rows],
        "novelty_novel": pd.array([r[3] for r in rows], dtype="boolean"),
    })
    config, data = EvalConfig(), DataDir()
    return EvalContext(table, [r[0] for r in rows], config, data, reference_loader=reference_loader(config, data))


def test_sun_and_msun_counts():
    from evaluator.families.base import NoOptions
    from evaluator.families.sun import family as sun

    nacl, nacl_big = _rocksalt("Na", "Cl", 5.6), _rocksalt("Na", "Cl", 5.7)  # same crystal, scaled
    kcl, mgo, cao, csi = (_rocksalt("K", "Cl", 6.3), _rocksalt("Mg", "O", 4.2), _rocksalt("Ca", "O", 4.8),
                          _rocksalt("Cs", "I", 7.0))
    ctx = _ctx([
        (nacl, -0.02, 0.05, True),       # 0 SUN (first of its class)
        (nacl_big, 0.0, 0.0, True),      # 1 stable duplicate of 0: not counted again
        (kcl, -0.1, -0.1, False),        # 2 stable, not novel
        (mgo, 0.05, 0.2, True),          # 3 MSUN
        (mgo.copy(), 0.1, 0.1, True),    # 4 metastable duplicate of 3 (0.1 inclusive): once
        (cao, 0.1000001, 0.3, True),     # 5 above 0.1: neither
        (csi, float("nan"), float("nan"), True),  # 6 no E_hull: failed, counted in denominators
        (_rocksalt("Li", "F", 4.0), -0.3, -0.3, None),  # 7 novelty unknown: not a success
    ])
    res = sun.run(ctx, NoOptions())
    m = res.metrics
    assert m["sun_count"] == 1 and m["msun_count"] == 1 and m["sun_plus_msun_count"] == 2
    assert m["sun_frac_submitted"] == pytest.approx(1 / 8) and m["sun_plus_msun_frac_valid"] == pytest.approx(2 / 8)
    assert m["stable_unique_count"] == 3  # NaCl class, KCl, LiF
    cols = res.columns
    assert cols["sun_sun"].tolist() == [True] + [False] * 7
    assert cols["sun_msun"].tolist() == [False, False, False, True] + [False] * 4
    assert cols.loc[6, "sun_status"] == "failed" and "E_hull" in cols.loc[6, "sun_reason"]
    assert cols.loc[7, "sun_status"] == "failed" and "novelty" in cols.loc[7, "sun_reason"]
    # unrelaxed: NaCl (0.05) and its twin (0.0) fall in different sets -> one MSUN + one SUN
    u = res.groups["sun_unrelaxed"]
    assert u["sun_count"] == 1 and u["msun_count"] == 2  # nacl (0.05) and mgo twin (0.1)
    assert cols["sun_unrelaxed_sun"].tolist()[:2] == [False, True]


def test_sun_without_stability_is_absent_with_reason():
    from evaluator.families.base import NoOptions
    from evaluator.families.sun import family as sun

    ctx = _ctx([(_rocksalt("Na", "Cl", 5.6), 0.0, 0.0, True)])
    ctx.table = ctx.table.drop(columns=["stability_e_above_hull"])
    res = sun.run(ctx, NoOptions())
    assert res.metrics["sun_count"] is None and "stability" in res.missing["sun_count"]


def test_structure_whose_reduction_fails_is_no_success_and_no_crash(monkeypatch):
    """A stable structure the matcher cannot reduce: uniqueness within the set is
    undecidable, so it is not counted (as in the uniqueness family) and says why;
    the other structures are still counted."""
    from evaluator.identity import matcher as M
    from evaluator.families.base import NoOptions
    from evaluator.families.sun import family as sun

    bad = _rocksalt("K", "Cl", 6.3)
    real = M.reduce_structure

    def reduce_or_fail(structure, matcher=None):
        if structure is bad:
            raise ValueError("Niggli reduction did not converge")
        return real(structure, matcher)

    monkeypatch.setattr(M, "reduce_structure", reduce_or_fail)
    ctx = _ctx([
        (_rocksalt("Na", "Cl", 5.6), -0.1, -0.1, True),
        (bad, -0.1, -0.1, True),
        (_rocksalt("K", "Cl", 6.5), -0.1, -0.1, True),  # same formula: the matcher must compare
        (_rocksalt("Mg", "O", 4.2), -0.1, -0.1, True),
    ])
    res = sun.run(ctx, NoOptions())
    assert res.metrics["sun_count"] == 3 and res.metrics["stable_unique_count"] == 3
    cols = res.columns
    assert cols["sun_sun"].tolist() == [True, False, True, True]
    assert cols.loc[1, "sun_status"] == "failed" and "reduction failed" in cols.loc[1, "sun_reason"]
