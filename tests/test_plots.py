"""Pareto front (non-dominated set under each metric's direction), its staircase, figures."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from leaderboard import plots as P


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


def test_scatter_without_data_or_metric_says_why():
    empty = P.scatter(pd.DataFrame({"submission_id": []}), "novelty.novel", "stability.stable")
    assert "No finished submissions" in empty.layout.annotations[0].text
    missing = P.scatter(frame(), "novelty.novel", "nope.nothing")
    assert "nope.nothing" in missing.layout.annotations[0].text


def test_periodic_table_and_histogram():
    counts = P.element_counts(["Fe2O3", "LaNiO3", "UO2", None, "not a formula!"])
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
