"""Publishing: the results store as a Hugging Face dataset anyone can ``load_dataset``.

Layout of the results store (paths from ``leaderboard.store.layout``)::

    README.md                          dataset card: YAML ``configs:`` + every column documented
    results/leaderboard.parquet        config "leaderboard": one row per visible submission
    results/<id>/structures.parquet    config "structures": that submission's per-structure rows,
                                       after ``submission_id`` and ``protocol_id`` columns, conformed
                                       to the schema all published tables share
    results/<id>/summary.json          the evaluator's summary (+ its ``leaderboard`` block)
    results/published.json             what is shown: ids (protocol, own columns), a revision
                                       bumped by every change, the tables' common schema

``datasets.load_dataset(<repo id or folder>, "leaderboard")`` and ``(..., "structures")``
read it (``leaderboard.publishing.structures_schema`` keeps the tables readable as one).

What is visible is decided by the requests store: exactly the FINISHED submissions.
:func:`sync_public` makes the results store show that set in one compare-and-swap commit
(on ``published.json``): it publishes finished submissions missing from it (from the
requests store's copy of their summary and table, written with the FINISHED status),
removes withdrawn or otherwise hidden ones (rows, summary and table: a hidden
submission's files are never left in the public store; the requests store keeps its
record), and rewrites the card. It reads ``published.json`` *before* the queue, and a
withdrawal always changes ``published.json``, so a sync racing a withdrawal either sees
the withdrawal or loses its compare-and-swap and looks again.

In the single-store layout (``store.results_store is store``) the store holds both sides:
publishing writes the public files, the FINISHED status and the card in one commit, and
a withdrawal keeps the submission's files (they are its record) but drops it from the
table, the card and the ``structures`` config.

``python -m leaderboard.publishing.dataset sync [--store URI] [--results-store URI]`` runs
:func:`sync_public` (e.g. after moving a single store's requests into ``state/requests``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from evaluator.protocol import summary_protocol
from evaluator.summary import UnsupportedSchema, check_schema
from leaderboard.publishing.card import render_card
from leaderboard.publishing.summary_file import LEADERBOARD_BLOCK, SummaryFile
from leaderboard.jobs import queue_index
from leaderboard.jobs.queue import FINISHED, Job, Progress, finish, get_job, list_jobs
from leaderboard.publishing.frames import frame_to_parquet, read_rows, update_frame
from leaderboard.publishing.rows import kept_as_stored, protocol_of, summary_row
from leaderboard.store import ABSENT, PreconditionFailed, Store, dumps, open_store
from leaderboard.store.layout import (CARD_PATH, LEADERBOARD_PATH, PUBLISHED_PATH, summary_path,
                                      table_path)
from leaderboard.publishing.structures_schema import (KEY_COLUMNS, conform, decode_schema, encode_schema,
                                           public_table, read_parquet, to_parquet, union)
from leaderboard.intake.submission_meta import load_meta

log = logging.getLogger("leaderboard.publishing.dataset")
Writes = dict[str, bytes | None]


@dataclass
class Entry:
    """One submission to publish: its FINISHED job, summary file (with the leaderboard block)
    and per-structure table bytes (None or unreadable: published without a table)."""

    job: Job
    summary: SummaryFile
    table: bytes | None


@dataclass
class Plan:
    """The commit that makes the results store match the queue."""

    writes: Writes
    if_match: dict[str, str]
    table: pd.DataFrame
    changed: bool


def _published(results: Store) -> tuple[dict[str, Any], str]:
    doc, tag = results.read_json(PUBLISHED_PATH)
    if not isinstance(doc, dict) or not isinstance(doc.get("submissions"), dict):
        doc = {"revision": 0, "submissions": {}, "structures_schema": None}
    return doc, tag or ABSENT


def own_columns(results: Store, job_id: str) -> list[str] | None:
    """The columns of a published per-structure table that its submission produced
    (the others pad it to the common schema); None when unknown."""
    doc, _ = _published(results)
    cols = (doc["submissions"].get(job_id) or {}).get("columns")
    return list(cols) if isinstance(cols, list) else None


def visible_ids(store: Store) -> set[str]:
    """The submissions the results store must show: the FINISHED ones (from the queue index,
    so no status document is read; by listing where the store has none)."""
    entries, _ = queue_index.read(store)
    if entries is None:
        return {j.id for j in list_jobs(store, (FINISHED,))}
    return set(queue_index.select(entries, (FINISHED,)))


def _entry(store: Store, job: Job) -> Entry | None:
    """A finished submission's entry from the requests store's record of it."""
    data = store.read_bytes(summary_path(job.id))
    if data is None:
        log.error("finished submission %s has no summary in %s: not published", job.id, store.uri)
        return None
    return Entry(job, SummaryFile(data), store.read_bytes(table_path(job.id)))


def _meta_of(summary: Mapping[str, Any]) -> dict[str, Any]:
    block = summary.get(LEADERBOARD_BLOCK)
    meta = block.get("metadata") if isinstance(block, dict) else None
    return meta if isinstance(meta, dict) else {}


def plan(store: Store, extra: Entry | None = None, bump: bool = False) -> Plan:
    """What to commit to ``store.results_store`` so it shows exactly the visible submissions
    (``extra`` counted as one: it is being finished in the same commit)."""
    results = store.results_store
    pub, pub_tag = _published(results)  # read before the queue (see module docstring)
    subs: dict[str, dict[str, Any]] = dict(pub["submissions"])
    visible = visible_ids(store)
    jobs: dict[str, Job | None] = {}

    def job_of(job_id: str) -> Job | None:
        if job_id not in jobs:
            jobs[job_id] = get_job(store, job_id)
        return jobs[job_id]

    if extra is not None:
        visible.add(extra.job.id)
        jobs[extra.job.id] = extra.job
    current = read_rows(results.read_bytes(LEADERBOARD_PATH))
    stored = kept_as_stored(current)
    adds: dict[str, Entry] = {} if extra is None else {extra.job.id: extra}
    for job_id in sorted(visible - set(subs) - set(adds)):
        job = job_of(job_id)
        found = _entry(store, job) if job is not None and job.status == FINISHED else None
        if found is not None:
            adds[job_id] = found
    removed = sorted(set(subs) - set(visible))
    writes: Writes = {}
    keep: set[str] = set()
    rows: dict[str, Mapping[str, Any]] = {}
    for job_id in subs:
        if job_id not in visible or job_id in adds:
            continue
        if job_id in stored:
            keep.add(job_id)
            continue
        summary = results.read_json(summary_path(job_id))[0]
        job = job_of(job_id)
        try:
            if summary is not None and job is not None:
                rows[job_id] = summary_row(job, _meta_of(summary), summary)
        except UnsupportedSchema as exc:
            log.warning("results of %s left out of the leaderboard: %s", job_id, exc)
    for job_id, e in adds.items():
        try:
            values = e.summary.values
            rows[job_id] = summary_row(e.job, _meta_of(values), values)
        except UnsupportedSchema as exc:
            if e is extra:
                raise
            log.warning("results of %s not published: %s", job_id, exc)
            continue
        subs[job_id] = {"protocol": protocol_of(values), "protocol_label": _protocol_label(values),
                        "published_at": e.job.finished_at, "columns": None}
        writes[summary_path(job_id)] = e.summary.data  # the bytes the evaluation wrote (+ our block)
    # per-structure tables: one common schema
    schema = decode_schema(pub.get("structures_schema"))
    tables: dict[str, pa.Table] = {}
    for job_id, e in adds.items():
        if job_id not in subs:
            continue
        t = public_table(e.table, job_id, subs[job_id]["protocol"]) if e.table else None
        if t is None:
            log.warning("submission %s has no readable per-structure table: published without one", job_id)
            if results is not store:
                writes[table_path(job_id)] = None  # no stale table of an earlier publication
            continue
        tables[job_id] = t
        subs[job_id]["columns"] = [c for c in t.column_names if c not in KEY_COLUMNS]
    for job_id in removed:
        del subs[job_id]
        if results is not store:  # the public store keeps nothing of a hidden submission
            writes[summary_path(job_id)] = None
            writes[table_path(job_id)] = None
    new_schema = union(([schema] if schema is not None else []) + [t.schema for t in tables.values()])
    if schema is not None and not new_schema.equals(schema):
        for job_id, info in subs.items():  # widen the tables published before
            if job_id in tables or info.get("columns") is None:
                continue
            data = results.read_bytes(table_path(job_id))
            if data is not None:
                writes[table_path(job_id)] = to_parquet(conform(read_parquet(data), new_schema))
    for job_id, t in tables.items():
        writes[table_path(job_id)] = to_parquet(conform(t, new_schema))
    # the leaderboard table and the card
    frame = update_frame(current, keep, list(rows.values()))  # not rebuilt: O(N) vectorised, O(new) in Python
    order = [str(i) for i in frame["submission_id"]]
    lb_bytes = frame_to_parquet(frame)
    if current is None or not read_rows(lb_bytes).equals(current):
        writes[LEADERBOARD_PATH] = lb_bytes
    has_schema = len(new_schema) > 0
    card = render_card(
        leaderboard=frame,
        structures_files=[table_path(i) for i in order if (subs.get(i) or {}).get("columns") is not None],
        structures_schema=new_schema if has_schema else None,
        protocols=collections.Counter(info.get("protocol") for info in subs.values()),
        protocol_labels={info["protocol"]: info.get("protocol_label") or "" for info in subs.values()
                         if info.get("protocol") is not None},
        name=getattr(results, "repo_id", None) or results.uri, leaderboard_path=LEADERBOARD_PATH).encode()
    if results.read_bytes(CARD_PATH) != card:
        writes[CARD_PATH] = card
    changed = bool(writes) or bump or pub_tag == ABSENT or set(subs) != set(pub["submissions"])
    new_pub = {"revision": int(pub.get("revision") or 0) + (1 if changed else 0), "submissions": subs,
               "structures_schema": encode_schema(new_schema) if has_schema else None}
    if changed:
        writes[PUBLISHED_PATH] = dumps(new_pub)
    return Plan(writes, {PUBLISHED_PATH: pub_tag}, frame, changed)


def _protocol_label(summary: Mapping[str, Any]) -> str | None:
    protocol, _ = summary_protocol(dict(summary))
    return protocol.label if protocol else None


def sync_public(store: Store, bump: bool = False, retries: int = 10) -> pd.DataFrame:
    """Make the results store show exactly the FINISHED submissions (see module docstring);
    ``bump``: commit even when nothing else changes (a withdrawal). Returns the table."""
    results = store.results_store
    for _ in range(retries):
        p = plan(store, bump=bump)
        if not p.changed:
            return p.table
        try:
            results.commit(p.writes, if_match=p.if_match, message="publish results: sync with the queue")
            return p.table
        except PreconditionFailed:
            continue
    raise RuntimeError("could not update the results store: too much contention")


sync_leaderboard = sync_public  # the name earlier versions used


def publish(store: Store, job: Job, summary: SummaryFile | Mapping[str, Any], table_bytes: bytes, worker_id: str,
            meta: dict[str, Any] | None = None, progress: Progress | None = None,
            stage_rates: dict[str, float] | None = None) -> Job:
    """Publish a finished evaluation: the job's FINISHED status with the requests store's
    record of the results, then the public files, row and card (one commit in the
    single-store layout). ``summary``: the bytes of summary.json as the evaluation wrote
    them (published as they are, with the leaderboard block appended), or its values.

    Only the current lease owner can publish (else LeaseLost and nothing is written); results
    are keyed by submission id, so a re-publish replaces, never duplicates. A summary of an
    unknown schema version raises UnsupportedSchema before anything is written. With two
    stores, a failure of the public commit is logged and left to the next sync: the job is
    finished and its record kept.
    """
    evaluated = summary if isinstance(summary, SummaryFile) else SummaryFile.of(summary)
    check_schema(evaluated.values)
    meta = meta if meta is not None else load_meta(store, job.id)

    def block(new: Job) -> SummaryFile:
        return evaluated.with_block(LEADERBOARD_BLOCK, {
            "submission_id": new.id, "attempt": new.attempts, "worker": worker_id,
            "published_at": new.finished_at, "metadata": meta,
            "protocol_queued": new.protocol or None, "rescore_of": new.source or None})

    if store.results_store is store:
        state: dict[str, Any] = {}

        def together(new: Job) -> dict[str, bytes]:
            p = plan(store, Entry(new, block(new), table_bytes), bump=True)
            state["if_match"] = p.if_match
            return {k: v for k, v in p.writes.items() if v is not None}

        return finish(store, job.id, worker_id, extra_writes=together,
                      extra_if_match=lambda new: state["if_match"], progress=progress, stage_rates=stage_rates)

    def record(new: Job) -> dict[str, bytes]:
        return {summary_path(new.id): block(new).data, table_path(new.id): table_bytes}

    done = finish(store, job.id, worker_id, extra_writes=record, progress=progress, stage_rates=stage_rates)
    try:
        sync_public(store)
    except Exception:  # noqa: BLE001 - the job is finished and recorded; the next sync publishes it
        log.exception("%s finished, but publishing to %s failed; the next sync publishes it",
                      job.id, store.results_store.uri)
    return done


def unpublish_hidden(store: Store, hide: Callable[[], Job]) -> Job:
    """Run ``hide()`` (a status change that makes a submission invisible), then remove it
    from the results store; the commit there always happens (see module docstring)."""
    job = hide()
    sync_public(store, bump=True)
    return job


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m leaderboard.publishing.dataset", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["sync"])
    ap.add_argument("--store", help="requests store (default $GENBENCH_STORE or state/requests)")
    ap.add_argument("--results-store", help="results store (default $GENBENCH_RESULTS_STORE or state/results)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    store = open_store(args.store, args.results_store)
    table = sync_public(store)
    print(json.dumps({"requests": store.uri, "results": store.results_store.uri, "submissions": len(table)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Entry", "Plan", "own_columns", "plan", "publish", "sync_leaderboard", "sync_public",
           "unpublish_hidden", "visible_ids"]
