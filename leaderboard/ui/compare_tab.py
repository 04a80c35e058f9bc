"""Compare tab: two or three finished submissions side by side (metric table with
confidence intervals, overlaid E_hull histograms, element coverage)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from evaluator.export import element_counts
from leaderboard.ui import figures as P
from leaderboard.table.measures import DEFAULT_SHOW, Measure, catalogue
from leaderboard.table.metadata import meta_column, provenance_label, reference_note
from leaderboard.table.protocols import UNKNOWN, mixed, protocol_keys, protocol_labels
from leaderboard.table.view import ci_text, number_format
from leaderboard.ui.model_tab import finished_choices, structures
from leaderboard.ui.shared_state import AppContext
from leaderboard.ui.structures_view import ehull_column, first_column, valid_rows

MAX_COMPARED = 3
HELP = ("Pick two or three finished submissions. Rates are % of submitted structures with their "
        "confidence interval in brackets; “—” means not computed (the model page says why).")


@dataclass(frozen=True)
class CompareTab:
    """What the app wires to the compare tab: the picker and the refresh of its choices."""

    pick: gr.Dropdown
    refresh_choices: Callable[[list[str] | None], dict[str, Any]]


def _cell(row: pd.Series[Any], m: Measure, df: pd.DataFrame) -> str:
    col = m.column(DEFAULT_SHOW)
    v = pd.to_numeric(pd.Series([row.get(col)]), errors="coerce").iloc[0]
    if pd.isna(v):
        return "—"
    if m.is_percent(DEFAULT_SHOW):
        text = f"{100 * v:.1f} %"
    else:
        column = pd.to_numeric(df[col], errors="coerce") if col in df.columns else [v]
        text = number_format(m, DEFAULT_SHOW, column).format(v) + (f" {m.unit}" if m.unit else "")
    ci = m.ci_columns(DEFAULT_SHOW)
    if ci is not None and all(c in df.columns for c in ci):
        iv = ci_text(row.get(ci[0]), row.get(ci[1]), True)
        if iv != "—":
            text += f" [{iv}]"
    return text


def _names(res: pd.DataFrame, ids: list[str]) -> dict[str, str]:
    sid, model = meta_column(res, "submission_id"), meta_column(res, "model")
    ver = meta_column(res, "model_version")
    out: dict[str, str] = {}
    if sid is None:
        return out
    for _, r in res[res[sid].astype(str).isin(ids)].iterrows():
        name = str(r[model]) if model else str(r[sid])
        if ver and isinstance(r[ver], str) and r[ver]:
            name += f" ({r[ver]})"
        out[str(r[sid])] = f"{name} · {r[sid]}"
    return out


def metric_table(res: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """One row per headline metric (the compact view's), one column per submission."""
    if res.empty or not ids:
        return pd.DataFrame()
    df = res
    sid = meta_column(df, "submission_id")
    if sid is None:
        return pd.DataFrame()
    rows = {str(r[sid]): r for _, r in df.iterrows() if str(r[sid]) in ids}
    names = _names(df, ids)
    measures = catalogue(df)
    shown = [m for m in measures if m.headline]  # the compact view's
    prov = meta_column(df, "provenance")
    key_of, labels = dict(zip(df.index, protocol_keys(df))), protocol_labels(df)
    out = {"Metric": ["Evaluated by", "Protocol"] + [m.header(DEFAULT_SHOW) for m in shown]}
    for i in ids:
        if i in rows:
            by = provenance_label(rows[i][prov], rows[i].get("evaluator_version")) if prov else "—"
            key = str(key_of[rows[i].name])
            proto = labels.get(key, key) + ("" if key == UNKNOWN else f" ({key})")
            out[names.get(i, i)] = [by, proto] + [_cell(rows[i], m, df) for m in shown]
    return pd.DataFrame(out)


def protocol_warning(res: pd.DataFrame, ids: list[str]) -> str:
    """A warning when the compared submissions were scored under different protocols."""
    sid = meta_column(res, "submission_id")
    if sid is None:
        return ""
    chosen = res[res[sid].astype(str).isin(ids)]
    found = mixed(chosen)
    if not found:
        return ""
    listed = "; ".join(f"{lab}" + ("" if k == UNKNOWN else f" (`{k}`)") for k, lab in found.items())
    return (f"⚠ **Different protocols**: these submissions were scored under {len(found)} protocols ({listed}). "
            "Their numbers differ by the scorer as well as by the generator, so nothing here is ranked "
            "across them; re-score them under one protocol to compare.\n\n")


def figures(ctx: AppContext, ids: list[str]) -> tuple[go.Figure, go.Figure]:
    """(E_hull overlay, element coverage) of the chosen submissions."""
    names = _names(ctx.results.get(), ids)
    ehull: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for i in ids:
        df = structures(ctx, i)
        label = names.get(i, i)
        if df is None:
            continue
        eh = ehull_column(df)
        ehull[label] = df[eh] if eh else []
        valid = valid_rows(df)
        fcol = first_column(valid, ("reduced_formula", "formula"))
        counts[label] = dict(element_counts(valid[fcol])) if fcol else {}
        totals[label] = len(valid)
    return P.ehull_overlay(ehull), P.element_coverage_compare(counts, totals)


def build(ctx: AppContext) -> CompareTab:
    gr.Markdown(HELP)
    # its choices come when the tab is opened (``refresh_choices``), not in every page's HTML
    pick = gr.Dropdown([], multiselect=True, max_choices=MAX_COMPARED,
                       label="Submissions to compare (2–3)", elem_id="compare-pick")
    note = gr.Markdown(elem_id="compare-note")
    with gr.Column(visible=False, elem_id="compare-body") as body:
        table = gr.Dataframe(interactive=False, wrap=True, label="Metrics side by side", elem_id="compare-table",
                             max_height=900)
        hist = gr.Plot(show_label=False, elem_id="compare-ehull")
        cover = gr.Plot(show_label=False, elem_id="compare-elements")

    def compare(ids: list[str] | None) -> tuple[object, ...]:
        ids = [str(i) for i in (ids or [])][:MAX_COMPARED]
        if len(ids) < 2:
            return ("Pick at least two submissions to compare." if ctx.results.get().shape[0] >= 2 else
                    "Comparison needs at least two finished submissions."), gr.update(visible=False), None, None, None
        res = ctx.results.get()
        fig_h, fig_e = figures(ctx, ids)
        return (protocol_warning(res, ids)
                + reference_note(res[res[meta_column(res, "submission_id")].astype(str).isin(ids)]),
                gr.update(visible=True), metric_table(res, ids), fig_h, fig_e)

    pick.change(compare, pick, [note, body, table, hist, cover], api_visibility="private")

    def refresh_choices(current: list[str] | None) -> dict[str, Any]:
        """New choices only: sending the value back would race the user's picks (multiselect)."""
        return gr.update(choices=finished_choices(ctx))

    return CompareTab(pick, refresh_choices)
