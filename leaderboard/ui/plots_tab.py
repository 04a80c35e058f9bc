"""Plots tab: two user-configurable metric scatters with their Pareto fronts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from gradio.components import Component
from gradio.events import api as gradio_api  # (not in gradio's __all__)

from leaderboard.ui import figures as P
from leaderboard.table.measures import SHOW_MODES, catalogue, measures_of
from leaderboard.table.metadata import meta_column, reference_note
from leaderboard.table.protocols import default_protocol, protocol_choices, protocol_labels, rows_of
from leaderboard.ui.shared_state import AppContext, Wiring

# Default axes (first available key of each list): novelty vs stability rate; MSUN vs diversity.
DEFAULTS = [
    (["novelty.novel"], ["stability.stable", "stability.metastable"]),
    (["diversity.vendi_element", "diversity.element_coverage"], ["sun.msun"]),
]


@dataclass(frozen=True)
class PlotsTab:
    """What the app wires to the plots tab: the handler that redraws both plots when the
    results were reloaded (``redraw``; its last input is the results load last drawn)."""

    plots: list[gr.Plot]
    refresh: gr.Button
    redraw: Wiring


def _choices(results: pd.DataFrame) -> list[tuple[str, str]]:
    return [(f"{m.header()} · {m.family}", m.key) for m in measures_of(results)]


def _pick(keys: list[str], available: list[str]) -> str:
    for k in keys:
        if k in available:
            return k
    return keys[0]


def _note(results: pd.DataFrame, protocol: str | None) -> str:
    """The protocol shown, then the reference note of its rows."""
    if not protocol:
        return reference_note(results)
    label = protocol_labels(results).get(protocol, protocol)
    head = (f"**Protocol:** {label} (`{protocol}`): only its submissions are plotted; pick another with "
            "**Protocol**.")
    shown = rows_of(results, protocol)
    return head + ("\n\n" + reference_note(shown) if len(shown) else "")


def build(ctx: AppContext) -> PlotsTab:
    results = ctx.results.get()
    pinned = ctx.protocol
    pinned_id = pinned.id if pinned else None
    first = default_protocol(results, pinned_id)

    def proto_choices(res: pd.DataFrame) -> list[tuple[str, str]]:
        return protocol_choices(res, pinned_id, pinned.label if pinned else None) or [("—", "")]

    choices = _choices(results)
    keys = [k for _, k in choices]
    gr.Markdown("Each point is a submission; ★ marks the **Pareto front** (no other submission is at "
                "least as good on both axes and better on one, using each metric's ↑/↓ direction), "
                "drawn as a staircase. Hover a point for the model's details.")
    with gr.Row():
        show = gr.Radio(list(SHOW_MODES)[:2], value="% of submitted", label="Rates as")
        protocol = gr.Dropdown(proto_choices(results), value=first, label="Protocol (one at a time)",
                               elem_id="plots-protocol", allow_custom_value=True)
    plots: list[gr.Plot] = []
    selectors: list[tuple[gr.Dropdown, gr.Dropdown]] = []
    with gr.Row():
        for i, (xs, ys) in enumerate(DEFAULTS):
            with gr.Column():
                with gr.Row():
                    x = gr.Dropdown(choices, value=_pick(xs, keys), label="x axis", allow_custom_value=True,
                                    elem_id=f"plot{i}-x")
                    y = gr.Dropdown(choices, value=_pick(ys, keys), label="y axis", allow_custom_value=True,
                                    elem_id=f"plot{i}-y")
                # drawn when the tab is first opened (the app wires ``redraw`` to its select)
                fig = gr.Plot(None, elem_id=f"plot{i}", show_label=False)
                plots.append(fig)
                selectors.append((x, y))
    ref_note = gr.Markdown(_note(results, first), elem_id="plots-reference")
    refresh = gr.Button("Refresh", size="sm")

    def draw(x_key: str, y_key: str, show_mode: str, proto: str | None) -> go.Figure:
        return P.scatter(rows_of(ctx.results.get(), proto), x_key, y_key, show_mode)

    for (x, y), fig in zip(selectors, plots):
        for c in (x, y, show, protocol):
            c.change(draw, [x, y, show, protocol], fig, api_visibility="private", show_progress="hidden")
    protocol.change(lambda p: _note(ctx.results.get(), p), protocol, ref_note, api_visibility="private",
                    show_progress="hidden")

    drawn = gr.State(None)  # the results load last drawn on this page (None: not drawn yet)

    def redraw_all(*values: Any) -> list[object]:
        *args, proto = values
        res = ctx.results.get()
        new_choices = _choices(res)
        out: list[object] = []
        for _ in range(len(plots)):
            out += [gr.update(choices=new_choices), gr.update(choices=new_choices)]
        shown = rows_of(res, proto)
        for i in range(len(plots)):
            out.append(P.scatter(shown, args[2 * i], args[2 * i + 1], args[-1]))
        return out + [_note(res, proto), gr.update(choices=proto_choices(res)), ctx.results.loads]

    def redraw_if_changed(*values: Any) -> list[object]:
        """Timer: redraw only when the results table was reloaded (keeps the user's zoom)."""
        *rest, seen = values
        res_loads = (ctx.results.get(), ctx.results.loads)[1]
        if seen == res_loads:
            return [gr.update() for _ in range(len(outputs))] + [seen]
        return redraw_all(*rest)

    axes: list[Component] = [c for pair in selectors for c in pair]
    inputs: list[Component] = [*axes, show, protocol]
    outputs: list[Component] = [*axes, *plots, ref_note, protocol]
    def refresh_all(*values: Any) -> list[object]:
        ctx.results.get(force=True)
        return redraw_all(*values)

    refresh.click(refresh_all, inputs, outputs + [drawn], api_visibility="private")

    def pareto(x_key: str, y_key: str, show: str = "% of submitted", protocol: str = "") -> dict[str, object]:
        """Submissions of one protocol (default: the service's) on the Pareto front of two metrics (API)."""
        res = ctx.results.get()
        res = rows_of(res, protocol or default_protocol(res, pinned_id))
        ms = {m.key: m for m in catalogue(res)}
        mx, my = ms[x_key], ms[y_key]
        mode = SHOW_MODES.get(show, show)
        xv = pd.to_numeric(res[mx.column(mode)], errors="coerce")
        yv = pd.to_numeric(res[my.column(mode)], errors="coerce")
        mask = P.pareto_mask(xv, yv, mx.direction or 1, my.direction or 1)
        sid = meta_column(res, "submission_id")
        return {"front": [str(s) for s in res[sid][mask]] if sid else [], "n": int(len(res))}

    gradio_api(pareto, api_name="pareto")
    return PlotsTab(plots, refresh, Wiring(redraw_if_changed, inputs + [drawn], outputs + [drawn]))
