"""Model page & downloads: one submission's metadata, every metric, E_hull
histogram, element coverage, top SUN candidates with CIFs, and file downloads."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from evaluator import export
from evaluator.columns import PARSE_OK, STRUCTURE
from evaluator.families.stability import metrics as STABILITY
from evaluator.families.sun.metrics import MSUN, SUN
from evaluator.families.validity.metrics import VALID
from evaluator.summary import UnsupportedSchema, check_schema, upgrade_row
from leaderboard.ui import candidate as C
from leaderboard.ui import figures as P
from leaderboard.ui.candidate import BEYOND_REFERENCE_COLUMN, SPARSE_CHEMSYS_COLUMN, candidate_rows, flags_text, parse
from evaluator.protocol import summary_protocol
from leaderboard.table.csv_safe import write_csv
from leaderboard.jobs.queue import FINISHED, get_job
from leaderboard.publishing.results import load_structures, load_summary
from leaderboard.intake.submission_meta import load_meta
from leaderboard.table.download import ranked_table
from leaderboard.table.formats import chem_formula, sig_text, yes_no
from leaderboard.table.measures import Measure, catalogue
from leaderboard.table.metadata import coverage_sentence, meta_column, provenance_label
from leaderboard.table.view import ci_text
from leaderboard.ui.jobs import md_link, md_text
from leaderboard.ui.shared_state import AppContext

N_CANDIDATES = 25
HEADLINE_META = ("model_name", "model_version", "organisation", "training_set", "training_set_other", "task",
                 "condition", "relaxed_before_submission", "relaxation_method", "n_structures", "submitter",
                 "paper_url", "code_url", "checkpoint_url", "license", "notes")


# ---------------------------------------------------------------- per-structure columns
def first_column(df: pd.DataFrame, candidates: tuple[str, ...], contains: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = ()) -> str | None:
    """The first of ``candidates`` in ``df``, else the first column containing all of ``contains``."""
    for c in candidates:
        if c in df.columns:
            return c
    if contains:
        for c in df.columns:
            if all(s in c for s in contains) and not any(s in c for s in exclude):
                return c
    return None


def ehull_column(df: pd.DataFrame) -> str | None:
    """Relaxed-geometry E_hull column (eV/atom) of the per-structure table."""
    return first_column(df, (STABILITY.E_ABOVE_HULL.name, "stability_e_above_hull_relaxed"),
                        ("e_above_hull",), ("unrelaxed", "status", "reason", "n_ref"))


def flag_column(df: pd.DataFrame, name: str) -> str | None:
    """Boolean per-structure flag of family ``sun`` (``sun`` or ``msun``)."""
    return first_column(df, (f"sun_{name}", f"sun_is_{name}", f"{name}"))


def structure_column(df: pd.DataFrame) -> str | None:
    """Relaxed structure (pymatgen JSON) if the table has one, else the submitted one."""
    return first_column(df, (STABILITY.RELAXED_STRUCTURE.name, "stability_structure_relaxed",
                             "relaxed_structure"), ("relaxed_structure",)) or \
        (STRUCTURE.name if STRUCTURE.name in df.columns else None)


def truthy(series: pd.Series) -> pd.Series:
    return series.map(lambda v: bool(v) if isinstance(v, (bool, int, float)) and not
                      (isinstance(v, float) and math.isnan(v)) else str(v).lower() == "true")


def candidates(df: pd.DataFrame, n: int = N_CANDIDATES) -> tuple[pd.DataFrame, str]:
    """Top SUN (then MSUN) structures by E_hull: (table, caption)."""
    eh = ehull_column(df)
    parts, kinds = [], []
    for name in ("sun", "msun"):
        col = flag_column(df, name)
        if col is None:
            continue
        sel = df[truthy(df[col])].copy()
        sel["kind"] = name.upper()
        parts.append(sel)
        kinds.append(name.upper())
    if not parts:
        return pd.DataFrame(), "No SUN/MSUN flags in this submission's results (family not run)."
    sel = pd.concat(parts)
    if sel.empty and eh is not None:  # nothing SUN/MSUN: show the closest to the hull instead
        sel = df[pd.to_numeric(df[eh], errors="coerce").notna()].copy()
        sel["kind"] = "lowest E_hull"
        sel = sel.sort_values(eh, kind="mergesort")
        cols = [c for c in ("index", "source", "kind", "formula", eh) if c in sel.columns]
        out = _clean_formulas(sel[cols].head(n).reset_index(drop=True))
        out[eh] = pd.to_numeric(out[eh], errors="coerce").round(3)
        out = out.rename(columns={eh: "E_hull [eV/atom]"})
        return out, (f"No SUN or MSUN structures in this submission; the {len(out)} structures with the "
                     "lowest E_hull are listed instead.")
    if eh:
        sel = sel.sort_values(["kind", eh], ascending=[False, True], kind="mergesort")
    cols = [c for c in ("index", "source", "kind", "formula", "reduced_formula", eh,
                        first_column(df, (), ("spacegroup",)) or first_column(df, (), ("space_group",)))
            if c and c in sel.columns]
    out = _clean_formulas(sel[list(dict.fromkeys(cols))].head(n).reset_index(drop=True))

    for col, label in ((BEYOND_REFERENCE_COLUMN, "larger than any reference cell"),
                       (SPARSE_CHEMSYS_COLUMN, "sparse chemical system")):
        flags = sel[col].head(n).reset_index(drop=True) if col in sel.columns else None
        out[label] = ["—" if flags is None or pd.isna(v) else ("⚠ yes" if bool(v) else "no")
                      for v in (flags if flags is not None else [None] * len(out))]
    if eh:
        out[eh] = pd.to_numeric(out[eh], errors="coerce").round(3)
    out = out.rename(columns={eh: "E_hull [eV/atom]"} if eh else {})
    out = out.rename(columns={c: "space group" for c in out.columns if "spacegroup" in c or "space_group" in c})
    n_sun = sum(1 for k in sel["kind"] if k == "SUN")
    cap = (f"{n_sun} SUN and {len(sel) - n_sun} MSUN structures; showing the first {len(out)} "
           "(SUN first, lowest E_hull first).")
    return out, cap


def _clean_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Formula columns as chemists write them ("Al1I7" → "AlI7")."""
    for c in ("formula", "reduced_formula"):
        if c in df.columns:
            df[c] = df[c].map(chem_formula)
    return df


# ---------------------------------------------------------------- summaries
def _num(v, pct: bool = False, unit: str = "", count: bool = False) -> str:
    """One convention on the page: rates as % with one decimal, eV/atom with 3 decimals,
    counts as integers, anything else with 3 significant figures (trailing zeros kept), yes/no."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool):
        return yes_no(v)
    if isinstance(v, (int, float)):
        if pct:
            return f"{100 * v:.1f} %"
        if isinstance(v, int) or count:
            return f"{v:,.0f}"
        return f"{v:.3f} {unit}" if unit == "eV/atom" else sig_text(v) + (f" {unit}" if unit else "")
    return str(v)


def _ci(summary: dict, family: str, key: str) -> str:
    """'12.0–15.5 %' from summary.json's "uncertainty" block, '—' when absent."""
    iv = ((summary.get("uncertainty") or {}).get(family) or {}).get(key)
    if not isinstance(iv, dict):
        why = ((summary.get("missing") or {}).get("uncertainty") or {}).get(f"{family}.{key}")
        return f"— ({why})" if why else "—"
    text = ci_text(iv.get("lo"), iv.get("hi"), True)
    return text if text == "—" else f"{text} %"


def metrics_frame(summary: dict) -> pd.DataFrame:
    """Every metric of a summary: one row per measure, with its reason when absent."""
    metrics = summary.get("metrics") or {}
    missing = summary.get("missing") or {}
    flat = upgrade_row({f"{fam}.{k}": v for fam, d in metrics.items() if isinstance(d, dict)
                        for k, v in d.items() if not isinstance(v, (dict, list))})
    unc = (summary.get("provenance") or {}).get("uncertainty") or {}
    level = f"{100 * float(unc['level']):.0f} %" if isinstance(unc.get("level"), (int, float)) else "95 %"
    rows = []
    for m in catalogue(flat):
        why = (missing.get(m.family) or {}) if isinstance(missing.get(m.family), dict) else {}
        if m.counted:
            c = {r: flat.get(col) for r, col in m.columns.items()}
            rows.append({"Family": m.family, "Metric": f"{m.label} {m.arrow}".strip(),
                         "Value": _num(c.get("count"), count=True),
                         "% of submitted": _num(c.get("frac_submitted"), True),
                         f"{level} CI (of submitted)": _ci(summary, m.family, f"{m.name}_frac_submitted"),
                         "% of valid": _num(c.get("frac_valid"), True),
                         "Missing because": why.get(m.name) or why.get(f"{m.name}_count") or ""})
        else:
            v = flat.get(m.columns["value"])
            label = Measure.header(m) if m.fraction else f"{m.label} {m.arrow}".strip()
            rows.append({"Family": m.family, "Metric": label, "Value": _num(v, m.fraction, m.unit),
                         "% of submitted": "", f"{level} CI (of submitted)": "", "% of valid": "",
                         "Missing because": why.get(m.name, "") if v is None else ""})
    return pd.DataFrame(rows, columns=["Family", "Metric", "Value", "% of submitted",
                                       f"{level} CI (of submitted)", "% of valid", "Missing because"])


def reference_markdown(summary: dict) -> str:
    """What Novel, SUN and MSUN mean for this submission: the reference and its coverage."""
    ref = (summary.get("provenance") or {}).get("reference") or {}
    ref = ref if isinstance(ref, dict) else {"id": ref}
    cov = ref.get("coverage") if isinstance(ref.get("coverage"), dict) else {}
    sentence = coverage_sentence(ref.get("id") or ref.get("name"), cov.get("description"),
                                   cov.get("n_structures"), cov.get("max_sites"))
    unc = (summary.get("provenance") or {}).get("uncertainty") or {}
    ci = (f"Confidence intervals: {md_text(unc.get('method') or 'bootstrap')}, {unc.get('n_resamples')} "
          f"resamples, seed {unc.get('seed')}." if unc else
          "No confidence intervals: this submission was evaluated before the evaluator computed them.")
    return (f"**Novel, SUN and MSUN depend on the reference:** {md_text(sentence)}. Candidates below are "
            f"flagged when larger than any reference cell or in a sparse chemical system. {ci}")


def meta_markdown(job_id: str, meta: dict | None, summary: dict | None) -> str:
    meta = meta or {}
    summary = summary or {}
    title = f"{meta.get('model_name', 'submission')} {meta.get('model_version', '')}".strip()
    lines = [f"## {md_text(title)}",
             f"Submission `{job_id}` · permalink [`?submission={job_id}`](?submission={job_id})", ""]
    for k in HEADLINE_META:
        if k in meta and meta[k] not in (None, ""):
            v = meta[k]
            v = md_link(v) if isinstance(v, str) and v.startswith("http") else md_text(yes_no(v))
            lines.append(f"- **{k.replace('_', ' ').capitalize()}:** {v}")
    counts = [f"{summary.get(k)} {k[2:]}" for k in ("n_submitted", "n_parsed", "n_valid", "n_evaluated")
              if summary.get(k) is not None]
    if counts:
        lines.append(f"- **Structures:** {' · '.join(counts)}")
    prov = summary.get("provenance") or {}
    ref = prov.get("reference") or {}
    if prov:
        bits = [f"evaluator {prov.get('evaluator_version', '?')}"]
        if isinstance(ref, dict) and ref:
            bits.append(f"reference {ref.get('id') or ref.get('name') or ref}")
        cfg = prov.get("config") or {}
        if cfg.get("mlip"):
            bits.append(f"MLIP {cfg.get('mlip')}")
        if prov.get("created_at"):
            bits.append(f"evaluated {prov['created_at']}")
        lines.append(f"- **Provenance:** {' · '.join(md_text(b) for b in bits)}")
    protocol, source = summary_protocol(summary)
    if protocol is None:
        lines.append("- **Protocol:** unknown (these results were evaluated before protocols were recorded and "
                     "their provenance does not name every setting); they are never ranked with a known protocol")
    else:
        how = {"derived": " (derived from the provenance of results evaluated before protocols were recorded)"}
        lines.append(f"- **Protocol:** {md_text(protocol.label)} (`{protocol.id}`){how.get(source, '')}")
    execution = summary.get("execution") if isinstance(summary.get("execution"), dict) else {}
    if execution:
        bits = [f"{k.replace('_', ' ')} {execution[k]}" for k in ("device", "relax_mode", "engine", "relax_max_atoms")
                if execution.get(k) not in (None, "")]
        lines.append(f"- **Executed on:** {md_text(' · '.join(bits))} (beside the protocol, not part of it)")
    rescore = (summary.get("leaderboard") or {}).get("rescore_of")
    if rescore:
        lines.append(f"- **Re-scoring of:** submission `{md_text(rescore)}` (its upload, under this protocol)")
    if summary.get("leaderboard") is not None:  # published by the leaderboard's worker
        by = provenance_label("leaderboard worker", prov.get("evaluator_version"))
        lines.append(f"- **Evaluated by:** {md_text(by)}")
    fails = summary.get("failures") or {}
    parse = fails.get("parse") or {}
    if parse:
        top = "; ".join(f"{md_text(k)} ({v})" for k, v in list(parse.items())[:3])
        lines.append(f"- **Parse failures:** {top}")
    return "\n".join(lines)


BUDGET_ROWS_SHOWN = 5


def budget_markdown(summary: dict, df: pd.DataFrame | None) -> str:
    """The relaxations stopped by the per-structure budget (or the wall-time safety net):
    how many, and the first few rows with why (``stability_stop_note``); '' when none."""
    stab = (summary.get("metrics") or {}).get("stability") or {}
    n_budget, n_wall = stab.get("budget_stopped_count"), stab.get("wall_time_stopped_count")
    if not n_budget and not n_wall:
        return ""
    relax = ((summary.get("provenance") or {}).get("family") or {}).get("stability", {}).get("relaxation", {})
    budget = relax.get("budget") or {} if isinstance(relax, dict) else {}
    rule = (f" (at most {budget['atom_steps']:,} atoms × steps per structure)"
            if isinstance(budget, dict) and budget.get("atom_steps") else "")
    parts = []
    if n_budget:
        parts.append(f"{n_budget} stopped at the relaxation budget{rule}")
    if n_wall:
        parts.append(f"{n_wall} stopped by the wall-time safety net (machine dependent)")
    lines = [f"- **Relaxations not converged by a budget:** {'; '.join(parts)}. They are scored from their "
             "last state and flagged per structure (`stability_stopped_by`, `stability_stop_note`)."]
    if df is not None and STABILITY.STOP_NOTE.name in df:
        flagged = df[df[STABILITY.STOP_NOTE.name].notna()]
        for _, row in flagged.head(BUDGET_ROWS_SHOWN).iterrows():
            what = chem_formula(row.get("formula")) or row.get("source") or ""
            atoms = f", {int(row['nsites'])} atoms" if "nsites" in row and pd.notna(row["nsites"]) else ""
            lines.append(f"  - #{row.get('index', '')} {md_text(what)}{atoms}: {md_text(row['stability_stop_note'])}")
        if len(flagged) > BUDGET_ROWS_SHOWN:
            lines.append(f"  - … {len(flagged) - BUDGET_ROWS_SHOWN} more in the per-structure results")
    return "\n".join(lines)


DOWNLOAD_DIR = Path(tempfile.gettempdir()) / "genbench-downloads"


def _write_tmp(name: str, write, reuse: bool = False, folder: Path | None = None) -> str:
    """Write a download into one folder (not a new temp folder per click, which would
    fill the disk of a long-running app). ``reuse``: the file is immutable (results of
    a finished submission), write it once."""
    folder = folder or DOWNLOAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    if reuse and p.exists():
        return str(p)
    tmp = Path(tempfile.mkstemp(dir=folder, prefix=f".{name}.")[1])
    try:
        write(tmp)
        os.replace(tmp, p)  # atomic: concurrent clicks never serve a half-written file
    finally:
        tmp.unlink(missing_ok=True)
    return str(p)


# ---------------------------------------------------------------- tab
def finished_choices(ctx: AppContext) -> list[tuple[str, str]]:
    res = ctx.results.get()
    sid = meta_column(res, "submission_id")
    if sid is None or res.empty:
        return []
    model = meta_column(res, "model")
    out = []
    for _, row in res.iterrows():
        name = row[model] if model else row[sid]
        out.append((f"{name} · {row[sid]}", str(row[sid])))
    return out


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


def _leaderboard_files(ctx: AppContext) -> tuple[str, str]:
    """The whole leaderboard as CSV and parquet files, rewritten when the results were reloaded:
    every row, with the on-screen rank (``rank``, default ranking, per protocol) and order."""
    res = ctx.results.get()
    loads, paths = _LB_FILES.get(id(ctx), (None, ()))
    if loads != ctx.results.loads or not paths or not all(Path(p).exists() for p in paths):
        folder = DOWNLOAD_DIR / f"app-{os.getpid()}-{id(ctx):x}"  # one app's table, never another's
        table = ranked_table(res, ctx.protocol.id if ctx.protocol else None)
        paths = (whole_table(table, "csv", folder), whole_table(table, "parquet", folder))
        _LB_FILES[id(ctx)] = (ctx.results.loads, paths)
    return paths


_LB_FILES: dict[int, tuple[int, tuple[str, str]]] = {}  # id(ctx) -> (results loads written, paths)


def whole_table(res: pd.DataFrame, kind: str, folder: Path | None = None) -> str:
    if kind == "csv":
        return _write_tmp("leaderboard.csv", lambda p: write_csv(res, p), folder=folder)
    return _write_tmp("leaderboard.parquet", lambda p: res.to_parquet(p, index=False), folder=folder)


def candidate_choices(df: pd.DataFrame | None) -> list[tuple[str, int]]:
    """(label, structure index) of every SUN/MSUN candidate with a stored record."""
    rows = candidate_rows(df)
    if rows.empty:
        return []
    # SUN first, then MSUN; lowest relaxed E_hull first (as the candidates table).
    e = rows[C.CANDIDATE_COLUMN].map(lambda v: (parse(v) or {}).get("e_hull_relaxed"))
    rows = rows.assign(__msun=~rows[SUN.name].fillna(False).astype(bool) if SUN.name in rows else True,
                       __e=pd.to_numeric(e, errors="coerce")).sort_values(["__msun", "__e"], kind="mergesort")
    out = []
    for _, r in rows.iterrows():
        kind = "SUN" if bool(r.get(SUN.name)) is True else "MSUN" if bool(r.get(MSUN.name)) is True else "candidate"
        warn = " ⚠" if flags_text(r) else ""
        out.append((f"#{r['index']} {chem_formula(r.get('reduced_formula') or r.get('formula'))} ({kind}){warn}",
                    int(r["index"])))
    return out


def build(ctx: AppContext) -> dict:
    gr.Markdown("### Downloads\nThe whole leaderboard (every metric column, one row per finished submission), "
                "with its `rank` column and in the order the leaderboard opens with (default ranking, "
                "one protocol after another, this service's first):")
    csv0, pq0 = _leaderboard_files(ctx)
    with gr.Row():
        dl_csv = gr.DownloadButton("Leaderboard CSV", value=csv0, size="sm", elem_id="dl-csv")
        dl_parquet = gr.DownloadButton("Leaderboard parquet", value=pq0, size="sm", elem_id="dl-parquet")
    gr.Markdown("### Model page")
    choices0 = finished_choices(ctx)
    pick = gr.Dropdown(choices0, label="Submission", elem_id="model-pick", allow_custom_value=True)
    empty_md = gr.Markdown(EMPTY_TEXT if choices0 else NO_RESULTS_TEXT, elem_id="model-empty")
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

    dl_csv.click(lambda: _leaderboard_files(ctx)[0], None, dl_csv, api_name="download_csv")
    dl_parquet.click(lambda: _leaderboard_files(ctx)[1], None, dl_parquet, api_name="download_parquet")

    def candidate_page(df, index, summary=None):
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

    def show(job_id):

        hidden = gr.update(visible=False)
        blank = ("", hidden, hidden, hidden, "", None, None, None, "", None, gr.update(choices=[], value=None),
                 "", "", hidden, hidden, None)
        if not job_id:
            return (gr.update(value=EMPTY_TEXT if finished_choices(ctx) else NO_RESULTS_TEXT, visible=True),
                    gr.update(visible=False)) + blank

        job = get_job(ctx.store, job_id)
        summary = load_summary(ctx.store, job_id) if job is not None and job.status == FINISHED else None
        if summary is None:
            return (gr.update(value=f"### No results for {md_text(job_id)}\nNot finished, withdrawn, or an "
                                    "unknown id.", visible=True), gr.update(visible=False)) + blank
        try:
            check_schema(summary)
        except UnsupportedSchema as exc:
            return (gr.update(value=f"### Results of {md_text(job_id)} cannot be shown\n{md_text(str(exc))}",
                              visible=True), gr.update(visible=False)) + blank
        meta = load_meta(ctx.store, job_id)
        df = structures(ctx, job_id)
        md = meta_markdown(job_id, meta, summary)
        budget = budget_markdown(summary, df)
        md = f"{md}\n{budget}" if budget else md
        protocol, _ = summary_protocol(summary)
        base = f"{job_id}_protocol-{protocol.id if protocol else 'unknown'}"
        if df is not None:  # the per-structure downloads name the protocol in every row
            df = df.assign(protocol_id=protocol.id if protocol else None,
                           protocol_label=protocol.label if protocol else "protocol unknown")
        pq = csv = None
        if df is not None:
            pq = _write_tmp(f"{base}_structures.parquet", lambda p: df.to_parquet(p, index=False), reuse=True)

            csv = _write_tmp(f"{base}_structures.csv", lambda p: write_csv(df, p), reuse=True)
        sj = _write_tmp(f"{base}_summary.json",
                        lambda p: p.write_text(json.dumps(summary, indent=2, default=str)), reuse=True)
        stab = (summary.get("provenance") or {}).get("config") or {}
        if df is not None and (eh := ehull_column(df)):
            fig_h = P.ehull_histogram(df[eh], stab.get("stable_threshold", 0.0),
                                      stab.get("metastable_threshold", 0.1))
        else:
            fig_h = P.ehull_histogram([])
        fig_p, cands, cap = P.periodic_table({}), pd.DataFrame(), "No per-structure results."
        if df is not None:
            valid = valid_rows(df)
            fcol = first_column(valid, ("reduced_formula", "formula"))
            counts = export.element_counts(valid[fcol]) if fcol else {}
            which = "valid" if VALID.name in df else "parsed"
            fig_p = P.periodic_table(counts, f"Element coverage ({len(valid)} {which} structures)", len(valid))
            cands, cap = candidates(df)
        labels = candidate_choices(df)
        if not labels and "index" in cands:  # older results: no candidate records, the CIF still shows
            labels = [(f"#{r['index']} {chem_formula(r.get('formula') or r.get('reduced_formula'))} ({r['kind']})",
                       int(r["index"])) for _, r in cands.iterrows()]
        first = labels[0][1] if labels else None
        info, fig3d, figpd = candidate_page(df, first, summary)
        return (gr.update(visible=False), gr.update(visible=True),
                md, gr.update(value=pq, visible=pq is not None), gr.update(value=csv, visible=csv is not None),
                gr.update(value=sj, visible=True), reference_markdown(summary), metrics_frame(summary), fig_h,
                fig_p, cap, cands, gr.update(choices=labels, value=first), cif_text(df, first), info, fig3d,
                figpd, job_id)

    def on_candidate(job_id, index):
        df = structures(ctx, job_id) if job_id else None
        summary = load_summary(ctx.store, job_id) if job_id else None
        return (cif_text(df, index), *candidate_page(df, index, summary))

    def cif_text(df, index):
        if df is None or index is None:
            return ""
        col = structure_column(df)
        if col is None:
            return "# no structure column in this submission's results"
        rows = df[df["index"] == int(index)] if "index" in df else df.iloc[[int(index)]]
        return export.cif_text(rows.iloc[0][col]) if len(rows) else ""

    outs = [empty_md, page, meta_md, dl_struct_parquet, dl_struct_csv, dl_summary, ref_md, metrics_df, hist,
            ptable, cand_md, cand_df, cand_pick, cif, cand_info, cand_3d, cand_pd, structures_state]
    pick.change(show, pick, outs, api_visibility="private")
    cand_pick.change(on_candidate, [structures_state, cand_pick], [cif, cand_info, cand_3d, cand_pd],
                     api_visibility="private", show_progress="hidden")

    def refresh_choices(current):
        return gr.update(choices=finished_choices(ctx), value=current)

    def refresh_downloads():
        return _leaderboard_files(ctx)

    return {"pick": pick, "show": show, "outs": outs, "refresh_choices": refresh_choices,
            "refresh_downloads": (refresh_downloads, [dl_csv, dl_parquet])}


def valid_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Valid structures (parsed ones when validity did not run)."""
    if VALID.name in df:
        return df[truthy(df[VALID.name])]
    return df[truthy(df[PARSE_OK.name])] if PARSE_OK.name in df else df
