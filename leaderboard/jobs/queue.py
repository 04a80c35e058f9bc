"""The durable job queue: claim the oldest runnable job, and finish, fail, retry, release,
cancel, withdraw or requeue it.

The queue is made of status documents, one per submission (``queue/<id>.json``, typed as
``documents.Job``, read and written by compare-and-swap in ``job_store``), their index
(``queue_index``) and the workers' leases (``leases``). This module is the queue's
interface: it re-exports what callers use of those modules.

States (``JobStatus``)::

    PENDING -> RUNNING -> FINISHED | FAILED       (CANCELLED: stopped by owner/admin)
    any     -> HIDDEN                             (withdrawn by its owner; kept, not shown)

Times are ISO-8601 UTC strings. Polling (``claim``) reads the queue index instead of
listing the store and reading every document. A RUNNING job is claimed again when its
lease expired or cannot be trusted (``lease_distrusted``: a lease further ahead than the
longest a worker grants, ``MAX_LEASE_S``, or a heartbeat older than the stall limit,
``STALE_HEARTBEAT_S``; a "stalled" event). Failure reasons are user-facing:
``public_reason`` strips server file paths from them (logs keep them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from leaderboard.jobs import queue_index
from leaderboard.jobs.documents import (ACTIVE, JOB_ID, MAX_HISTORY, MAX_LEASE_S, STALE_HEARTBEAT_S,
                                        CorruptDocument, FailureKind, FileEntry, Failure, HistoryEvent, Job,
                                        JobStatus, Progress, iso, lease_distrusted, new_job_id, now, parse_job,
                                        parse_time, public_reason)
from leaderboard.jobs.job_store import (CORRUPT_REASON, LeaseLost, QueueError, create_job, get_job, list_jobs,
                                        listed_jobs, quarantine_path, set_failed, update_job)
from leaderboard.jobs.leases import (HEARTBEAT_SHARE, LEASE_INTERVALS, LeasePlan, heartbeat, lease_plan, owned,
                                     renew_leases)
from leaderboard.store import PreconditionFailed, Store
from leaderboard.store.layout import QUARANTINE_DIR, SEQUENCE_PATH, job_path

# the states and failure kinds by their short names
PENDING, RUNNING, FINISHED, FAILED, CANCELLED, HIDDEN = JobStatus
STATUSES = tuple(JobStatus)
USER_ERROR, INFRASTRUCTURE = FailureKind.USER_ERROR, FailureKind.INFRASTRUCTURE


def queue_position(store: Store, job_id: str, jobs: list[Job] | None = None) -> int | None:
    """1-based position among PENDING jobs (1 = next to run); None if not pending."""
    pending = [j for j in (jobs if jobs is not None else list_jobs(store, (PENDING,)))
               if j.status == PENDING]
    for i, j in enumerate(sorted(pending, key=lambda j: j.order_key), 1):
        if j.id == job_id:
            return i
    return None


# ------------------------------------------------------------------ claiming
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


def _waits(job: Job, t: dt.datetime) -> bool:
    """Whether a job retried after an infrastructure failure may not run before a time after ``t``."""
    not_before = parse_time(job.not_before)
    return not_before is not None and not_before > t


def _claim_lease(store: Store, entries: queue_index.Entries | None, lease_s: float) -> float:
    """The lease a claim writes: on a budgeted store, as long as its renewals will be apart
    (``lease_plan``), so no renewal is forced right after the claim."""
    return lease_plan(store, queue_index.running(entries or {}) + 1, lease_s).lease_s


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
        if job.status == PENDING and _waits(job, t):
            continue
        if job.status == RUNNING and not over(job):
            continue
        if protocol and job.protocol and job.protocol != protocol:
            continue

        def take(j: Job) -> Job | None:
            if j.status == PENDING:
                if _waits(j, now()):
                    return None
            elif not (j.status == RUNNING and over(j)):
                return None
            limit = max_attempts or j.max_attempts
            if j.status == RUNNING and j.attempts >= limit:
                set_failed(j, INFRASTRUCTURE, f"the evaluation worker stopped responding "
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




def release(store: Store, job_id: str, worker_id: str, why: str = "worker shut down") -> Job:
    """Give a RUNNING job back to the queue (clean shutdown); the attempt is not counted."""

    def give_back(j: Job) -> Job:
        owned(j, worker_id)
        j.log("released", worker_id, why=why, attempt=j.attempts)
        j.status = PENDING
        j.attempts = max(0, j.attempts - 1)
        j.lease_owner = j.lease_expires = None
        return j

    return update_job(store, job_id, give_back, message=f"{job_id}: released")




def fail(store: Store, job_id: str, worker_id: str, reason: str, kind: FailureKind,
         retry_delay_s: float = 30.0, stalled_at: str | None = None, final: bool = False) -> Job:
    """Record a failed attempt. User errors (and ``final`` ones) are final; infrastructure
    errors go back to PENDING (after ``retry_delay_s``) until ``max_attempts`` is reached.
    ``stalled_at``: the stage where the job stopped making progress ("stalled" event)."""

    reason = public_reason(reason)

    def record(j: Job) -> Job:
        owned(j, worker_id)
        if stalled_at is not None:
            j.log("stalled", worker_id, stage=stalled_at, attempt=j.attempts)
        if kind == INFRASTRUCTURE and not final and j.attempts < j.max_attempts:
            j.status = PENDING
            j.last_error = {"reason": reason, "kind": kind, "at": iso(), "attempt": j.attempts}
            j.not_before = iso(now() + dt.timedelta(seconds=retry_delay_s))
            j.lease_owner = j.lease_expires = None
            j.log("retry", worker_id, reason=reason, attempt=j.attempts)
        else:
            set_failed(j, kind, reason, worker_id)
        return j

    return update_job(store, job_id, record, message=f"{job_id}: failed attempt")


def finish(store: Store, job_id: str, worker_id: str,
           extra_writes: Callable[[Job], dict[str, bytes]] | None = None,
           extra_if_match: Callable[[Job], dict[str, str]] | None = None,
           progress: Progress | None = None, stage_rates: dict[str, float] | None = None) -> Job:
    """Mark the job FINISHED, committing ``extra_writes`` (the results) with it.

    ``stage_rates``: the measured {stage: items/s}, kept for ETAs of later jobs.

    Only the lease owner may finish; a second call by the same owner after
    success is a no-op (publishing is idempotent).
    """

    def done(j: Job) -> Job | None:
        if j.status == FINISHED and j.lease_owner == worker_id:
            return None
        owned(j, worker_id)
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




__all__ = ["ACTIVE", "CANCELLED", "CORRUPT_REASON", "FAILED", "FINISHED", "HEARTBEAT_SHARE", "HIDDEN",
           "INFRASTRUCTURE", "JOB_ID", "LEASE_INTERVALS", "MAX_HISTORY", "MAX_LEASE_S", "PENDING",
           "QUARANTINE_DIR", "RUNNING", "SEQUENCE_PATH", "STALE_HEARTBEAT_S", "STATUSES", "USER_ERROR",
           "CorruptDocument", "Failure", "FailureKind", "FileEntry", "HistoryEvent", "Job", "JobStatus",
           "LeaseLost", "LeasePlan", "PreconditionFailed", "Progress", "QueueError", "cancel", "claim",
           "create_job", "fail", "finish", "get_job", "heartbeat", "hide", "iso", "job_path", "lease_distrusted",
           "lease_plan", "list_jobs", "listed_jobs", "new_job_id", "now", "parse_job", "parse_time",
           "public_reason", "quarantine_path", "queue_position", "release", "renew_leases", "requeue",
           "update_job"]
