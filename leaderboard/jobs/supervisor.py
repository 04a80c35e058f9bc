"""The worker's supervision of jobs: claim the oldest runnable job, evaluate its upload in a
child process (``leaderboard.jobs.evalproc``), relay the child's progress to the job
document (which renews the lease), publish the results, repeat. ``leaderboard.worker`` is
its command line; this module is the loop (see that module's doc for the whole contract).

* The worker never runs evaluator code itself, so it can always stop an evaluation: it
  kills the child's whole process group (pools included). While more jobs may follow, a
  spare evaluation process imports the evaluator in advance.
* Stage watchdog: the lease is renewed only while progress moves. No progress for the stall
  timeout: the evaluation is killed and the job retried as an infrastructure failure
  "stalled at <stage>"; an attempt past the job budget fails for good.
* ``IngestError`` (unusable upload) fails the job for good; any other error is an
  infrastructure failure, retried until the job's ``max_attempts``.
* Store outages (``leaderboard.store.outage``) are waited out, never a failure of the job.
* Stop (SIGTERM/SIGINT through ``Worker.stop``): kill the evaluation and release the job
  (``drain``: finish it first).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from evaluator.config import EvalConfig, build_config
from evaluator.progress import ProgressUpdate
from leaderboard import settings
from leaderboard.intake.submissions import file_paths
from leaderboard.jobs.evalproc import Done, EvalProcess, Failed, UserError
from leaderboard.jobs.progress import STORE_UNAVAILABLE_STAGE, ProgressTracker
from leaderboard.jobs.queue import (INFRASTRUCTURE, USER_ERROR, Job, JobStatus, LeaseLost, Progress, claim, fail,
                                    get_job, heartbeat, public_reason, release)
from leaderboard.jobs.worker_config import check_config, check_protocol
from leaderboard.publishing.results import publish
from leaderboard.publishing.summary_file import SummaryFile
from leaderboard.store import Store
from leaderboard.store.outage import RepeatedErrorLog, store_unavailable

log = logging.getLogger("leaderboard.worker")
MAX_REASON = 500
POLL_S = 0.25  # how often the supervising loop checks stop/stall/heartbeat
OUTAGE_RETRY_S = 2.0  # first wait before retrying a store the worker could not reach; doubles up to
OUTAGE_RETRY_MAX_S = 60.0
T = TypeVar("T")


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LeaseRenewal(Protocol):
    """Renews a job's lease with the leases of other jobs (``leaderboard.jobs.slots.LeaseRenewer``)."""

    def renew(self, job_id: str, progress: Progress | None) -> None: ...


@dataclass(frozen=True)
class Interrupted:
    """Why supervising an evaluation ended without a result from it: the process died
    (or sent a broken message), the worker is stopping, the lease was lost, or the
    stage watchdog / the job budget stopped it; ``detail`` is the reason or the stage."""

    kind: Literal["died", "stop", "lost", "stalled", "budget"]
    detail: str = ""


Outcome = Done | UserError | Failed | Interrupted


class Worker:
    """Claims and evaluates jobs from ``store``.

    lease_s / heartbeat_s: lease length and heartbeat period in seconds (default:
    the store's advice, e.g. 60/5 locally, 900/240 on the Hub);
    progress_interval_s: minimum seconds between progress writes;
    stall_timeout_s: a job whose progress does not move for this long is stopped and
    retried as an infrastructure failure "stalled at <stage>" (default
    $GENBENCH_STALL_TIMEOUT or 600); job_budget_s: wall-clock budget of one attempt,
    past which the job fails for good (default $GENBENCH_JOB_BUDGET or 86400). Before the
    evaluation process reports its first stage the limit is at least $GENBENCH_START_TIMEOUT
    (default 300 s), so a slow start on a loaded machine is not taken for a stall.
    evaluate: the evaluation function (default ``evaluator.pipeline.evaluate``); it runs
    in a child process (see ``leaderboard.jobs.evalproc``), so it must be a module-level function.
    config: the EvalConfig (default ``build_config()``: GENBENCH_* variables, then the
    defaults); checked here, so an unknown family or option raises ValueError.
    expect_protocol: the protocol the service pins (id or named protocol; default
    $GENBENCH_EXPECT_PROTOCOL, else none); ValueError when this worker cannot produce it
    (``check_protocol``). ``self.protocol`` is what it produces; it claims only jobs queued
    under it (or under none).
    outage_retry_s: first wait before retrying a store that did not answer (doubling up
    to OUTAGE_RETRY_MAX_S).
    """

    def __init__(self, store: Store, config: EvalConfig | None = None, *, worker_id: str | None = None,
                 work_root: str | Path | None = None, data_dir: str | Path | None = None,
                 lease_s: float | None = None, heartbeat_s: float | None = None,
                 progress_interval_s: float | None = None, retry_delay_s: float = 30.0,
                 max_attempts: int | None = None, drain: bool = False, keep_work: bool = False,
                 evaluate: Callable[..., Any] | None = None, stall_timeout_s: float | None = None,
                 job_budget_s: float | None = None,
                 start_method: str = "forkserver", expect_protocol: str | None = None,
                 outage_retry_s: float = OUTAGE_RETRY_S):
        self.config = config if config is not None else build_config()
        check_config(self.config)
        self.protocol = check_protocol(self.config, expect_protocol or settings.EXPECT_PROTOCOL.read(), data_dir)
        self.store = store
        self.worker_id = worker_id or default_worker_id()
        self.work_root = Path(work_root or settings.WORK_DIR.read())
        self.data_dir = data_dir
        self.lease_s = float(lease_s or store.lease_s)
        self.heartbeat_s = float(heartbeat_s or min(store.heartbeat_interval_s, self.lease_s / 3))
        default_progress = 1.0 if store.heartbeat_interval_s < 60 else self.heartbeat_s
        self.progress_interval_s = float(progress_interval_s or default_progress)
        self.retry_delay_s = retry_delay_s
        self.max_attempts = max_attempts
        self.drain = drain
        self.keep_work = keep_work
        self.stall_timeout_s = float(stall_timeout_s or settings.STALL_TIMEOUT.read())
        self.job_budget_s = float(job_budget_s or settings.JOB_BUDGET.read())
        self.start_timeout_s = settings.START_TIMEOUT.read()
        self.start_method = start_method
        self.outage_retry_s = float(outage_retry_s)
        self._store_errors = RepeatedErrorLog(log, f"{self.worker_id}: store")
        self._evaluate = evaluate
        self._spare: EvalProcess | None = None  # an idle evaluation process, imports done
        self._keep_spare = False  # start the next spare as a job starts (run() with more jobs to come)
        self.stopping = threading.Event()
        # set by leaderboard.jobs.slots on a slot's copy: its renewer renews this job's lease with the
        # other slots' in one commit (None: this worker heartbeats its one job itself)
        self.lease_renewer: LeaseRenewal | None = None

    # -- control -------------------------------------------------------------
    def stop(self, *_args: object) -> None:
        """Ask the worker to stop (signal handler): release or (drain) finish the current job."""
        log.info("%s: stop requested", self.worker_id)
        self.stopping.set()

    def run(self, once: bool = False, poll_s: float = 5.0, max_jobs: int | None = None) -> int:
        """Process jobs until stopped (``once``: at most one, return when the queue is empty)."""
        try:
            return self._run(once, poll_s, max_jobs)
        finally:
            self.discard_spare()

    def _run(self, once: bool, poll_s: float, max_jobs: int | None) -> int:
        n = 0
        while not self.stopping.is_set():
            # a spare evaluation process imports the evaluator while we wait and while a job runs,
            # if another job may follow
            self._keep_spare = not once and (max_jobs is None or n + 1 < max_jobs)
            if not once:
                self._ensure_spare()
            try:
                job = self.run_one()
            except Exception as exc:  # noqa: BLE001 - store trouble (network, Hub): a long-lived worker waits and retries
                self._store_errors.error(exc)  # logged once, then counted
                self.stopping.wait(poll_s)
                continue
            self._store_errors.ok()
            if job is not None:
                n += 1
                if once or (max_jobs is not None and n >= max_jobs):
                    break
                continue
            if once:
                break
            self.stopping.wait(poll_s)
        return n

    def run_one(self) -> Job | None:
        """Claim one job and process it; returns its final document or None if idle."""
        job = claim(self.store, self.worker_id, self.lease_s, self.max_attempts, self.protocol.id)
        if job is None:
            return None
        log.info("%s: claimed %s (attempt %d)", self.worker_id, job.id, job.attempts)
        return self.process(job)

    # -- evaluation processes ------------------------------------------------
    def _ensure_spare(self) -> None:
        """Have an idle evaluation process importing the evaluator while we wait or work."""
        if self._spare is not None and not self._spare.alive:
            self.discard_spare()
        if self._spare is None:
            try:
                self._spare = EvalProcess(self.start_method)
            except Exception:  # noqa: BLE001 - the job will start its own (and report why not)
                log.exception("%s: could not start a spare evaluation process", self.worker_id)

    def discard_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.kill()

    def _evaluation_process(self) -> EvalProcess:
        spare, self._spare = self._spare, None
        if spare is not None and spare.alive:
            return spare
        if spare is not None:
            spare.kill()
        return EvalProcess(self.start_method)

    # -- one job -------------------------------------------------------------
    def _inputs(self, job: Job, work: Path) -> list[Path]:
        inputs = []
        for path in file_paths(job):
            local = self.store.local_path(path)
            if local is None:
                raise FileNotFoundError(f"uploaded file {path} is missing from the store")
            if local.name != Path(path).name:  # keep the uploaded name (format detection)
                dest = work / "input" / Path(path).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dest)
                local = dest
            inputs.append(local)
        return inputs

    @property
    def limits(self) -> dict[str, float]:
        """The lifecycle limits, as recorded in the summary's provenance."""
        return {"stall_timeout_s": self.stall_timeout_s, "start_timeout_s": self.start_timeout_s,
                "job_budget_s": self.job_budget_s,
                "lease_s": self.lease_s, "heartbeat_s": self.heartbeat_s}

    def _supervise(self, job: Job, child: EvalProcess, tracker: ProgressTracker) -> Outcome:
        """Relay the child's progress to the job document until it ends or must be stopped;
        returns the child's result (Done, UserError, Failed) or why it was interrupted."""
        last_write, dirty = time.monotonic(), False
        beats = RepeatedErrorLog(log, f"{self.worker_id}: heartbeat for {job.id}")
        while True:
            for msg in child.messages(POLL_S):
                if isinstance(msg, ProgressUpdate):
                    dirty |= tracker.update(msg.stage, msg.done, msg.total, msg.detail, msg.work_done,
                                            msg.work_total)
                else:
                    return msg
            if child.broken is not None:
                return Interrupted("died", child.broken)
            if child.finished:
                return Interrupted("died", child.exit_description())
            if self.stopping.is_set() and not self.drain:
                return Interrupted("stop")
            if tracker.idle_s() > self._stall_limit_s(tracker.stage):
                return Interrupted("stalled", tracker.stage)
            if tracker.elapsed_s() > self.job_budget_s:
                return Interrupted("budget", tracker.stage)
            t = time.monotonic()
            if (dirty and t - last_write >= self.progress_interval_s) or t - last_write >= self.heartbeat_s:
                # the lease is renewed only here, i.e. only while progress moves (else: stalled above)
                try:
                    if self.lease_renewer is None:
                        heartbeat(self.store, job.id, self.worker_id, self.lease_s, tracker.doc())
                    else:  # one of several jobs (leaderboard.jobs.slots): renewed with the others
                        self.lease_renewer.renew(job.id, tracker.doc())
                    dirty = False
                    beats.ok()
                except LeaseLost as exc:
                    return Interrupted("lost", str(exc))
                except Exception as exc:  # noqa: BLE001 - transient store trouble: try again next beat
                    beats.error(exc)
                last_write = t

    def process(self, job: Job) -> Job:
        """Evaluate a claimed job in a child process and publish, fail, retry or release it."""
        work = self.work_root / job.id
        work.mkdir(parents=True, exist_ok=True)
        tracker = ProgressTracker()
        outcome = None
        try:
            inputs = self._through_outage(f"reading the upload of {job.id}", lambda: self._inputs(job, work))
        except Exception as exc:  # noqa: BLE001 - the store lost the upload: ours, not the user's
            log.error("%s: %s: inputs unavailable:\n%s", self.worker_id, job.id, traceback.format_exc())
            reason = _short(f"evaluation error ({type(exc).__name__}): {exc}")
            outcome = self._safely(fail, job.id, self.worker_id, reason, INFRASTRUCTURE, self.retry_delay_s)
            return self._finalize(job, work, outcome)
        if inputs is None:  # stopped while the store was unavailable: hand the job back if it answers now
            return self._finalize(job, work, self._release_after_outage(job))
        result: Outcome
        try:
            child = self._evaluation_process()
            child.run(self._evaluate, inputs, self.config, self.data_dir, work / "eval",
                      provenance={"lifecycle": self.limits})
            if self._keep_spare:
                self._ensure_spare()
        except Exception as exc:  # noqa: BLE001 - e.g. no process could be started (limits, memory)
            result = Failed(type(exc).__name__, str(exc), traceback.format_exc())
        else:
            result = Interrupted("died", "evaluation process did not report")
            try:
                result = self._supervise(job, child, tracker)
            finally:
                # stop/stall/budget/lease lost (or an exception here): kill the whole evaluation now
                child.kill() if isinstance(result, Interrupted) else child.close()
        match result:
            case Done():
                try:
                    outcome = self._publish(job, result, tracker)
                except Exception as exc:  # noqa: BLE001 - e.g. the store refused the commit: retry the job
                    log.error("%s: %s: publishing failed:\n%s", self.worker_id, job.id, traceback.format_exc())
                    reason = _short(f"could not publish the results ({type(exc).__name__}): {exc}")
                    outcome = self._safely(fail, job.id, self.worker_id, reason, INFRASTRUCTURE, self.retry_delay_s)
                if outcome is None and self.stopping.is_set():  # stopped while the store did not answer
                    outcome = self._release_after_outage(job)
            case UserError(message=message):
                outcome = self._safely(fail, job.id, self.worker_id, _short(message), USER_ERROR)
            case Failed():
                log.error("%s: %s failed:\n%s", self.worker_id, job.id, result.traceback)
                reason = f"evaluation error ({result.type}): {result.message}"
                outcome = self._safely(fail, job.id, self.worker_id, _short(reason), INFRASTRUCTURE,
                                       self.retry_delay_s)
            case Interrupted(kind="stop"):
                log.info("%s: releasing %s (shutting down)", self.worker_id, job.id)
                outcome = self._safely(release, job.id, self.worker_id, "worker shut down")
            case Interrupted(kind="lost", detail=detail):
                log.warning("%s: abandoned %s (%s)", self.worker_id, job.id, detail)
            case Interrupted(kind="stalled", detail=stage):
                reason = f"stalled at {stage} (no progress for {self._stall_limit_s(stage):g} s)"
                log.error("%s: %s %s", self.worker_id, job.id, reason)
                outcome = self._safely(fail, job.id, self.worker_id, _short(reason), INFRASTRUCTURE,
                                       self.retry_delay_s, stage)
            case Interrupted(kind="budget", detail=stage):
                reason = f"exceeded the job budget of {self.job_budget_s:g} s (wall clock) at {stage}"
                log.error("%s: %s %s", self.worker_id, job.id, reason)
                outcome = self._safely(fail, job.id, self.worker_id, _short(reason), INFRASTRUCTURE,
                                       self.retry_delay_s, None, True)
            case Interrupted(detail=why):  # "died": killed, out of memory, a broken message, ...
                log.error("%s: %s: %s", self.worker_id, job.id, why)
                outcome = self._safely(fail, job.id, self.worker_id, _short(why), INFRASTRUCTURE,
                                       self.retry_delay_s)
        return self._finalize(job, work, outcome)

    def _finalize(self, job: Job, work: Path, outcome: Job | None) -> Job:
        try:
            final = outcome or get_job(self.store, job.id) or job
        except Exception as exc:  # noqa: BLE001 - the store is unavailable: what we know
            self._store_errors.error(exc)
            final = job
        if final.status in (JobStatus.FINISHED, JobStatus.FAILED) and not self.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        log.info("%s: %s -> %s", self.worker_id, job.id, final.status)
        return final

    def _release_after_outage(self, job: Job) -> Job | None:
        """Stopped during a store outage: give the job back (attempt not counted) if the store
        answers now; if not, its lease expires and another worker reclaims it."""
        try:
            return release(self.store, job.id, self.worker_id, "worker shut down during a store outage")
        except Exception as exc:  # noqa: BLE001 - still unavailable, or no longer ours
            self._store_errors.error(exc)
            return None

    def _stall_limit_s(self, stage: str) -> float:
        """Seconds without progress after which ``stage`` counts as stalled (longer while starting)."""
        return max(self.stall_timeout_s, self.start_timeout_s) if stage == "starting" else self.stall_timeout_s

    def _safely(self, fn: Callable[..., Job], *args: object) -> Job | None:
        """``fn(store, *args)`` (a queue write), waiting out a store outage; None if the lease
        was lost or the worker was stopped during the outage."""
        return self._through_outage(f"{getattr(fn, '__name__', 'write')} {args[0] if args else ''}".strip(),
                                    lambda: fn(self.store, *args))

    def _through_outage(self, what: str, call: Callable[[], T], job: Job | None = None,
                        tracker: ProgressTracker | None = None) -> T | None:
        """``call()``, retried while the store is unavailable (backoff from ``outage_retry_s``
        to OUTAGE_RETRY_MAX_S; one log entry for the outage, with a count). With ``job`` and
        ``tracker`` the job's stage says "publishing: store unavailable, retrying" (and the
        lease is renewed) whenever the store lets that through. Returns None if the lease
        is lost, or if the worker is stopped before the store answers; other errors raise."""
        errors = RepeatedErrorLog(log, f"{self.worker_id}: {what}")
        delay = self.outage_retry_s
        last_beat = -float("inf")  # heartbeats at most every heartbeat_s (the Hub's commit budget)
        while True:
            try:
                result = call()
            except LeaseLost as exc:
                errors.ok()
                log.warning("%s: %s", self.worker_id, exc)
                return None
            except Exception as exc:
                if not store_unavailable(exc):
                    raise
                errors.error(exc)
                if (job is not None and tracker is not None
                        and (tracker.update(STORE_UNAVAILABLE_STAGE, tracker.done, tracker.total)
                             or time.monotonic() - last_beat >= self.heartbeat_s)):
                    last_beat = time.monotonic()
                    try:
                        heartbeat(self.store, job.id, self.worker_id, self.lease_s, tracker.doc())
                    except LeaseLost as lost:
                        log.warning("%s: %s", self.worker_id, lost)
                        return None
                    except Exception:  # noqa: BLE001 - the outage again: counted above
                        pass
                if self.stopping.is_set() and not self.drain:
                    log.warning("%s: %s: stopped while the store is unavailable (%s failures)", self.worker_id,
                                what, errors.count)
                    return None
                self.stopping.wait(delay)
                delay = min(2 * delay, OUTAGE_RETRY_MAX_S)
                continue
            errors.ok()
            return result

    def _publish(self, job: Job, done: Done, tracker: ProgressTracker) -> Job | None:
        """Publish the evaluation the child sent: the bytes of its summary (the lifecycle limits
        are in its provenance: ``run`` gave them to the child) and of its table."""
        summary = SummaryFile(done.summary_json)  # published as it is; parsed once, for the values read here
        produced = (summary.values.get("protocol") or {}).get("id")
        if job.protocol and produced != job.protocol:  # e.g. weights replaced on disk mid-run: never publish
            raise RuntimeError(f"the evaluation produced protocol {produced}, not {job.protocol} it was queued under")
        progress = tracker.doc()
        rates = tracker.stage_rates()
        return self._through_outage(f"publishing {job.id}", lambda: publish(
            self.store, job, summary, done.table_parquet, self.worker_id, progress=progress, stage_rates=rates),
            job, tracker)



def _short(text: str) -> str:
    """A failure reason as users see it: one line, no server paths, at most MAX_REASON characters."""
    text = public_reason(" ".join(text.split()))
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


