"""The queue index: one document, ``queue/index.json``, naming every job with its state.

``{"format": 1, "jobs": {<id>: {"status", "seq", "submitter", "lease_owner",
"lease_expires", "heartbeat", "not_before", "version"}}}``

Polling reads this one document instead of listing the repo and reading every status
document: a worker looks for runnable jobs in it (PENDING past ``not_before``, or
RUNNING with an expired lease) and reads only those jobs' documents; listing jobs by
state or submitter reads only the matching documents. The index is kept consistent by
the same compare-and-swap as the documents: every commit that writes a status document
(``leaderboard.jobs.queue``) writes the job's index entry in the same commit, conditioned on
the index's etag, so a commit that changed any job makes every concurrent one re-read
and retry. A store without an index (one from before it existed), or with an
unreadable one, is read by listing, and the next queue write rebuilds the index from
the documents. The status document stays the authority: whoever acts on a job reads
(and compare-and-swaps) its document.

A leaf module: the job documents, the store, its layout and the standard library only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from leaderboard.jobs.documents import Job, JobStatus
from leaderboard.store import ABSENT, Store, dumps
from leaderboard.store.layout import QUEUE_INDEX_PATH

FORMAT = 1
FIELDS = ("status", "seq", "submitter", "lease_owner", "lease_expires", "heartbeat", "not_before", "version")
log = logging.getLogger("leaderboard.jobs.queue")
Entries = dict[str, dict[str, Any]]


def entry(job: Job) -> dict[str, Any]:
    """A job's index entry."""
    return {"status": job.status, "seq": job.seq, "submitter": job.submitter, "lease_owner": job.lease_owner,
            "lease_expires": job.lease_expires, "heartbeat": job.heartbeat, "not_before": job.not_before,
            "version": job.version}


def read(store: Store) -> tuple[Entries | None, str]:
    """(entries, etag): the index's entries, or None when the store has no index or an
    unreadable one; etag ``ABSENT`` when there is no index."""
    data, tag = store.read(QUEUE_INDEX_PATH)
    if data is None:
        return None, ABSENT
    try:
        doc = json.loads(data)
        jobs = doc["jobs"] if isinstance(doc, dict) and doc.get("format") == FORMAT else None
        if not isinstance(jobs, dict) or not all(isinstance(e, dict) for e in jobs.values()):
            raise ValueError("not a queue index")
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        log.error("unreadable queue index %s (%s): reading the status documents; the next queue "
                  "write rebuilds it", QUEUE_INDEX_PATH, exc)
        return None, tag or ABSENT
    return jobs, tag or ABSENT


def encode(entries: Mapping[str, Mapping[str, Any]]) -> bytes:
    return dumps({"format": FORMAT, "jobs": dict(entries)})


def updated(entries: Mapping[str, Mapping[str, Any]], jobs: Iterable[Job]) -> bytes:
    """The index bytes with ``jobs``' entries replaced."""
    out = dict(entries)
    for job in jobs:
        out[job.id] = entry(job)
    return encode(out)


def _order(entries: Entries) -> list[str]:
    return sorted(entries, key=lambda i: (entries[i].get("seq") or 0, i))


def select(entries: Entries, statuses: tuple[str, ...] | None = None, submitter: str | None = None) -> list[str]:
    """Ids (oldest first) whose entry has one of ``statuses`` and is ``submitter``'s."""
    return [i for i in _order(entries)
            if (not statuses or entries[i].get("status") in statuses)
            and (submitter is None or entries[i].get("submitter") == submitter)]


def _before(value: str | None, t: dt.datetime) -> bool:
    if not value:
        return True
    try:
        return dt.datetime.fromisoformat(value) <= t
    except ValueError:
        return True  # unreadable: let the document decide


def runnable(entries: Entries, t: dt.datetime) -> list[str]:
    """Ids (oldest first) a worker may claim at time ``t``: PENDING past ``not_before``, or
    RUNNING with an expired lease (the document is checked again when claiming)."""
    out = []
    for i in _order(entries):
        e = entries[i]
        if e.get("status") == JobStatus.PENDING and _before(e.get("not_before"), t):
            out.append(i)
        elif e.get("status") == JobStatus.RUNNING and _before(e.get("lease_expires"), t):
            out.append(i)
    return out


def running(entries: Entries) -> int:
    """How many jobs hold a lease now (RUNNING)."""
    return sum(1 for e in entries.values() if e.get("status") == JobStatus.RUNNING)


__all__ = ["FIELDS", "FORMAT", "QUEUE_INDEX_PATH", "encode", "entry", "read", "running", "runnable",
           "select", "updated"]
