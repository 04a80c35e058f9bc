"""A submission's summary on its model page: metadata and provenance, every metric with its
confidence interval (or why it is absent), the reference behind novelty, relaxations
stopped by a budget."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from evaluator.families.stability import metrics as STABILITY
from evaluator.families.sun.metrics import SPARSE_CHEMSYS
from evaluator.protocol import reference_label, summary_protocol
from evaluator.summary import upgrade_row
from leaderboard.table.caveats import caveat_markdown
from leaderboard.table.formats import chem_formula, sig_text, yes_no
from leaderboard.table.measures import Measure, catalogue
from leaderboard.table.metadata import coverage_sentence, provenance_label
from leaderboard.table.view import ci_text
from leaderboard.ui.jobs import md_link, md_text

HEADLINE_META = ("model_name", "model_version", "organisation", "training_set", "training_set_other", "task",
                 "condition", "relaxed_before_submission", "relaxation_method", "n_structures", "submitter",
                 "paper_url", "code_url", "checkpoint_url", "license", "notes")


def _num(v: object, pct: bool = False, unit: str = "", count: bool = False) -> str:
    """One convention on the page: rates as % with one decimal, eV/atom with 3 decimals,
    counts as integers, anything else with 3 significant figures (trailing zeros kept), yes/no."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, bool):
        return str(yes_no(v))
    if isinstance(v, (int, float)):
        if pct:
            return f"{100 * v:.1f} %"
        if isinstance(v, int) or count:
            return f"{v:,.0f}"
        return f"{v:.3f} {unit}" if unit == "eV/atom" else sig_text(v) + (f" {unit}" if unit else "")
    return str(v)


def _ci(summary: dict[str, Any], family: str, key: str) -> str:
    """'12.0–15.5 %' from summary.json's "uncertainty" block, '—' when absent."""
    iv = ((summary.get("uncertainty") or {}).get(family) or {}).get(key)
    if not isinstance(iv, dict):
        why = ((summary.get("missing") or {}).get("uncertainty") or {}).get(f"{family}.{key}")
        return f"— ({why})" if why else "—"
    text = ci_text(iv.get("lo"), iv.get("hi"), True)
    return text if text == "—" else f"{text} %"


def summary_reference(summary: dict[str, Any]) -> str | None:
    """The novelty reference of a summary as a reader needs it ("MP-20 (≤ 20 atoms)"): from its
    protocol's record, else its provenance's reference id; None when neither names one."""
    protocol, _ = summary_protocol(summary)
    if protocol is not None:
        return reference_label(protocol.record)
    ref = (summary.get("provenance") or {}).get("reference")
    ref_id = ref.get("id") if isinstance(ref, dict) else ref
    return reference_label({"reference": {"id": ref_id}}) if ref_id else None


def _label(m: Measure, reference: str | None) -> str:
    """The metric's label on the model page, with its caveat ("SUN ↑ (upper bound)",
    "Novel w.r.t. MP-20 (≤ 20 atoms) ↑")."""
    if m.caveat is not None and m.caveat.names_reference:
        return f"{m.label} {m.caveat.text(reference)[0]} {m.arrow}".strip()
    if m.caveat is not None:
        return f"{m.label} {m.arrow} ({m.caveat.text(reference)[0]})".replace("  ", " ")
    return f"{m.label} {m.arrow}".strip()


def sparse_counts(df: pd.DataFrame | None) -> tuple[int, int] | None:
    """(structures flagged ``stability_sparse_chemsys``, structures with a known flag), None
    when the per-structure table has no such flag (the sun family did not run)."""
    if df is None or SPARSE_CHEMSYS.name not in df.columns:
        return None
    flags = df[SPARSE_CHEMSYS.name].dropna()
    return int(flags.astype(bool).sum()), len(flags)


def metrics_frame(summary: dict[str, Any], df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every metric of a summary: one row per measure, with its reason when absent; caveats in
    the labels; after the stability metrics, how many structures lie in a sparse chemical
    system of the reference hull (from the per-structure table ``df``, when given)."""
    metrics = summary.get("metrics") or {}
    missing = summary.get("missing") or {}
    flat = upgrade_row({f"{fam}.{k}": v for fam, d in metrics.items() if isinstance(d, dict)
                        for k, v in d.items() if not isinstance(v, (dict, list))})
    unc = (summary.get("provenance") or {}).get("uncertainty") or {}
    level = f"{100 * float(unc['level']):.0f} %" if isinstance(unc.get("level"), (int, float)) else "95 %"
    reference = summary_reference(summary)
    sparse = sparse_counts(df)
    n_sub = summary.get("n_submitted")
    rows: list[dict[str, str]] = []
    for m in catalogue(flat):
        why = (missing.get(m.family) or {}) if isinstance(missing.get(m.family), dict) else {}
        if m.counted:
            c = {r: flat.get(col) for r, col in m.columns.items()}
            rows.append({"Family": m.family, "Metric": _label(m, reference),
                         "Value": _num(c.get("count"), count=True),
                         "% of submitted": _num(c.get("frac_submitted"), True),
                         f"{level} CI (of submitted)": _ci(summary, m.family, f"{m.name}_frac_submitted"),
                         "% of valid": _num(c.get("frac_valid"), True),
                         "Missing because": why.get(m.name) or why.get(f"{m.name}_count") or ""})
        else:
            v = flat.get(m.columns["value"])
            label = Measure.header(m, reference=reference) if m.fraction else _label(m, reference)
            rows.append({"Family": m.family, "Metric": label, "Value": _num(v, m.fraction, m.unit),
                         "% of submitted": "", f"{level} CI (of submitted)": "", "% of valid": "",
                         "Missing because": why.get(m.name, "") if v is None else ""})
    stability = [i for i, r in enumerate(rows) if r["Family"] in ("stability", "stability_unrelaxed")]
    if sparse is not None and stability:  # next to the stability numbers it qualifies
        rows.insert(stability[-1] + 1, {
            "Family": "stability", "Metric": "In a sparse chemical system of the reference hull "
            f"(of {sparse[1]} with a known flag; {SPARSE_CHEMSYS.name})", "Value": _num(sparse[0], count=True),
            "% of submitted": _num(sparse[0] / n_sub, True) if isinstance(n_sub, int) and n_sub else "—",
            f"{level} CI (of submitted)": "", "% of valid": "", "Missing because": ""})
    return pd.DataFrame(rows, columns=["Family", "Metric", "Value", "% of submitted",
                                       f"{level} CI (of submitted)", "% of valid", "Missing because"])


def caveats_markdown(summary: dict[str, Any], df: pd.DataFrame | None = None) -> str:
    """The caveats of this submission's metrics (upper bounds, the novelty reference) and the
    count of its structures in a sparse chemical system of the reference hull."""
    metrics = summary.get("metrics") or {}
    flat = {f"{fam}.{k}": v for fam, d in metrics.items() if isinstance(d, dict) for k, v in d.items()}
    text = caveat_markdown(catalogue(upgrade_row(flat)), summary_reference(summary))
    sparse = sparse_counts(df)
    if sparse is not None:
        text += (f"\n\n**Sparse reference hull:** {sparse[0]} of {sparse[1]} structures with a known flag lie in "
                 "a chemical system where the reference hull holds fewer compositions than elements + 1, so a "
                 f"negative formation energy looks stable there (`{SPARSE_CHEMSYS.name}`, flagged on each "
                 "candidate below).")
    return text


def reference_markdown(summary: dict[str, Any]) -> str:
    """What Novel, SUN and MSUN mean for this submission: the reference and its coverage."""
    ref = (summary.get("provenance") or {}).get("reference") or {}
    ref = ref if isinstance(ref, dict) else {"id": ref}
    raw = ref.get("coverage")
    cov: dict[str, Any] = raw if isinstance(raw, dict) else {}
    sentence = coverage_sentence(ref.get("id") or ref.get("name"), cov.get("description"),
                                   cov.get("n_structures"), cov.get("max_sites"))
    unc = (summary.get("provenance") or {}).get("uncertainty") or {}
    ci = (f"Confidence intervals: {md_text(unc.get('method') or 'bootstrap')}, {unc.get('n_resamples')} "
          f"resamples, seed {unc.get('seed')}." if unc else
          "No confidence intervals: this submission was evaluated before the evaluator computed them.")
    return (f"**Novel, SUN and MSUN depend on the reference:** {md_text(sentence)}. Candidates below are "
            f"flagged when larger than any reference cell or in a sparse chemical system. {ci}")


def meta_markdown(job_id: str, meta: dict[str, Any] | None, summary: dict[str, Any] | None) -> str:
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


def budget_markdown(summary: dict[str, Any], df: pd.DataFrame | None) -> str:
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
