"""Issue 26 item 3 on the table and the model page, without a browser: caveats next to the
numbers (from the metric declarations), novelty labelled with the protocol's reference, the
sparse-hull count beside the stability numbers, distinct Rank-by labels over computed metrics
only, the reported space group's tolerance, per-structure formulas without ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from leaderboard_fixtures import protocol_block, structures_table, summary

from leaderboard.table.caveats import caveat_markdown
from leaderboard.table.measures import measures_of
from leaderboard.table.protocols import reference_of
from leaderboard.table.view import build_view
from leaderboard.ui.leaderboard_tab import _rank_choices
from leaderboard.ui.model_tab import chem_formulas
from leaderboard.ui.structures_view import candidates, spacegroup_header
from leaderboard.ui.summary_view import caveats_markdown, metrics_frame


def results(reference_id: str = "mp20") -> pd.DataFrame:
    """Two rows of one protocol; a Fréchet distance no row computed; two "Valid" measures."""
    record = json.dumps({"reference": {"id": reference_id, "content_hash": "x"}})
    return pd.DataFrame({
        "submission_id": ["a", "b"], "model_name": ["Alpha", "Beta"], "n_submitted": [10, 10],
        "protocol_id": ["p1", "p1"], "protocol_label": ["P", "P"], "protocol_record": [record, record],
        "validity.valid_count": [9, 8], "validity.valid_frac_submitted": [0.9, 0.8],
        "validity.valid_frac_valid": [1.0, 1.0], "validity.valid_frac_parsed": [0.9, 0.8],
        "novelty.novel_count": [5, 4], "novelty.novel_frac_submitted": [0.5, 0.4],
        "novelty.novel_frac_valid": [0.55, 0.5],
        "stability.stable_count": [2, 1], "stability.stable_frac_submitted": [0.2, 0.1],
        "stability.stable_frac_valid": [0.22, 0.12],
        "sun.sun_plus_msun_count": [3, 2], "sun.sun_plus_msun_frac_submitted": [0.3, 0.2],
        "sun.sun_plus_msun_frac_valid": [0.33, 0.25],
        "distribution.frechet_lemat_orb": [np.nan, np.nan],
    })


def test_novelty_header_names_the_protocols_reference():
    for ref_id, label in (("mp20", "MP-20 (≤ 20 atoms)"), ("lemat-bulk", "LeMat-Bulk")):
        res = results(ref_id)
        assert reference_of(res) == label
        v = build_view(res, view="compact")
        heads = [h for h in v.frame.columns if h.startswith("Novel")]
        assert heads == [f"Novel w.r.t. {label} ↑ [%]"], list(v.frame.columns)
    mixed = pd.concat([results("mp20"), results("lemat-bulk")])
    assert reference_of(mixed) is None  # never one reference's name over another's rows


def test_caption_caveats_upper_bounds_and_reference():
    res = results()
    text = caveat_markdown(build_view(res, view="compact").measures, reference_of(res))
    assert "**Upper bound** (" in text and "SUN + MSUN" in text and "Stable" in text
    assert "PES softening" in text and "Known limitations" in text
    assert "**W.r.t. MP-20 (≤ 20 atoms)** (Novel)" in text


def test_rank_by_labels_distinct_and_only_computed():
    res = results()
    ms = measures_of(res)
    every = _rank_choices(ms)
    labels = [label for label, _ in every]
    assert len(labels) == len(set(labels)), labels
    assert {"Valid ↑", "Valid (of parsed) ↑"} <= set(labels)
    assert "distribution.frechet_lemat_orb" in {k for _, k in every}
    shown = _rank_choices(ms, res)
    assert "distribution.frechet_lemat_orb" not in {k for _, k in shown}
    assert set(shown) <= set(every)  # a measure's label does not depend on the rows


def test_model_page_caveats_and_sparse_count():
    table = structures_table(6, 1, 1)  # row 1 is in a sparse chemical system
    s = summary(table, 0.1)
    s["protocol"] = protocol_block()
    mf = metrics_frame(s, table)
    labels = mf["Metric"].tolist()
    assert "SUN + MSUN ↑ (upper bound)" in labels and "Stable ↑ (upper bound)" in labels
    assert "Novel w.r.t. MP-20 (≤ 20 atoms) ↑" in labels
    sparse = mf[mf["Metric"].str.startswith("In a sparse chemical system")]
    assert len(sparse) == 1 and sparse.iloc[0]["Value"] == "1" and sparse.iloc[0]["Family"] == "stability"
    # beside the stability numbers: right after the last stability row
    pos = sparse.index[0]
    assert mf.loc[pos - 1, "Family"].startswith("stability") and not mf.loc[pos + 1, "Family"].startswith("stab")
    md = caveats_markdown(s, table)
    assert "upper bound" in md.lower() and "1 of 6 structures" in md
    assert not metrics_frame(s)["Metric"].str.startswith("In a sparse").any()  # no table: no count


def test_reported_space_group_and_formulas_of_downloads():
    table = structures_table(4, 1, 1)
    table["validity_spacegroup"] = pd.array([1, 1, 225, 1], dtype="Int64")
    table["validity_spacegroup_loose"] = pd.array([225, 221, 225, 1], dtype="Int64")
    tol = {"column": "validity_spacegroup_loose", "symprec_A": 0.1, "angle_tolerance_deg": 5.0}
    cands, _ = candidates(table, tolerance=tol)
    head = "space group (spglib, symprec 0.1 Å, 5°)"
    assert head in cands.columns and cands[head].tolist() == [225, 221]
    assert spacegroup_header(None, loose=False) == "space group (spglib, symprec 0.01 Å, 5°)"
    table["formula"] = ["Na1Cl1", "K1Br1", "Al1I7", None]
    out = chem_formulas(table)
    assert out["formula"].tolist()[:3] == ["NaCl", "KBr", "AlI7"] and pd.isna(out["formula"].iloc[3])
    assert table["formula"].iloc[0] == "Na1Cl1"  # the page's own table is not changed
