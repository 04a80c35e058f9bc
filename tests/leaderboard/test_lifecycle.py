"""Issue 11: every submitted job reaches a final state, with real workers (subprocesses).

* a stuck stage (ignores SIGTERM, holds a grandchild) is killed by the stage watchdog
  and retried as "stalled at <stage>"; a job past its budget fails for good;
* SIGTERM in a stuck stage hands the job back at once and leaves no process behind;
* workers killed with SIGTERM and with SIGKILL during the fingerprint and the relax
  stage: the job still finishes exactly once, with one leaderboard row, and no
  process of a stopped worker survives it;
* a corrupt status document is quarantined and another job still finishes;
* end to end: ``leaderboard.serve`` (app + worker) on a real upload while the machine
  is loaded with other CPU work; nothing it started outlives it.

Waits are on state (job documents, files, /proc) with generous bounds, never on speed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from store_helpers import META, local_store, start_worker, wait_for, write_cifs, write_unique_files
from evaluator.procpool import pid_alive
from leaderboard.jobs import queue as q
from leaderboard.publishing.results import load_results_table, load_summary
from leaderboard.intake.submissions import SubmissionPolicy, submit, withdraw
from leaderboard.worker import Worker
from lifecycle_helpers import HOLD_VAR, TAG_VAR, describe, slow_evaluate, stuck_evaluate, tagged_processes
from repo_paths import REPO, SUPPORT

UNLIMITED = SubmissionPolicy(max_per_window=0, max_attempts=5)
SMALL_CIFS = ("mp_mp-1219922.cif", "mp_mp-22924.cif", "mp_mp-2524.cif")  # 2-3 sites each
GONE_S = 60  # bound for a stopped worker's processes to disappear (hang detection only)


def _small_upload(data, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in SMALL_CIFS:
        shutil.copy(data.path(f"structures/mp_sample/{name}"), folder / name)
    return sorted(folder.iterdir())


def _no_survivors(tag: str, what: str) -> None:
    try:
        wait_for(lambda: not tagged_processes(tag), GONE_S, 0.2, f"the processes of {what} to end")
    except AssertionError:
        left = tagged_processes(tag)
        for pid in left:  # do not leak them into the rest of the suite
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise AssertionError(f"{what} left processes behind: {describe(left)}") from None


def _worker(store, tmp_path, name: str, *args: str, hold: str | None = None):
    tag = f"{name}-{uuid.uuid4().hex[:8]}"
    env = {TAG_VAR: tag, "PYTHONPATH": f"{REPO}{os.pathsep}{SUPPORT}"}
    if hold:
        env[HOLD_VAR] = hold
    proc = start_worker(store.root, "--worker-id", name, "--work-dir", str(tmp_path / "work"), "--keep-work",
                        "--poll", "0.2", *args, log=tmp_path / f"{name}.log", env=env)
    return proc, tag


def _log(tmp_path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text()[-3000:]


def test_stuck_stage_is_stopped_by_the_watchdog_and_retried(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    worker = Worker(store, None, worker_id="w", work_root=tmp_path / "work", heartbeat_s=0.2,
                    progress_interval_s=0.05, lease_s=30, retry_delay_s=0, stall_timeout_s=2,
                    evaluate=stuck_evaluate)
    final = worker.run_one()
    assert final.status == q.PENDING and final.attempts == 1
    assert final.last_error["reason"].startswith("stalled at novelty")
    assert final.last_error["kind"] == q.INFRASTRUCTURE
    events = [(h["event"], h.get("attempt")) for h in final.history]
    assert events == [("submitted", None), ("claimed", 1), ("stalled", 1), ("retry", 1)]
    assert final.history[2]["stage"] == "novelty"
    grandchild = int((tmp_path / "work" / job.id / "grandchild.pid").read_text())
    wait_for(lambda: not pid_alive(grandchild), GONE_S, 0.1, "the stuck stage's child to be killed")


def test_a_slow_start_is_not_a_stall(tmp_path, monkeypatch):
    """Before the first stage the stall limit is at least the start limit (a fresh interpreter
    importing torch on a busy machine); every stage after it has the plain stall limit."""
    worker = Worker(local_store(tmp_path), None, worker_id="w", work_root=tmp_path / "work", stall_timeout_s=2)
    assert worker._stall_limit_s("starting") == 300 and worker._stall_limit_s("novelty") == 2
    monkeypatch.setenv("GENBENCH_START_TIMEOUT", "45")
    worker = Worker(local_store(tmp_path), None, worker_id="w", work_root=tmp_path / "work", stall_timeout_s=2)
    assert worker._stall_limit_s("starting") == 45 and worker.limits["start_timeout_s"] == 45


def test_job_past_its_budget_fails_for_good(tmp_path):
    store = local_store(tmp_path)
    submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    worker = Worker(store, None, worker_id="w", work_root=tmp_path / "work", heartbeat_s=0.2,
                    progress_interval_s=0.05, lease_s=30, retry_delay_s=0, job_budget_s=1,
                    evaluate=slow_evaluate)  # moves all the time, but needs > 10 s
    final = worker.run_one()
    assert final.status == q.FAILED and final.failure["kind"] == q.INFRASTRUCTURE
    assert final.failure["reason"].startswith("exceeded the job budget of 1 s")
    assert worker.run_one() is None  # not retried


def test_sigterm_in_a_stuck_stage_releases_and_leaves_nothing(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    proc, tag = _worker(store, tmp_path, "w1", "--evaluate", "lifecycle_helpers:stuck_evaluate")
    try:
        pidfile = tmp_path / "work" / job.id / "grandchild.pid"
        wait_for(pidfile.exists, 300, 0.1, "the stuck stage")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, _log(tmp_path, "w1")
    released = q.get_job(store, job.id)
    assert released.status == q.PENDING and released.attempts == 0 and released.lease_owner is None
    assert [(h["event"], h.get("attempt")) for h in released.history][-1] == ("released", 1)
    _no_survivors(tag, "the stopped worker")


@pytest.mark.slow
def test_workers_killed_in_fingerprint_and_relax_stages_job_finishes_once(tmp_path, data):
    """SIGTERM and SIGKILL, each during the novelty fingerprints and the MLIP relaxation
    (relaxation pool of two processes); a fifth worker finishes the job."""
    store = local_store(tmp_path)
    job = submit(store, META, _small_upload(data, tmp_path / "up"), "alice", UNLIMITED)
    common = ("--families", "validity,novelty,stability", "--relax-steps", "20", "--option",
              "stability.relax_mode=pool", "--option", "stability.relax_workers=2", "--heartbeat", "0.5",
              "--progress-interval", "0.05", "--lease", "3", "--evaluate", "lifecycle_helpers:held_evaluate")
    plan = [("w1", "novelty: fingerprints", signal.SIGTERM), ("w2", "novelty: fingerprints", signal.SIGKILL),
            ("w3", "stability: relax", signal.SIGTERM), ("w4", "stability: relax", signal.SIGKILL)]
    held = tmp_path / "work" / job.id / "held"
    for name, stage, sig in plan:
        held.unlink(missing_ok=True)
        proc, tag = _worker(store, tmp_path, name, *common, hold=stage)
        try:
            def holding(proc=proc, name=name):
                assert proc.poll() is None, _log(tmp_path, name)
                return held.exists()

            wait_for(holding, 300, 0.1, f"{name} to be in {stage}")
            doc = q.get_job(store, job.id)
            assert doc.status == q.RUNNING and doc.lease_owner == name
            proc.send_signal(sig)
            code = proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
        _no_survivors(tag, f"{name} ({sig.name} in {stage})")
        doc = q.get_job(store, job.id)
        if sig == signal.SIGTERM:
            assert code == 0, _log(tmp_path, name)
            assert doc.status == q.PENDING and doc.history[-1]["event"] == "released"
        else:
            assert doc.status == q.RUNNING and doc.lease_owner == name  # until its lease expires
    last, tag = _worker(store, tmp_path, "w5", *common, "--max-jobs", "1")
    assert last.wait(600) == 0, _log(tmp_path, "w5")
    _no_survivors(tag, "the last worker")
    final = q.get_job(store, job.id)
    assert final.status == q.FINISHED and final.lease_owner == "w5"
    events = [(h["event"], h["by"]) for h in final.history]
    assert events == [("submitted", "alice"), ("claimed", "w1"), ("released", "w1"), ("claimed", "w2"),
                      ("reclaimed", "w3"), ("released", "w3"), ("claimed", "w4"), ("reclaimed", "w5"),
                      ("finished", "w5")]
    assert [h.get("previous_owner") for h in final.history if h["event"] == "reclaimed"] == ["w2", "w4"]
    assert all("attempt" in h for h in final.history[1:])
    assert load_results_table(store, reconcile=False)["submission_id"].tolist() == [job.id]  # one row
    summary = load_summary(store, job.id)
    assert summary["leaderboard"]["worker"] == "w5" and summary["n_submitted"] == 3
    assert summary["provenance"]["lifecycle"]["stall_timeout_s"] == 600
    assert final.stage_rates and all(r > 0 for r in final.stage_rates.values())


def test_corrupt_status_document_is_quarantined_and_another_job_finishes(tmp_path, caplog):
    store = local_store(tmp_path)
    files = [write_cifs(tmp_path / f"up{i}", i + 1, name=f"g{i}") for i in range(3)]
    broken, shaped, good = (submit(store, META, [f], "alice", UNLIMITED) for f in files)
    store.write_bytes(q.job_path(broken.id), store.read_bytes(q.job_path(broken.id))[:40])  # truncated
    store.write_json(q.job_path(shaped.id), ["not", "a", "job"])  # wrongly shaped
    store.write_bytes(q.SEQUENCE_PATH, b"\x00garbage\n")
    worker = Worker(store, None, worker_id="w", work_root=tmp_path / "work", heartbeat_s=0.2,
                    progress_interval_s=0.05, lease_s=30)
    worker.config.families = ["validity"]
    with caplog.at_level("ERROR", logger="leaderboard.jobs.queue"):
        final = worker.run_one()
    assert final.id == good.id and final.status == q.FINISHED
    for job in (broken, shaped):
        doc = q.get_job(store, job.id)
        assert doc.status == q.FAILED and doc.failure["reason"] == q.CORRUPT_REASON
        assert doc.submitter == "alice" and doc.model_name == META["model_name"]
        assert any(job.id in r.getMessage() and "quarantined" in r.getMessage() for r in caplog.records)
    assert len(store.list(f"{q.QUARANTINE_DIR}/queue/")) == 2
    assert withdraw(store, broken.id, "alice").status == q.HIDDEN
    again = submit(store, META, write_unique_files(tmp_path / "more", 1), "alice", UNLIMITED)  # counter repaired
    assert again.seq == max(j.seq for j in q.list_jobs(store)) and again.seq > good.seq
    assert store.list(f"{q.QUARANTINE_DIR}/queue/sequence")


@pytest.mark.slow
def test_serve_end_to_end_under_cpu_load(tmp_path, data):
    """The real app and worker (``python -m leaderboard.serve``) evaluate a real upload, sent
    through the app's API, while two busy processes per core load the machine and a corrupt
    status document and sequence counter sit in the store; after SIGTERM nothing serve
    started is left."""
    from app_fixtures import free_port
    from gradio_client import Client, handle_file

    tag = f"serve-{uuid.uuid4().hex[:8]}"
    store_dir, port = tmp_path / "state", free_port()
    store = local_store(tmp_path)
    planted = "20260101-000000-0badc0de"
    store.write_bytes(q.job_path(planted), b'{\n "id": "20260101-000000-0badc0de",\n "sta')  # truncated
    store.write_bytes(q.SEQUENCE_PATH, b"not a number\n")
    env = {**os.environ, TAG_VAR: tag, "PYTHONPATH": str(REPO), "GENBENCH_LOCAL_USER": "tester",
           "GENBENCH_RATE_LIMIT": "0", "GRADIO_ANALYTICS_ENABLED": "False", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1",
           # the service's configuration, read by the app (which pins its protocol) and the worker alike
           # (--worker-arg settings would make the worker refuse the app's protocol); CHGNet: a model, cheaply
           "GENBENCH_PROTOCOL": "chgnet", "GENBENCH_FAMILIES": "validity,novelty,stability",
           "GENBENCH_RELAX_STEPS": "10"}
    env.pop("SPACE_ID", None)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(2 * (os.cpu_count() or 1))]
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen([sys.executable, "-m", "leaderboard.serve", "--store", str(store_dir), "--port",
                              str(port), "--worker-arg=--poll=0.5",
                              f"--worker-arg=--work-dir={tmp_path / 'work'}"],
                             cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"

        def client():
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                return Client(url, verbose=False)
            except Exception:  # noqa: BLE001 - not listening yet
                return None

        app = wait_for(client, 300, 1.0, "the app to answer")
        meta = {"model_name": "E2E", "model_version": "1", "training_set": "MP-20", "task": "unconditional",
                "relaxed_before_submission": False}
        upload = _small_upload(data, tmp_path / "up")
        out = app.predict([handle_file(str(p)) for p in upload], meta, api_name="/submit")
        assert out["ok"], out

        def finished():
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            job = q.get_job(store, out["id"])
            assert job.status in q.ACTIVE + (q.FINISHED,), (job.status, job.failure)
            return job.status == q.FINISHED

        wait_for(finished, 600, 0.5, "the upload to be evaluated")
        table = load_results_table(store)
        assert table["submission_id"].tolist() == [out["id"]]
        assert table["protocol_label"].tolist() == ["CHGNet 0.3.0 · MP-20 hull · FIRE fmax 0.02, 10 steps"]
        assert q.get_job(store, out["id"]).protocol == table["protocol_id"].iloc[0]  # queued under the pinned one
        assert q.get_job(store, planted).failure["reason"] == q.CORRUPT_REASON
    finally:
        for b in burners:
            b.kill()
            b.wait()
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(120)
            except subprocess.TimeoutExpired:
                serve.kill()
        log.close()
    _no_survivors(tag, "leaderboard.serve")


@pytest.mark.slow
def test_serve_stopped_or_killed_in_a_stuck_stage_hands_the_job_back(tmp_path):
    """The issue's hang: serve gets SIGTERM (then, again, SIGKILL) while its worker's evaluation
    is stuck (ignores SIGTERM, holds a grandchild). Either way the job goes back to PENDING
    with the attempt not counted, and nothing serve started is left."""
    from app_fixtures import free_port

    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    pidfile = tmp_path / "work" / job.id / "grandchild.pid"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pidfile.unlink(missing_ok=True)
        tag = f"serve-{sig.name}-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, TAG_VAR: tag, "PYTHONPATH": f"{REPO}{os.pathsep}{SUPPORT}",
               "GRADIO_ANALYTICS_ENABLED": "False"}
        with open(tmp_path / f"serve-{sig.name}.log", "wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "leaderboard.serve", "--store", str(store.root), "--port", str(free_port()),
                 "--worker-arg=--evaluate=lifecycle_helpers:stuck_evaluate", "--worker-arg=--poll=0.2",
                 f"--worker-arg=--work-dir={tmp_path / 'work'}"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_for(pidfile.exists, 300, 0.1, "serve's worker to be stuck")
                serve.send_signal(sig)
                serve.wait(120)
            finally:
                if serve.poll() is None:
                    serve.kill()
        _no_survivors(tag, f"leaderboard.serve ({sig.name})")
        doc = q.get_job(store, job.id)
        assert doc.status == q.PENDING and doc.attempts == 0, (tmp_path / f"serve-{sig.name}.log").read_text()
        assert doc.history[-1]["event"] == "released"


def test_serve_does_not_restart_a_worker_that_refused_its_configuration(tmp_path):
    """A misspelled worker option stops the worker with exit status 2 and its reason;
    restarting it would only refuse the same configuration again."""
    from leaderboard.serve import WorkerSupervisor

    supervisor = WorkerSupervisor(str(tmp_path / "state"), ["--option", "novelty.cheap_frist=false",
                                                            "--work-dir", str(tmp_path / "work")]).start()
    try:
        supervisor._thread.join(300)  # ends once the worker has exited and was not restarted
        assert not supervisor._thread.is_alive()
        assert supervisor.proc.returncode == 2 and supervisor.restarts == 0
    finally:
        supervisor.stop()


def test_progress_tracker_rates_and_times():
    """The progress document and per-stage rates, on a fake monotonic clock."""
    from leaderboard.jobs.progress import ProgressTracker

    t = [100.0]
    p = ProgressTracker(clock=lambda: t[0])
    for now, report in [(101, ("ingest", 0, 2)), (102, ("ingest", 2, 2)), (103, ("stability: relax", 1, 5)),
                        (105, ("stability: relax", 3, 5))]:
        t[0] = now
        assert p.update(*report)
    t[0] = 109
    assert not p.update("stability: relax", 3, 5)  # a repeat is not progress
    doc = p.doc()
    assert {k: doc[k] for k in ("stage", "done", "total", "rate")} == {"stage": "stability: relax", "done": 3,
                                                                      "total": 5, "rate": 1.0}
    assert doc["updated_at"] > doc["stage_started_at"]  # 2 s apart
    assert p.idle_s() == 4 and p.elapsed_s() == 9
    assert p.stage_rates() == {"ingest": 2.0, "stability: relax": 1.0}  # 1 of 5 came from a checkpoint
    assert p.stage_seconds() == {"starting": 1.0, "ingest": 2.0, "stability: relax": 6.0}
    assert ProgressTracker().doc()["rate"] is None
