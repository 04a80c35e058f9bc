"""The evaluation worker with the real evaluator: submit -> PENDING -> RUNNING -> FINISHED,
user vs infrastructure failures, clean shutdown, cancellation, concurrent workers and a
worker killed mid-run (real subprocesses)."""

import json
import signal
import threading
import time

import pytest

from conftest_leaderboard import (META, local_store, start_worker, wait_for, write_cifs,
                                  write_unique_files)
from evaluator.config import EvalConfig
from evaluator.pipeline import FAMILIES
from leaderboard import queue as q
from leaderboard.results import LEADERBOARD_PATH, load_results_table, load_structures, load_summary
from leaderboard.submissions import SubmissionPolicy, submit
from leaderboard.worker import Worker, eval_config_from, parse_options

UNLIMITED = SubmissionPolicy(max_per_window=0)
VALIDITY = EvalConfig(families=["validity"])


def make_worker(store, tmp_path, config=VALIDITY, **kwargs):
    kwargs.setdefault("heartbeat_s", 0.2)
    kwargs.setdefault("progress_interval_s", 0.05)
    kwargs.setdefault("lease_s", 30)
    return Worker(store, config, worker_id=kwargs.pop("worker_id", "w-test"),
                  work_root=tmp_path / "work", **kwargs)


def test_submit_pending_running_finished_readable_by_datasets(tmp_path):
    from evaluator.pipeline import evaluate

    store = local_store(tmp_path)
    upload = write_cifs(tmp_path / "up", 3)
    job = submit(store, META, [upload], "alice", UNLIMITED)
    assert q.get_job(store, job.id).status == q.PENDING
    seen = []

    def observed(inputs, config, data, work_dir, progress):
        def spy(stage, done, total):
            progress(stage, done, total)
            if stage == "validity" and done == total > 0:
                time.sleep(0.3)  # let the heartbeat thread write progress once
                seen.append(q.get_job(store, job.id))

        return evaluate(inputs, config, data, work_dir=work_dir, progress=spy)

    final = make_worker(store, tmp_path, evaluate=observed).run_one()
    running = seen[-1]
    assert running.status == q.RUNNING and running.lease_owner == "w-test" and running.attempts == 1
    assert running.progress["stage"] == "validity" and running.progress["total"] == 3
    assert final.status == q.FINISHED and q.get_job(store, job.id).status == q.FINISHED
    assert final.progress == {"done": 3, "total": 3, "stage": "finished"}

    summary = load_summary(store, job.id)
    assert summary["n_submitted"] == 3 and summary["n_valid"] == 3
    assert summary["provenance"]["families"] == ["validity"]
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


def test_infrastructure_failure_is_retried_up_to_the_limit(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice",
                 SubmissionPolicy(max_per_window=0, max_attempts=2))
    calls = []

    def broken(inputs, config, data, work_dir, progress):
        calls.append(work_dir)
        raise RuntimeError("CUDA error: out of memory")

    worker = make_worker(store, tmp_path, evaluate=broken, retry_delay_s=0)
    first = worker.run_one()
    assert first.status == q.PENDING and first.last_error["kind"] == q.INFRASTRUCTURE
    assert "out of memory" in first.last_error["reason"]
    second = worker.run_one()
    assert second.status == q.FAILED and second.attempts == 2 == len(calls)
    assert second.failure["kind"] == q.INFRASTRUCTURE and "RuntimeError" in second.failure["reason"]
    assert worker.run_one() is None
    assert calls[0] == calls[1] == tmp_path / "work" / job.id / "eval"  # same checkpoint folder


def _slow_evaluate(ticks: list):
    def evaluate(inputs, config, data, work_dir, progress):
        for i in range(200):
            progress("slow", i, 200)
            ticks.append(i)
            time.sleep(0.05)
        raise AssertionError("should have been stopped")

    return evaluate


def test_stop_releases_the_lease(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    ticks = []
    worker = make_worker(store, tmp_path, evaluate=_slow_evaluate(ticks))
    threading.Timer(0.5, worker.stop).start()
    final = worker.run_one()
    assert final.status == q.PENDING and final.attempts == 0 and final.lease_owner is None
    assert final.history[-1]["event"] == "released" and 0 < len(ticks) < 200
    assert (tmp_path / "work" / job.id).exists()  # checkpoints kept for the next worker
    assert load_summary(store, job.id) is None


def test_cancel_during_run_abandons_without_publishing(tmp_path):
    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice", UNLIMITED)
    ticks = []
    worker = make_worker(store, tmp_path, evaluate=_slow_evaluate(ticks))
    threading.Timer(0.5, q.cancel, args=(store, job.id, "alice")).start()
    final = worker.run_one()
    assert final.status == q.CANCELLED and len(ticks) < 200
    assert load_summary(store, job.id) is None and not store.exists(LEADERBOARD_PATH)


def test_config_from_env_and_flags(monkeypatch):
    monkeypatch.setenv("GENBENCH_FAMILIES", "validity, uniqueness")
    monkeypatch.setenv("GENBENCH_RELAX_STEPS", "7")
    monkeypatch.setenv("GENBENCH_OPTIONS", '{"hull": "dft", "relax_workers": 2}')
    cfg = eval_config_from(device="cpu", options=parse_options(["relax_workers=1", "hull=mace"]))
    assert cfg.families == ["validity", "uniqueness"] and cfg.relax_steps == 7
    assert cfg.device == "cpu" and cfg.options == {"hull": "mace", "relax_workers": 1}
    assert eval_config_from(families="hhi", relax_steps=3).families == ["hhi"]
    with pytest.raises(ValueError):
        parse_options(["novalue"])


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
            families = list(FAMILIES)
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
    assert summary["provenance"]["families"] == list(FAMILIES)
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(store.local_path(LEADERBOARD_PATH)),
                               split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert ds["submission_id"] == [job.id]
    row = ds[0]
    for family in FAMILIES:
        assert any(c.startswith(f"{family}.") for c in ds.column_names), family
    assert row["stability.evaluated_count"] == summary["metrics"]["stability"]["evaluated_count"]
    assert row["sun.msun_count"] == summary["metrics"]["sun"]["msun_count"]


def test_worker_on_the_hub_store_fake(tmp_path):
    """The same worker against HubStore (FakeHfApi): upload fetched via hf_hub_download,
    results + status + table published in one commit."""
    from conftest_leaderboard import hub_store

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


@pytest.mark.timeout(120)
def test_sigterm_during_pool_relaxation_releases_promptly(tmp_path):
    """Regression: a worker relaxing in the process pool ignored SIGTERM until the whole pool
    had drained (``ProcessPoolExecutor.__exit__`` waits for every queued structure). Now the
    pool's queued work is cancelled and its processes terminated: the worker exits 0 within
    seconds, the job is PENDING again with the lease released and the attempt not counted,
    and a second worker finishes it, reusing the checkpointed relaxations."""
    import os
    import subprocess

    n = 20
    store = local_store(tmp_path)
    job = submit(store, META, [_rattled_rocksalts(tmp_path / "up", n)], "alice", UNLIMITED)
    work = tmp_path / "work"
    common = ("--families", "validity,stability", "--relax-steps", "300", "--option", "relax_mode=pool",
              "--heartbeat", "0.5", "--progress-interval", "0.05", "--lease", "60", "--poll", "0.3",
              "--work-dir", str(work), "--keep-work")
    first = start_worker(store.root, *common, "--option", "relax_workers=2", "--worker-id", "first",
                         log=tmp_path / "first.log")
    try:
        def relaxed_some():
            j = q.get_job(store, job.id)
            assert j.status in (q.PENDING, q.RUNNING), (tmp_path / "first.log").read_text()[-2000:]
            return j.progress.get("stage") == "stability: relax" and 2 <= j.progress["done"] < n - 4

        wait_for(relaxed_some, 90, 0.05, "the first worker to relax two structures in its pool")
        children = subprocess.run(["pgrep", "-P", str(first.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, children  # the pool's processes
        first.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        try:
            code = first.wait(10)  # the other ~17 relaxations take ~17 s in the pool
        except subprocess.TimeoutExpired:
            first.kill()
            raise AssertionError("the worker ignored SIGTERM for more than 10 s")
        stopped_in = time.monotonic() - t0
    finally:
        if first.poll() is None:
            first.kill()
    assert code == 0, (tmp_path / "first.log").read_text()[-3000:]
    for pid in children:  # the pool's processes were terminated, not left relaxing
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    released = q.get_job(store, job.id)
    assert released.status == q.PENDING and released.lease_owner is None and released.lease_expires is None
    assert released.attempts == 0 and released.history[-1]["event"] == "released"
    (checkpoint,) = (work / job.id / "eval").rglob("relax-*.jsonl")
    n_checkpointed = len(checkpoint.read_text().splitlines())
    assert 2 <= n_checkpointed < n

    config = eval_config_from("validity,stability", 300, device="cpu", options={"relax_mode": "serial"})
    final = make_worker(store, tmp_path, config, worker_id="second", lease_s=60, keep_work=True).run_one()
    assert final.status == q.FINISHED and final.attempts == 1 and final.lease_owner == "second"
    assert [h["event"] for h in final.history] == ["submitted", "claimed", "released", "claimed", "finished"]
    relax = load_summary(store, job.id)["provenance"]["family"]["stability"]["relaxation"]
    assert relax["n_from_checkpoint"] == n_checkpointed and relax["n_relaxed_now"] == n - n_checkpointed
    lines = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    assert len(lines) == len({rec["key"] for rec in lines}) == n  # none relaxed twice
    print(f"stopped {stopped_in:.1f} s after SIGTERM with {n_checkpointed}/{n} relaxed")


def test_store_error_does_not_kill_a_long_lived_worker(tmp_path, monkeypatch):
    """A transient store failure while claiming (e.g. the Hub unreachable) is logged and retried."""
    import leaderboard.worker as W

    store = local_store(tmp_path)
    worker = make_worker(store, tmp_path)
    calls = []

    def flaky_claim(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("network is unreachable")
        worker.stop()
        return None

    monkeypatch.setattr(W, "claim", flaky_claim)
    assert worker.run(poll_s=0.01) == 0
    assert len(calls) == 2
