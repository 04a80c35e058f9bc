"""A store outage is the machine's failure, never the job's (issue 25): the worker keeps
the results and publishes them once the store answers again, however many retries the
outage outlasts; meanwhile the job says "publishing: store unavailable, retrying", the
reason shown to users holds no server path, and the repeated error is logged once."""

import logging
import threading

from store_helpers import META, local_store, wait_for, write_cifs
from evaluator.config import EvalConfig
from leaderboard.jobs import queue as q
from leaderboard.jobs.progress import STORE_UNAVAILABLE_STAGE
from leaderboard.publishing.results import load_summary
from leaderboard.store import Store, StoreError
from leaderboard.intake.submissions import SubmissionPolicy, submit
from leaderboard.worker import Worker


class OutageStore(Store):
    """A LocalStore whose commits that write more than a job's status document (publishing)
    fail while ``down`` is set, with a message naming a server path, as a full disk or a
    Hub outage past its own retries does."""

    def __init__(self, inner):
        self.inner, self.uri = inner, inner.uri
        self.heartbeat_interval_s, self.lease_s = inner.heartbeat_interval_s, inner.lease_s
        self.down = threading.Event()
        self.failures = 0

    def read(self, path):
        return self.inner.read(path)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def local_path(self, path):
        return self.inner.local_path(path)

    def commit(self, writes, *, if_match=None, message=""):
        if self.down.is_set() and any(not p.startswith("queue/") for p in writes):
            self.failures += 1
            raise StoreError(f"could not write {self.inner.root}/results/x.parquet: 503 Service Unavailable")
        return self.inner.commit(writes, if_match=if_match, message=message)


def test_results_wait_out_an_outage_longer_than_the_retries_and_are_published(tmp_path, caplog):
    store = OutageStore(local_store(tmp_path))
    job = submit(store.inner, META, [write_cifs(tmp_path / "up", 2)], "alice",
                 SubmissionPolicy(max_per_window=0, max_attempts=3))
    worker = Worker(store, EvalConfig(families=["validity"]), worker_id="w-outage", work_root=tmp_path / "work",
                    lease_s=30, heartbeat_s=0.2, progress_interval_s=0.05, outage_retry_s=0.01)
    store.down.set()
    out: list = []
    with caplog.at_level(logging.INFO, logger="leaderboard.worker"):
        thread = threading.Thread(target=lambda: out.append(worker.run_one()), daemon=True)
        thread.start()
        # more failed publishing attempts than the job has attempts, and the status document says why
        wait_for(lambda: store.failures > 2 * job.max_attempts, 300, 0.05, "publishing to fail repeatedly")
        during = wait_for(lambda: (j := q.get_job(store, job.id)).progress.get("stage") == STORE_UNAVAILABLE_STAGE
                          and j, 60, 0.05, "the outage stage in the status document")
        assert during.status == q.RUNNING and during.lease_owner == "w-outage"
        store.down.clear()  # the store answers again
        thread.join(300)
    assert not thread.is_alive(), "the worker did not publish after the store recovered"
    final = out[0]
    assert final.status == q.FINISHED and final.attempts == 1 and final.failure is None
    assert load_summary(store, job.id) is not None
    assert not [h for h in final.history if h["event"] in ("retry", "failed")]
    records = [r for r in caplog.records if "publishing" in r.getMessage()]
    assert [r.levelname for r in records] == ["ERROR", "WARNING"], [r.getMessage() for r in records]
    assert f"happened {store.failures} time(s)" in records[1].getMessage()
    assert sum(r.exc_info is not None for r in caplog.records) == 1  # one traceback for the whole outage


def test_a_failure_reason_holds_no_server_path(tmp_path):
    """The evaluation fails with a message naming a file on the server: the reason users see
    keeps the file's name, not where the server keeps it."""
    from lifecycle_helpers import path_leaking_evaluate

    store = local_store(tmp_path)
    job = submit(store, META, [write_cifs(tmp_path / "up", 1)], "alice",
                 SubmissionPolicy(max_per_window=0, max_attempts=1))
    worker = Worker(store, EvalConfig(families=["validity"]), worker_id="w", work_root=tmp_path / "work",
                    lease_s=30, heartbeat_s=0.2, evaluate=path_leaking_evaluate)
    final = worker.run_one()
    assert final.id == job.id and final.status == q.FAILED
    reason = final.failure["reason"]
    assert reason == ("evaluation error (FileNotFoundError): [Errno 2] No such file or directory: "
                      "'…/mp20_hull.parquet'"), reason
    assert str(tmp_path) not in str(final.to_dict())


def test_a_worker_stopped_during_an_outage_hands_the_job_back(tmp_path):
    """SIGTERM while the results wait for the store: the job goes back to the queue (attempt
    not counted) as soon as the store takes that small write; nothing is failed."""
    store = OutageStore(local_store(tmp_path))
    job = submit(store.inner, META, [write_cifs(tmp_path / "up", 1)], "alice", SubmissionPolicy(max_per_window=0))
    worker = Worker(store, EvalConfig(families=["validity"]), worker_id="w-stop", work_root=tmp_path / "work",
                    lease_s=30, heartbeat_s=0.2, progress_interval_s=0.05, outage_retry_s=0.01)
    store.down.set()
    out: list = []
    thread = threading.Thread(target=lambda: out.append(worker.run_one()), daemon=True)
    thread.start()
    wait_for(lambda: q.get_job(store, job.id).progress.get("stage") == STORE_UNAVAILABLE_STAGE, 300, 0.05,
             "the outage stage in the status document")
    worker.stop()
    thread.join(120)
    assert not thread.is_alive()
    final = q.get_job(store, job.id)
    assert final.status == q.PENDING and final.attempts == 0 and final.failure is None
    assert final.history[-1]["event"] == "released" and "store outage" in final.history[-1]["why"]
