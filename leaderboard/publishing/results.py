"""Published results: per-submission files and the leaderboard table, as the app reads them.

In the results store (``store.results_store``: the public dataset, or the store itself in
the single-store layout; paths from ``leaderboard.store.layout``, layout of the dataset in
``leaderboard.publishing.dataset``):

``results/<id>/summary.json``        the evaluator's summary plus a ``leaderboard``
                                     block (submission id, metadata, attempt, worker)
``results/<id>/structures.parquet``  the per-structure table (one row per submitted
                                     structure, after ``submission_id`` and ``protocol``)
``results/leaderboard.parquet``      one row per FINISHED, non-HIDDEN submission:
                                     metadata columns, ``protocol``, counts, the summary's
                                     ``schema_version`` and every metric as
                                     ``"<block>.<name>"``
``README.md``                        the dataset card: ``datasets.load_dataset(<store>,
                                     "leaderboard")`` / ``"structures"``

With two stores, the requests store keeps its own copy of each finished submission's
summary and table under the same ``results/<id>/`` paths (the record the public files
are rebuilt from). Reading checks each summary's (and row's) ``schema_version``: one this
code does not know is refused (logged, left out of the table, named in the table's
``attrs["refused"]``) without stopping the others; rows of older summaries are upgraded
(``evaluator.summary.upgrade_row``). Publishing (``publish``, ``sync_leaderboard``) is
``leaderboard.publishing.dataset``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from evaluator.summary import UnsupportedSchema, upgrade_row
from leaderboard.publishing.dataset import own_columns, publish, sync_leaderboard
from leaderboard.jobs.queue import FINISHED, Job, list_jobs
from leaderboard.publishing.rows import (COUNT_FIELDS, META_FIELDS, flatten_metrics, frame_to_parquet, is_null,
                                         read_frame, records, refusal, rows_to_frame, summary_row)
from leaderboard.store import Store
from leaderboard.store.layout import (LEADERBOARD_PATH, RESULTS_DIR, SUMMARY_FILE, TABLE_FILE, summary_path,
                                      table_path)
from leaderboard.publishing.structures_schema import KEY_COLUMNS
from leaderboard.intake.submission_meta import load_meta

log = logging.getLogger(__name__)
__all__ = ["COUNT_FIELDS", "LEADERBOARD_PATH", "META_FIELDS", "RESULTS_DIR", "SUMMARY_FILE", "TABLE_FILE",
           "UnsupportedSchema", "download_paths", "flatten_metrics", "for_display", "frame_to_parquet",
           "leaderboard_etag", "load_results_table", "load_structures", "load_summary", "publish",
           "rows_to_frame", "summary_path", "summary_row", "sync_leaderboard", "table_path"]


# ------------------------------------------------------------------ reading
def load_summary(store: Store, job_id: str) -> dict[str, Any] | None:
    """The published summary.json of a submission (from the results store; with two stores,
    the requests store's copy when the public one is not there yet), or None."""
    summary = store.results_store.read_json(summary_path(job_id))[0]
    if summary is None and store.results_store is not store:
        summary = store.read_json(summary_path(job_id))[0]
    return summary


def load_structures(store: Store, job_id: str) -> pd.DataFrame | None:
    """The per-structure table of a submission as the evaluator wrote it, or None. With
    two stores that is the requests store's copy; in one store, the published table less
    its ``submission_id``/``protocol`` columns and the columns only other submissions have."""
    if store.results_store is not store:
        raw = read_frame(store.read_bytes(table_path(job_id)))
        if raw is not None:
            return raw
    frame = read_frame(store.results_store.read_bytes(table_path(job_id)))
    if frame is None:
        return None
    own = own_columns(store.results_store, job_id)
    drop = [c for c in frame.columns if c in KEY_COLUMNS or (own is not None and c not in own)]
    return frame.drop(columns=drop)


def download_paths(store: Store, job_id: str) -> dict[str, Path]:
    """Local files for download buttons: {"summary.json": Path, "structures.parquet": Path}
    (those that exist; the published files)."""
    out = {}
    for name, path in ((SUMMARY_FILE, summary_path(job_id)), (TABLE_FILE, table_path(job_id))):
        local = store.results_store.local_path(path)
        if local is not None:
            out[name] = local
    return out


def leaderboard_etag(store: Store) -> str | None:
    """A cheap token that changes when the leaderboard table changes (for caches)."""
    return store.results_store.etag(LEADERBOARD_PATH)


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
    rows: dict[str, Mapping[str, Any]] = {}
    refused: dict[str, str] = {}
    kept = 0
    if table is not None and "submission_id" in table:
        for rec in records(table):
            if rec["submission_id"] in finished and not is_null(rec.get("protocol_source")):
                # (a row written before protocols existed is rebuilt from its summary below)
                kept += 1
                why = refusal(rec)
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
    out = rows_to_frame([upgrade_row(r) for r in records(table)]) if len(table) else table
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
    table = read_frame(store.results_store.read_bytes(LEADERBOARD_PATH))
    if not reconcile:
        refused: dict[str, str] = {}
        keep = []
        for rec in ([] if table is None else records(table)):
            why = refusal(rec)
            if why is None:
                keep.append(rec)
            else:
                refused[str(rec.get("submission_id"))] = why
                log.warning("results of %s left out of the leaderboard: %s", rec.get("submission_id"), why)
        return for_display(rows_to_frame(keep), refused)
    shown, _, refused = _reconcile(store, table, list_jobs(store), display=True)
    return for_display(shown, refused)


