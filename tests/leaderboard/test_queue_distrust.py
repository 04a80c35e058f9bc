"""The queue distrusts what no worker can have written (issue 25): a lease ending further
ahead than any worker grants or a heartbeat older than the stall limit counts as expired, a
rolled-back sequence counter is repaired (its copy kept), failure reasons hold no server
paths, and a store outage is shown as such in the status view, not as a stale ETA."""

import datetime as dt
import logging

import pytest

from store_helpers import META, hub_store, local_store, write_unique_files
from leaderboard.jobs import queue as q
from leaderboard.jobs.eta import Estimator
from leaderboard.jobs.progress import STORE_UNAVAILABLE_STAGE
from leaderboard.store import layout
from leaderboard.store.outage import RepeatedErrorLog, store_unavailable
from leaderboard.store import PreconditionFailed, StoreError
from leaderboard.intake.submissions import SubmissionPolicy, submit
from leaderboard.ui import jobs as J

POLICY = SubmissionPolicy(max_per_window=0)


@pytest.fixture(params=["local", "hub"])
def store(request, tmp_path):
    return local_store(tmp_path) if request.param == "local" else hub_store()


@pytest.fixture
def files(tmp_path):
    return write_unique_files(tmp_path / "up", 4)


def _rewrite(store, job_id, **times):
    """Set the job's time fields to ``now + offset`` (offsets in seconds), as a worker whose
    clock is off would have written them."""
    def change(j):
        for name, offset in times.items():
            setattr(j, name, q.iso(q.now() + dt.timedelta(seconds=offset)))
        return j
    return q.update_job(store, job_id, change)


def test_a_lease_ending_in_the_far_future_is_reclaimed_and_shown_stalled(store, files):
    job = submit(store, META, [files[0]], "alice", POLICY)
    assert q.claim(store, "ahead", 60).id == job.id
    ahead = 10 * 86400  # the worker's clock runs ten days ahead
    _rewrite(store, job.id, heartbeat=ahead, lease_expires=ahead + 60,
             **{"updated_at": ahead})
    running = q.get_job(store, job.id)
    assert "clock runs ahead" in q.lease_distrusted(running) and running.lease_expired
    # the status view says so before anyone reclaims it
    assert J.stalled_for(running) is not None
    assert "STALLED" in J.job_detail(running, None) and "clock runs ahead" in J.job_detail(running, None)

    took = q.claim(store, "honest", 60)
    assert took.id == job.id and took.lease_owner == "honest" and took.attempts == 2
    stalled = [h for h in took.history if h["event"] == "stalled"]
    assert len(stalled) == 1 and "clock runs ahead" in stalled[0]["reason"]
    assert took.history[-1]["event"] == "reclaimed" and took.history[-1]["previous_owner"] == "ahead"
    with pytest.raises(q.LeaseLost):
        q.heartbeat(store, job.id, "ahead", 60)  # the old worker learns it at its next beat


def test_a_heartbeat_older_than_the_stall_limit_counts_as_expired(store, files):
    job = submit(store, META, [files[0]], "alice", POLICY)
    q.claim(store, "silent", 60)
    # a lease a worker may grant (30 min), but no heartbeat for longer than the stall limit
    _rewrite(store, job.id, lease_expires=1800, heartbeat=-(q.STALE_HEARTBEAT_S + 60))
    assert "no heartbeat" in q.lease_distrusted(q.get_job(store, job.id))
    assert q.claim(store, "other", 60).lease_owner == "other"


def test_a_lease_within_bounds_is_trusted(store, files):
    job = submit(store, META, [files[0]], "alice", POLICY)
    q.claim(store, "w", 60)
    _rewrite(store, job.id, lease_expires=q.MAX_LEASE_S - 60, heartbeat=-60)
    assert q.lease_distrusted(q.get_job(store, job.id)) is None
    assert q.claim(store, "other", 60) is None
    assert J.stalled_for(q.get_job(store, job.id), threshold_s=3600) is None


def test_a_rolled_back_sequence_counter_is_repaired_and_kept(store, caplog):
    made = [q.create_job(store, q.Job(id=f"20260101-00000{i}-a", submitter="alice")) for i in range(3)]
    store.write_bytes(layout.SEQUENCE_PATH, b"1\n")  # e.g. restored from an old copy
    with caplog.at_level(logging.ERROR, logger="leaderboard.jobs.queue"):
        fourth = q.create_job(store, q.Job(id="20260101-000009-a", submitter="alice"))
    assert fourth.seq == 4 and [j.seq for j in made] == [1, 2, 3]
    assert store.read_bytes(layout.SEQUENCE_PATH) == b"4\n"
    assert store.read_bytes(q.quarantine_path(layout.SEQUENCE_PATH, b"1\n")) == b"1\n"
    assert any("rolled back" in r.getMessage() for r in caplog.records)
    assert [q.claim(store, "w", 60).id for _ in range(4)] == [j.id for j in made] + [fourth.id]


def test_failure_reasons_hold_no_server_paths(store, files):
    job = submit(store, META, [files[0]], "alice", SubmissionPolicy(max_per_window=0, max_attempts=2))
    why = ("could not publish the results (OSError): [Errno 28] No space left on device: "
           "'/srv/genbench/state/results/x/structures.parquet.tmp' (see https://example.org/a/b)")
    q.claim(store, "w", 60)
    first = q.fail(store, job.id, "w", why, q.INFRASTRUCTURE, retry_delay_s=0)
    q.claim(store, "w", 60)
    final = q.fail(store, job.id, "w", "evaluation error (FileNotFoundError): ~/cache/ref/x.gz", q.INFRASTRUCTURE)
    texts = [first.last_error["reason"], final.failure["reason"]] + [h.get("reason", "") for h in final.history]
    assert not any("/srv" in t or "~/" in t or "genbench/state" in t for t in texts), texts
    assert first.last_error["reason"].endswith("'…/structures.parquet.tmp' (see https://example.org/a/b)")
    assert final.failure["reason"] == "evaluation error (FileNotFoundError): …/x.gz"


def test_publishing_during_an_outage_shows_no_eta_and_is_not_stalled():
    now = q.now()
    job = q.Job("j1", "RUNNING", heartbeat=q.iso(now), lease_expires=q.iso(now),
                progress={"stage": STORE_UNAVAILABLE_STAGE, "done": 5, "total": 5,
                          "stage_started_at": q.iso(now - dt.timedelta(hours=2)),
                          "updated_at": q.iso(now - dt.timedelta(hours=2))})
    estimate = Estimator.from_jobs([]).remaining(job, now.timestamp(), 5)
    assert estimate.seconds is None and estimate.text() == f"unknown ({STORE_UNAVAILABLE_STAGE})"
    assert J.stalled_for(job, now.timestamp(), threshold_s=60) is None
    detail = J.job_detail(job, None, now=now.timestamp(), eta=[("ETA", estimate.text())])
    assert "publishing: store unavailable, retrying" in detail and "STALLED" not in detail


def test_a_repeated_error_is_logged_once_with_a_count(caplog):
    clock = [0.0]
    errors = RepeatedErrorLog(logging.getLogger("test.outage"), "w1: store", clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for i in range(208):  # 208 retries in 70 s, each with its own request id
            clock[0] = i * 70 / 207
            errors.error(StoreError(f"503 Service Unavailable (Request ID: Root=1-{i:08x}-{7 * i:016x})"))
        errors.ok()
        errors.ok()  # nothing more to say
    records = [r for r in caplog.records if r.name == "test.outage"]
    assert [r.levelname for r in records] == ["ERROR", "WARNING"]
    assert records[0].exc_info is not None  # one traceback
    assert "happened 208 time(s) in 70 s; it works again" in records[1].getMessage()
    assert "Root=1-00000000-" in records[1].getMessage()  # the first report's text
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        errors.error(StoreError("503 Service Unavailable"))
        errors.error(PermissionError("read-only file system"))  # another error: the first is summed up
    records = [r for r in caplog.records if r.name == "test.outage"][2:]
    assert [r.levelname for r in records] == ["ERROR", "WARNING", "ERROR"]


def test_what_counts_as_a_store_outage():
    assert store_unavailable(StoreError("could not commit")) and store_unavailable(OSError("unreachable"))
    assert not store_unavailable(PreconditionFailed("changed"))
    assert not store_unavailable(FileNotFoundError("missing")) and not store_unavailable(ValueError("bug"))

    class HTTPError(OSError):  # as requests raises it (huggingface_hub's errors subclass it)
        def __init__(self, status):
            super().__init__(f"HTTP {status}")
            self.response = type("Response", (), {"status_code": status})()

    assert store_unavailable(HTTPError(503)) and store_unavailable(HTTPError(429))
    assert not store_unavailable(HTTPError(413)) and not store_unavailable(HTTPError(403))
