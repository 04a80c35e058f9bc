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

from evaluator.summary import UnsupportedSchema
from leaderboard.jobs.queue import FINISHED, get_job
from leaderboard.publishing.dataset import own_columns, publish, sync_leaderboard, visible_ids
from leaderboard.publishing.frames import (frame_to_parquet, is_null, native, read_frame, read_rows, rows_to_frame,
                                           update_frame, upgrade_frame)
from leaderboard.publishing.rows import (COUNT_FIELDS, META_FIELDS, flatten_metrics, kept_as_stored, refusal,
                                         summary_row)
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


def _refused(table: pd.DataFrame) -> dict[str, str]:
    """{submission id: why} for the stored rows whose schema version this code does not know
    (``refusal``, asked once per version present)."""
    if "schema_version" not in table or table.empty:
        return {}
    versions = table["schema_version"]
    why = {v: refusal({"schema_version": native(v)}) for v in versions.dropna().unique()}
    return {str(sid): w for sid, v in zip(table["submission_id"], versions)
            if not is_null(v) and (w := why.get(v)) is not None}


def _reconcile(store: Store, table: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows of exactly the FINISHED jobs, for display: stored rows kept, missing ones rebuilt
    from their summaries, withdrawn/other ones dropped. Returns (table, refused).

    The FINISHED set comes from the queue index (``visible_ids``); only the jobs whose row is
    missing are read. refused: {job id: why} for results whose schema version this code
    does not know; their stored rows are left out and never rebuilt here."""
    visible = visible_ids(store)
    stored = table if table is not None and "submission_id" in table else rows_to_frame([])
    refused = {k: v for k, v in _refused(stored).items() if k in visible}
    keep = (kept_as_stored(stored) & visible) - set(refused)
    rebuilt: list[Mapping[str, Any]] = []
    for job_id in sorted(visible - keep - set(refused)):
        job = get_job(store, job_id)
        summary = load_summary(store, job_id) if job is not None and job.status == FINISHED else None
        if job is None or summary is None:
            continue  # finished without a summary should not happen; never invent a row
        try:
            rebuilt.append(summary_row(job, load_meta(store, job_id), summary))
        except UnsupportedSchema as exc:
            refused[job_id] = str(exc)
    for job_id, why in refused.items():
        log.warning("results of %s left out of the leaderboard: %s", job_id, why)
    return update_frame(stored, keep, rebuilt), refused


def for_display(table: pd.DataFrame, refused: dict[str, str] | None = None) -> pd.DataFrame:
    """A stored results table as the UI reads it: rows of older summaries upgraded
    (``evaluator.summary.upgrade_row``, made on whole columns: ``frames.upgrade_frame``),
    ``attrs["refused"]`` = {job id: why not shown}."""
    out = upgrade_frame(table) if len(table) else table.copy()
    out.attrs["refused"] = dict(refused or {})
    return out


def load_results_table(store: Store, reconcile: bool = True) -> pd.DataFrame:
    """One row per FINISHED, non-HIDDEN submission (see module docstring), for display.

    Reads ``results/leaderboard.parquet``; with ``reconcile`` also checks it
    against the queue (rows of withdrawn jobs dropped, any missing row rebuilt
    from its summary), without writing. Results whose schema version this code does
    not know are left out (logged) and listed in ``attrs["refused"]`` ({job id: why});
    rows of older summaries are upgraded (``evaluator.summary.upgrade_row``). Whole
    columns at a time (``load_s`` in ``bench/leaderboard_scale.py`` times it).
    """
    table = read_rows(store.results_store.read_bytes(LEADERBOARD_PATH))
    if reconcile:
        shown, refused = _reconcile(store, table)
        return for_display(shown, refused)
    stored = table if table is not None and "submission_id" in table else rows_to_frame([])
    refused = _refused(stored)
    for job_id, why in refused.items():
        log.warning("results of %s left out of the leaderboard: %s", job_id, why)
    keep = set(map(str, stored["submission_id"])) - set(refused)
    return for_display(update_frame(stored, keep, []), refused)
