"""One worker holding several claimed jobs at once (``leaderboard.jobs.slots``, the worker's
``--concurrent-jobs``): two jobs run side by side, their leases are renewed in one commit
(the per-job heartbeat is not used), a stop releases both and leaves no evaluation process,
and a job lost to a cancellation does not disturb the other, which finishes.

The evaluations are real (validity only) and held by a gate file; waits are on job
documents, files and processes, never on fixed sleeps."""

from __future__ import annotations

import threading

import pytest
from lifecycle_helpers import PID_FILE, pid_gated_evaluate
from store_helpers import META, local_store, wait_for, write_cifs

from evaluator.config import EvalConfig
from evaluator.procpool import pid_alive
from leaderboard.jobs import queue as q
from leaderboard.jobs import supervisor as worker_module
from leaderboard.jobs.slots import JobSlots
from leaderboard.publishing.results import load_summary
from leaderboard.store.layout import job_path
from leaderboard.intake.submissions import SubmissionPolicy, submit
from leaderboard.worker import CONFIG_ERROR, Worker, main

UNLIMITED = SubmissionPolicy(max_per_window=0)
VALIDITY = EvalConfig(families=["validity"])
BOUND_S = 300  # hang detection only


def _two_jobs(store, tmp_path):
    return [submit(store, META, [write_cifs(tmp_path / f"up{n}", n)], "alice", UNLIMITED) for n in (2, 3)]


def _slots(store, tmp_path, monkeypatch):
    """A worker with two slots, the store's renewal commits recorded and the per-job
    heartbeat spied on (it must not be used)."""
    renewals: list[set[str]] = []
    real_commit = store.commit

    def commit(writes, **kwargs):
        real_commit(writes, **kwargs)
        if "renew" in kwargs.get("message", ""):
            renewals.append(set(writes))

    monkeypatch.setattr(store, "commit", commit)
    per_job: list[str] = []
    monkeypatch.setattr(worker_module, "heartbeat", lambda store, job_id, *a, **k: per_job.append(job_id))
    worker = Worker(store, VALIDITY, worker_id="w-slots", work_root=tmp_path / "work", heartbeat_s=0.2,
                    progress_interval_s=0.05, lease_s=30, evaluate=pid_gated_evaluate)
    return worker, JobSlots(worker, 2), renewals, per_job


def _held_at_gate(store, job_id):
    j = q.get_job(store, job_id)
    return (j.status == q.RUNNING and j.lease_owner == "w-slots" and j.progress.get("stage") == "validity"
            and j.progress.get("done") == j.progress.get("total") > 0)


def _eval_pid(tmp_path, job_id) -> int:
    return int((tmp_path / "work" / job_id / PID_FILE).read_text())


def test_two_jobs_side_by_side_one_renewal_commit_and_stop_releases_both(tmp_path, monkeypatch):
    store = local_store(tmp_path)
    jobs = _two_jobs(store, tmp_path)
    worker, slots, renewals, per_job = _slots(store, tmp_path, monkeypatch)
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(slots.run(poll_s=0.2)), daemon=True)
    thread.start()
    try:
        for job in jobs:  # both held at the gate at the same time: claimed and running side by side
            wait_for(lambda job=job: _held_at_gate(store, job.id), BOUND_S, 0.05, f"{job.id} running")
        assert all(_held_at_gate(store, job.id) for job in jobs)
        both = {job_path(job.id) for job in jobs}
        start = len(renewals)
        wait_for(lambda: any(both <= w for w in renewals[start:]), BOUND_S, 0.05,
                 "one commit renewing both leases")
        pids = [_eval_pid(tmp_path, job.id) for job in jobs]
        assert len(set(pids)) == 2 and all(pid_alive(p) for p in pids)  # one evaluation process per job
    finally:
        worker.stop()
        thread.join(BOUND_S)
    assert not thread.is_alive() and out == [2]
    assert per_job == []  # no per-job heartbeat: every renewal went through the shared commit
    for job in jobs:
        released = q.get_job(store, job.id)
        assert released.status == q.PENDING and released.attempts == 0 and released.lease_owner is None
        assert [(h["event"], h["by"]) for h in released.history][-1] == ("released", "w-slots")
    for pid in pids:
        wait_for(lambda pid=pid: not pid_alive(pid), 60, 0.1, f"evaluation process {pid} to end")


def test_a_lost_lease_on_one_job_leaves_the_other_running_to_the_end(tmp_path, monkeypatch):
    store = local_store(tmp_path)
    lost, kept = _two_jobs(store, tmp_path)
    worker, slots, renewals, per_job = _slots(store, tmp_path, monkeypatch)
    out: list[int] = []
    thread = threading.Thread(target=lambda: out.append(slots.run(poll_s=0.2, max_jobs=2)), daemon=True)
    thread.start()
    try:
        for job in (lost, kept):
            wait_for(lambda job=job: _held_at_gate(store, job.id), BOUND_S, 0.05, f"{job.id} running")
        lost_pid = _eval_pid(tmp_path, lost.id)
        q.cancel(store, lost.id, admin=True)  # the lease is gone: its slot abandons the job
        wait_for(lambda: not pid_alive(lost_pid), 60, 0.05, "the cancelled job's evaluation to be killed")
        start = len(renewals)  # the other job is still renewed, alone now
        wait_for(lambda: any(job_path(kept.id) in w and job_path(lost.id) not in w for w in renewals[start:]),
                 BOUND_S, 0.05, "a renewal of the remaining job")
        assert _held_at_gate(store, kept.id) and pid_alive(_eval_pid(tmp_path, kept.id))
        (tmp_path / "work" / kept.id / "proceed").touch()
        thread.join(BOUND_S)
    finally:
        worker.stop()
        thread.join(BOUND_S)
    assert out == [2] and per_job == []
    cancelled = q.get_job(store, lost.id)
    assert cancelled.status == q.CANCELLED
    assert [h["event"] for h in cancelled.history][-1] == "cancelled"  # nothing written after it
    finished = q.get_job(store, kept.id)
    assert finished.status == q.FINISHED and finished.attempts == 1
    assert load_summary(store, kept.id)["n_valid"] == 3


def test_one_slot_is_the_plain_worker_and_more_need_a_shared_ray_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("GENBENCH_RAY_ACTORS", raising=False)
    monkeypatch.delenv("GENBENCH_EXECUTOR", raising=False)
    store = tmp_path / "state"
    base = ["--store", str(store), "--families", "validity", "--once"]
    assert main([*base, "--concurrent-jobs", "0"]) == CONFIG_ERROR
    assert "--concurrent-jobs must be >= 1" in capsys.readouterr().err
    assert main([*base, "--concurrent-jobs", "2"]) == CONFIG_ERROR
    assert "needs --executor ray" in capsys.readouterr().err
    pytest.importorskip("ray")
    assert main([*base, "--concurrent-jobs", "2", "--executor", "ray", "--ray-actors", "2"]) == CONFIG_ERROR
    assert "needs a cluster the jobs share" in capsys.readouterr().err
    assert main([*base, "--concurrent-jobs", "2", "--executor", "ray", "--ray-address", "head:6379"]) == CONFIG_ERROR
    assert "needs --ray-actors N" in capsys.readouterr().err
