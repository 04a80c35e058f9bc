"""The evaluation worker with the real evaluator: submit -> PENDING -> RUNNING -> FINISHED,
user vs infrastructure failures, clean shutdown, cancellation, concurrent workers and a
worker killed mid-run (real subprocesses)."""

import json
import multiprocessing as mp
import os
import pickle
import signal
import struct
import subprocess
import threading

import pandas as pd
import pytest

from store_helpers import (META, local_store, start_worker, wait_for, worker_cmd, write_cifs,
                                  write_unique_files)
from lifecycle_helpers import RECORD_FILE, broken_evaluate, gated_evaluate, recorded_evaluate, slow_evaluate
from evaluator.config import EvalConfig, build_config
from evaluator.outputs import serialize
from evaluator.pipeline import FAMILIES
from evaluator.progress import ProgressUpdate
from leaderboard.jobs import queue as q
from leaderboard.jobs.evalproc import Done, receive
from leaderboard.publishing.results import (LEADERBOARD_PATH, load_results_table, load_structures, load_summary)
from leaderboard.intake.submissions import SubmissionPolicy, submit
from leaderboard.worker import Worker
from repo_paths import BAD_INPUTS, REPO

UNLIMITED = SubmissionPolicy(max_per_window=0)
FAMILY_NAMES = [f.name for f in FAMILIES]  # pipeline order
VALIDITY = EvalConfig(families=["validity"])


def make_worker(store, tmp_path, config=VALIDITY, **kwargs):
    kwargs.setdefault("heartbeat_s", 0.2)
    kwargs.setdefault("progress_interval_s", 0.05)
    kwargs.setdefault("lease_s", 30)
    return Worker(store, config, worker_id=kwargs.pop("worker_id", "w-test"),
                  work_root=tmp_path / "work", **kwargs)


def _in_thread(fn):
    """Run ``fn()`` in a thread; returns (thread, result list)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_submit_pending_running_finished_readable_by_datasets(tmp_path):
    store = local_store(tmp_path)
    upload = write_cifs(tmp_path / "up", 3)
    job = submit(store, META, [upload], "alice", UNLIMITED)
    assert q.get_job(store, job.id).status == q.PENDING
    thread, out = _in_thread(make_worker(store, tmp_path, evaluate=gated_evaluate).run_one)
    # the evaluation holds after validity until we have seen its progress in the document
    running = wait_for(lambda: (j := q.get_job(store, job.id)).progress.get("stage") == "validity"
                       and j.progress.get("done") == 3 and j, 120, 0.05, "validity progress in the status document")
    (tmp_path / "work" / job.id / "proceed").touch()
    thread.join(300)
    final = out[0]
    assert running.status == q.RUNNING and running.lease_owner == "w-test" and running.attempts == 1
    assert running.progress["stage"] == "validity" and running.progress["total"] == 3
    assert running.progress["rate"] is None or running.progress["rate"] > 0
    assert running.progress["updated_at"] >= running.progress["stage_started_at"]
    assert final.status == q.FINISHED and q.get_job(store, job.id).status == q.FINISHED
    assert {k: final.progress[k] for k in ("done", "total", "stage")} == {"done": 3, "total": 3,
                                                                          "stage": "finished"}
    assert set(final.stage_rates) <= {"validity", "ingest", "starting"} and final.stage_rates
    assert [(h["event"], h.get("attempt")) for h in final.history] == [("submitted", None), ("claimed", 1),
                                                                        ("finished", 1)]

    summary = load_summary(store, job.id)
    assert summary["n_submitted"] == 3 and summary["n_valid"] == 3
    assert summary["provenance"]["families"] == ["validity"]
    assert summary["provenance"]["lifecycle"] == {"stall_timeout_s": 600.0, "start_timeout_s": 300.0,
                                                  "job_budget_s": 86400.0,
                                                  "lease_s": 30.0, "heartbeat_s": 0.2}
    assert summary["leaderboard"] == {**summary["leaderboard"], "submission_id": job.id, "attempt": 1,
                                      "worker": "w-test"}
    structures = load_structures(store, job.id)
    assert len(structures) == 3 and structures["validity_valid"].all()

    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(store.local_path(LEADERBOARD_PATH)),
                               split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == 1
    row = ds[0]
    assert row["submission_id"] == job.id and row["model_name"] == META["model_name"]
    assert row["validity.valid_count"] == 3 and row["validity.valid_frac_submitted"] == 1.0
    assert row["n_valid"] == 3
    assert not (tmp_path / "work" / job.id).exists()  # work folder cleaned after success
    assert make_worker(store, tmp_path).run_one() is None  # nothing left


def test_invalid_upload_fails_with_reason_and_no_retry(tmp_path):
    store = local_store(tmp_path)
    bad = tmp_path / "structures.docx"
    bad.write_bytes(b"Dear reviewers, please find our structures attached.")
    job = submit(store, META, [bad], "alice", UNLIMITED)
    worker = make_worker(store, tmp_path, retry_delay_s=0)
    final = worker.run_one()
    assert final.status == q.FAILED and final.attempts == 1
    assert final.failure["kind"] == q.USER_ERROR
    assert "structures.docx" in final.failure["reason"] and "format" in final.failure["reason"]
    assert worker.run_one() is None and q.get_job(store, job.id).attempts == 1  # not retried
    assert load_summary(store, job.id) is None and load_results_table(store).empty


def test_upload_in_which_nothing_parses_is_a_user_failure(tmp_path):
    store = local_store(tmp_path)
    bad = BAD_INPUTS
    job = submit(store, META, [bad / "garbage.cif", bad / "no_atoms.cif"], "alice", UNLIMITED)
    final = make_worker(store, tmp_path, retry_delay_s=0).run_one()
    assert final.id == job.id and final.status == q.FAILED and final.attempts == 1
    assert final.failure["kind"] == q.USER_ERROR
    assert "none of the 2 structures in the upload could be read" in final.failure["reason"]
    assert load_summary(store, job.id) is None and load_results_table(store).empty


def test_infrastructure_failure_is_retried_up_to_the_limit(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice",
                 SubmissionPolicy(max_per_window=0, max_attempts=2))
    worker = make_worker(store, tmp_path, evaluate=broken_evaluate, retry_delay_s=0)
    first = worker.run_one()
    assert first.status == q.PENDING and first.last_error["kind"] == q.INFRASTRUCTURE
    assert "out of memory" in first.last_error["reason"]
    second = worker.run_one()
    assert second.status == q.FAILED and second.attempts == 2
    assert second.failure["kind"] == q.INFRASTRUCTURE and "RuntimeError" in second.failure["reason"]
    assert worker.run_one() is None
    calls = (tmp_path / "work" / "calls.txt").read_text().split()
    assert calls == [str(tmp_path / "work" / job.id / "eval")] * 2  # same checkpoint folder
    assert [(h["event"], h.get("attempt")) for h in second.history][1:] == [
        ("claimed", 1), ("retry", 1), ("claimed", 2), ("failed", 2)]


def _ticks(tmp_path, job_id) -> int:
    path = tmp_path / "work" / job_id / "ticks.txt"
    return len(path.read_text().split()) if path.exists() else 0


def test_stop_releases_the_lease(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    worker = make_worker(store, tmp_path, evaluate=slow_evaluate)
    thread, out = _in_thread(worker.run_one)
    wait_for(lambda: _ticks(tmp_path, job.id) >= 3, 120, 0.05, "the evaluation to tick")
    worker.stop()
    thread.join(120)
    final = out[0]
    assert final.status == q.PENDING and final.attempts == 0 and final.lease_owner is None
    assert final.history[-1]["event"] == "released" and final.history[-1]["attempt"] == 1
    assert 3 <= _ticks(tmp_path, job.id) < 200
    assert (tmp_path / "work" / job.id).exists()  # checkpoints kept for the next worker
    assert load_summary(store, job.id) is None


def test_cancel_during_run_abandons_without_publishing(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    worker = make_worker(store, tmp_path, evaluate=slow_evaluate)
    thread, out = _in_thread(worker.run_one)
    wait_for(lambda: _ticks(tmp_path, job.id) >= 3, 120, 0.05, "the evaluation to tick")
    q.cancel(store, job.id, "alice")
    thread.join(120)
    final = out[0]
    assert final.status == q.CANCELLED and _ticks(tmp_path, job.id) < 200
    assert load_summary(store, job.id) is None and not store.exists(LEADERBOARD_PATH)


def test_config_from_env_and_flags(tmp_path, monkeypatch):
    """The worker's default configuration is build_config's: GENBENCH_* variables (options
    as a JSON object by family), then the defaults."""
    monkeypatch.setenv("GENBENCH_FAMILIES", "validity, uniqueness")
    monkeypatch.setenv("GENBENCH_RELAX_STEPS", "7")
    monkeypatch.setenv("GENBENCH_DEVICE", "cpu")
    monkeypatch.setenv("GENBENCH_OPTIONS", '{"validity": {"workers": 2}}')
    cfg = Worker(local_store(tmp_path), work_root=tmp_path / "work").config
    assert cfg.families == ["validity", "uniqueness"] and cfg.relax_steps == 7
    # SevenNet-l3i5: the default protocol on every device, CPU included
    assert cfg.device == "cpu" and cfg.mlip == "sevenn" and cfg.options == {"validity": {"workers": 2}}


def test_misspelled_option_is_refused_before_a_job_is_claimed(tmp_path, monkeypatch):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    with pytest.raises(ValueError, match="cheap_frist"):
        make_worker(store, tmp_path, EvalConfig(options={"novelty": {"cheap_frist": False}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(worker_cmd(store.root, "--once", "--work-dir", str(tmp_path / "work"),
                                     "--option", "novelty.cheap_frist=false"),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error:") and "cheap_frist" in proc.stderr and "Traceback" not in proc.stderr
    env["GENBENCH_OPTIONS"] = '{"novelty": {"cheap_frist": false}}'  # the same through the environment
    proc = subprocess.run(worker_cmd(store.root, "--once", "--work-dir", str(tmp_path / "work")),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "cheap_frist" in proc.stderr, proc.stderr[-2000:]
    untouched = q.get_job(store, job.id)
    assert untouched.status == q.PENDING and untouched.attempts == 0
    assert [h["event"] for h in untouched.history] == ["submitted"]


def test_worker_publishes_the_evaluation_it_received_without_files(tmp_path):
    """The evaluation process sends the evaluation over its pipe: no summary.json or
    structures.parquet is written under the work folder, and what is published is
    exactly what the evaluation returned (plus the leaderboard and lifecycle records)."""
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 3)], "alice", UNLIMITED)
    worker = make_worker(store, tmp_path, evaluate=recorded_evaluate, keep_work=True)
    final = worker.run_one()
    assert final.status == q.FINISHED
    work = tmp_path / "work" / job.id
    written = sorted(p.name for p in work.rglob("*") if p.is_file())
    assert RECORD_FILE in written
    assert not {"summary.json", "structures.parquet"} & set(written), written
    expected = serialize(pickle.loads((work / RECORD_FILE).read_bytes()))
    # the table as the evaluation returned it (the published file adds submission_id and protocol)
    pd.testing.assert_frame_equal(load_structures(store, job.id), expected.table())
    published = load_summary(store, job.id)
    assert published.pop("leaderboard")["submission_id"] == job.id
    assert published["provenance"].pop("lifecycle") == worker.limits
    assert published == expected.summary()


def _pipe_with(raw: bytes):
    """The reading end of a pipe that received ``raw`` and was closed."""
    reader, writer = mp.Pipe(duplex=False)
    os.write(writer.fileno(), raw)
    writer.close()
    return reader


def test_a_message_cut_short_or_undecodable_ends_the_stream():
    """A child killed while sending its (large) result leaves a message cut short: the
    messages before it are read and the stream counts as ended (the worker then reports
    the process's death, an infrastructure failure that is retried); garbage or a
    message of an unknown kind marks the stream broken."""
    whole = pickle.dumps(ProgressUpdate("validity", 1, 3))
    done = pickle.dumps(Done(b'{"n_submitted": 3}', b"x" * 100_000))
    got = receive(_pipe_with(struct.pack("!i", len(whole)) + whole
                             + struct.pack("!i", len(done)) + done[: len(done) // 2]))
    assert got.messages == [ProgressUpdate("validity", 1, 3)] and got.closed and got.broken is None
    garbage = b"\x80\x05not a pickle"
    got = receive(_pipe_with(struct.pack("!i", len(garbage)) + garbage))
    assert got.messages == [] and "broken message" in got.broken
    odd = pickle.dumps(("done", "summary.json", "structures.parquet"))  # the old tuple messages
    got = receive(_pipe_with(struct.pack("!i", len(odd)) + odd))
    assert got.messages == [] and "unknown message (tuple)" in got.broken


def test_two_worker_processes_run_each_of_ten_jobs_once(tmp_path):
    store = local_store(tmp_path)
    ids = [submit(store, META, [f], "alice", UNLIMITED).id
           for f in write_unique_files(tmp_path / "up", 10)]
    args = ("--families", "validity", "--poll", "0.2", "--heartbeat", "0.5", "--lease", "30",
            "--work-dir", str(tmp_path / "work"))
    procs = [start_worker(store.root, *args, "--worker-id", f"w{i}", log=tmp_path / f"w{i}.log")
             for i in range(2)]
    try:
        wait_for(lambda: all(j.status == q.FINISHED for j in q.list_jobs(store)), 150,
                 what="ten jobs to finish")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    assert codes == [0, 0], [(tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2)]
    owners = {}
    for job_id in ids:
        job = q.get_job(store, job_id)
        events = [h["event"] for h in job.history]
        assert job.attempts == 1 and events == ["submitted", "claimed", "finished"], events
        owners[job_id] = job.history[1]["by"]
        assert load_summary(store, job_id)["leaderboard"]["worker"] == owners[job_id]
    table = load_results_table(store, reconcile=False)
    assert sorted(table["submission_id"]) == sorted(ids)  # one row per job
    assert set(owners.values()) <= {"w0", "w1"}


@pytest.mark.slow
def test_killed_worker_job_is_reclaimed_and_resumed(tmp_path):
    """Full default pipeline (all families, CHGNet, embedded reference). SIGKILL a worker
    during the MLIP relaxation; a second worker reclaims the job after the lease expires,
    reuses the relaxations already checkpointed and publishes once."""
    store = local_store(tmp_path)
    upload = write_cifs(tmp_path / "up", 3)
    job = submit(store, META, [upload], "alice", UNLIMITED)
    common = ("--relax-steps", "40", "--heartbeat", "0.5", "--progress-interval", "0.05",
              "--lease", "3", "--poll", "0.3", "--work-dir", str(tmp_path / "work"), "--keep-work")
    first = start_worker(store.root, *common, "--worker-id", "doomed", log=tmp_path / "doomed.log")
    try:
        def relaxing():
            j = q.get_job(store, job.id)
            assert j.status in (q.PENDING, q.RUNNING), f"first worker got to {j.status} before the kill"
            stage, done = j.progress.get("stage", ""), j.progress.get("done", 0)
            if j.status != q.RUNNING:
                return False
            if stage.startswith("stability: relax"):
                return done >= 1  # >= 1 structure relaxed and checkpointed
            family = stage.split(":")[0]
            families = FAMILY_NAMES
            # a later stage (hull scoring, sun, ...): every relaxation is checkpointed
            return stage == "stability: hull" or (family in families and
                                                  families.index(family) > families.index("stability"))

        wait_for(relaxing, 150, 0.1, "the first worker to relax a structure")
    finally:
        first.kill()
        first.wait(30)
    killed_at = q.get_job(store, job.id)
    assert killed_at.status == q.RUNNING and killed_at.lease_owner == "doomed"

    second = start_worker(store.root, *common, "--worker-id", "rescuer", "--max-jobs", "1",
                          log=tmp_path / "rescuer.log")
    assert second.wait(170) == 0, (tmp_path / "rescuer.log").read_text()[-3000:]
    final = q.get_job(store, job.id)
    assert final.status == q.FINISHED and final.attempts == 2
    assert [h["event"] for h in final.history] == ["submitted", "claimed", "reclaimed", "finished"]
    summary = load_summary(store, job.id)
    assert summary["leaderboard"]["worker"] == "rescuer" and summary["n_submitted"] == 3
    relax = summary["provenance"]["family"]["stability"]["relaxation"]
    assert relax["n_from_checkpoint"] >= 1  # resumed, not restarted
    assert relax["n_from_checkpoint"] + relax["n_relaxed_now"] == 3
    (checkpoint,) = (tmp_path / "work" / job.id / "eval").rglob("relax-*.jsonl")
    lines = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    assert len(lines) == len({rec["key"] for rec in lines}) == 3  # no structure relaxed twice
    assert summary["provenance"]["families"] == FAMILY_NAMES
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(store.local_path(LEADERBOARD_PATH)),
                               split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds["submission_id"] == [job.id]
    row = ds[0]
    for family in FAMILY_NAMES:
        assert any(c.startswith(f"{family}.") for c in ds.column_names), family
    assert row["stability.evaluated_count"] == summary["metrics"]["stability"]["evaluated_count"]
    assert row["sun.msun_count"] == summary["metrics"]["sun"]["msun_count"]


def test_worker_on_the_hub_store_fake(tmp_path):
    """The same worker against HubStore (FakeHfApi): upload fetched via hf_hub_download,
    results + status + table published in one commit."""
    from store_helpers import hub_store

    store = hub_store()
    job = submit(store, META, [write_cifs(tmp_path / "up", 2)], "alice", UNLIMITED)
    commits_before = store.api.n_commits
    worker = make_worker(store, tmp_path, heartbeat_s=None, progress_interval_s=None, lease_s=None)
    assert (worker.lease_s, worker.heartbeat_s, worker.progress_interval_s) == (900, 240, 240)
    final = worker.run_one()
    assert final.status == q.FINISHED
    titles = [c.title for c in store.api.list_repo_commits(store.repo_id)]
    assert titles[0] == f"{job.id}: publish results"
    assert store.api.n_commits - commits_before == 2  # claim, publish (heartbeats are minutes apart)
    assert load_summary(store, job.id)["n_valid"] == 2
    assert load_results_table(store)["submission_id"].tolist() == [job.id]


def _rattled_rocksalts(folder, n: int, seed: int = 0):
    """One CIF with ``n`` distinct 8-atom rock-salt cells (NaCl/MgO/KCl), rattled by 0.1 Å so
    each needs a few dozen FIRE steps (about a second with CHGNet on one CPU thread)."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(seed)
    kinds = [("Na", "Cl", 5.64), ("Mg", "O", 4.21), ("K", "Cl", 6.29)]
    blocks = []
    for i in range(n):
        a, b, length = kinds[i % len(kinds)]
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(length), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])
        s = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.1, (len(s), 3)),
                      coords_are_cartesian=True)
        blocks.append(s.to(fmt="cif").replace("data_", f"data_{i}_", 1))
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "rattled.cif"
    out.write_text("\n".join(blocks))
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # hang detection only: on a loaded machine the relaxations take minutes
def test_sigterm_during_pool_relaxation_releases_promptly(tmp_path):
    """Regression: a worker relaxing in the process pool ignored SIGTERM until the whole pool
    had drained (``ProcessPoolExecutor.__exit__`` waits for every queued structure). Now the
    worker kills its evaluation's process group: it exits 0 without draining the pool, leaves
    no process behind, the job is PENDING again with the lease released and the attempt not
    counted, and a second worker finishes it, reusing the checkpointed relaxations.

    No speed assumption: the pool is shown not to have drained by the checkpoint, and the
    only time bound is a generous hang detector."""
    import uuid

    from lifecycle_helpers import TAG_VAR, describe, tagged_processes

    n = 8
    store = local_store(tmp_path)
    job = submit(store, META, [_rattled_rocksalts(tmp_path / "up", n)], "alice", UNLIMITED)
    work = tmp_path / "work"
    common = ("--families", "validity,stability", "--mlip", "chgnet", "--relax-steps", "40",
              "--option", "stability.relax_mode=pool",
              "--heartbeat", "0.5", "--progress-interval", "0.05", "--lease", "60", "--poll", "0.3",
              "--work-dir", str(work), "--keep-work")
    tag = f"first-{uuid.uuid4().hex[:8]}"
    first = start_worker(store.root, *common, "--option", "stability.relax_workers=2", "--worker-id", "first",
                         log=tmp_path / "first.log", env={TAG_VAR: tag})
    try:
        def relaxed_some():
            j = q.get_job(store, job.id)
            assert j.status in (q.PENDING, q.RUNNING), (tmp_path / "first.log").read_text()[-2000:]
            return j.progress.get("stage") == "stability: relax" and 2 <= j.progress["done"] <= n - 2

        wait_for(relaxed_some, 300, 0.05, "the first worker to relax two structures in its pool")
        assert len(tagged_processes(tag)) >= 4  # worker, evaluation, >= 2 pool processes
        first.send_signal(signal.SIGTERM)
        code = first.wait(120)  # hang detection only
    finally:
        if first.poll() is None:
            first.kill()
    assert code == 0, (tmp_path / "first.log").read_text()[-3000:]
    wait_for(lambda: not tagged_processes(tag), 60, 0.2, "the pool's processes to end")
    assert not tagged_processes(tag), describe(tagged_processes(tag))
    released = q.get_job(store, job.id)
    assert released.status == q.PENDING and released.lease_owner is None and released.lease_expires is None
    assert released.attempts == 0 and released.history[-1]["event"] == "released"
    (checkpoint,) = (work / job.id / "eval").rglob("relax-*.jsonl")
    n_checkpointed = len(checkpoint.read_text().splitlines())
    assert 2 <= n_checkpointed < n  # the pool was stopped, not drained

    # relax_workers=1: the second worker relaxes serially in its evaluation process (OMP_NUM_THREADS torch
    # threads; on an oversubscribed machine that crawls, minutes per cell: the 1800 s limit allows for it)
    config = build_config(families="validity,stability", relax_steps=40, device="cpu", mlip="chgnet",
                          options=["stability.relax_mode=pool", "stability.relax_workers=1"])
    final = make_worker(store, tmp_path, config, worker_id="second", lease_s=60, keep_work=True).run_one()
    assert final.status == q.FINISHED and final.attempts == 1 and final.lease_owner == "second"
    assert [h["event"] for h in final.history] == ["submitted", "claimed", "released", "claimed", "finished"]
    relax = load_summary(store, job.id)["provenance"]["family"]["stability"]["relaxation"]
    assert relax["n_from_checkpoint"] == n_checkpointed and relax["n_relaxed_now"] == n - n_checkpointed
    lines = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    assert len(lines) == len({rec["key"] for rec in lines}) == n  # none relaxed twice
    print(f"stopped with {n_checkpointed}/{n} relaxed")


def test_store_error_does_not_kill_a_long_lived_worker(tmp_path, monkeypatch):
    """A transient store failure while claiming (e.g. the Hub unreachable) is logged and retried."""
    import leaderboard.jobs.supervisor as supervisor

    store = local_store(tmp_path)
    worker = make_worker(store, tmp_path)
    calls = []

    def flaky_claim(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("network is unreachable")
        worker.stop()
        return None

    monkeypatch.setattr(supervisor, "claim", flaky_claim)
    assert worker.run(poll_s=0.01) == 0
    assert len(calls) == 2
