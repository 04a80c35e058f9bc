"""Bootstrap confidence intervals: recount exactly, contain the point, shrink with n, seeded."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluator import uncertainty as U
from evaluator.families.base import counted


def synthetic(n: int, seed: int = 1) -> tuple[pd.DataFrame, dict]:
    """A per-structure table with validity, uniqueness, novelty and stability columns, and
    the metrics its families would report (computed independently of evaluator.uncertainty)."""
    rng = np.random.default_rng(seed)
    valid = rng.random(n) < 0.8
    novel = pd.array(np.where(valid, rng.random(n) < 0.6, pd.NA), dtype="boolean")
    e = np.where(valid, rng.normal(0.1, 0.15, n), np.nan)
    stable = pd.array(np.where(valid, e <= 0, pd.NA), dtype="boolean")
    meta = pd.array(np.where(valid, e <= 0.1, pd.NA), dtype="boolean")
    # classes: pairs of consecutive valid rows share a class (first = lower index)
    vrows = np.flatnonzero(valid)
    uclass = pd.array([pd.NA] * n, dtype="Int64")
    for k, r in enumerate(vrows):
        uclass[r] = vrows[k - 1] if k % 2 else r
    is_first = pd.array([pd.NA if pd.isna(c) else c == i for i, c in enumerate(uclass)], dtype="boolean")
    table = pd.DataFrame({"parse_ok": True, "validity_valid": pd.array(valid, dtype="boolean"),
                          "uniqueness_class": uclass, "uniqueness_is_first": is_first,
                          "novelty_novel": novel,
                          "novelty_status": np.where(valid, "ok", "skipped"),
                          "stability_e_above_hull": e, "stability_stable": stable,
                          "stability_metastable": meta})
    n_valid = int(valid.sum())
    metrics = {
        "validity": counted("valid", n_valid, n, n_valid),
        "uniqueness": counted("unique", len(set(uclass.dropna().tolist())), n, n_valid),
        "novelty": counted("novel", int(novel.fillna(False).sum()), n, n_valid),
        "stability": {**counted("stable", int(stable.fillna(False).sum()), n, n_valid),
                      **counted("metastable", int(meta.fillna(False).sum()), n, n_valid)},
    }
    return table, metrics


def test_recount_equals_family_values():
    table, metrics = synthetic(300)
    points = U.point_estimates(table)
    for group, values in metrics.items():
        for key, v in values.items():
            if key.endswith(U.SUFFIXES):
                assert points[group][key] == pytest.approx(v, abs=1e-15), (group, key)


def test_intervals_contain_the_point_and_are_seeded():
    table, metrics = synthetic(400)
    ci, missing = U.bootstrap_intervals(table, metrics)
    assert not missing
    assert set(ci) == {"validity", "uniqueness", "novelty", "stability"}
    for group, values in ci.items():
        for key, iv in values.items():
            point = metrics[group][key]
            assert iv["lo"] <= point <= iv["hi"], (group, key, iv, point)
            if key != "valid_frac_valid":  # valid / valid is 1 in every resample
                assert iv["hi"] - iv["lo"] > 0
    assert ci["validity"]["valid_frac_valid"] == {"lo": 1.0, "hi": 1.0}
    again, _ = U.bootstrap_intervals(table, metrics)
    assert again == ci
    other, _ = U.bootstrap_intervals(table, metrics, seed=1)
    assert other != ci


def test_intervals_shrink_with_n():
    small, m_small = synthetic(100)
    large, m_large = synthetic(1600)
    ci_s, _ = U.bootstrap_intervals(small, m_small)
    ci_l, _ = U.bootstrap_intervals(large, m_large)
    for group, values in ci_l.items():
        for key, iv in values.items():
            if key == "valid_frac_valid":
                continue
            w_small = ci_s[group][key]["hi"] - ci_s[group][key]["lo"]
            assert iv["hi"] - iv["lo"] < w_small, (group, key)


def test_null_rate_gets_no_interval_and_a_wrong_recount_says_why():
    table, metrics = synthetic(50)
    metrics["novelty"]["novel_frac_valid"] = None
    metrics["stability"]["stable_frac_submitted"] += 0.01
    ci, missing = U.bootstrap_intervals(table, metrics)
    assert "novel_frac_valid" not in ci["novelty"] and "novel_frac_submitted" in ci["novelty"]
    assert "novelty.novel_frac_valid" not in missing  # its reason is the family's
    assert "stable_frac_submitted" not in ci["stability"]
    assert "per-structure table" in missing["stability.stable_frac_submitted"]


def test_empty_table_and_absent_columns():
    assert U.bootstrap_intervals(pd.DataFrame({"parse_ok": []}), {}) == ({}, {})
    table, metrics = synthetic(20)
    ci, _ = U.bootstrap_intervals(table.drop(columns=["uniqueness_is_first"]), metrics)
    assert "uniqueness" not in ci and "validity" in ci


def test_unique_counts_first_occurrences_not_rows():
    """Every valid row in one class: only row 0 is a first occurrence, so a resample's
    unique count is the number of draws of row 0, never the number of valid rows."""
    n = 40
    table = pd.DataFrame({"parse_ok": True, "validity_valid": pd.array([True] * n, dtype="boolean"),
                          "uniqueness_class": pd.array([0] * n, dtype="Int64"),
                          "uniqueness_is_first": pd.array([True] + [False] * (n - 1), dtype="boolean")})
    count = U.counters(table)["uniqueness"]["unique"]
    w = np.zeros((2, n), int)
    w[0, 5] = n  # row 5 drawn n times: no first occurrence
    w[1, 0], w[1, 1] = 2, n - 2
    assert count(w).tolist() == [0, 2]
    ci, _ = U.bootstrap_intervals(table, {"uniqueness": counted("unique", 1, n, n)})
    assert ci["uniqueness"]["unique_frac_submitted"]["lo"] <= 1 / n <= ci["uniqueness"]["unique_frac_submitted"]["hi"]


def _sun_ctx(rows):
    from evaluator.config import EvalConfig
    from evaluator.context import EvalContext
    from evaluator.data import DataDir
    from evaluator.pipeline import reference_loader
    from evaluator.families.stability.family import _flags

    e = np.array([r[1] for r in rows], float)
    stable, meta = _flags(e, 0.0, 0.1)
    table = pd.DataFrame({
        "index": range(len(rows)), "parse_ok": True, "validity_valid": True,
        "stability_e_above_hull": e, "stability_unrelaxed_e_above_hull": e,
        "stability_stable": stable, "stability_metastable": meta,
        "stability_unrelaxed_stable": stable, "stability_unrelaxed_metastable": meta,
        "stability_reason": None,
        "novelty_novel": pd.array([r[2] for r in rows], dtype="boolean"),
    })
    config, data = EvalConfig(), DataDir()
    return EvalContext(table, [r[0] for r in rows], config, data, reference_loader=reference_loader(config, data))


def _rocksalt(a, b, lat):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_sun_recount_from_the_sun_family_columns():
    """SUN/MSUN recounted from the sun family's per-row columns equal its counts."""
    from evaluator.families.base import NoOptions
    from evaluator.families.sun import family as sun

    rows = [
        (_rocksalt("Na", "Cl", 5.6), -0.02, False),  # 0 stable, first of its class, not novel
        (_rocksalt("Na", "Cl", 5.7), 0.0, True),     # 1 same class, novel: not counted (0 is first)
        (_rocksalt("K", "Cl", 6.3), -0.1, True),     # 2 SUN
        (_rocksalt("Mg", "O", 4.2), 0.05, True),     # 3 MSUN
        (_rocksalt("Mg", "O", 4.2), 0.1, True),      # 4 its duplicate
        (_rocksalt("Ca", "O", 4.8), 0.5, True),      # 5 neither
    ]
    ctx = _sun_ctx(rows)
    res = sun.run(ctx, NoOptions())
    assert res.metrics["sun_count"] == 1 and res.metrics["msun_count"] == 1
    assert res.columns["stability_sparse_chemsys"].tolist() == [False] * 6  # all well-covered rocksalts
    assert "n_elements + 1" in res.provenance["sparse_chemsys"]["rule"]
    table = ctx.table.join(res.columns)
    metrics = {"sun": res.metrics, "sun_unrelaxed": res.groups["sun_unrelaxed"]}
    points = U.point_estimates(table)
    for group in metrics:
        for key in ("sun_frac_submitted", "msun_frac_valid", "sun_plus_msun_frac_submitted"):
            assert points[group][key] == pytest.approx(metrics[group][key])
    ci, missing = U.bootstrap_intervals(table, metrics)
    assert not missing
    iv = ci["sun"]["sun_frac_submitted"]
    assert iv["lo"] <= 1 / 6 <= iv["hi"]
    # one explicit resample: rows 1, 1, 2, 3, 3, 5 -> SUN 1 (row 2), MSUN 2 (row 3 twice)
    w = np.array([[0, 2, 1, 2, 0, 1]])
    c = U.counters(table)["sun"]
    assert (c["sun"](w)[0], c["msun"](w)[0], c["sun_plus_msun"](w)[0]) == (1, 2, 3)
    assert math.isclose(c["sun_plus_msun"](np.ones((1, 6), int))[0], 2)
