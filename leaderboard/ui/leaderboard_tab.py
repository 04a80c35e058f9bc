"""Leaderboard tab: the ranked, filterable, colour-coded results table.

The page is served without the table: the page's load event fills it (``load``), a page of
``table.pages.PAGE_SIZE`` rows at a time (Previous / Next), from views rendered once per
results version and controls (``table.pages.ViewCache``), so switching Rank by or protocol
back and forth re-ranks nothing and reads nothing from the store. Refreshes send a control
new choices only when they changed (``refresh_guard``): an open dropdown is never redrawn
under the visitor's pointer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd
from gradio.events import api as gradio_api  # (not in gradio's __all__)
from pandas.io.formats.style import Styler

from evaluator import catalogue as C
from leaderboard.table import pages
from leaderboard.table.measures import DEFAULT_RANK, SHOW_MODES, Measure, families_present, measures_of
from leaderboard.table.caveats import caveat_markdown
from leaderboard.table.csv_safe import write_csv
from leaderboard.table.download import view_table
from leaderboard.table.metadata import reference_note
from leaderboard.table.protocols import (
    UNKNOWN,
    default_protocol,
    protocol_choices,
    protocol_labels,
    reference_of,
    rows_of,
)
from leaderboard.table.ranking import choices
from leaderboard.table.styling import legend_markdown, style
from leaderboard.table.pages import ViewCache, freeze, page_of
from leaderboard.table.ties import TIED_HEADER, tied_caption
from leaderboard.table.view import WHY_NO_CI, View, build_view, ci_level, column_choices, default_full_columns
from leaderboard.ui.downloads import DOWNLOAD_DIR, write_download
from leaderboard.ui.refresh_guard import Sent, changed_only, first_sent
from leaderboard.ui.shared_state import AppContext, Wiring

VIEWS = ["compact", "full"]
VIEW_DOWNLOADS = DOWNLOAD_DIR / "views"
VIEW_FILES_KEPT = 64  # the newest view downloads kept on disk (one per results version and controls)


def hidden_file() -> dict[str, Any]:
    """The view's file, once the view or the results changed: gone."""
    return gr.update(value=None, visible=False)


@dataclass(frozen=True)
class LeaderboardTab:
    """What the app wires to the leaderboard tab: its table, its refresh timer and button, and
    the handler that brings the table and controls up to date (``load``, on every new page)."""

    table: gr.Dataframe
    timer: gr.Timer
    refresh: gr.Button
    load: Wiring


def _rank_text(m: Measure) -> str:
    """A measure's Rank-by label: its label, group ("unrelaxed"), what a lone fraction is of
    ("of parsed") and its arrow."""
    qual = f" ({m.group.replace('_', ' ')})" if m.group else ""
    if m.family != m.base_family and not m.group:
        qual = f" ({m.family})"
    if m.fraction:
        qual += f" (of {m.fraction_of})"
    return f"{m.label}{qual} {m.arrow}".strip()


def _computed(m: Measure, rows: pd.DataFrame) -> bool:
    """Whether some row of ``rows`` holds a value of ``m``."""
    return any(c in rows.columns and bool(rows[c].notna().any()) for c in m.columns.values())


def _rank_choices(measures: list[Measure], rows: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """(label, key) of the measures one can rank by: those with a direction and, when ``rows``
    (the rows of the shown protocol) are given, a value in at least one of them. No label is
    given twice: two measures that would read alike get their key appended, so a measure's
    label does not depend on ``rows``."""
    ranked = [m for m in measures if m.direction]
    texts = [_rank_text(m) for m in ranked]
    labels = [t if texts.count(t) == 1 else f"{t} · {m.key}" for t, m in zip(texts, ranked)]
    return [(label, m.key) for label, m in zip(labels, ranked) if rows is None or _computed(m, rows)]


def render_table(results: pd.DataFrame, view: str, families: list[str] | None, show: str, search: str,
                 training_set: str | None, task: str | None, relaxed: str | None, rank_by: str | None,
                 columns: list[str] | None = None, protocol: str | None = None) -> tuple[Styler, str]:
    """(Styler for gr.Dataframe, caption markdown) for the current controls, every row. ``protocol``:
    the rows of that protocol only (None: every row, as one ranking; the app always names one)."""
    v, caption = render_view(results, view, families, show, search, training_set, task, relaxed, rank_by,
                             columns, protocol)
    return style(v), caption


def render_view(results: pd.DataFrame, view: str, families: list[str] | None, show: str, search: str,
                training_set: str | None, task: str | None, relaxed: str | None, rank_by: str | None,
                columns: list[str] | None = None, protocol: str | None = None) -> tuple[View, str]:
    """(the ranked view, caption markdown) for the current controls (see ``render_table``)."""
    everything = results
    results = rows_of(results, protocol)
    v = build_view(results, view=view or "compact", families=families or None, show=show or "% of submitted",
                   search=search or "", training_set=training_set, task=task, relaxed=relaxed,
                   rank_by=rank_by or DEFAULT_RANK, columns=columns or None)
    n_all = len(results)
    caption = (f"{len(v.frame)} of {n_all} finished submissions of this protocol shown · ranked by "
               f"**{_rank_label(v.measures, rank_by)}** (use **Rank by** to re-rank; # follows it) · "
               f"counted metrics shown as **{show}**")
    if TIED_HEADER in v.frame.columns:
        caption += " · " + tied_caption(ci_level(results)) + "; " + WHY_NO_CI
    for label, value in v.common.items():
        caption += f" · **{label}** (every row): {value}"
    if n_all == 0 and len(everything):
        caption = (f"No finished submissions under this protocol yet; {len(everything)} under other protocols: "
                   "pick one with **Protocol**.")
    elif n_all == 0:
        caption = "No finished submissions yet: submit one in the **Submit** tab (try the example)."
    else:
        caption += "\n\n" + reference_note(results)
        caveats = caveat_markdown(v.measures, reference_of(results))
        if caveats:
            caption += "\n\n" + caveats
    if protocol:
        label = protocol_labels(everything).get(protocol, protocol)
        caption = (f"**Protocol:** {label}" + ("" if protocol == UNKNOWN else f" (`{protocol}`)")
                   + " · rows of other protocols are never ranked with these (pick them with **Protocol**)"
                   + (" · results whose protocol is unknown are listed unranked" if protocol == UNKNOWN else "")
                   + "\n\n" + caption)
    refused = results.attrs.get("refused") or {}
    if refused:
        caption += (f"\n\n**{len(refused)} finished submission(s) not shown**, their results cannot be read "
                    "by this leaderboard: " + "; ".join(f"`{k}`: {why}" for k, why in sorted(refused.items())))
    return v, caption


def _rank_label(measures_shown: list[Measure], rank_by: str | None) -> str:
    """The ranked-by measure's label (a view always shows the measure it is ranked by)."""
    m = {x.key: x for x in measures_shown}.get(rank_by or DEFAULT_RANK)
    if m is None:
        return "SUN + MSUN per submitted structure"
    return f"{m.label} {m.arrow}"


def build(ctx: AppContext) -> LeaderboardTab:
    """Build the tab's components inside the current Blocks; returns the ones others need."""
    results = ctx.results.get()
    measures = measures_of(results)
    fams = families_present(measures) or list(C.FAMILIES)
    pinned = ctx.protocol

    def proto_choices(res: pd.DataFrame) -> list[tuple[str, str]]:
        return protocol_choices(res, pinned.id if pinned else None, pinned.label if pinned else None)

    first = default_protocol(results, pinned.id if pinned else None)
    gr.Markdown("Generative models of inorganic crystals, scored on the same structures by the same "
                "evaluator. Default rank: **SUN + MSUN per submitted structure** (stable or metastable, "
                "unique and novel; strict denominator = every submitted structure). Re-rank with **Rank by**.")
    with gr.Row():
        search = gr.Textbox(label="Search", placeholder="model, training set, submitter…", scale=2,
                            elem_id="lb-search")
        training_set = gr.Dropdown(choices(results, "training_set"), value="All", label="Training set",
                                   scale=1, allow_custom_value=True)
        task = gr.Dropdown(choices(results, "task"), value="All", label="Task", scale=1,
                           allow_custom_value=True)
        relaxed = gr.Dropdown(["All", "yes", "no"], value="All", label="Relaxed before submission", scale=1)
    protocol = gr.Dropdown(proto_choices(results) or [("—", "")], value=first, label="Protocol (ranked one at a time)",
                           elem_id="lb-protocol", allow_custom_value=True)
    with gr.Row():
        view = gr.Radio(VIEWS, value="compact", label="View", scale=1)
        show = gr.Radio(list(SHOW_MODES), value="% of submitted", label="Counted metrics as", scale=2)
        rank_by = gr.Dropdown(_rank_choices(measures, rows_of(results, first)) or [("SUN + MSUN", DEFAULT_RANK)],
                              value=DEFAULT_RANK,
                              label="Rank by", scale=2, allow_custom_value=True, elem_id="lb-rank")
    families = gr.CheckboxGroup([(C.family_label(f) or f, f) for f in fams], value=fams,
                                label="Metric families")
    columns = gr.Dropdown(column_choices(measures), value=default_full_columns(measures), multiselect=True,
                          label="Columns of the full view (grouped by family)", visible=False,
                          elem_id="lb-columns", allow_custom_value=True)
    # The table and its caption come with the page's load event (``load``), not in the page.
    caption_md = gr.Markdown("Loading the leaderboard…", elem_id="lb-caption")
    # One search box (the filter above); the table's own column menu (client-side sort that
    # would leave # stale) is hidden by CSS: ranking is the "Rank by" control's job.
    table = gr.Dataframe(pd.DataFrame({"#": pd.Series([], dtype="Int64")}), interactive=False, wrap=False,
                         max_height=640, pinned_columns=2, elem_id="leaderboard-table",
                         buttons=["fullscreen", "copy"])
    with gr.Row():
        prev_page = gr.Button("◀ Previous", size="sm", scale=0, elem_id="lb-prev")
        page_label = gr.Markdown("", elem_id="lb-page")
        next_page = gr.Button("Next ▶", size="sm", scale=0, elem_id="lb-next")
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="lb-refresh")
        view_csv = gr.Button("Download this view (CSV)", size="sm", scale=0, elem_id="lb-dl-view")
        updated = gr.Markdown("", elem_id="lb-updated")
    view_file_out = gr.File(label="This view as CSV (every column; the rows shown, in their order, with their #)",
                            visible=False, interactive=False, elem_id="lb-view-file")
    legend = gr.Markdown(legend_markdown(measures) if measures else "")
    timer = gr.Timer(ctx.refresh_s)
    seen = gr.State(ctx.results.loads)
    page_no = gr.State(1)
    # What this page's controls hold (their choices as built): a refresh sends only changes.
    sent = gr.State(first_sent({"training_set": choices(results, "training_set"),
                                "task": choices(results, "task"),
                                "rank_by": _rank_choices(measures, rows_of(results, first))
                                or [("SUN + MSUN", DEFAULT_RANK)],
                                "families": [(C.family_label(f) or f, f) for f in fams],
                                "columns": column_choices(measures),
                                "protocol": proto_choices(results) or [("—", "")]}))

    controls = [view, families, show, search, training_set, task, relaxed, rank_by, columns, protocol]
    views: ViewCache[tuple[View, str]] = ViewCache()

    def paged(res: pd.DataFrame, number: int | None, *args: Any) -> tuple[Styler, str, str, int]:
        """(the page's Styler, caption, page label, page number) of the view for ``args`` (the controls)."""
        v, cap = views.get((ctx.results.loads, id(res)), freeze(args), lambda: render_view(res, *args))
        pg = page_of(len(v.frame), number, pages.PAGE_SIZE)
        return style(v, slice(pg.start, pg.stop)), cap, pg.label, pg.number

    def update(*args: Any) -> tuple[object, ...]:
        """A control changed: its first page (a file of the view before goes)."""
        return (*paged(ctx.results.get(), 1, *args), hidden_file())

    def turn(step: int) -> Callable[..., tuple[Styler, str, str, int]]:
        def handler(number: int | None, *args: Any) -> tuple[Styler, str, str, int]:
            return paged(ctx.results.get(), (number or 1) + step, *args)
        return handler

    def reload(force: bool, number: int | None, sent_before: Sent | None, view: str, families: list[str],
               show: str, search: str, training_set: str | None, task: str | None, relaxed: str | None,
               rank_by: str | None, columns: list[str] | None, protocol: str | None) -> tuple[object, ...]:
        res = ctx.results.get(force=force)
        ms = measures_of(res)
        styler, cap, label, number = paged(res, number, view, families, show, search, training_set, task,
                                           relaxed, rank_by, columns, protocol)
        fam_choices = families_present(ms) or list(C.FAMILIES)
        stamp = f"<small>updated {dt.datetime.now().strftime('%H:%M:%S')}</small>"
        record = sent_before
        fresh: list[object] = []
        for name, payload, make in (
                ("training_set", choices(res, "training_set"),
                 lambda: gr.update(choices=choices(res, "training_set"))),
                ("task", choices(res, "task"), lambda: gr.update(choices=choices(res, "task"))),
                ("rank_by", rank_now := _rank_choices(ms, rows_of(res, protocol)) or [("SUN + MSUN", DEFAULT_RANK)],
                 lambda: gr.update(choices=rank_now)),
                ("families", [(C.family_label(f) or f, f) for f in fam_choices],
                 lambda: gr.update(choices=[(C.family_label(f) or f, f) for f in fam_choices])),
                ("columns", column_choices(ms),
                 lambda: gr.update(choices=column_choices(ms), value=columns or default_full_columns(ms))),
                ("protocol", proto_choices(res) or [("—", "")],
                 lambda: gr.update(choices=proto_choices(res) or [("—", "")]))):
            upd, record = changed_only(record, name, payload, make)
            fresh.append(upd)
        training_u, task_u, rank_u, fam_u, col_u, proto_u = fresh
        return (styler, cap, label, number, stamp, ctx.results.loads, record, training_u, task_u, rank_u, fam_u,
                legend_markdown(ms) if ms else "", col_u, proto_u, hidden_file())

    outs = [table, caption_md, page_label, page_no, updated, seen, sent, training_set, task, rank_by, families,
            legend, columns, protocol, view_file_out]

    def tick(seen_loads: int, *args: Any) -> tuple[object, ...]:
        """Timer: rebuild only when the results were reloaded (keeps the visitor's page and controls)."""
        ctx.results.get()
        if seen_loads == ctx.results.loads:
            return tuple(gr.update() for _ in outs)
        return reload(False, *args)

    page_outs = [table, caption_md, page_label, page_no]
    for changed in (view.change, families.change, show.change, search.change, training_set.change, task.change,
                    relaxed.change, rank_by.change, columns.change, protocol.change):  # one per control
        changed(update, controls, [*page_outs, view_file_out], api_visibility="private", show_progress="hidden")

    def view_file(view: str, families: list[str], show: str, search: str, training_set: str | None,
                  task: str | None, relaxed: str | None, rank_by: str | None, columns: list[str] | None,
                  protocol: str | None) -> dict[str, Any]:
        """The rows the table shows (every page, every column), ranked and filtered as the
        visitor has it (``controls``, in order), as a CSV file (written on request: every column
        of every shown row makes a large file)."""
        args = (view, families, show, search, training_set, task, relaxed, rank_by, columns, protocol)
        res = ctx.results.get()
        v, _ = views.get((ctx.results.loads, id(res)), freeze(args), lambda: render_view(res, *args))
        key = hashlib.sha256(repr((ctx.store.uri, ctx.results.loads, freeze(args))).encode()).hexdigest()[:20]
        shown = view_table(rows_of(res, protocol), v, rank_by or DEFAULT_RANK)
        if shown is None:
            return hidden_file()
        return gr.update(value=write_download(f"leaderboard-view-{key}.csv", lambda p: write_csv(shown, p),
                                              reuse=True, folder=VIEW_DOWNLOADS, keep=VIEW_FILES_KEPT),
                         visible=True)

    view_csv.click(view_file, controls, view_file_out, api_visibility="private")
    prev_page.click(turn(-1), [page_no, *controls], page_outs, api_visibility="private", show_progress="hidden")
    next_page.click(turn(+1), [page_no, *controls], page_outs, api_visibility="private", show_progress="hidden")
    view.change(lambda v: gr.update(visible=v == "full"), view, columns, api_visibility="private",
                show_progress="hidden")

    def rank_choices_of(protocol: str | None) -> dict[str, Any]:
        """Rank by lists the metrics the rows of the chosen protocol computed."""
        res = ctx.results.get()
        return gr.update(choices=_rank_choices(measures_of(res), rows_of(res, protocol))
                         or [("SUN + MSUN", DEFAULT_RANK)])

    protocol.change(rank_choices_of, protocol, rank_by, api_visibility="private", show_progress="hidden")
    def refresh_all(*args: Any) -> tuple[object, ...]:
        return reload(True, *args)

    def load(*args: Any) -> tuple[object, ...]:
        return reload(False, *args)

    refresh.click(refresh_all, [page_no, sent, *controls], outs, api_name="refresh_leaderboard")
    timer.tick(tick, [seen, page_no, sent, *controls], outs, api_visibility="private", show_progress="hidden")

    def leaderboard_table(view: str = "full", show: str = "% of submitted", search: str = "",
                          rank_by: str = DEFAULT_RANK, protocol: str = "") -> dict[str, object]:
        """The leaderboard of one protocol (default: the service's) as plain data: ranked,
        filtered, with display headers (JSON-safe)."""
        res = ctx.results.get()
        chosen = protocol or default_protocol(res, pinned.id if pinned else None)
        v = build_view(rows_of(res, chosen), view=view, show=show, search=search, rank_by=rank_by)
        return {"headers": list(v.frame.columns), "data": json_rows(v.frame), "submission_ids": v.submission_ids,
                "protocol": chosen, "protocol_label": protocol_labels(res).get(chosen) or
                (pinned.label if pinned and pinned.id == chosen else chosen)}

    gradio_api(leaderboard_table, api_name="leaderboard_table")
    return LeaderboardTab(table, timer, refresh, Wiring(load, [page_no, sent, *controls], outs))


def json_rows(frame: pd.DataFrame) -> list[list[object]]:
    """Rows of ``frame`` with NaN/NA as None (JSON has no NaN)."""
    clean = frame.astype(object).where(frame.notna(), None)
    rows: list[list[object]] = clean.values.tolist()
    return rows
