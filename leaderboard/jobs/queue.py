"""The durable job queue: one status document per submission, ``queue/<id>.json``.

States::

    PENDING -> RUNNING -> FINISHED | FAILED       (CANCELLED: stopped by owner/admin)
    any     -> HIDDEN                             (withdrawn by its owner; kept, not shown)

Every change is a compare-and-swap on the document (``Store`` etags) and bumps
``version``, so two workers never both claim a job and a worker whose lease
was taken over cannot overwrite the new owner's state. Times are ISO-8601 UTC
strings; ``lease_expires`` is when another worker may reclaim a RUNNING job.

Order: every job gets ``seq``, a store-wide sequence number assigned in the
same compare-and-swap commit that creates it (counter ``queue/sequence.txt``),
so jobs are served first-in first-out in commit order, even when two were
created in the same millisecond, by different processes, or while the wall
clock stepped back. ``created_at`` is informational only.

Corrupt documents: a ``queue/<id>.json`` that is not a well-formed job document
(truncated, not JSON, wrongly shaped) is quarantined when read: a copy is kept
under ``quarantine/queue/``, a log line is written, and the document is replaced
(compare-and-swap) by a FAILED job with the reason "corrupt status document"
(owner and model recovered from ``submissions/<id>/meta.json``), so every other
job, the workers and the app keep working and the owner can still withdraw it.
A corrupt ``queue/sequence.txt`` is quarantined the same way and recomputed from
the jobs' ``seq``.

Index: ``queue/index.json`` (:mod:`leaderboard.jobs.queue_index`) names every job with its
state, sequence number and lease; every commit that writes a status document writes its
entry too, under the same compare-and-swap. Polling (``claim``) and filtered listing
read it instead of listing the store and reading every document.

Leases at scale: ``renew_leases`` renews every lease a process holds in one commit; on
a store with a commit budget (the Hub) it commits a renewal only when due, at an
interval that grows with the number of running jobs so that all heartbeats together
stay within ``HEARTBEAT_SHARE`` of the repo's hourly budget, and writes leases long
enough (``LEASE_INTERVALS`` intervals) to survive it. Renewals are urgent commits
(``leaderboard.store.urgent_commits``): they may use the budget's reserve.

What no worker can have written is not trusted (``lease_distrusted``, ``_last_seq``):
a lease that ends further ahead than the longest a worker grants (``MAX_LEASE_S``: a
worker whose clock runs ahead) or a heartbeat older than the stall limit
(``STALE_HEARTBEAT_S``) counts as expired, so the job is reclaimed (a "stalled" event);
a sequence counter behind the highest ``seq`` of the jobs (rolled back, e.g. a restored
backup) is repaired to it, its copy kept in the quarantine. Failure reasons are
user-facing: ``public_reason`` strips server file paths from them (logs keep them).

Store paths (``job_path``, ``SEQUENCE_PATH``, the quarantine) come from
:mod:`leaderboard.store.layout`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from leaderboard.jobs import queue_index
from leaderboard.store import ABSENT, PreconditionFailed, Store, StoreError, dumps, etag_of, urgent_commits
from leaderboard.store import layout
from leaderboard.store.layout import QUARANTINE_DIR as QUARANTINE_DIR  # re-export: tests use q.QUARANTINE_DIR
from leaderboard.store.layout import QUEUE_INDEX_PATH, SEQUENCE_PATH, job_path
from leaderboard.intake.submission_meta import load_meta

PENDING, RUNNING, FINISHED, FAILED, CANCELLED, HIDDEN = (
    "PENDING", "RUNNING", "FINISHED", "FAILED", "CANCELLED", "HIDDEN")
STATUSES = (PENDING, RUNNING, FINISHED, FAILED, CANCELLED, HIDDEN)
ACTIVE = (PENDING, RUNNING)
USER_ERROR, INFRASTRUCTURE = "user", "infrastructure"  # failure kinds
MAX_HISTORY = 50
CORRUPT_REASON = "corrupt status document"
MAX_LEASE_S = 3600.0  # the longest lease a worker grants (defaults: 60 s locally, 900 s on the Hub)
# a RUNNING job whose worker has not heartbeaten for this long is stalled, whatever its lease
# says (workers heartbeat every few minutes at most; default: the worker's stall limit)
STALE_HEARTBEAT_S = float(os.environ.get("GENBENCH_STALL_TIMEOUT") or 600.0)
log = logging.getLogger("leaderboard.jobs.queue")


class QueueError(RuntimeError):
    """A queue operation is not allowed; the message is user-facing."""


class LeaseLost(QueueError):
    """This worker no longer holds the job's lease (expired, cancelled, withdrawn)."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime | None = None) -> str:
    return (t or now()).isoformat(timespec="milliseconds")


def parse_time(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s) if s else None


def new_job_id() -> str:
    """Time-sortable unique id, e.g. ``20250101-120000-1a2b3c4d``."""
    return f"{now():%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")  # what new_job_id makes (and test ids)


@dataclass
class Job:
    """The status document of one submission.

    progress: {"done": int, "total": int, "stage": str, "stage_started_at": ISO,
    "updated_at": ISO of the last progress, "rate": items/s of the running stage or None}
    of the current attempt (the times and rate once a worker reports).
    history: events ("submitted", "claimed", "reclaimed" (with ``previous_owner``),
    "released", "stalled", "retry", "failed", "finished", ...) with "at", "by" and,
    for the worker's events, "attempt".
    stage_rates: {stage: items/s} measured by the worker that finished the job.
    failure: {"reason": user-facing text, "kind": "user"|"infrastructure", "at": time}
    (on FAILED; a retried infrastructure failure is kept in ``last_error``).
    files: [{"name", "sha256", "bytes"}] of the upload, stored under
    ``submissions/<id>/files/<name>``.
    """

    id: str
    status: str = PENDING
    submitter: str = ""
    model_name: str = ""
    model_version: str = ""
    created_at: str = ""
    updated_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    lease_owner: str | None = None
    lease_expires: str | None = None
    heartbeat: str | None = None
    not_before: str | None = None  # earliest retry time after an infrastructure failure
    progress: dict = field(default_factory=lambda: {"done": 0, "total": 0, "stage": ""})
    failure: dict | None = None
    last_error: dict | None = None
    files: list = field(default_factory=list)
    file_sha256: str = ""
    structures_sha256: str = ""  # content digest of the parsed structures (evaluator.ingest.fingerprint)
    hidden_from: str | None = None  # status before HIDDEN
    version: int = 0
    history: list = field(default_factory=list)
    seq: int = 0  # submission order, assigned by create_job (0: created before sequencing)
    stage_rates: dict | None = None  # {stage: items/s}, set when FINISHED
    protocol: str = ""  # id of the evaluation protocol it was queued under ("": before protocols, any)
    source: str = ""  # a re-scoring job: the submission whose upload and metadata it scores again
    # its size, from the upload check (None / []: not known, e.g. a job from before sizes were kept)
    n_structures: int | None = None  # structures the upload check parsed
    cell_atoms: list[list[int]] = field(default_factory=list)  # [[atoms, how many cells], ...]

    @property
    def order_key(self) -> tuple:
        """Sort key for first-in first-out: (seq, created_at, id)."""
        return (self.seq, self.created_at, self.id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def lease_expired(self) -> bool:
        """The lease ended, or cannot be trusted (``lease_distrusted``)."""
        exp = parse_time(self.lease_expires)
        return exp is None or exp <= now() or lease_distrusted(self) is not None

    @property
    def visible(self) -> bool:
        """Shown on the leaderboard: finished and not withdrawn."""
        return self.status == FINISHED

    def log(self, event: str, by: str | None = None, **extra) -> None:
        self.history.append({"at": iso(), "event": event, "by": by, **extra})
        del self.history[:-MAX_HISTORY]


def lease_distrusted(job: Job, at: dt.datetime | None = None, max_lease_s: float = MAX_LEASE_S,
                     stale_s: float = STALE_HEARTBEAT_S) -> str | None:
    """Why a RUNNING job's unexpired lease cannot be trusted, or None: it ends further ahead
    than any worker grants (``MAX_LEASE_S``; a worker clock running ahead), or the last
    heartbeat is older than ``STALE_HEARTBEAT_S`` (the worker stopped beating)."""
    if job.status != RUNNING:
        return None
    t = at or now()
    try:
        exp, beat = parse_time(job.lease_expires), parse_time(job.heartbeat)
    except (TypeError, ValueError):
        return "unreadable lease times"
    if exp is not None and (exp - t).total_seconds() > max_lease_s:
        return (f"its lease ends {(exp - t).total_seconds() / 3600:.1f} h from now, longer than any worker "
                f"grants ({max_lease_s:g} s): the worker's clock runs ahead")
    if beat is not None and (t - beat).total_seconds() > stale_s:
        return f"no heartbeat for {(t - beat).total_seconds():.0f} s (stall limit {stale_s:g} s)"
    return None


# absolute file paths (two parts at least) not inside a URL or a word: /srv/state/queue/x.json
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:~/|/)(?:[^\s/'\"()\[\]<>,;]+/)+([^\s/'\"()\[\]<>,;]*)")


def public_reason(text: str) -> str:
    """``text`` without server file paths (each becomes ``…/<its last part>``): failure
    reasons are shown to everyone; the worker's log keeps the full message."""
    return _SERVER_PATH.sub(lambda m: f"…/{m.group(1)}" if m.group(1) else "…/", text)


# ------------------------------------------------------------------ reading
class CorruptDocument(ValueError):
    """A status document that is not a well-formed job document."""


_STR = ("submitter", "model_name", "model_version", "file_sha256", "structures_sha256", "protocol", "source")
_OPT_STR = ("lease_owner", "hidden_from")
_TIMES = ("created_at", "updated_at", "started_at", "finished_at", "lease_expires", "heartbeat",
          "not_before")
_INTS = ("attempts", "max_attempts", "version", "seq")
_OPT_DICTS = ("failure", "last_error", "stage_rates")


def parse_job(data: bytes, job_id: str) -> Job:
    """The Job in a status document's bytes; raises CorruptDocument if it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptDocument(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CorruptDocument(f"a JSON {type(doc).__name__}, not an object")
    if doc.get("id") != job_id:
        raise CorruptDocument(f"id {doc.get('id')!r} does not match the file name")
    if doc.get("status") not in STATUSES:
        raise CorruptDocument(f"unknown status {doc.get('status')!r}")
    bad = [k for k in _STR if not isinstance(doc.get(k, ""), str)]
    bad += [k for k in _OPT_STR if not isinstance(doc.get(k), (str, type(None)))]
    bad += [k for k in _INTS if type(doc.get(k, 0)) is not int]
    bad += [k for k in _OPT_DICTS if not isinstance(doc.get(k), (dict, type(None)))]
    bad += [k for k in ("progress",) if not isinstance(doc.get(k, {}), dict)]
    bad += [k for k in ("n_structures",) if doc.get(k) is not None and type(doc.get(k)) is not int]
    bad += [k for k in ("cell_atoms",) if not isinstance(doc.get(k, []), list)
            or not all(isinstance(x, list) and len(x) == 2 and all(type(n) is int for n in x)
                       for x in doc.get(k, []))]
    bad += [k for k in ("files", "history") if not isinstance(doc.get(k, []), list)
            or not all(isinstance(x, dict) for x in doc.get(k, []))]
    for k in _TIMES:
        v = doc.get(k)
        if k == "created_at" or v is not None:
            try:
                if not isinstance(v, str) or parse_time(v).tzinfo is None:
                    bad.append(k)
            except (TypeError, ValueError):
                bad.append(k)
    if bad:
        raise CorruptDocument(f"wrong type or value of {', '.join(sorted(set(bad)))}")
    return Job.from_dict(doc)


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
    _set_failed(job, INFRASTRUCTURE, CORRUPT_REASON, by=None)
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
    writes, conds = {copy: data, path: body}, {path: tag}
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


def _read(store: Store, job_id: str) -> tuple[Job | None, str | None]:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        return None, None  # e.g. a permalink's ?submission=../x: no such job, not a store error
    for _ in range(5):
        data, tag = store.read(job_path(job_id))
        if data is None:
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
    return _read(store, job_id)[0]


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


def queue_position(store: Store, job_id: str, jobs: list[Job] | None = None) -> int | None:
    """1-based position among PENDING jobs (1 = next to run); None if not pending."""
    pending = [j for j in (jobs if jobs is not None else list_jobs(store, (PENDING,)))
               if j.status == PENDING]
    for i, j in enumerate(sorted(pending, key=lambda j: j.order_key), 1):
        if j.id == job_id:
            return i
    return None


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
                return value, tag, quarantine
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
        index_writes, index_conds = _index_commit(store, [job])
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
        job, tag = _read(store, job_id)
        if job is None:
            raise QueueError(f"no submission with id {job_id!r}")
        new = change(job)
        if new is None:
            return job
        new.version += 1
        new.updated_at = iso()
        writes = dict(extra_writes(new)) if extra_writes else {}
        writes[job_path(job_id)] = dumps(new.to_dict())
        conds = {job_path(job_id): tag, **(extra_if_match(new) if extra_if_match else {})}
        index_writes, index_conds = _index_commit(store, [new])
        writes.update(index_writes)
        conds.update(index_conds)
        try:
            store.commit(writes, if_match=conds, message=message or f"{job_id}: {new.status}")
            return new
        except PreconditionFailed:
            continue
    raise QueueError(f"could not update {job_id}: too much contention, try again")


def claim(store: Store, worker_id: str, lease_s: float, max_attempts: int | None = None,
          protocol: str | None = None) -> Job | None:
    """Atomically take the oldest runnable job: PENDING (past ``not_before``) or
    RUNNING with an expired lease. Returns the claimed job or None.

    ``protocol``: the id of the protocol this worker produces; jobs queued under another
    protocol are left for a worker that produces theirs (jobs without one are anyone's).

    A job whose lease expired after ``max_attempts`` attempts is FAILED
    (infrastructure) instead of being run again.
    """
    t = now()
    entries, _ = queue_index.read(store)
    lease_s = _claim_lease(store, entries, lease_s)
    plan = lease_plan(store, queue_index.running(entries or {}), lease_s)
    # what a worker may write under lease batching (issue 23) is trusted: a lease up to twice
    # the plan's, a heartbeat as old as a lease plus a renewal interval
    limits = {"max_lease_s": max(MAX_LEASE_S, 2 * plan.lease_s),
              "stale_s": max(STALE_HEARTBEAT_S, plan.lease_s + 2 * plan.interval_s)}

    def over(j: Job) -> bool:
        exp = parse_time(j.lease_expires)
        return exp is None or exp <= now() or lease_distrusted(j, None, **limits) is not None

    for job in sorted(_claim_candidates(store, entries, t, limits), key=lambda j: j.order_key):
        if job.status == PENDING and job.not_before and parse_time(job.not_before) > t:
            continue
        if job.status == RUNNING and not over(job):
            continue
        if protocol and job.protocol and job.protocol != protocol:
            continue

        def take(j: Job) -> Job | None:
            if j.status == PENDING:
                if j.not_before and parse_time(j.not_before) > now():
                    return None
            elif not (j.status == RUNNING and over(j)):
                return None
            limit = max_attempts or j.max_attempts
            if j.status == RUNNING and j.attempts >= limit:
                _set_failed(j, INFRASTRUCTURE, f"the evaluation worker stopped responding "
                            f"{j.attempts} times; giving up", by=worker_id)
                return j
            reclaimed = j.status == RUNNING
            previous = j.lease_owner
            distrusted = lease_distrusted(j, None, **limits) if reclaimed else None
            if distrusted is not None:  # shown as stalled: its worker no longer counts
                j.log("stalled", worker_id, stage=str((j.progress or {}).get("stage") or ""),
                      reason=distrusted, attempt=j.attempts)
            j.status = RUNNING
            j.attempts += 1
            j.lease_owner = worker_id
            j.lease_expires = iso(now() + dt.timedelta(seconds=lease_s))
            j.heartbeat = iso()
            j.started_at = j.started_at or iso()
            j.progress = {"done": 0, "total": 0, "stage": "starting"}
            if reclaimed:
                j.log("reclaimed", worker_id, attempt=j.attempts, previous_owner=previous)
            else:
                j.log("claimed", worker_id, attempt=j.attempts)
            return j

        try:
            # a lost compare-and-swap re-reads the job and re-checks it (``take``), so a
            # concurrent unrelated edit never makes us skip the oldest job
            got = update_job(store, job.id, take, retries=5, message=f"{job.id}: claim by {worker_id}")
        except QueueError:
            continue  # gone, or heavy contention on it: try the next job
        if got.status == RUNNING and got.lease_owner == worker_id and got.version > job.version:
            return got
    return None


def _owned(j: Job, worker_id: str) -> None:
    if j.status != RUNNING or j.lease_owner != worker_id:
        raise LeaseLost(f"{j.id} is {j.status} (owner {j.lease_owner}), no longer held by {worker_id}")


def heartbeat(store: Store, job_id: str, worker_id: str, lease_s: float,
              progress: dict | None = None) -> Job:
    """Extend the lease and record progress (when due, see ``renew_leases``); raises
    LeaseLost if not the owner."""
    renewed, lost = renew_leases(store, worker_id, {job_id: progress}, lease_s)
    if job_id in lost:
        raise LeaseLost(lost[job_id])
    return renewed[job_id]


def release(store: Store, job_id: str, worker_id: str, why: str = "worker shut down") -> Job:
    """Give a RUNNING job back to the queue (clean shutdown); the attempt is not counted."""

    def give_back(j: Job) -> Job:
        _owned(j, worker_id)
        j.log("released", worker_id, why=why, attempt=j.attempts)
        j.status = PENDING
        j.attempts = max(0, j.attempts - 1)
        j.lease_owner = j.lease_expires = None
        return j

    return update_job(store, job_id, give_back, message=f"{job_id}: released")


def _set_failed(j: Job, kind: str, reason: str, by: str | None) -> None:
    reason = public_reason(reason)
    j.status = FAILED
    j.failure = {"reason": reason, "kind": kind, "at": iso()}
    j.finished_at = iso()
    j.lease_owner = j.lease_expires = None
    j.log("failed", by, kind=kind, reason=reason, attempt=j.attempts)


def fail(store: Store, job_id: str, worker_id: str, reason: str, kind: str,
         retry_delay_s: float = 30.0, stalled_at: str | None = None, final: bool = False) -> Job:
    """Record a failed attempt. User errors (and ``final`` ones) are final; infrastructure
    errors go back to PENDING (after ``retry_delay_s``) until ``max_attempts`` is reached.
    ``stalled_at``: the stage where the job stopped making progress ("stalled" event)."""

    reason = public_reason(reason)

    def record(j: Job) -> Job:
        _owned(j, worker_id)
        if stalled_at is not None:
            j.log("stalled", worker_id, stage=stalled_at, attempt=j.attempts)
        if kind == INFRASTRUCTURE and not final and j.attempts < j.max_attempts:
            j.status = PENDING
            j.last_error = {"reason": reason, "kind": kind, "at": iso(), "attempt": j.attempts}
            j.not_before = iso(now() + dt.timedelta(seconds=retry_delay_s))
            j.lease_owner = j.lease_expires = None
            j.log("retry", worker_id, reason=reason, attempt=j.attempts)
        else:
            _set_failed(j, kind, reason, worker_id)
        return j

    return update_job(store, job_id, record, message=f"{job_id}: failed attempt")


def finish(store: Store, job_id: str, worker_id: str,
           extra_writes: Callable[[Job], dict[str, bytes]] | None = None,
           extra_if_match: Callable[[Job], dict[str, str]] | None = None,
           progress: dict | None = None, stage_rates: dict | None = None) -> Job:
    """Mark the job FINISHED, committing ``extra_writes`` (the results) with it.

    ``stage_rates``: the measured {stage: items/s}, kept for ETAs of later jobs.

    Only the lease owner may finish; a second call by the same owner after
    success is a no-op (publishing is idempotent).
    """

    def done(j: Job) -> Job | None:
        if j.status == FINISHED and j.lease_owner == worker_id:
            return None
        _owned(j, worker_id)
        j.status = FINISHED
        j.finished_at = iso()
        j.progress = {**(progress or j.progress), "stage": "finished"}
        if stage_rates is not None:
            j.stage_rates = dict(stage_rates)
        j.failure = None
        j.log("finished", worker_id, attempt=j.attempts)
        return j

    return update_job(store, job_id, done, extra_writes=extra_writes, extra_if_match=extra_if_match,
                      message=f"{job_id}: publish results")


def _check_owner(j: Job, user: str | None, admin: bool) -> None:
    if not admin and (user is None or user != j.submitter):
        raise QueueError("only the submitter can change this submission")


def cancel(store: Store, job_id: str, user: str | None = None, *, admin: bool = False) -> Job:
    """Stop a PENDING or RUNNING job (owner or admin); a running worker notices at
    its next heartbeat and abandons it."""

    def stop(j: Job) -> Job:
        _check_owner(j, user, admin)
        if j.status not in ACTIVE:
            raise QueueError(f"cannot cancel a {j.status.lower()} submission")
        j.status = CANCELLED
        j.finished_at = iso()
        j.lease_owner = j.lease_expires = None
        j.log("cancelled", user or "admin")
        return j

    return update_job(store, job_id, stop, message=f"{job_id}: cancelled")


def hide(store: Store, job_id: str, user: str | None, *, admin: bool = False) -> Job:
    """Set a job HIDDEN (owner only, or admin): it is kept but no longer shown; a
    pending/running one stops. Only the status document changes: the user action,
    which also updates the leaderboard table, is ``submissions.withdraw``."""

    def to_hidden(j: Job) -> Job | None:
        _check_owner(j, user, admin)
        if j.status == HIDDEN:
            return None
        j.hidden_from = j.status
        j.status = HIDDEN
        j.lease_owner = j.lease_expires = None
        j.log("withdrawn", user or "admin")
        return j

    return update_job(store, job_id, to_hidden, message=f"{job_id}: withdrawn")


def requeue(store: Store, job_id: str, by: str = "admin") -> Job:
    """Admin: put a FAILED or CANCELLED job back to PENDING with fresh attempts."""

    def again(j: Job) -> Job:
        if j.status not in (FAILED, CANCELLED):
            raise QueueError(f"cannot requeue a {j.status.lower()} submission")
        j.status = PENDING
        j.attempts = 0
        j.failure = j.not_before = j.finished_at = None
        j.log("requeued", by)
        return j

    return update_job(store, job_id, again, message=f"{job_id}: requeued")


# ------------------------------------------------------------------ the queue index (issue 23)
def _listed_jobs(store: Store) -> list[Job]:
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
        return _listed_jobs(store)
    return [j for j in (get_job(store, i) for i in queue_index.select(entries, statuses, submitter))
            if j is not None]


def _claim_candidates(store: Store, entries: queue_index.Entries | None, t: dt.datetime,
                      limits: dict[str, float] | None = None) -> list[Job]:
    """Jobs that may be claimable at ``t``: from the index (``entries``), only the runnable
    ones' documents are read (an idle poll reads one document), and RUNNING ones whose
    lease the queue distrusts (``lease_distrusted`` with ``limits``); without an index,
    every active job."""
    if entries is None:
        return list_jobs(store, (PENDING, RUNNING))
    ids = queue_index.runnable(entries, t)
    ids += [i for i, e in entries.items() if i not in ids and e.get("status") == RUNNING
            and lease_distrusted(Job(id=i, status=RUNNING, lease_expires=e.get("lease_expires"),
                                     heartbeat=e.get("heartbeat")), t, **(limits or {})) is not None]
    return [j for j in (get_job(store, i) for i in ids) if j is not None]


def _claim_lease(store: Store, entries: queue_index.Entries | None, lease_s: float) -> float:
    """The lease a claim writes: on a budgeted store, as long as its renewals will be apart
    (``lease_plan``), so no renewal is forced right after the claim."""
    return lease_plan(store, queue_index.running(entries or {}) + 1, lease_s).lease_s


def _index_commit(store: Store, jobs: list[Job]) -> tuple[dict[str, bytes], dict[str, str]]:
    """(writes, if_match) that put ``jobs``' entries into the index in the commit writing
    their documents; a missing or unreadable index is rebuilt from the documents."""
    entries, tag = queue_index.read(store)
    if entries is None:
        entries = {j.id: queue_index.entry(j) for j in _listed_jobs(store)}
    return {QUEUE_INDEX_PATH: queue_index.updated(entries, jobs)}, {QUEUE_INDEX_PATH: tag}


# ------------------------------------------------------------------ leases at scale (issue 23)
HEARTBEAT_SHARE = 0.25  # of a budgeted repo's commits/hour that heartbeats may use, all workers together
# (below the store's reserve for urgent commits, so renewals never wait for the budget)
LEASE_INTERVALS = 3.0  # a lease lasts this many renewal intervals


@dataclass(frozen=True)
class LeasePlan:
    """How often a lease is renewed (``interval_s``; 0: at every call) and for how long."""

    interval_s: float
    lease_s: float


def lease_plan(store: Store, running: int, lease_s: float) -> LeasePlan:
    """The renewal interval and lease length for ``running`` jobs sharing ``store``'s
    commit budget: without a budget, every call renews for ``lease_s``; with one, the
    interval is the store's advice, stretched so that ``running`` leases renewed at it
    take at most HEARTBEAT_SHARE of the budget, and the lease is LEASE_INTERVALS intervals.
    A lease shorter than the store's renewal advice (one that ends now, or a test's) is the
    caller's explicit choice: written as asked, at every call."""
    budget = getattr(store, "max_commits_per_hour", None)
    if not budget or lease_s < store.heartbeat_interval_s:
        return LeasePlan(0.0, lease_s)
    interval = max(store.heartbeat_interval_s, max(1, running) * 3600.0 / (budget * HEARTBEAT_SHARE))
    return LeasePlan(interval, max(lease_s, LEASE_INTERVALS * interval))


def _due(job: Job, plan: LeasePlan, t: dt.datetime) -> bool:
    if plan.interval_s <= 0:
        return True
    last, expires = parse_time(job.heartbeat), parse_time(job.lease_expires)
    if last is None or expires is None:
        return True
    # renew once the interval has (nearly) passed, or early if the lease would not outlast another
    return ((t - last).total_seconds() >= 0.9 * plan.interval_s
            or (expires - t).total_seconds() < 2 * plan.interval_s)


def renew_leases(store: Store, worker_id: str, progress: dict[str, dict | None], lease_s: float,
                 retries: int = 20) -> tuple[dict[str, Job], dict[str, str]]:
    """Renew the leases of every job in ``progress`` ({job id: progress doc or None}) that
    ``worker_id`` holds, recording the progress, in one commit (documents and index).

    Returns (jobs, lost): the current document of each job still held (renewed, or not yet
    due on a budgeted store, see ``lease_plan``) and {job id: why} for the ones no longer
    held (expired and taken over, cancelled, withdrawn, gone).
    """
    for _ in range(retries):
        entries, _tag = queue_index.read(store)
        plan = lease_plan(store, queue_index.running(entries or {}), lease_s)
        t = now()
        held: dict[str, Job] = {}
        lost: dict[str, str] = {}
        writes: dict[str, bytes] = {}
        conds: dict[str, str] = {}
        for job_id, prog in progress.items():
            job, tag = _read(store, job_id)
            if job is None:
                lost[job_id] = f"{job_id} no longer exists"
                continue
            try:
                _owned(job, worker_id)
            except LeaseLost as exc:
                lost[job_id] = str(exc)
                continue
            held[job_id] = job
            if not _due(job, plan, t):
                continue
            job.heartbeat = iso(t)
            job.lease_expires = iso(t + dt.timedelta(seconds=plan.lease_s))
            if prog is not None:
                job.progress = dict(prog)
            job.version += 1
            job.updated_at = iso(t)
            writes[job_path(job_id)] = dumps(job.to_dict())
            conds[job_path(job_id)] = tag
        if not writes:
            return held, lost
        renewed = [held[job_id] for job_id in held if job_path(job_id) in writes]
        index_writes, index_conds = _index_commit(store, renewed)
        try:
            with urgent_commits():
                store.commit({**writes, **index_writes}, if_match={**conds, **index_conds},
                             message=f"{worker_id}: renew {len(renewed)} lease(s)")
            return held, lost
        except PreconditionFailed:
            continue
    raise QueueError(f"could not renew the leases of {worker_id}: too much contention, try again")
