"""One worker holding several claimed jobs at once (``python -m leaderboard.worker
--concurrent-jobs K``), with one lease renewal commit for all of them.

* ``JobSlots.run`` runs K slots, each a thread that claims a job and supervises it with the
  worker's own per-job code (``Worker.process``: its own evaluation process, progress,
  stall watchdog, job budget, withdraw, publish / fail / release), so each slot behaves
  exactly as a one-job worker does. The slots share the worker's stop event: a SIGTERM kills
  every evaluation and releases every held job (``--drain``: each finishes its job first).
* ``LeaseRenewer`` replaces the per-job heartbeat: a slot's supervising loop posts its job's
  progress (when it moves, and at least every heartbeat) instead of writing it, and one
  thread renews the leases of all posted jobs, progress included, in one store commit
  (``queue.renew_leases``) every heartbeat, or sooner (at most every progress interval)
  when a job's progress moved. A job is renewed only while its slot keeps posting (a hung
  slot lets its lease expire, as a hung one-job worker does); a job the store says is no
  longer held (withdrawn, cancelled, taken over) is reported to its slot at its next post
  (``LeaseLost``), which kills that evaluation and leaves the other slots alone.
* ``--once``: each slot takes at most one job; ``--max-jobs N``: N jobs in all. Slots keep no
  spare evaluation process (a job's process starts when it is claimed).

``worker`` is a ``leaderboard.jobs.supervisor.Worker`` (the command line, ``leaderboard.worker``,
imports this module).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from leaderboard.jobs.queue import Job, LeaseLost, Progress, claim, renew_leases
from leaderboard.jobs.supervisor import Worker
from leaderboard.store import Store
from leaderboard.store.outage import RepeatedErrorLog

log = logging.getLogger("leaderboard.jobs.slots")
TICK_S = 0.25  # how often the renewer checks whether a renewal is due


class LeaseRenewer:
    """Renews the leases of every job the slots of one worker supervise, in one commit.

    ``renew(job_id, progress)`` is what a slot calls where a one-job worker heartbeats;
    ``forget(job_id)`` when the slot is done with the job. ``commits`` counts the renewal
    calls made (each one store commit at most)."""

    def __init__(self, store: Store, worker_id: str, lease_s: float, heartbeat_s: float,
                 progress_interval_s: float):
        self.store, self.worker_id, self.lease_s = store, worker_id, lease_s
        self.heartbeat_s, self.progress_interval_s = heartbeat_s, progress_interval_s
        # a job is renewed while its slot posted within this long (it posts at least every heartbeat)
        self.fresh_s = 2 * heartbeat_s + 1.0
        self.commits = 0
        self._lock = threading.Lock()
        self._posted: dict[str, tuple[Progress | None, float]] = {}  # job id -> (progress, when posted)
        self._lost: dict[str, str] = {}  # job id -> why it is no longer held (told at the next post)
        self._dirty = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors = RepeatedErrorLog(log, f"{worker_id}: lease renewal")

    def renew(self, job_id: str, progress: Progress | None) -> None:
        """Post ``job_id``'s progress for the next renewal; LeaseLost if the last renewal found
        the job no longer held by this worker."""
        with self._lock:
            why = self._lost.pop(job_id, None)
            if why is not None:
                self._posted.pop(job_id, None)
                raise LeaseLost(why)
            self._posted[job_id] = (progress, time.monotonic())
            self._dirty = True

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._posted.pop(job_id, None)
            self._lost.pop(job_id, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"{self.worker_id}-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        last = -float("inf")
        while not self._done.wait(TICK_S):
            t = time.monotonic()
            with self._lock:
                due = self._posted and ((self._dirty and t - last >= self.progress_interval_s)
                                        or t - last >= self.heartbeat_s)
                if not due:
                    continue
                batch = {job_id: doc for job_id, (doc, at) in self._posted.items() if t - at <= self.fresh_s}
                self._dirty = False
            if batch:
                last = t
                self.renew_now(batch)

    def renew_now(self, batch: dict[str, Progress | None]) -> None:
        """One ``renew_leases`` commit for ``batch`` ({job id: progress}); lost jobs are noted."""
        try:
            self.commits += 1
            _held, lost = renew_leases(self.store, self.worker_id, batch, self.lease_s)
        except Exception as exc:  # noqa: BLE001 - transient store trouble: try again at the next beat
            self._errors.error(exc)
            return
        self._errors.ok()
        with self._lock:
            for job_id, why in lost.items():
                if job_id in self._posted:
                    self._posted.pop(job_id)
                    self._lost[job_id] = why


class JobSlots:
    """Runs ``slots`` jobs of ``worker`` side by side, their leases renewed together."""

    def __init__(self, worker: Worker, slots: int):
        if slots < 1:
            raise ValueError(f"concurrent jobs must be >= 1, got {slots}")
        self.worker = worker
        self.slots = slots
        self.renewer = LeaseRenewer(worker.store, worker.worker_id, worker.lease_s, worker.heartbeat_s,
                                    worker.progress_interval_s)
        self._lock = threading.Lock()
        self._claiming = threading.Lock()
        self._taken = 0  # jobs claimed (or being claimed) against max_jobs
        self.finished: list[Job] = []  # final documents of the jobs the slots processed

    def run(self, once: bool = False, poll_s: float = 5.0, max_jobs: int | None = None) -> int:
        """Process jobs in every slot until stopped (``once``: at most one per slot, each slot
        ends when the queue is empty); returns the number of jobs processed."""
        self.worker.discard_spare()
        self.renewer.start()
        threads = [threading.Thread(target=self._slot, args=(i, once, poll_s, max_jobs),
                                    name=f"{self.worker.worker_id}-slot{i}", daemon=True)
                   for i in range(self.slots)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            self.renewer.stop()
        return len(self.finished)

    def _reserve(self, max_jobs: int | None) -> bool:
        with self._lock:
            if max_jobs is not None and self._taken >= max_jobs:
                return False
            self._taken += 1
            return True

    def _unreserve(self) -> None:
        with self._lock:
            self._taken -= 1

    def _slot(self, index: int, once: bool, poll_s: float, max_jobs: int | None) -> None:
        w = copy.copy(self.worker)  # shares store, config, limits and the stop event
        w._spare, w._keep_spare = None, False
        w.lease_renewer = self.renewer
        stopping = self.worker.stopping
        while not stopping.is_set():
            if not self._reserve(max_jobs):
                return
            try:
                with self._claiming:  # one claim at a time: the slots share one worker id, and a claim
                    # that lost its compare-and-swap to another slot would take that slot's job for its own
                    job = claim(w.store, w.worker_id, w.lease_s, w.max_attempts, w.protocol.id)
            except Exception as exc:  # noqa: BLE001 - store trouble: a long-lived worker waits and retries
                self._unreserve()
                w._store_errors.error(exc)
                stopping.wait(poll_s)
                continue
            if job is None:
                self._unreserve()
                if once:
                    return
                stopping.wait(poll_s)
                continue
            log.info("%s: slot %d claimed %s (attempt %d)", w.worker_id, index, job.id, job.attempts)
            try:
                final = w.process(job)
            except Exception as exc:  # noqa: BLE001 - as Worker.run: store trouble, the lease expires
                w._store_errors.error(exc)
                stopping.wait(poll_s)
                continue
            finally:
                self.renewer.forget(job.id)
                w.discard_spare()
            with self._lock:
                self.finished.append(final)
            if once:
                return
