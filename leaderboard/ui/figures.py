"""Plotly figures: metric scatter with its Pareto front, E_hull histogram and
element coverage on a periodic table.

The Pareto front is the non-dominated set under each metric's direction
(↑ higher is better, ↓ lower is better), drawn as the staircase that bounds the
region the front dominates.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from evaluator.export import atomic_number, element_symbols
from leaderboard.table.measures import DEFAULT_SHOW, SHOW_MODES, Measure, catalogue
from leaderboard.table.metadata import NOVELTY_KEYS, evaluated_by, meta_column
from leaderboard.table.view import ci_level
from leaderboard.ui.pareto_labels import labelled

FRONT_COLOUR = "#c0392b"
POINT_COLOUR = "#7f8c8d"
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=55), height=520,
              font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"))


# ---------------------------------------------------------------- Pareto front
def pareto_mask(x: Iterable[float], y: Iterable[float], x_dir: int = 1, y_dir: int = 1) -> np.ndarray:
    """True for points no other point dominates.

    ``x_dir``/``y_dir``: +1 when higher is better, -1 when lower is better. A
    point dominates another when it is at least as good in both and strictly
    better in one. NaN points are never on the front.
    """
    xs = np.asarray(list(x), dtype=float) * (1 if x_dir >= 0 else -1)
    ys = np.asarray(list(y), dtype=float) * (1 if y_dir >= 0 else -1)
    ok = np.isfinite(xs) & np.isfinite(ys)
    mask = ok.copy()
    idx = np.flatnonzero(ok)
    for i in idx:
        ge = (xs[idx] >= xs[i]) & (ys[idx] >= ys[i])
        gt = (xs[idx] > xs[i]) | (ys[idx] > ys[i])
        if np.any(ge & gt):
            mask[i] = False
    return np.asarray(mask, dtype=bool)


def staircase(x: Iterable[float], y: Iterable[float], x_dir: int = 1, y_dir: int = 1,
              extent: tuple[float, float, float, float] | None = None) -> tuple[list[float], list[float]]:
    """Vertices of the staircase through front points ``(x, y)``.

    Working in "higher is better" coordinates, points sorted by x ascending
    have y descending; the boundary of the dominated region goes down from each
    point to the next point's y, then across to it. ``extent`` =
    (xmin, xmax, ymin, ymax) of all data (original units) extends the first and
    last steps to the data's edges.
    """
    sx, sy = (1 if x_dir >= 0 else -1), (1 if y_dir >= 0 else -1)
    pts = sorted({(float(a) * sx, float(b) * sy) for a, b in zip(x, y)
                  if np.isfinite(a) and np.isfinite(b)})
    if not pts:
        return [], []
    corners: list[tuple[float, float]] = []
    if extent is not None:
        xmin, xmax, ymin, ymax = extent
        lo_x = min(xmin * sx, xmax * sx)  # worst x in "higher is better" space
        corners.append((lo_x, pts[0][1]))
    for k, (a, b) in enumerate(pts):
        corners.append((a, b))
        if k + 1 < len(pts):
            corners.append((a, pts[k + 1][1]))
    if extent is not None:
        lo_y = min(ymin * sy, ymax * sy)
        corners.append((pts[-1][0], lo_y))
    vx, vy = [a for a, _ in corners], [b for _, b in corners]
    return [v * sx for v in vx], [v * sy for v in vy]


# ---------------------------------------------------------------- scatter
def _measure_values(df: pd.DataFrame, m: Measure, show: str) -> tuple[pd.Series, str]:
    col = m.column(show)
    vals = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)
    if m.is_percent(show):
        vals = vals * 100.0
    return vals.astype(float), m.header(show)


def _error_bars(df: pd.DataFrame, m: Measure, show: str,
                values: pd.Series[float]) -> dict[str, pd.Series[float]] | None:
    """Plotly asymmetric error bars from the rate's stored confidence interval (None without one)."""
    cols = m.ci_columns(show)
    if cols is None or not all(c in df.columns for c in cols):
        return None
    k = 100.0 if m.is_percent(show) else 1.0
    lo = pd.to_numeric(df[cols[0]], errors="coerce").astype(float) * k
    hi = pd.to_numeric(df[cols[1]], errors="coerce").astype(float) * k
    if not (np.isfinite(lo) & np.isfinite(hi)).any():
        return None
    return {"plus": (hi - values).clip(lower=0), "minus": (values - lo).clip(lower=0)}


def _meta(df: pd.DataFrame, canonical: str) -> pd.Series:
    col = meta_column(df, canonical)
    return df[col].astype(str) if col else pd.Series("—", index=df.index)


def _label_positions(x: pd.Series, all_x: pd.Series) -> list[str]:
    """Labels point inwards (left of points in the right half of the data) so they stay inside."""
    if len(x) == 0:
        return []
    lo, hi = all_x.min(), all_x.max()
    mid = (lo + hi) / 2
    return ["top left" if (v > mid or (hi == lo)) else "top right" for v in x]


def scatter(results: pd.DataFrame, x_key: str, y_key: str, show: str = DEFAULT_SHOW,
            title: str | None = None) -> go.Figure:
    """Scatter of two measures (catalogue keys) over submissions, Pareto front highlighted.

    Submissions missing either value are left out and counted in the subtitle.
    """
    show = SHOW_MODES.get(show, show)
    df = results
    measures = {m.key: m for m in catalogue(df)}
    fig = go.Figure()
    fig.update_layout(**LAYOUT)
    mx, my = measures.get(x_key), measures.get(y_key)
    if mx is None or my is None or df.empty:
        missing = [k for k, m in ((x_key, mx), (y_key, my)) if m is None]
        msg = "No finished submissions yet." if df.empty else f"Metric not in the results: {', '.join(missing)}"
        fig.add_annotation(text=msg, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                           font=dict(size=16))
        fig.update_xaxes(visible=False), fig.update_yaxes(visible=False)
        return fig
    xv, xh = _measure_values(df, mx, show)
    yv, yh = _measure_values(df, my, show)
    ok = np.isfinite(xv) & np.isfinite(yv)
    ex, ey = _error_bars(df, mx, show, xv), _error_bars(df, my, show, yv)
    d = pd.DataFrame({"x": xv, "y": yv, "model": _meta(df, "model"), "train": _meta(df, "training_set"),
                      "n": _meta(df, "n_structures"), "prov": evaluated_by(df),
                      "who": _meta(df, "submitter"), "id": _meta(df, "submission_id")})
    for name, err in (("ex", ex), ("ey", ey)):
        d[f"{name}+"] = err["plus"] if err else np.nan
        d[f"{name}-"] = err["minus"] if err else np.nan
    d = d[ok]
    front = pareto_mask(d["x"], d["y"], mx.direction or 1, my.direction or 1) if len(d) else np.array([], bool)
    # Plotly renders a subset of HTML (<a href>, <b>...) in labels: user metadata is escaped
    # (&lt; &gt; &amp; only: plotly decodes those, not &quot;).
    custom = d[["model", "train", "n", "prov", "who", "id"]].map(
        lambda v: html.escape(v, quote=False) if isinstance(v, str) else v).to_numpy()
    hover = ("<b>%{customdata[0]}</b><br>training set: %{customdata[1]}<br>structures: %{customdata[2]}"
             "<br>evaluated by: %{customdata[3]}<br>submitter: %{customdata[4]}<br>id: %{customdata[5]}"
             f"<br>{xh}: %{{x:.4g}}<br>{yh}: %{{y:.4g}}<extra></extra>")
    directed = bool(mx.direction and my.direction)
    if directed and front.any():
        ext = (d["x"].min(), d["x"].max(), d["y"].min(), d["y"].max())
        sx, sy = staircase(d["x"][front], d["y"][front], mx.direction, my.direction, ext)
        fig.add_trace(go.Scatter(x=sx, y=sy, mode="lines", name="Pareto front",
                                 line=dict(color=FRONT_COLOUR, width=2, dash="dash"), hoverinfo="skip"))
    rest = ~front if directed else np.ones(len(d), bool)
    level = ci_level(df)

    def bars(sel: Any, axis: str) -> dict[str, Any] | None:  # the rates' confidence intervals as error bars
        if not d[f"e{axis}+"].notna().any():
            return None
        return dict(type="data", symmetric=False, array=d[f"e{axis}+"][sel], arrayminus=d[f"e{axis}-"][sel],
                    color="#95a5a6", thickness=1.2, width=4)

    fig.add_trace(go.Scatter(x=d["x"][rest], y=d["y"][rest], mode="markers", name="submissions",
                             error_x=bars(rest, "x"), error_y=bars(rest, "y"),
                             customdata=custom[rest], hovertemplate=hover,
                             marker=dict(size=10, color=POINT_COLOUR, opacity=0.75,
                                         line=dict(width=1, color="white"))))
    n_labels = 0
    if directed:
        # At most MAX_LABELS non-dominated points are named (best on y first, kept apart); the
        # others keep their hover text, so 200 points do not print names over each other.
        fy = d["y"][front].to_numpy(float)
        keep = labelled(d["x"][front], fy, np.argsort(-(my.direction or 1) * fy, kind="stable"))
        n_labels = int(keep.sum())
        fig.add_trace(go.Scatter(x=d["x"][front], y=d["y"][front], mode="markers+text", name="non-dominated",
                                 text=np.where(keep, custom[front][:, 0], ""), customdata=custom[front],
                                 textposition=_label_positions(d["x"][front], d["x"]),
                                 error_x=bars(front, "x"), error_y=bars(front, "y"),
                                 cliponaxis=False,
                                 hovertemplate=hover,
                                 marker=dict(size=14, color=FRONT_COLOUR, symbol="star",
                                             line=dict(width=1, color="white"))))
    if len(d):  # pad the axes so markers, error bars and labels are not clipped at the edges
        for axis, vals, e in (("xaxis", d["x"], "ex"), ("yaxis", d["y"], "ey")):
            lo = float(np.nanmin([vals.min(), (vals - d[f"{e}-"]).min()]))
            hi = float(np.nanmax([vals.max(), (vals + d[f"{e}+"]).max()]))
            pad = 0.12 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 0.5)
            fig.layout[axis].range = [lo - pad, hi + pad]
    left_out = int((~ok).sum())
    sub = f"{len(d)} submission{'s' if len(d) != 1 else ''}"
    if left_out:
        sub += f"; {left_out} without both values not shown"
    if not directed:
        sub += "; no Pareto front (a metric without a preferred direction)"
    elif n_labels < int(front.sum()):
        sub += f"; {n_labels} of {int(front.sum())} non-dominated named (hover for the others)"
    if d["ex+"].notna().any() or d["ey+"].notna().any():
        sub += f"; error bars: {level} bootstrap confidence intervals"
    if {x_key, y_key} & set(NOVELTY_KEYS):
        sub += "<br>novelty is relative to the reference: see the note below the plots"
    fig.update_layout(title=dict(text=f"{title or f'{yh} vs {xh}'}<br><sup>{sub}</sup>"),
                      xaxis_title=xh, yaxis_title=yh, legend=dict(orientation="h", y=-0.18))
    return fig


# ---------------------------------------------------------------- model page figures
def ehull_histogram(values: Iterable[float], stable: float = 0.0, metastable: float = 0.1,
                    title: str = "Energy above hull") -> go.Figure:
    """Histogram of E_hull (eV/atom) with the stable and metastable thresholds marked."""
    v = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float)
    fin = v[np.isfinite(v)]
    fig = go.Figure()
    fig.update_layout(**{**LAYOUT, "height": 380})
    if fin.empty:
        fig.add_annotation(text="No E_hull values for this submission.", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False), fig.update_yaxes(visible=False)
        return fig
    fig.add_trace(go.Histogram(x=fin, nbinsx=min(60, max(10, len(fin) // 3)), marker_color="#27ae60",
                               name="structures", hovertemplate="%{x} eV/atom: %{y}<extra></extra>"))
    for xv, label in ((stable, "stable"), (metastable, "metastable")):
        fig.add_vline(x=xv, line=dict(color=FRONT_COLOUR, dash="dot"), annotation_text=label,
                      annotation_position="top right")
    n_nan = int(len(v) - len(fin))
    sub = f"{len(fin)} structures with an energy" + (f"; {n_nan} without (invalid or failed)" if n_nan else "")
    fig.update_layout(title=dict(text=f"{title}<br><sup>{sub}</sup>"), xaxis_title="E_hull [eV/atom]",
                      yaxis_title="structures", showlegend=False, bargap=0.05)
    return fig


PERIOD_STARTS = (1, 3, 11, 19, 37, 55, 87)  # atomic number opening each period


def _table_position(z: int) -> tuple[int, int]:
    """(row, column) 0-based in an 18-column table with f-block rows 8 and 9 (La-Lu, Ac-Lr)."""
    if 57 <= z <= 71:
        return 8, 2 + (z - 57)
    if 89 <= z <= 103:
        return 9, 2 + (z - 89)
    period = max(i for i, start in enumerate(PERIOD_STARTS) if z >= start)
    k = z - PERIOD_STARTS[period]  # place within the period
    if period == 0:
        return 0, 0 if z == 1 else 17
    if period in (1, 2):  # s block, then p block (groups 13-18)
        return period, k if k < 2 else k + 10
    if period in (3, 4):
        return period, k
    return period, k if k < 2 else k - 14  # the 15 f-block elements sit in rows 8/9


def periodic_table(counts: dict[str, int], title: str = "Element coverage",
                   total: int | None = None) -> go.Figure:
    """Periodic-table heatmap of how many structures contain each element."""
    chemical_symbols = element_symbols()
    z = np.full((10, 18), np.nan)
    text = np.full((10, 18), "", dtype=object)
    hover = np.full((10, 18), "", dtype=object)
    for Z in range(1, 119):
        sym = chemical_symbols[Z]
        r, c = _table_position(Z)
        n = int(counts.get(sym, 0))
        z[r, c] = n if n else np.nan
        text[r, c] = sym
        share = f" ({100 * n / total:.1f} %)" if total else ""
        hover[r, c] = f"{sym}: {n} structures{share}"
    fig = go.Figure(go.Heatmap(z=z, text=text, texttemplate="%{text}", customdata=hover,
                               hovertemplate="%{customdata}<extra></extra>", colorscale="Viridis",
                               xgap=2, ygap=2, colorbar=dict(title="structures"), hoverongaps=False))
    # Element symbols of absent elements: a light grid underneath so the table shape is readable.
    blank = np.where(np.isnan(z) & (text != ""), 0.0, np.nan)
    fig.add_trace(go.Heatmap(z=blank, text=np.where(np.isnan(blank), "", text), texttemplate="%{text}",
                             colorscale=[[0, "#ecf0f1"], [1, "#ecf0f1"]], showscale=False, xgap=2, ygap=2,
                             customdata=hover, hovertemplate="%{customdata}<extra></extra>", hoverongaps=False))
    fig.data = fig.data[::-1]  # grey grid below, counts on top
    covered = sum(1 for v in counts.values() if v)
    fig.update_layout(**{**LAYOUT, "height": 430},
                      title=dict(text=f"{title}<br><sup>{covered} of 118 elements present</sup>"))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    return fig


# ---------------------------------------------------------------- comparison figures
COMPARE_COLOURS = ("#2e86c1", "#d35400", "#27ae60")


def ehull_overlay(series: dict[str, Iterable[float]], stable: float = 0.0, metastable: float = 0.1) -> go.Figure:
    """Overlaid E_hull histograms (eV/atom), one per submission, on shared bins."""
    fig = go.Figure()
    fig.update_layout(**{**LAYOUT, "height": 420})
    clean = {k: pd.to_numeric(pd.Series(list(v), dtype=object), errors="coerce").astype(float)
             for k, v in series.items()}
    clean = {k: v[np.isfinite(v)] for k, v in clean.items()}
    allv = pd.concat(list(clean.values())) if clean else pd.Series(dtype=float)
    if allv.empty:
        fig.add_annotation(text="No E_hull values in the chosen submissions.", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False), fig.update_yaxes(visible=False)
        return fig
    lo, hi = float(allv.min()), float(allv.max())
    size = (hi - lo) / 40 if hi > lo else 0.01
    for (name, v), colour in zip(clean.items(), COMPARE_COLOURS):
        fig.add_trace(go.Histogram(x=v, name=f"{html.escape(name, quote=False)} ({len(v)})", opacity=0.55,
                                   histnorm="percent", marker_color=colour,
                                   xbins=dict(start=lo, end=hi + size, size=size),
                                   hovertemplate="%{x} eV/atom: %{y:.1f} %<extra></extra>"))
    for xv, label, pos in ((stable, "stable", "top left"), (metastable, "metastable", "top right")):
        fig.add_vline(x=xv, line=dict(color=FRONT_COLOUR, dash="dot"), annotation_text=label,
                      annotation_position=pos)
    fig.update_layout(barmode="overlay", title=dict(text="Energy above hull<br><sup>share of each submission's "
                                                         "structures with an energy</sup>"),
                      xaxis_title="E_hull [eV/atom]", yaxis_title="% of structures", legend=dict(orientation="h",
                                                                                                y=-0.2))
    return fig


def _atomic_number_or_last(symbol: str) -> int:
    z = atomic_number(symbol)
    return z if z is not None else 999


def element_coverage_compare(counts: dict[str, dict[str, int]], totals: dict[str, int]) -> go.Figure:
    """Share of each submission's structures containing each element (elements in atomic-number order)."""
    fig = go.Figure()
    fig.update_layout(**{**LAYOUT, "height": 420})
    elements = sorted({e for c in counts.values() for e, n in c.items() if n}, key=_atomic_number_or_last)
    if not elements:
        fig.add_annotation(text="No element data in the chosen submissions.", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False), fig.update_yaxes(visible=False)
        return fig
    names = list(counts)
    # An element a submission never uses is a gap (None), not the colour of a small share.
    z = [[100.0 * counts[n][e] / totals[n] if totals.get(n) and counts[n].get(e) else None for e in elements]
         for n in names]
    labels = [f"{html.escape(n, quote=False)[:40]} ({sum(1 for v in counts[n].values() if v)} el.)" for n in names]
    fig.add_trace(go.Heatmap(z=z, x=elements, y=labels, colorscale="Viridis", xgap=1, ygap=3,
                             colorbar=dict(title="% of<br>structures"),
                             hovertemplate="%{y}<br>%{x}: %{z:.1f} % of structures<extra></extra>"))
    fig.update_layout(title=dict(text="Element coverage<br><sup>share of valid structures containing each "
                                      "element (atomic-number order)</sup>"),
                      xaxis=dict(title="element", tickangle=-90, type="category"), yaxis=dict(autorange="reversed"),
                      margin=dict(l=230, r=20, t=70, b=60))
    return fig
