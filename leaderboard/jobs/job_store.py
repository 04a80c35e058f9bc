"""Reading and writing status documents: one per submission, ``queue/<id>.json``.

Every change is a compare-and-swap on the document (``Store`` etags) and bumps
``version`` (``update_job``), so two workers never both claim a job and a worker whose
lease was taken over cannot overwrite the new owner's state. Every commit that writes a
status document writes its entry of the queue index (``leaderboard.jobs.queue_index``)
too, under the same compare-and-swap.

Order: every job gets ``seq``, a store-wide sequence number assigned in the same
compare-and-swap commit that creates it (``create_job``; counter ``queue/sequence.txt``),
so jobs are served first-in first-out in commit order, even when two were created in the
same millisecond, by different processes, or while the wall clock stepped back.
``created_at`` is informational only.

Corrupt documents: a ``queue/<id>.json`` that is not a well-formed job document
(``documents.parse_job`` refuses it) is quarantined when read: a copy is kept under
``quarantine/queue/``, a log line is written, and the document is replaced
(compare-and-swap) by a FAILED job with the reason "corrupt status document" (owner and
model recovered from ``submissions/<id>/meta.json``), so every other job, the workers and
the app keep working and the owner can still withdraw it. A corrupt
``queue/sequence.txt`` is quarantined the same way and recomputed from the jobs' ``seq``;
one behind the highest ``seq`` of the jobs (rolled back, e.g. a restored backup) is
repaired to it, its copy kept in the quarantine.

Store paths (``job_path``, ``SEQUENCE_PATH``, the quarantine) come from
:mod:`leaderboard.store.layout`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from leaderboard.intake.submission_meta import load_meta
from leaderboard.jobs import queue_index
from leaderboard.jobs.documents import (JOB_ID, CorruptDocument, FailureKind, Job, JobStatus, iso,
                                        parse_job, public_reason)
from leaderboard.store import ABSENT, PreconditionFailed, Store, StoreError, dumps, etag_of
from leaderboard.store import layout
from leaderboard.store.layout import QUEUE_INDEX_PATH, SEQUENCE_PATH, job_path

CORRUPT_REASON = "corrupt status document"
log = logging.getLogger("leaderboard.jobs.queue")


class QueueError(RuntimeError):
    """A queue operation is not allowed; the message is user-facing."""


class LeaseLost(QueueError):
    """This worker no longer holds the job's lease (expired, cancelled, withdrawn)."""


def set_failed(j: Job, kind: FailureKind, reason: str, by: str | None) -> None:
    """Make ``j`` FAILED for good with ``reason`` (without server paths)."""
    reason = public_reason(reason)
    j.status = JobStatus.FAILED
    j.failure = {"reason": reason, "kind": kind, "at": iso()}
    j.finished_at = iso()
    j.lease_owner = j.lease_expires = None
    j.log("failed", by, kind=kind, reason=reason, attempt=j.attempts)


# ------------------------------------------------------------------ reading
def quarantine_path(path: str, data: bytes) -> str:
    """Where the copy of a corrupt store file is kept (one per distinct content)."""
    return layout.quarantine_path(path, etag_of(data))


def _stand_in(store: Store, job_id: str, data: bytes, why: str, copy: str) -> Job:
    """The FAILED job replacing a corrupt document (owner and model from meta.json)."""
    try:
        meta = load_meta(store, job_id) or {}
    except Exception:  # noqa: BLE001 - an unreadable meta.json: the stand-in is anonymous
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    try:
        created = iso(dt.datetime.strptime(job_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=dt.UTC))
    except ValueError:
        created = iso()
    job = Job(id=job_id, submitter=str(meta.get("submitter") or ""),
              model_name=str(meta.get("model_name") or ""), model_version=str(meta.get("model_version") or ""),
              file_sha256=str(meta.get("file_sha256") or ""), created_at=created, updated_at=iso(), version=1)
    job.log("quarantined", None, reason=CORRUPT_REASON, detail=why, copy=copy)
    set_failed(job, FailureKind.INFRASTRUCTURE, CORRUPT_REASON, by=None)
    if job.failure is not None:
        job.failure["detail"] = why
    return job


def _quarantine(store: Store, job_id: str, data: bytes, tag: str, why: str) -> tuple[Job, str]:
    """Keep a copy of a corrupt document, replace it by a FAILED stand-in; returns (job, etag)."""
    path = job_path(job_id)
    copy = quarantine_path(path, data)
    job = _stand_in(store, job_id, data, why, copy)
    body = dumps(job.to_dict())
    log.error("corrupt status document %s (%s): quarantined, copy kept at %s; the job is FAILED (%s)",
              path, why, copy, CORRUPT_REASON)
    writes: dict[str, bytes | None] = {copy: data, path: body}
    conds = {path: tag}
    entries, index_tag = queue_index.read(store)
    if entries is not None:  # keep the index's entry in step (without one, the next write builds it)
        writes[QUEUE_INDEX_PATH] = queue_index.updated(entries, [job])
        conds[QUEUE_INDEX_PATH] = index_tag
    try:
        store.commit(writes, if_match=conds, message=f"{job_id}: quarantine corrupt status document")
    except PreconditionFailed:
        raise  # changed meanwhile: the caller reads it again
    except StoreError:
        log.exception("could not write the quarantine of %s; serving the stand-in", path)
        return job, tag
    return job, etag_of(body)


def read_job(store: Store, job_id: str) -> tuple[Job | None, str | None]:
    """(job, etag) of the status document (a corrupt one quarantined), or (None, None)."""
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        return None, None  # e.g. a permalink's ?submission=../x: no such job, not a store error
    for _ in range(5):
        data, tag = store.read(job_path(job_id))
        if data is None or tag is None:
            return None, None
        try:
            return parse_job(data, job_id), tag
        except CorruptDocument as exc:
            try:
                return _quarantine(store, job_id, data, tag, str(exc))
            except PreconditionFailed:
                continue  # someone rewrote it meanwhile: read it again
    raise QueueError(f"could not read {job_id}: too much contention, try again")


def get_job(store: Store, job_id: str) -> Job | None:
    """The job's current status document, or None."""
    return read_job(store, job_id)[0]


def list_jobs(store: Store, statuses: tuple[str, ...] | None = None,
              submitter: str | None = None) -> list[Job]:
    """All jobs (oldest first), optionally filtered by status and submitter. With a queue
    index only the matching jobs' documents are read."""
    jobs = []
    for job in _indexed_jobs(store, statuses, submitter):
        if statuses and job.status not in statuses:
            continue
        if submitter is not None and job.submitter != submitter:
            continue
        jobs.append(job)
    return sorted(jobs, key=lambda j: j.order_key)


def listed_jobs(store: Store) -> list[Job]:
    """Every job, found by listing the store's ``queue/`` folder (no index needed)."""
    jobs = []
    for path in store.list(layout.QUEUE_DIR + "/"):
        job_id = layout.job_id_of(path)
        job = None if job_id is None else get_job(store, job_id)
        if job is not None:
            jobs.append(job)
    return jobs


def _indexed_jobs(store: Store, statuses: tuple[str, ...] | None, submitter: str | None) -> list[Job]:
    """The jobs the index says match (all listed jobs when there is no usable index)."""
    entries, _ = queue_index.read(store)
    if entries is None:
        return listed_jobs(store)
    return [j for j in (get_job(store, i) for i in queue_index.select(entries, statuses, submitter))
            if j is not None]


def index_commit(store: Store, jobs: list[Job]) -> tuple[dict[str, bytes], dict[str, str]]:
    """(writes, if_match) that put ``jobs``' entries into the index in the commit writing
    their documents; a missing or unreadable index is rebuilt from the documents."""
    entries, tag = queue_index.read(store)
    if entries is None:
        entries = {j.id: queue_index.entry(j) for j in listed_jobs(store)}
    return {QUEUE_INDEX_PATH: queue_index.updated(entries, jobs)}, {QUEUE_INDEX_PATH: tag}


# ------------------------------------------------------------------ writing
def _last_seq(store: Store) -> tuple[int, str, dict[str, bytes]]:
    """(last assigned sequence number, etag of the counter or ABSENT, quarantine writes).

    A corrupt counter is recomputed from the jobs and a copy of it is returned
    for the quarantine, to be committed with the repaired counter.
    """
    data, tag = store.read(SEQUENCE_PATH)
    quarantine: dict[str, bytes] = {}
    highest = _highest_seq(store)
    if data is not None:
        try:
            value = int(data.decode().strip() or 0)
            if value >= highest:
                return value, tag or ABSENT, quarantine
            if value >= 0:
                return _repaired_sequence(data, tag, highest)
        except (ValueError, UnicodeDecodeError):
            pass
        copy = quarantine_path(SEQUENCE_PATH, data)
        log.error("corrupt sequence counter %s (%r): quarantined, copy kept at %s; recomputed from the jobs",
                  SEQUENCE_PATH, data[:40], copy)
        quarantine[copy] = data
    # no counter yet (new store, or one from before sequencing), or a corrupt one:
    # continue after any job
    return highest, tag or ABSENT, quarantine


def _highest_seq(store: Store) -> int:
    """The highest ``seq`` of the jobs in the queue (0 if none)."""
    return max((j.seq for j in list_jobs(store)), default=0)


def _repaired_sequence(data: bytes, tag: str | None, highest: int) -> tuple[int, str, dict[str, bytes]]:
    """A counter behind the jobs' highest ``seq`` (rolled back: a restored copy, a lost
    write) would hand out numbers already taken: continue after the highest instead and
    keep a copy of the bad counter, committed with the repaired one."""
    copy = quarantine_path(SEQUENCE_PATH, data)
    log.error("sequence counter %s says %s but the queue holds seq %d: rolled back; repaired to %d, "
              "copy kept at %s", SEQUENCE_PATH, data.decode(errors="replace").strip(), highest, highest, copy)
    return highest, tag or ABSENT, {copy: data}


def create_job(store: Store, job: Job, extra_writes: dict[str, bytes] | None = None,
               message: str = "", retries: int = 20) -> Job:
    """Store a new job document (with ``extra_writes``, e.g. the upload, in one commit).

    The commit also bumps the sequence counter (compare-and-swap), which gives
    the job its ``seq``; a concurrent submission makes us retry with the next
    number. Raises PreconditionFailed if a file of the submission already exists.
    """
    job.created_at = job.created_at or iso()
    job.updated_at = job.created_at
    job.version = 1
    job.log("submitted", job.submitter)
    files = dict(extra_writes or {})
    for _ in range(retries):
        last, seq_tag, quarantine = _last_seq(store)
        job.seq = last + 1
        writes = {**files, job_path(job.id): dumps(job.to_dict()), SEQUENCE_PATH: f"{job.seq}\n".encode()}
        # write-once: every file of a new submission must not exist yet
        conds = {p: ABSENT for p in writes if p != SEQUENCE_PATH}
        conds[SEQUENCE_PATH] = seq_tag
        writes.update(quarantine)
        index_writes, index_conds = index_commit(store, [job])
        writes.update(index_writes)
        conds.update(index_conds)
        try:
            store.commit(writes, if_match=conds, message=message or f"submit {job.id}")
            return job
        except PreconditionFailed:
            if (store.read(SEQUENCE_PATH)[1] == (seq_tag or None)
                    and (store.read(QUEUE_INDEX_PATH)[1] or ABSENT) == index_conds.get(QUEUE_INDEX_PATH, ABSENT)):
                raise  # neither the counter nor the index moved: a file of this submission already exists
            continue  # another submission took this number (or another job changed): try again
    raise QueueError("could not submit: too many simultaneous submissions, try again")


def update_job(store: Store, job_id: str, change: Callable[[Job], Job | None], *,
               extra_writes: Callable[[Job], dict[str, bytes]] | None = None,
               extra_if_match: Callable[[Job], dict[str, str]] | None = None,
               message: str = "", retries: int = 20) -> Job:
    """Compare-and-swap ``change`` onto the job's document.

    ``change(job)`` mutates and returns the job, returns None for "no change",
    or raises (QueueError/LeaseLost) to refuse. It is re-applied to a fresh
    copy when another writer got there first. ``extra_writes(job)`` files are
    committed together with the document (atomically on the Hub).
    """
    for _ in range(retries):
        job, tag = read_job(store, job_id)
        if job is None:
            raise QueueError(f"no submission with id {job_id!r}")
        new = change(job)
        if new is None:
            return job
        new.version += 1
        new.updated_at = iso()
        writes: dict[str, bytes | None] = dict(extra_writes(new)) if extra_writes else {}
        writes[job_path(job_id)] = dumps(new.to_dict())
        conds = {job_path(job_id): tag or ABSENT, **(extra_if_match(new) if extra_if_match else {})}
        index_writes, index_conds = index_commit(store, [new])
        writes.update(index_writes)
        conds.update(index_conds)
        try:
            store.commit(writes, if_match=conds, message=message or f"{job_id}: {new.status}")
            return new
        except PreconditionFailed:
            continue
    raise QueueError(f"could not update {job_id}: too much contention, try again")


