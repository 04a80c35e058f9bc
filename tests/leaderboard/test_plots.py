"""Pareto front (non-dominated set under each metric's direction), its staircase, figures."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from evaluator.export import cif_text, element_counts
from leaderboard.ui import figures as P
def brute_front(x, y, sx, sy):
    pts = [(a * sx, b * sy) for a, b in zip(x, y)]
    out = []
    for i, p in enumerate(pts):
        dominated = any(q[0] >= p[0] and q[1] >= p[1] and q != p for j, q in enumerate(pts) if j != i)
        out.append(not dominated)
    return np.array(out)


@pytest.mark.parametrize("sx,sy", list(itertools.product((1, -1), (1, -1))))
def test_pareto_mask_matches_brute_force_for_every_direction(sx, sy):
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.integers(0, 6, 12).astype(float)  # many ties
        y = rng.integers(0, 6, 12).astype(float)
        assert (P.pareto_mask(x, y, sx, sy) == brute_front(x, y, sx, sy)).all()


def test_pareto_mask_ignores_nan_and_handles_known_case():
    x = [1, 2, 3, 2.5, 0.5, np.nan]
    y = [3, 2, 1, 1.5, 0.5, 10]
    assert P.pareto_mask(x, y, 1, 1).tolist() == [True, True, True, True, False, False]
    # lower x is better: only (1, 3) and (0.5, 0.5) survive
    assert P.pareto_mask(x, y, -1, 1).tolist() == [True, False, False, False, True, False]


def test_staircase_steps_down_between_front_points():
    xs, ys = P.staircase([1, 2, 3], [3, 2, 1], 1, 1)
    assert list(zip(xs, ys)) == [(1, 3), (1, 2), (2, 2), (2, 1), (3, 1)]
    # with the data extent, the first and last steps reach the worst edges
    xs, ys = P.staircase([1, 2, 3], [3, 2, 1], 1, 1, extent=(0.5, 3, 0.2, 3))
    assert (xs[0], ys[0]) == (0.5, 3) and (xs[-1], ys[-1]) == (3, 0.2)
    # lower x is better: the staircase runs from the high-x end, in original units
    xs, ys = P.staircase([1, 2, 3], [1, 2, 3], -1, 1)
    assert list(zip(xs, ys)) == [(3, 3), (3, 2), (2, 2), (2, 1), (1, 1)]
    # every vertex is weakly dominated by some front point (the staircase never overshoots)
    for vx, vy in zip(xs, ys):
        assert any(-fx >= -vx and fy >= vy for fx, fy in [(1, 1), (2, 2), (3, 3)])


def frame():
    return pd.DataFrame({
        "submission_id": ["a", "b", "c", "d"], "model_name": ["A", "B", "C", "D"],
        "training_set": ["MP-20"] * 4, "submitter": ["u"] * 4, "n_submitted": [10, 10, 10, 10],
        "novelty.novel_count": [5, 8, 2, 1], "novelty.novel_frac_submitted": [.5, .8, .2, .1],
        "stability.stable_count": [3, 1, 1, 0], "stability.stable_frac_submitted": [.3, .1, .1, np.nan],
        "stability.mean_e_above_hull": [0.05, 0.2, 0.3, 0.1],
    })


def test_scatter_highlights_front_and_counts_missing_points():
    fig = P.scatter(frame(), "novelty.novel", "stability.stable")
    names = [t.name for t in fig.data]
    assert names == ["Pareto front", "submissions", "non-dominated"]
    front = fig.data[2]
    assert sorted(front.text) == ["A", "B"]  # C is dominated by A; D lacks a stability value
    assert "1 without both values not shown" in fig.layout.title.text
    assert "A" in {c[0] for c in front.customdata} and "%{customdata[0]}" in front.hovertemplate
    # a ↓ metric on y: A (0.05 eV/atom) dominates everything with less novelty
    fig = P.scatter(frame(), "novelty.novel", "stability.mean_e_above_hull")
    assert sorted(fig.data[2].text) == ["A", "B"]


def test_scatter_names_at_most_ten_of_a_long_front():
    """200 submissions all on the Pareto front (a trade-off): ten names, kept apart; hover for all."""
    t = np.linspace(0.0, 1.0, 200)
    df = pd.DataFrame({"submission_id": [f"s{i}" for i in range(200)], "model_name": [f"M{i}" for i in range(200)],
                       "n_submitted": 100, "novelty.novel_count": np.round(100 * t),
                       "novelty.novel_frac_submitted": t, "stability.stable_count": np.round(100 * (1 - t)),
                       "stability.stable_frac_submitted": 1 - t})
    fig = P.scatter(df, "novelty.novel", "stability.stable")
    front = fig.data[2]
    named = [x for x in front.text if x]
    assert len(front.customdata) == 200 and 1 < len(named) <= 10
    assert "M0" in named  # the best on y is named first
    assert f"{len(named)} of 200 non-dominated named (hover for the others)" in fig.layout.title.text


def test_scatter_without_data_or_metric_says_why():
    empty = P.scatter(pd.DataFrame({"submission_id": []}), "novelty.novel", "stability.stable")
    assert "No finished submissions" in empty.layout.annotations[0].text
    missing = P.scatter(frame(), "novelty.novel", "nope.nothing")
    assert "nope.nothing" in missing.layout.annotations[0].text


def test_periodic_table_and_histogram():
    counts = element_counts(["Fe2O3", "LaNiO3", "UO2", None, "not a formula!"])
    assert counts["O"] == 3 and counts["Fe"] == 1 and counts["U"] == 1
    fig = P.periodic_table(counts, total=3)
    z = np.array(fig.data[1].z, dtype=float)
    assert np.nansum(z) == sum(counts.values())
    assert P._table_position(26) == (3, 7)  # Fe: period 4, group 8
    assert P._table_position(57) == (8, 2) and P._table_position(92) == (9, 5)  # La, U in f-block rows
    assert "5 of 118" in fig.layout.title.text
    h = P.ehull_histogram([0.01, -0.02, 0.3, None, np.nan])
    assert len(h.data[0].x) == 3 and "2 without" in h.layout.title.text


def test_scatter_escapes_user_metadata_in_labels_and_hover():
    """Plotly renders <a href>/<b> in text and hover: a model name must show as typed."""
    df = frame()
    df["model_name"] = df["model_name"].replace("A", '<a href="https://evil.example">A</a>')
    fig = P.scatter(df, "novelty.novel", "stability.stable")
    labels = list(fig.data[2].text) + [c[0] for t in fig.data[1:] for c in t.customdata]
    assert '&lt;a href="https://evil.example"&gt;A&lt;/a&gt;' in labels
    assert not any("<a" in str(v) for v in labels)


def test_scatter_error_bars_from_stored_intervals():
    res = pd.DataFrame({"submission_id": ["a", "b"], "model_name": ["A", "B"], "provenance": ["leaderboard worker"] * 2,
                        "evaluator_version": ["2.0", None],
                        "novelty.novel_count": [5, 8], "novelty.novel_frac_submitted": [0.5, 0.8],
                        "stability.stable_count": [1, 2], "stability.stable_frac_submitted": [0.1, 0.2],
                        "uncertainty.novelty.novel_frac_submitted.lo": [0.4, np.nan],
                        "uncertainty.novelty.novel_frac_submitted.hi": [0.65, np.nan]})
    fig = P.scatter(res, "novelty.novel", "stability.stable")
    pts = [t for t in fig.data if t.mode and "markers" in t.mode]
    all_plus = np.concatenate([np.asarray(t.error_x.array, float) for t in pts if t.error_x.array is not None])
    all_minus = np.concatenate([np.asarray(t.error_x.arrayminus, float) for t in pts if t.error_x.array is not None])
    assert sorted(np.round(all_plus[np.isfinite(all_plus)], 6)) == [15.0]  # A: 50 % +15 / −10, B: none
    assert sorted(np.round(all_minus[np.isfinite(all_minus)], 6)) == [10.0]
    assert "confidence intervals" in fig.layout.title.text and "relative to the reference" in fig.layout.title.text
    assert fig.layout.xaxis.range[1] > 65  # the axis holds the whole interval
    hover = [t.customdata[0][3] for t in pts]
    assert {"leaderboard evaluator 2.0", "leaderboard evaluator (version not recorded)"} == set(hover)
    no_ci = P.scatter(res.drop(columns=[c for c in res if c.startswith("uncertainty")]), "novelty.novel",
                      "stability.stable")
    assert all(t.error_x.array is None for t in no_ci.data if t.mode and "markers" in t.mode)
    assert "confidence intervals" not in no_ci.layout.title.text


def test_comparison_figures():
    fig = P.ehull_overlay({"A": [0.0, 0.05, 0.2, None], "B": [0.01, 0.3]})
    assert [t.type for t in fig.data] == ["histogram", "histogram"] and fig.layout.barmode == "overlay"
    assert fig.data[0].name == "A (3)" and fig.data[0].xbins.size == fig.data[1].xbins.size
    cov = P.element_coverage_compare({"A": {"O": 2, "Na": 1}, "B": {"O": 1, "Fe": 1}}, {"A": 2, "B": 4})
    assert list(cov.data[0].x) == ["O", "Na", "Fe"]  # atomic-number order
    assert [list(r) for r in cov.data[0].z] == [[100.0, 50.0, None], [25.0, None, 25.0]]  # % of its structures
    assert [y.split(" (")[0] for y in cov.data[0].y] == ["A", "B"]
    assert "No E_hull" in P.ehull_overlay({"A": []}).layout.annotations[0].text


def test_candidate_figures_and_details():
    from leaderboard.ui import candidate as C
    s = {"species": ["Na", "Cl"], "cart_coords": [[0, 0, 0], [1.4, 1.4, 1.4]],
         "lattice": [[2.8, 0, 0], [0, 2.8, 0], [0, 0, 2.8]], "bonds": [[0, 1, [0, 0, 0], [1.4, 1.4, 1.4]]]}
    fig = C.structure_figure(s)
    names = [t.name for t in fig.data]
    assert names == ["unit cell", "bonds", "Na", "Cl"] and all(t.type == "scatter3d" for t in fig.data)
    assert sum(v is None for v in fig.data[0].x) == 12  # twelve cell edges
    assert fig.data[2].marker.color != fig.data[3].marker.color  # coloured by element
    pd_fig = C.phase_diagram_figure({"phase_diagram": None, "phase_diagram_reason": "more than 4 elements"})
    assert "more than 4 elements" in pd_fig.layout.annotations[0].text
    import plotly.graph_objects as go

    stored = go.Figure(go.Scatter(x=[0, 1], y=[0, 0], name="candidate")).to_json()
    assert C.phase_diagram_figure({"phase_diagram": stored}).data[0].name == "candidate"
    rec = {"e_hull_unrelaxed": 0.1234567, "e_hull_relaxed": -0.0051404231961373004, "rmsd": 0.5,
           "nearest_reference": {"products": [{"id": "mp-1", "fraction": 0.25}], "e_above_hull": 0.01}}
    text = C.details_markdown({"index": 3, "reduced_formula": "NaCl", C.BEYOND_REFERENCE_COLUMN: True,
                               C.SPARSE_CHEMSYS_COLUMN: None}, rec, 20)
    assert "-0.005 eV/atom" in text and "0.123 eV/atom" in text and "0.500 Å" in text
    assert "products: [id: mp-1 · fraction: 0.250]" in text
    assert "larger than any reference cell (20 sites)" in text and "sparse" not in text
    assert C.parse("{not json") is None and C.parse('{"a": 1}') == {"a": 1}


def test_periodic_table_and_cif_without_pymatgen_match_pymatgen():
    """The app draws the periodic table and writes CIFs with ase (no pymatgen import in the UI);
    positions and structures agree with pymatgen's."""
    import json

    from pymatgen.core import Lattice, Structure
    from pymatgen.core.periodic_table import Element

    for z in range(1, 119):
        if not (57 <= z <= 71 or 89 <= z <= 103):
            el = Element.from_Z(z)
            assert P._table_position(z) == (el.row - 1, el.group - 1), z
    assert P._table_position(57) == (8, 2) and P._table_position(103) == (9, 16)
    assert element_counts(["NaCl", "Fe2O3", "Xx2", None, "NaO"]) == {"Na": 2, "Cl": 1, "Fe": 1, "O": 2}
    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    back = Structure.from_str(cif_text(json.dumps(s.as_dict())), fmt="cif")
    assert back.matches(s) and back.composition == s.composition
