"""Leaderboard rows: one finished submission's summary as a flat row, and frames of rows
that parquet (and ``datasets``) read back with one type per column.

Pure functions of their inputs (the store is not touched), shared by the reading side
(``leaderboard.publishing.results``) and the publishing side (``leaderboard.publishing.dataset``).
"""

from __future__ import annotations

import io
import json
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from evaluator.protocol import summary_protocol
from evaluator.summary import UnsupportedSchema, check_schema
from leaderboard.jobs.queue import Job

# Metadata copied from meta.json into each leaderboard row, in this order.
META_FIELDS = ("model_name", "model_version", "organisation", "submitter", "training_set",
               "training_set_other", "task", "condition", "relaxed_before_submission",
               "relaxation_method", "paper_url", "code_url", "checkpoint_url", "license",
               "file_sha256", "notes")
COUNT_FIELDS = ("n_submitted", "n_parsed", "n_valid", "n_evaluated")
__all__ = ["COUNT_FIELDS", "META_FIELDS", "UnsupportedSchema", "flatten_metrics", "frame_to_parquet",
           "is_null", "protocol_of", "read_frame", "refusal", "rows_to_frame", "summary_row"]


# ------------------------------------------------------------------ rows
def flatten_metrics(metrics: dict, prefix: str = "") -> dict:
    """{"validity": {"valid_frac": 0.9}} -> {"validity.valid_frac": 0.9}; nested dicts
    are joined with dots, lists become JSON strings."""
    out = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def protocol_of(summary: Mapping[str, Any]) -> str | None:
    """The id of the evaluation protocol a summary was produced under (its ``protocol``
    block, or derived from its provenance: ``evaluator.protocol.summary_protocol``), or
    None when it cannot be told."""
    protocol, _ = summary_protocol(dict(summary))
    return protocol.id if protocol else None


def summary_row(job: Job, meta: dict | None, summary: dict) -> dict:
    """The leaderboard row of one finished submission; raises ``UnsupportedSchema`` for a
    summary whose ``schema_version`` this code does not know. It names the protocol
    (``protocol_id``, ``protocol_label``, ``protocol_source``: summary, derived or unknown;
    ``protocol_record`` as JSON) and, beside it, the device and engine."""
    version = check_schema(summary)
    meta = meta or {}
    prov = summary.get("provenance") or {}
    config = prov.get("config") or {}
    reference = prov.get("reference")
    row = {"submission_id": job.id}
    row.update({f: meta.get(f) for f in META_FIELDS})
    row["n_structures_declared"] = meta.get("n_structures")
    row.update({"submitted_at": job.created_at, "finished_at": job.finished_at,
                "attempts": job.attempts})
    row.update({f: summary.get(f) for f in COUNT_FIELDS})
    row.update({
        "schema_version": version,
        "provenance": "leaderboard worker",
        "evaluator_version": prov.get("evaluator_version"),
        "families": ",".join(prov.get("families") or []),
        "reference": reference.get("id") if isinstance(reference, dict) else reference,
        "mlip": config.get("mlip"),
        "mlip_model": config.get("mlip_model"),
        "rescore_of": job.source or None,
    })
    # The protocol (evaluator.protocol): the ranking never mixes two; "unknown" is never ranked
    # with a known one. Device, engine and batch size are recorded beside it.
    protocol, source = summary_protocol(summary)
    execution = summary.get("execution") if isinstance(summary.get("execution"), dict) else {}
    relax = ((prov.get("family") or {}).get("stability") or {}).get("relaxation") or {}
    row.update({
        "protocol_id": protocol.id if protocol else None,
        "protocol_label": protocol.label if protocol else "protocol unknown",
        "protocol_source": source,
        "protocol_record": json.dumps(protocol.record, sort_keys=True) if protocol else None,
        "device": execution.get("device") or relax.get("device"),
        "engine": execution.get("engine") or relax.get("engine"),
        "relax_mode": execution.get("relax_mode") or relax.get("mode"),
    })
    coverage = reference.get("coverage") if isinstance(reference, dict) else None
    coverage = coverage if isinstance(coverage, dict) else {}
    row.update({  # what the reference covers (novelty, SUN/MSUN are relative to it)
        "reference_coverage": coverage.get("description"),
        "reference_n_structures": coverage.get("n_structures"),
        "reference_max_sites": coverage.get("max_sites"),
    })
    unc = prov.get("uncertainty") if isinstance(prov.get("uncertainty"), dict) else {}
    row.update({"uncertainty_method": unc.get("method"), "uncertainty_n_resamples": unc.get("n_resamples"),
                "uncertainty_seed": unc.get("seed"), "uncertainty_level": unc.get("level")})
    row.update(flatten_metrics(summary.get("metrics") or {}))
    # Confidence intervals of the rates: "uncertainty.<family>.<metric>.lo"/".hi".
    row.update(flatten_metrics(summary.get("uncertainty") or {}, "uncertainty."))
    return row


def is_null(v) -> bool:
    if v is None or isinstance(v, (str, bytes, list, dict, tuple)):
        return v is None
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not _is_bool(v)


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """A parquet-safe DataFrame: each column all-bool, all-int, all-float or all-string
    (nulls kept; dicts/lists as JSON strings)."""
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame({"submission_id": pd.Series([], dtype="object")})
    for col in df.columns:
        raw = list(df[col])
        values = [v for v in raw if not is_null(v)]
        if not values:
            df[col] = pd.Series([None] * len(raw), index=df.index, dtype="object")
        elif all(_is_bool(v) for v in values):
            df[col] = pd.array([None if is_null(v) else bool(v) for v in raw], dtype="boolean")
        elif all(isinstance(v, numbers.Integral) and not _is_bool(v) for v in values):
            df[col] = pd.array([None if is_null(v) else int(v) for v in raw], dtype="Int64")
        elif all(_is_number(v) for v in values):
            df[col] = [float("nan") if is_null(v) else float(v) for v in raw]
            df[col] = df[col].astype("float64")
        else:
            df[col] = pd.Series([None if is_null(v) else v if isinstance(v, str)
                                 else json.dumps(v, default=str) for v in raw],
                                index=df.index, dtype="object")
    return df


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def read_frame(data: bytes | None) -> pd.DataFrame | None:
    return None if data is None else pd.read_parquet(io.BytesIO(data))


def refusal(row: Mapping[str, Any]) -> str | None:
    """Why a stored leaderboard row cannot be read by this code (its summary's schema
    version is unknown), or None. Rows without ``schema_version`` are version 1."""
    v = row.get("schema_version")
    if is_null(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    try:
        check_schema({"schema_version": v})
    except UnsupportedSchema as exc:
        return str(exc)
    return None


