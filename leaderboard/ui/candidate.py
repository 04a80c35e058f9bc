"""A SUN/MSUN candidate as the evaluator stored it (``sun_candidate`` column of
structures.parquet, one JSON string per candidate): its relaxed structure drawn in 3D,
its phase diagram, and its energies.

The JSON holds ``structure`` ({"species", "cart_coords", "lattice", "bonds": [[i, j,
xyz_i, xyz_j], ...]}), ``phase_diagram`` (a plotly figure as JSON, or null with
``phase_diagram_reason``), ``e_hull_unrelaxed``, ``e_hull_relaxed`` (eV/atom), ``rmsd``
(Å) and ``nearest_reference`` (a dict, or null). The figures are plotly traces, drawn
by the app's bundled plotly.js (nothing fetched from a CDN). No pymatgen: the evaluator
supplies the geometry.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from evaluator.export import covalent_radius, jmol_colour
from evaluator.families.novelty.metrics import BEYOND_REFERENCE_SIZE
from evaluator.families.sun.metrics import CANDIDATE, SPARSE_CHEMSYS
from leaderboard.table.formats import chem_formula

# the evaluator's declared columns (evaluator/families/<name>/metrics.py)
CANDIDATE_COLUMN = CANDIDATE.name
BEYOND_REFERENCE_COLUMN = BEYOND_REFERENCE_SIZE.name
SPARSE_CHEMSYS_COLUMN = SPARSE_CHEMSYS.name
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif")


def parse(value: Any) -> dict[str, Any] | None:
    """The candidate dict of one ``sun_candidate`` cell (None for empty or unreadable cells)."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        out = json.loads(value)
    except ValueError:
        return None
    return {str(k): v for k, v in out.items()} if isinstance(out, dict) else None


def candidate_rows(df: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of the per-structure table that carry a candidate record."""
    if df is None or CANDIDATE_COLUMN not in df.columns:
        return pd.DataFrame()
    keep = df[CANDIDATE_COLUMN].map(lambda v: parse(v) is not None)
    return df[keep]


Polyline = list[float | None]  # coordinates, None breaking the line


def _cell_edges(lattice: np.ndarray) -> tuple[Polyline, Polyline, Polyline]:
    """The 12 edges of the unit cell as one polyline with None breaks."""
    a, b, c = lattice
    corners = {(i, j, k): i * a + j * b + k * c for i in (0, 1) for j in (0, 1) for k in (0, 1)}
    xs: Polyline = []
    ys: Polyline = []
    zs: Polyline = []
    for p, q in ((p, q) for p in corners for q in corners if p < q and sum(abs(u - v) for u, v in zip(p, q)) == 1):
        for pt in (corners[p], corners[q]):
            xs.append(float(pt[0]))
            ys.append(float(pt[1]))
            zs.append(float(pt[2]))
        xs.append(None)
        ys.append(None)
        zs.append(None)
    return xs, ys, zs


def structure_figure(structure: dict[str, Any] | None, title: str = "Relaxed structure") -> go.Figure:
    """Interactive 3D view: atoms coloured by element (Jmol colours), bonds, unit cell."""
    fig = go.Figure()
    fig.update_layout(template="plotly_white", height=480, margin=dict(l=0, r=0, t=50, b=0), font=FONT,
                      title=dict(text=title), legend=dict(orientation="h", y=-0.02))
    if not structure or not structure.get("species"):
        fig.add_annotation(text="No structure stored for this candidate.", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        fig.update_xaxes(visible=False), fig.update_yaxes(visible=False)
        return fig
    species = [str(s) for s in structure["species"]]
    xyz = np.asarray(structure["cart_coords"], dtype=float).reshape(-1, 3)
    if structure.get("lattice") is not None:
        lx, ly, lz = _cell_edges(np.asarray(structure["lattice"], dtype=float).reshape(3, 3))
        fig.add_trace(go.Scatter3d(x=lx, y=ly, z=lz, mode="lines", name="unit cell", hoverinfo="skip",
                                   line=dict(color="#555", width=2)))
    bonds = structure.get("bonds") or []
    if bonds:
        bx, by, bz = [], [], []
        for bond in bonds:
            p, q = bond[2], bond[3]
            bx += [p[0], q[0], None]
            by += [p[1], q[1], None]
            bz += [p[2], q[2], None]
        fig.add_trace(go.Scatter3d(x=bx, y=by, z=bz, mode="lines", name="bonds", hoverinfo="skip",
                                   line=dict(color="#999", width=5)))
    for el in dict.fromkeys(species):
        idx = [i for i, s in enumerate(species) if s == el]
        fig.add_trace(go.Scatter3d(
            x=xyz[idx, 0], y=xyz[idx, 1], z=xyz[idx, 2], mode="markers", name=el,
            text=[f"{el} #{i}" for i in idx], hovertemplate="%{text}<br>(%{x:.2f}, %{y:.2f}, %{z:.2f}) Å"
                                                             "<extra></extra>",
            marker=dict(size=8 + 8 * covalent_radius(el), color=jmol_colour(el), line=dict(color="#333", width=1))))
    axis = dict(visible=False, showbackground=False)
    fig.update_layout(scene=dict(aspectmode="data", xaxis=axis, yaxis=axis, zaxis=axis))
    return fig


def phase_diagram_figure(record: dict[str, Any]) -> go.Figure:
    """The stored phase diagram (plotly JSON), or a figure that says why there is none."""
    pd_json = record.get("phase_diagram")
    if pd_json:
        try:
            fig = pio.from_json(pd_json if isinstance(pd_json, str) else json.dumps(pd_json))
            # pymatgen's PDPlotter puts its legend over the title: legend below, room for the title.
            fig.update_layout(font=FONT, legend=dict(orientation="h", x=0, y=-0.18, yanchor="top"),
                              margin=dict(t=70, b=90))
            return fig
        except (ValueError, TypeError):
            reason = "the stored phase diagram could not be read"
    else:
        reason = record.get("phase_diagram_reason") or "not stored by the evaluator"
    fig = go.Figure()
    fig.update_layout(template="plotly_white", height=420, font=FONT, title=dict(text="Phase diagram"))
    fig.add_annotation(text=f"No phase diagram: {reason}", showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper")
    fig.update_xaxes(visible=False), fig.update_yaxes(visible=False)
    return fig


def _ev(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{float(v):.3f} eV/atom"


def _flag(row: pd.Series[Any] | dict[str, Any], column: str) -> bool | None:
    v = row.get(column) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return bool(v)


def flags_text(row: pd.Series[Any] | dict[str, Any], max_sites: int | None = None) -> list[str]:
    """Per-structure warnings about the reference's limits (empty when none apply)."""
    out: list[str] = []
    if _flag(row, BEYOND_REFERENCE_COLUMN):
        size = f" ({max_sites} sites)" if max_sites else ""
        out.append(f"⚠ larger than any reference cell{size}: it cannot be matched, so “novel” is not evidence "
                   "of novelty")
    if _flag(row, SPARSE_CHEMSYS_COLUMN):
        out.append("⚠ sparse chemical system: few reference entries, so its convex hull (and E_hull) is "
                   "poorly constrained")
    return out


def _describe(value: Any) -> str:
    """A reference record as text: floats to 3 decimals, lists (decomposition products) joined."""
    if isinstance(value, dict):
        return " · ".join(f"{k}: {_describe(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + "; ".join(_describe(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def details_markdown(row: pd.Series[Any] | dict[str, Any], record: dict[str, Any], max_sites: int | None = None) -> str:
    """E_hull before/after relaxation, relaxation RMSD, nearest reference entry, flags."""
    formula = chem_formula(row.get("reduced_formula") or row.get("formula"))
    lines = [f"#### Candidate #{row.get('index', '?')} {formula}".rstrip(),
             f"- **E_hull before relaxation:** {_ev(record.get('e_hull_unrelaxed'))}",
             f"- **E_hull after relaxation:** {_ev(record.get('e_hull_relaxed'))}"]
    rmsd = record.get("rmsd")
    lines.append(f"- **Relaxation RMSD:** {'—' if rmsd is None else f'{float(rmsd):.3f} Å'}")
    if record.get("formation_energy_per_atom") is not None:
        lines.append(f"- **Formation energy:** {_ev(record.get('formation_energy_per_atom'))}")
    ref = record.get("nearest_reference")
    if isinstance(ref, dict) and ref:
        lines.append(f"- **Nearest reference entry:** {_describe(ref)}")
    else:
        lines.append("- **Nearest reference entry:** none (no reference entry in its chemical system "
                     "matched or was recorded)")
    lines += [f"- {f}" for f in flags_text(row, max_sites)]
    return "\n".join(lines)
