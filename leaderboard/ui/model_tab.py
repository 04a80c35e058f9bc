"""Model page & downloads: one submission's metadata, every metric, E_hull
histogram, element coverage, top SUN candidates with CIFs, and file downloads.

What the page shows is made by ``summary_view`` (from the summary), ``structures_view``
(from the per-structure table), ``candidate`` (one candidate) and ``figures``; the
files offered for download by ``downloads``. This module builds the tab and wires it.
"""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from evaluator.families.sun.metrics import MSUN, SUN
from evaluator.families.validity.metrics import VALID
from evaluator import export
from evaluator.protocol import summary_protocol
from evaluator.summary import UnsupportedSchema, check_schema
from leaderboard.intake.submission_meta import load_meta
from leaderboard.jobs.queue import FINISHED, get_job
from leaderboard.publishing.results import load_structures, load_summary
from leaderboard.table.csv_safe import write_csv
from leaderboard.table.formats import chem_formula
from leaderboard.table.metadata import meta_column
from leaderboard.ui import candidate as C
from leaderboard.ui import figures as P
from leaderboard.ui.candidate import candidate_rows, flags_text, parse
from leaderboard.ui.downloads import leaderboard_files, store_folder, write_download
from leaderboard.ui.jobs import md_text
from leaderboard.ui.shared_state import AppContext, Wiring
from leaderboard.ui.structures_view import (candidates, ehull_column, first_column, structure_column,
                                            valid_rows)
from leaderboard.ui.summary_view import (
    budget_markdown,
    caveats_markdown,
    meta_markdown,
    metrics_frame,
    reference_markdown,
)

Update = dict[str, Any]  # a gr.update(...) of one component


@dataclass(frozen=True)
class ModelTab:
    """What the app wires to the model tab: the submission picker, the page of a submission
    (``show(job_id)`` gives the values of ``outs``), and the refreshes of the picker's
    choices and of the leaderboard download buttons."""

    pick: gr.Dropdown
    show: Callable[[str | None], tuple[object, ...]]
    outs: list[gr.components.Component]
    refresh_choices: Callable[[str | None], Update]
    refresh_downloads: Wiring


def finished_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """The pickers' choices: ("<model> · <id>", id) per finished submission, in the table's order."""
    res = ctx.results.get()
    sid = meta_column(res, "submission_id")
    if sid is None or res.empty:
        return []
    model = meta_column(res, "model")
    ids = res[sid].astype(str).tolist()
    names = res[model].tolist() if model else ids
    return [(f"{name} · {i}", i) for name, i in zip(names, ids)]


def has_results(ctx: AppContext) -> bool:
    """Whether any finished submission is shown (the model page's empty text says which case)."""
    res = ctx.results.get()
    return meta_column(res, "submission_id") is not None and not res.empty


_STRUCTURES: dict[tuple[int, str], pd.DataFrame | None] = {}


def structures(ctx: AppContext, job_id: str) -> pd.DataFrame | None:
    """Per-structure results of a finished submission (a few kept in memory: results are write-once)."""
    key = (id(ctx.store), job_id)
    if key not in _STRUCTURES:
        _STRUCTURES[key] = load_structures(ctx.store, job_id)
        while len(_STRUCTURES) > 4:
            _STRUCTURES.pop(next(iter(_STRUCTURES)))
    return _STRUCTURES[key]


EMPTY_TEXT = ("### No submission shown yet\n"
              "Pick a finished submission above (or open its permalink `?submission=<id>`). Its page shows "
              "the model's metadata and provenance, every metric with its confidence interval (or why it is "
              "absent), what the reference behind novelty covers, the E_hull histogram, element coverage on "
              "a periodic table, and each SUN/MSUN candidate: its relaxed structure in 3D, its phase diagram, "
              "E_hull before and after relaxation, the relaxation RMSD and its nearest reference entry.")
NO_RESULTS_TEXT = ("### No finished submissions yet\n"
                   "Once a submission has been evaluated, pick it here to see its metrics, plots and "
                   "candidates. Submit one in the **Submit** tab.")


def candidate_choices(df: pd.DataFrame | None) -> list[tuple[str, int]]:
    """(label, structure index) of every SUN/MSUN candidate with a stored record."""
    rows = candidate_rows(df)
    if rows.empty:
        return []
    # SUN first, then MSUN; lowest relaxed E_hull first (as the candidates table).
    e = rows[C.CANDIDATE_COLUMN].map(lambda v: (parse(v) or {}).get("e_hull_relaxed"))
    rows = rows.assign(__msun=~rows[SUN.name].fillna(False).astype(bool) if SUN.name in rows else True,
                       __e=pd.to_numeric(e, errors="coerce")).sort_values(["__msun", "__e"], kind="mergesort")
    out: list[tuple[str, int]] = []
    for _, r in rows.iterrows():
        kind = "SUN" if bool(r.get(SUN.name)) is True else "MSUN" if bool(r.get(MSUN.name)) is True else "candidate"
        warn = " ⚠" if flags_text(r) else ""
        out.append((f"#{r['index']} {chem_formula(r.get('reduced_formula') or r.get('formula'))} ({kind}){warn}",
                    int(r["index"])))
    return out


def candidate_page(df: pd.DataFrame | None, index: int | None,
                   summary: dict[str, Any] | None = None) -> tuple[str, Update, Update]:
    """(details markdown, 3D figure, phase-diagram figure) of candidate ``index``."""
    hidden = gr.update(visible=False)
    if df is None or index is None:
        return "", hidden, hidden
    rows = C.candidate_rows(df)
    rows = rows[rows["index"] == int(index)] if "index" in rows else rows.iloc[0:0]
    if rows.empty:
        return ("No candidate record for this structure (evaluated before the evaluator stored "
                "candidate structures and phase diagrams)."), hidden, hidden
    row = rows.iloc[0]
    rec = C.parse(row[C.CANDIDATE_COLUMN]) or {}
    cov = (((summary or {}).get("provenance") or {}).get("reference") or {})
    max_sites = (cov.get("coverage") or {}).get("max_sites") if isinstance(cov, dict) else None
    title = f"#{row['index']} {chem_formula(row.get('reduced_formula') or row.get('formula'))}: relaxed structure"
    return (C.details_markdown(row, rec, max_sites),
            gr.update(value=C.structure_figure(rec.get("structure"), title), visible=True),
            gr.update(value=C.phase_diagram_figure(rec), visible=True))


def cif_text(df: pd.DataFrame | None, index: int | None) -> str:
    """The CIF of structure ``index`` (its relaxed structure when the table has one)."""
    if df is None or index is None:
        return ""
    col = structure_column(df)
    if col is None:
        return "# no structure column in this submission's results"
    rows = df[df["index"] == int(index)] if "index" in df else df.iloc[[int(index)]]
    return str(export.cif_text(rows.iloc[0][col])) if len(rows) else ""


def chem_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its formula columns as chemists write them ("Na1Cl1" → "NaCl"): the
    per-structure downloads show formulas as the page does."""
    cols = {c: df[c].map(lambda v: chem_formula(v) if isinstance(v, str) else v)
            for c in ("formula", "reduced_formula") if c in df.columns}
    return df.assign(**cols) if cols else df


def _with_caveats(reference: str, summary: dict[str, Any], df: pd.DataFrame | None) -> str:
    """The reference paragraph followed by the caveats of the metrics and the sparse-hull count."""
    caveats = caveats_markdown(summary, df)
    return f"{reference}\n\n{caveats}" if caveats else reference


def _structure_downloads(df: pd.DataFrame, base: str, folder: Path) -> tuple[str, str]:
    """The per-structure table as parquet and CSV files (written once: results are write-once)."""
    pq = write_download(f"{base}_structures.parquet", lambda p: df.to_parquet(p, index=False), reuse=True,
                        folder=folder)
    return pq, write_download(f"{base}_structures.csv", lambda p: write_csv(df, p), reuse=True, folder=folder)


HEAD = 7
"""``ModelTab.outs[:HEAD]``: the page's text (``page_head``); the rest its metrics table, figures
and candidates (``page_body``), sent after the text so a pick shows its submission at once."""


def _results_of(ctx: AppContext, job_id: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the summary of a finished, readable submission, "") or (None, what the page says instead)."""
    if not job_id:
        return None, EMPTY_TEXT if has_results(ctx) else NO_RESULTS_TEXT
    job = get_job(ctx.store, job_id)
    summary = load_summary(ctx.store, job_id) if job is not None and job.status == FINISHED else None
    if summary is None:
        return None, f"### No results for {md_text(job_id)}\nNot finished, withdrawn, or an unknown id."
    try:
        check_schema(summary)
    except UnsupportedSchema as exc:
        return None, f"### Results of {md_text(job_id)} cannot be shown\n{md_text(str(exc))}"
    return summary, ""


def page_head(ctx: AppContext, job_id: str | None) -> tuple[object, ...]:
    """The values of ``ModelTab.outs[:HEAD]`` for ``job_id``: the empty text or the page, its
    metadata, downloads, reference and caveats."""
    hidden = gr.update(visible=False)
    summary, why = _results_of(ctx, job_id)
    if summary is None or not job_id:
        return gr.update(value=why, visible=True), hidden, "", hidden, hidden, hidden, ""
    meta = load_meta(ctx.store, job_id)
    df = structures(ctx, job_id)
    md = meta_markdown(job_id, meta, summary)
    budget = budget_markdown(summary, df)
    md = f"{md}\n{budget}" if budget else md
    protocol, _ = summary_protocol(summary)
    base = f"{job_id}_protocol-{protocol.id if protocol else 'unknown'}"
    pq = csv = None
    if df is not None:  # the per-structure downloads name the protocol in every row
        rows = df.assign(protocol_id=protocol.id if protocol else None,
                         protocol_label=protocol.label if protocol else "protocol unknown")
        pq, csv = _structure_downloads(chem_formulas(rows), base, store_folder(ctx))
    sj = write_download(f"{base}_summary.json",
                        lambda p: p.write_text(json.dumps(summary, indent=2, default=str)), reuse=True,
                        folder=store_folder(ctx))
    return (gr.update(visible=False), gr.update(visible=True),
            md, gr.update(value=pq, visible=pq is not None), gr.update(value=csv, visible=csv is not None),
            gr.update(value=sj, visible=True), _with_caveats(reference_markdown(summary), summary, df))


def page_body(ctx: AppContext, job_id: str | None) -> tuple[object, ...]:
    """The values of ``ModelTab.outs[HEAD:]`` for ``job_id``: every metric, the E_hull histogram,
    the element coverage, the SUN/MSUN candidates and the first candidate's page and CIF."""
    hidden = gr.update(visible=False)
    summary, _ = _results_of(ctx, job_id)
    if summary is None or not job_id:
        return None, None, None, "", None, gr.update(choices=[], value=None), "", "", hidden, hidden, None
    df = structures(ctx, job_id)
    stab = (summary.get("provenance") or {}).get("config") or {}
    if df is not None and (eh := ehull_column(df)):
        fig_h = P.ehull_histogram(df[eh], stab.get("stable_threshold", 0.0), stab.get("metastable_threshold", 0.1))
    else:
        fig_h = P.ehull_histogram([])
    fig_p, cands, cap = P.periodic_table({}), pd.DataFrame(), "No per-structure results."
    if df is not None:
        valid = valid_rows(df)
        fcol = first_column(valid, ("reduced_formula", "formula"))
        counts = export.element_counts(valid[fcol]) if fcol else {}
        which = "valid" if VALID.name in df else "parsed"
        fig_p = P.periodic_table(counts, f"Element coverage ({len(valid)} {which} structures)", len(valid))
        validity = ((summary.get("provenance") or {}).get("family") or {}).get("validity") or {}
        cands, cap = candidates(df, tolerance=validity.get("reported_spacegroup"))
    labels = candidate_choices(df)
    if not labels and "index" in cands:  # older results: no candidate records, the CIF still shows
        labels = [(f"#{r['index']} {chem_formula(r.get('formula') or r.get('reduced_formula'))} ({r['kind']})",
                   int(r["index"])) for _, r in cands.iterrows()]
    first = labels[0][1] if labels else None
    info, fig3d, figpd = candidate_page(df, first, summary)
    return (metrics_frame(summary, df), fig_h, fig_p, cap, cands, gr.update(choices=labels, value=first),
            cif_text(df, first), info, fig3d, figpd, job_id)


def show_page(ctx: AppContext, job_id: str | None) -> tuple[object, ...]:
    """The values of the model page's components (``ModelTab.outs``) for ``job_id``."""
    return page_head(ctx, job_id) + page_body(ctx, job_id)


def build(ctx: AppContext) -> ModelTab:
    gr.Markdown("### Downloads\nThe whole leaderboard (every metric column, one row per finished submission), "
                "with its `rank` column and in the order the leaderboard opens with (default ranking, "
                "one protocol after another, this service's first); the leaderboard tab's **Download this "
                "view** gives the rows as you ranked and filtered them:")
    csv0, pq0 = leaderboard_files(ctx)
    with gr.Row():
        dl_csv = gr.DownloadButton("Leaderboard CSV", value=csv0, size="sm", elem_id="dl-csv")
        dl_parquet = gr.DownloadButton("Leaderboard parquet", value=pq0, size="sm", elem_id="dl-parquet")
    gr.Markdown("### Model page")
    # Nothing picked until a submission is shown (Gradio would preselect the first choice while
    # the page says none is shown, and picking that one would not fire .change). The choices
    # (one per finished submission) come when the tab is opened, not in every page's HTML.
    pick = gr.Dropdown([], value=None, label="Submission", elem_id="model-pick", allow_custom_value=True)
    empty_md = gr.Markdown(EMPTY_TEXT if has_results(ctx) else NO_RESULTS_TEXT, elem_id="model-empty")
    with gr.Column(visible=False, elem_id="model-page") as page:
        meta_md = gr.Markdown(elem_id="model-meta")
        with gr.Row():
            dl_struct_parquet = gr.DownloadButton("Per-structure results (parquet)", size="sm", visible=False)
            dl_struct_csv = gr.DownloadButton("Per-structure results (CSV)", size="sm", visible=False)
            dl_summary = gr.DownloadButton("summary.json", size="sm", visible=False)
        ref_md = gr.Markdown(elem_id="model-reference")
        metrics_df = gr.Dataframe(interactive=False, wrap=True, label="All metrics", elem_id="model-metrics")
        with gr.Row():
            hist = gr.Plot(label="E_hull", show_label=False, elem_id="model-ehull")
            ptable = gr.Plot(label="Element coverage", show_label=False, elem_id="model-ptable")
        cand_md = gr.Markdown()
        cand_df = gr.Dataframe(interactive=False, wrap=True, label="Top SUN / MSUN candidates",
                               elem_id="model-candidates")
        gr.Markdown("### Candidate page")
        cand_pick = gr.Dropdown([], label="Candidate", allow_custom_value=True, elem_id="candidate-pick")
        cand_info = gr.Markdown(elem_id="candidate-details")
        with gr.Row():
            cand_3d = gr.Plot(show_label=False, elem_id="candidate-structure", visible=False)
            cand_pd = gr.Plot(show_label=False, elem_id="candidate-pd", visible=False)
        cif = gr.Code(language=None, label="CIF (relaxed structure when available)", elem_id="model-cif",
                      max_lines=30)
    structures_state = gr.State(None)

    dl_csv.click(lambda: leaderboard_files(ctx)[0], None, dl_csv, api_name="download_csv")
    dl_parquet.click(lambda: leaderboard_files(ctx)[1], None, dl_parquet, api_name="download_parquet")

    def show(job_id: str | None) -> tuple[object, ...]:
        return show_page(ctx, job_id)

    def on_candidate(job_id: str | None, index: int | None) -> tuple[object, ...]:
        df = structures(ctx, job_id) if job_id else None
        summary = load_summary(ctx.store, job_id) if job_id else None
        return (cif_text(df, index), *candidate_page(df, index, summary))

    outs = [empty_md, page, meta_md, dl_struct_parquet, dl_struct_csv, dl_summary, ref_md, metrics_df, hist,
            ptable, cand_md, cand_df, cand_pick, cif, cand_info, cand_3d, cand_pd, structures_state]
    # the text first, then the metrics table and figures: a pick shows its submission without waiting
    # for the browser to draw the table and the plots
    pick.change(lambda job_id: page_head(ctx, job_id), pick, outs[:HEAD], api_visibility="private").then(
        lambda job_id: page_body(ctx, job_id), pick, outs[HEAD:], api_visibility="private", show_progress="hidden")
    cand_pick.change(on_candidate, [structures_state, cand_pick], [cif, cand_info, cand_3d, cand_pd],
                     api_visibility="private", show_progress="hidden")

    def refresh_choices(current: str | None) -> Update:
        return gr.update(choices=finished_choices(ctx), value=current)

    def refresh_downloads() -> tuple[str, str]:
        return leaderboard_files(ctx)

    return ModelTab(pick, show, outs, refresh_choices, Wiring(refresh_downloads, [], [dl_csv, dl_parquet]))
