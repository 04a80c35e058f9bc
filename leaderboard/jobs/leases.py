"""Leases: who holds a RUNNING job, until when, and how their renewals share a store's budget.

A worker holds a claimed job while its lease (``lease_expires``) runs; it renews the lease
with the job's progress (``heartbeat``, or ``renew_leases`` for every job a process holds,
in one commit). ``lease_expires`` is when another worker may reclaim a RUNNING job.

Leases at scale: on a store with a commit budget (the Hub) a renewal is committed only
when due, at an interval that grows with the number of running jobs so that all heartbeats
together stay within ``HEARTBEAT_SHARE`` of the repo's hourly budget, and leases are
written long enough (``LEASE_INTERVALS`` intervals) to survive it (``lease_plan``).
Renewals are urgent commits (``leaderboard.store.urgent_commits``): they may use the
budget's reserve. What no worker can have written is not trusted
(``documents.lease_distrusted``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from leaderboard.jobs import queue_index
from leaderboard.jobs.documents import Job, JobStatus, Progress, iso, now, parse_time
from leaderboard.jobs.job_store import LeaseLost, QueueError, index_commit, read_job
from leaderboard.store import PreconditionFailed, Store, dumps, urgent_commits
from leaderboard.store.layout import job_path

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




def owned(j: Job, worker_id: str) -> None:
    """LeaseLost unless ``worker_id`` holds ``j``'s lease."""
    if j.status != JobStatus.RUNNING or j.lease_owner != worker_id:
        raise LeaseLost(f"{j.id} is {j.status} (owner {j.lease_owner}), no longer held by {worker_id}")


def _due(job: Job, plan: LeasePlan, t: dt.datetime) -> bool:
    if plan.interval_s <= 0:
        return True
    last, expires = parse_time(job.heartbeat), parse_time(job.lease_expires)
    if last is None or expires is None:
        return True
    # renew once the interval has (nearly) passed, or early if the lease would not outlast another
    return ((t - last).total_seconds() >= 0.9 * plan.interval_s
            or (expires - t).total_seconds() < 2 * plan.interval_s)


def renew_leases(store: Store, worker_id: str, progress: dict[str, Progress | None], lease_s: float,
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
            job, tag = read_job(store, job_id)
            if job is None or tag is None:
                lost[job_id] = f"{job_id} no longer exists"
                continue
            try:
                owned(job, worker_id)
            except LeaseLost as exc:
                lost[job_id] = str(exc)
                continue
            held[job_id] = job
            if not _due(job, plan, t):
                continue
            job.heartbeat = iso(t)
            job.lease_expires = iso(t + dt.timedelta(seconds=plan.lease_s))
            if prog is not None:
                job.progress = prog.copy()
            job.version += 1
            job.updated_at = iso(t)
            writes[job_path(job_id)] = dumps(job.to_dict())
            conds[job_path(job_id)] = tag
        if not writes:
            return held, lost
        renewed = [held[job_id] for job_id in held if job_path(job_id) in writes]
        index_writes, index_conds = index_commit(store, renewed)
        try:
            with urgent_commits():
                store.commit({**writes, **index_writes}, if_match={**conds, **index_conds},
                             message=f"{worker_id}: renew {len(renewed)} lease(s)")
            return held, lost
        except PreconditionFailed:
            continue
    raise QueueError(f"could not renew the leases of {worker_id}: too much contention, try again")


def heartbeat(store: Store, job_id: str, worker_id: str, lease_s: float,
              progress: Progress | None = None) -> Job:
    """Extend the lease and record progress (when due, see ``renew_leases``); raises
    LeaseLost if not the owner."""
    renewed, lost = renew_leases(store, worker_id, {job_id: progress}, lease_s)
    if job_id in lost:
        raise LeaseLost(lost[job_id])
    return renewed[job_id]

