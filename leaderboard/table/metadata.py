"""The metadata columns of a results table: their aliases and labels, who evaluated a
submission, and what its reference covers (novelty, SUN and MSUN depend on it)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# Canonical metadata columns and the names the store may use for them.
META_ALIASES: dict[str, tuple[str, ...]] = {
    "submission_id": ("submission_id", "id", "job_id"),
    "model": ("model", "model_name", "meta.model"),
    "model_version": ("model_version",),
    "training_set": ("training_set", "train_set", "training_data", "meta.training_set"),
    "task": ("task", "meta.task"),
    "n_structures": ("n_submitted", "n_structures", "summary.n_submitted"),
    "n_valid": ("n_valid", "summary.n_valid"),
    "provenance": ("provenance", "evaluated_by", "source"),
    "relaxed": ("relaxed_before_submission", "relaxed", "pre_relaxed", "meta.relaxed"),
    "submitter": ("submitter", "user"),
    "finished_at": ("finished_at", "finished", "date"),
    "organisation": ("organisation", "organization"),
    "mlip": ("mlip",),
    "reference": ("reference",),
    "evaluator_version": ("evaluator_version",),
    "protocol": ("protocol_label",),
    "protocol_id": ("protocol_id",),
}
META_LABELS = {
    "model": "Model", "training_set": "Training set", "task": "Task",
    "n_structures": "N structures", "n_valid": "N valid", "provenance": "Evaluated by",
    "relaxed": "Pre-relaxed", "submitter": "Submitter", "finished_at": "Finished",
    "submission_id": "Submission", "organisation": "Organisation", "mlip": "MLIP", "reference": "Reference",
    "protocol": "Protocol", "protocol_id": "Protocol id",
}
COMPACT_META = ("model", "training_set", "n_structures", "provenance", "relaxed")
FULL_META = ("model", "organisation", "training_set", "task", "n_structures", "n_valid", "provenance",
             "relaxed", "mlip", "reference", "protocol", "protocol_id", "submitter", "finished_at", "submission_id")
EVALUATOR_NAME = "leaderboard evaluator"
NOVELTY_KEYS = ("novelty.novel", "sun.sun", "sun.msun", "sun.sun_plus_msun")  # measures relative to the reference


def meta_column(df: pd.DataFrame, canonical: str) -> str | None:
    """The column of ``df`` holding metadata field ``canonical`` (see META_ALIASES)."""
    for alias in META_ALIASES.get(canonical, (canonical,)):
        if alias in df.columns:
            return alias
    return None


def isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def provenance_label(value: Any, version: Any = None) -> str:
    """Who evaluated a submission, named the same way in every view ("Evaluated by"):
    "leaderboard evaluator <version>" for results of the leaderboard's worker,
    "self-reported" for submitted metrics."""
    v = str(value or "").lower()
    if "worker" in v or v in ("evaluated", "us", "leaderboard") or v.startswith(EVALUATOR_NAME):
        ver = str(version).strip() if version is not None and not isnan(version) else ""
        return f"{EVALUATOR_NAME} {ver}".strip() if ver else f"{EVALUATOR_NAME} (version not recorded)"
    if "self" in v:
        return "self-reported"
    return str(value) if value is not None else "—"


def evaluated_by(df: pd.DataFrame) -> pd.Series:
    """The "Evaluated by" label of every row of a results table (see provenance_label)."""
    col, ver = meta_column(df, "provenance"), meta_column(df, "evaluator_version")
    if col is None:
        return pd.Series("—", index=df.index)
    versions = df[ver] if ver else pd.Series(None, index=df.index)
    return pd.Series([provenance_label(p, v) for p, v in zip(df[col], versions)], index=df.index)


def coverage_sentence(reference: Any, description: Any, n_structures: Any = None,
                      max_sites: Any = None) -> str:
    """What "novel" means against one reference, from provenance.reference.coverage."""
    ref = str(reference) if reference not in (None, "") and not isnan(reference) else "the reference"
    if not isinstance(description, str) or not description.strip():
        return (f"novel = not matched in {ref}; its coverage was not recorded by the evaluator that "
                "produced these results, so a larger-than-reference structure cannot be told apart")
    extra = []
    if n_structures is not None and not isnan(n_structures):
        extra.append(f"{int(n_structures):,} structures")
    if max_sites is not None and not isnan(max_sites):
        extra.append(f"≤ {int(max_sites)} sites per cell")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"novel = not matched in {ref}{tail}: {description.strip()}"


def reference_note(results: pd.DataFrame) -> str:
    """Markdown stating the reference(s) behind Novel, SUN and MSUN for the rows of ``results``."""
    if results.empty:
        return ""
    ref = meta_column(results, "reference")
    seen: list[str] = []
    cols = [c for c in (ref, "reference_coverage", "reference_n_structures", "reference_max_sites")
            if c is not None and c in results.columns]
    # one row per distinct reference (thousands of submissions share a handful), in table order
    distinct = results[cols].astype(str).drop_duplicates().index if cols else results.index[:1]
    for _, row in results.loc[distinct].iterrows():
        text = coverage_sentence(row.get(ref) if ref else None, row.get("reference_coverage"),
                                 row.get("reference_n_structures"), row.get("reference_max_sites"))
        if text not in seen:
            seen.append(text)
    return ("**Novel, SUN and MSUN depend on the reference.** " + " · ".join(seen)
            + ". The model page flags structures larger than any reference cell and chemical systems "
              "with few reference entries.")
