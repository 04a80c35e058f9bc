"""Published results: per-submission files and the leaderboard table.

``results/<id>/summary.json``        the evaluator's summary plus a ``leaderboard``
                                     block (submission id, metadata, attempt, worker)
``results/<id>/structures.parquet``  the per-structure table (one row per submitted structure)
``results/leaderboard.parquet``      one row per FINISHED, non-HIDDEN submission:
                                     metadata columns, counts, the summary's
                                     ``schema_version`` and every metric as
                                     ``"<block>.<name>"``; readable with
                                     ``datasets.load_dataset("parquet", data_files=...)``

(paths from ``leaderboard.store.layout``). Reading checks each summary's (and row's)
``schema_version``: one this code does not know is refused (logged, left out of the table,
named in the table's ``attrs["refused"]``) without stopping the others; rows of older
summaries are upgraded (``evaluator.summary.upgrade_row``).
"""

from __future__ import annotations

import io
import json
import logging
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator.protocol import summary_protocol
from evaluator.summary import UnsupportedSchema, check_schema, upgrade_row
from leaderboard.queue import FINISHED, Job, finish, list_jobs
from leaderboard.store import ABSENT, PreconditionFailed, Store, dumps
from leaderboard.store.layout import (LEADERBOARD_PATH, RESULTS_DIR, SUMMARY_FILE, TABLE_FILE, summary_path,
                                      table_path)
from leaderboard.submission_meta import load_meta

log = logging.getLogger(__name__)

# Metadata copied from meta.json into each leaderboard row, in this order.
META_FIELDS = ("model_name", "model_version", "organisation", "submitter", "training_set",
               "training_set_other", "task", "condition", "relaxed_before_submission",
               "relaxation_method", "paper_url", "code_url", "checkpoint_url", "license",
               "file_sha256", "notes")
COUNT_FIELDS = ("n_submitted", "n_parsed", "n_valid", "n_evaluated")
__all__ = ["LEADERBOARD_PATH", "RESULTS_DIR", "SUMMARY_FILE", "TABLE_FILE", "UnsupportedSchema",
           "download_paths", "flatten_metrics", "for_display", "leaderboard_etag", "load_results_table",
           "load_structures", "load_summary", "publish", "rows_to_frame", "summary_path", "summary_row",
           "sync_leaderboard", "table_path"]


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


def _is_null(v) -> bool:
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
        values = [v for v in raw if not _is_null(v)]
        if not values:
            df[col] = pd.Series([None] * len(raw), index=df.index, dtype="object")
        elif all(_is_bool(v) for v in values):
            df[col] = pd.array([None if _is_null(v) else bool(v) for v in raw], dtype="boolean")
        elif all(isinstance(v, numbers.Integral) and not _is_bool(v) for v in values):
            df[col] = pd.array([None if _is_null(v) else int(v) for v in raw], dtype="Int64")
        elif all(_is_number(v) for v in values):
            df[col] = [float("nan") if _is_null(v) else float(v) for v in raw]
            df[col] = df[col].astype("float64")
        else:
            df[col] = pd.Series([None if _is_null(v) else v if isinstance(v, str)
                                 else json.dumps(v, default=str) for v in raw],
                                index=df.index, dtype="object")
    return df


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _read_frame(data: bytes | None) -> pd.DataFrame | None:
    return None if data is None else pd.read_parquet(io.BytesIO(data))


# ------------------------------------------------------------------ reading
def load_summary(store: Store, job_id: str) -> dict | None:
    """The published summary.json of a submission, or None."""
    return store.read_json(summary_path(job_id))[0]


def load_structures(store: Store, job_id: str) -> pd.DataFrame | None:
    """The published per-structure table of a submission, or None."""
    return _read_frame(store.read_bytes(table_path(job_id)))


def download_paths(store: Store, job_id: str) -> dict[str, Path]:
    """Local files for download buttons: {"summary.json": Path, "structures.parquet": Path}
    (those that exist)."""
    out = {}
    for name, path in ((SUMMARY_FILE, summary_path(job_id)), (TABLE_FILE, table_path(job_id))):
        local = store.local_path(path)
        if local is not None:
            out[name] = local
    return out


def leaderboard_etag(store: Store) -> str | None:
    """A cheap token that changes when the leaderboard table changes (for caches)."""
    return store.etag(LEADERBOARD_PATH)


def _refusal(row: Mapping[str, Any]) -> str | None:
    """Why a stored leaderboard row cannot be read by this code (its summary's schema
    version is unknown), or None. Rows without ``schema_version`` are version 1."""
    v = row.get("schema_version")
    if _is_null(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    try:
        check_schema({"schema_version": v})
    except UnsupportedSchema as exc:
        return str(exc)
    return None


def _reconcile(store: Store, table: pd.DataFrame | None, jobs: list[Job],
               display: bool = False) -> tuple[pd.DataFrame, bool, dict[str, str]]:
    """Rows of exactly the FINISHED jobs: keep stored rows, rebuild missing ones from
    their summaries, drop withdrawn/others. Returns (table, changed, refused).

    refused: {job id: why} for results whose schema version this code does not know; they
    are never rebuilt here. With ``display`` their stored rows are left out of the table too;
    without (the table is written back) those rows are kept as they are, for the code that
    knows their version.
    """
    finished = {j.id: j for j in jobs if j.status == FINISHED}
    rows: dict[str, dict] = {}
    refused: dict[str, str] = {}
    kept = 0
    if table is not None and "submission_id" in table:
        for rec in table.to_dict("records"):
            if rec["submission_id"] in finished and not _is_null(rec.get("protocol_source")):
                # (a row written before protocols existed is rebuilt from its summary below)
                kept += 1
                why = _refusal(rec)
                if why is not None and display:
                    refused[rec["submission_id"]] = why
                else:
                    rows[rec["submission_id"]] = rec
    changed = table is None or kept != len(table)
    for job_id, job in finished.items():
        if job_id in rows or job_id in refused:
            continue
        summary = load_summary(store, job_id)
        if summary is None:
            continue  # finished without a summary should not happen; never invent a row
        try:
            rows[job_id] = summary_row(job, load_meta(store, job_id), summary)
        except UnsupportedSchema as exc:
            refused[job_id] = str(exc)
            continue
        changed = True
    for job_id, why in refused.items():
        log.warning("results of %s left out of the leaderboard: %s", job_id, why)
    ordered = [rows[j] for j in sorted(rows, key=lambda i: (finished[i].finished_at or "", i))]
    return rows_to_frame(ordered), changed, refused


def for_display(table: pd.DataFrame, refused: dict[str, str] | None = None) -> pd.DataFrame:
    """A stored results table as the UI reads it: rows of older summaries upgraded
    (``evaluator.summary.upgrade_row``), ``attrs["refused"]`` = {job id: why not shown}."""
    out = rows_to_frame([upgrade_row(r) for r in table.to_dict("records")]) if len(table) else table
    out.attrs["refused"] = dict(refused or {})
    return out


def load_results_table(store: Store, reconcile: bool = True) -> pd.DataFrame:
    """One row per FINISHED, non-HIDDEN submission (see module docstring), for display.

    Reads ``results/leaderboard.parquet``; with ``reconcile`` also checks it
    against the queue (rows of withdrawn jobs dropped, any missing row rebuilt
    from its summary), without writing. Results whose schema version this code does
    not know are left out (logged) and listed in ``attrs["refused"]`` ({job id: why});
    rows of older summaries are upgraded (``evaluator.summary.upgrade_row``).
    """
    table = _read_frame(store.read_bytes(LEADERBOARD_PATH))
    if not reconcile:
        refused: dict[str, str] = {}
        keep = []
        for rec in ([] if table is None else table.to_dict("records")):
            why = _refusal(rec)
            if why is None:
                keep.append(rec)
            else:
                refused[str(rec.get("submission_id"))] = why
                log.warning("results of %s left out of the leaderboard: %s", rec.get("submission_id"), why)
        return for_display(rows_to_frame(keep), refused)
    shown, _, refused = _reconcile(store, table, list_jobs(store), display=True)
    return for_display(shown, refused)


def sync_leaderboard(store: Store, retries: int = 10) -> pd.DataFrame:
    """Rewrite ``results/leaderboard.parquet`` to match the queue (compare-and-swap)."""
    for _ in range(retries):
        data, tag = store.read(LEADERBOARD_PATH)
        table, changed, _ = _reconcile(store, _read_frame(data), list_jobs(store))
        if not changed:
            return table
        try:
            store.write_bytes(LEADERBOARD_PATH, frame_to_parquet(table), if_match=tag or ABSENT,
                              message="sync leaderboard table")
            return table
        except PreconditionFailed:
            continue
    raise RuntimeError("could not update the leaderboard table: too much contention")


# ------------------------------------------------------------------ publishing
def publish(store: Store, job: Job, summary: dict, table_bytes: bytes, worker_id: str,
            meta: dict | None = None, progress: dict | None = None, stage_rates: dict | None = None) -> Job:
    """Publish a finished evaluation in one commit: summary, per-structure table,
    the job's FINISHED status and its leaderboard row.

    Only the current lease owner can publish (else LeaseLost and nothing is
    written); results are keyed by submission id, so a re-publish replaces,
    never duplicates.
    """
    meta = meta if meta is not None else load_meta(store, job.id)
    summary = dict(summary)
    state: dict = {}

    def writes(new: Job) -> dict[str, bytes]:
        summary["leaderboard"] = {"submission_id": new.id, "attempt": new.attempts, "worker": worker_id,
                                  "published_at": new.finished_at, "metadata": meta,
                                  "protocol_queued": new.protocol or None, "rescore_of": new.source or None}
        data, tag = store.read(LEADERBOARD_PATH)
        state["tag"] = tag or ABSENT
        current = _read_frame(data)
        rows = [] if current is None else [r for r in current.to_dict("records")
                                            if r.get("submission_id") != new.id]
        rows.append(summary_row(new, meta, summary))
        return {summary_path(new.id): dumps(summary), table_path(new.id): table_bytes,
                LEADERBOARD_PATH: frame_to_parquet(rows_to_frame(rows))}

    return finish(store, job.id, worker_id, extra_writes=writes,
                  extra_if_match=lambda new: {LEADERBOARD_PATH: state["tag"]}, progress=progress,
                  stage_rates=stage_rates)
