"""Submissions and the queue on both store back ends: validation, dedup, rate limit,
claims by compare-and-swap, leases, failures, withdraw/cancel, publishing, results table."""

import datetime as dt
import threading

import pandas as pd
import pytest

from store_helpers import META, hub_store, local_store, write_unique_files
from leaderboard.jobs import queue as q
from leaderboard.publishing.results import (LEADERBOARD_PATH, load_results_table, load_structures, load_summary,
                                 publish, sync_leaderboard)
from leaderboard.store import layout
from leaderboard.intake.submission_meta import load_meta
from leaderboard.intake.submissions import SubmissionError, SubmissionPolicy, stored_name, submit, withdraw

POLICY = SubmissionPolicy(max_per_window=3, window_days=7)


@pytest.fixture(params=["local", "hub"])
def store(request, tmp_path):
    return local_store(tmp_path) if request.param == "local" else hub_store()


@pytest.fixture
def files(tmp_path):
    return write_unique_files(tmp_path / "up", 6)


def fake_summary(n=2, valid=1):
    return {"n_submitted": n, "n_parsed": n, "n_valid": valid, "n_evaluated": None,
            "metrics": {"validity": {"valid_count": valid, "valid_frac_submitted": valid / n,
                                     "charge_step_counts": {"oxi_prior": 1}},
                        "stability": {"mean_e_above_hull": None}},
            "provenance": {"families": ["validity"], "evaluator_version": "0.1.0",
                           "config": {"mlip": "chgnet"}, "reference": {"id": "mp20"}}}


def table_bytes():
    import io

    buf = io.BytesIO()
    pd.DataFrame({"index": [0, 1], "parse_ok": [True, True]}).to_parquet(buf)
    return buf.getvalue()


def test_submit_stores_upload_meta_and_pending_job(store, files):
    job = submit(store, {**META, "submitter": "mallory"}, [files[0]], "alice", POLICY)
    assert job.status == q.PENDING and job.submitter == "alice" and job.attempts == 0
    assert q.get_job(store, job.id).to_dict() == job.to_dict()
    meta = load_meta(store, job.id)
    assert meta["submitter"] == "alice" and meta["file_sha256"] == job.file_sha256
    assert store.read_bytes(f"submissions/{job.id}/files/{files[0].name}") == files[0].read_bytes()
    job2 = submit(store, META, [files[1], files[2]], "alice", POLICY)
    assert len(job2.files) == 2 and job2.file_sha256 not in {f["sha256"] for f in job2.files}
    assert [q.queue_position(store, j.id) for j in (job, job2)] == [1, 2]
    assert [j.id for j in q.list_jobs(store)] == [job.id, job2.id]


def test_submission_refusals(store, files, tmp_path):
    with pytest.raises(SubmissionError, match="Model name"):
        submit(store, {**META, "model_name": ""}, [files[0]], "alice", POLICY)
    with pytest.raises(SubmissionError, match="no file"):
        submit(store, META, [], "alice", POLICY)
    empty = tmp_path / "empty.cif"
    empty.write_bytes(b"")
    with pytest.raises(SubmissionError, match="empty"):
        submit(store, META, [empty], "alice", POLICY)
    with pytest.raises(SubmissionError, match="limit is"):
        submit(store, META, [files[0]], "alice", SubmissionPolicy(max_upload_bytes=10))
    assert q.list_jobs(store) == []
    # an awkward file name is stored under a safe one; the original is recorded
    odd = tmp_path / "my gens;rm (v2).cif"
    odd.write_bytes(files[0].read_bytes())
    job = submit(store, META, [odd], "alice", POLICY)
    assert job.files[0]["name"] == "my_gens_rm_v2_.cif" and job.files[0]["original_name"] == odd.name
    assert stored_name("../../.x.zip") == "x.zip" and stored_name("???") == "upload"


def test_duplicates_and_rate_limit(store, files):
    first = submit(store, META, [files[0]], "alice", POLICY)
    with pytest.raises(SubmissionError, match="already submitted"):
        submit(store, {**META, "model_version": "0.2"}, [files[0]], "alice", POLICY)
    submit(store, META, [files[0]], "bob", POLICY)  # dedup is per submitter
    q.cancel(store, first.id, "alice")
    again = submit(store, META, [files[0]], "alice", POLICY)  # a cancelled one may be resubmitted
    submit(store, META, [files[1]], "alice", POLICY)
    with pytest.raises(SubmissionError, match="rate limit: at most 3 submissions per 7 days"):
        submit(store, META, [files[2]], "alice", POLICY)
    submit(store, META, [files[2]], "alice", SubmissionPolicy(max_per_window=0))  # 0 = unlimited
    unlimited = SubmissionPolicy(max_per_window=0)
    with pytest.raises(SubmissionError, match="withdraw it"):
        submit(store, META, [files[0]], "alice", unlimited)
    withdraw(store, again.id, "alice")
    submit(store, META, [files[0]], "alice", unlimited)  # a withdrawn one may be uploaded again (issue 26)


def test_the_same_structures_in_other_files_are_a_duplicate(store, files):
    digest = "ab" * 32  # the upload check's structures_sha256 (evaluator.ingest.fingerprint)
    free = SubmissionPolicy(max_per_window=0)
    first = submit(store, META, [files[0]], "alice", free, structures_sha256=digest)
    assert q.get_job(store, first.id).structures_sha256 == digest
    with pytest.raises(SubmissionError, match="already submitted these structures, in other files"):
        submit(store, META, [files[1]], "alice", free, structures_sha256=digest)  # a rebuilt archive
    submit(store, META, [files[2]], "bob", free, structures_sha256=digest)  # per submitter
    submit(store, META, [files[3]], "alice", free)  # digest unknown: bytes only
    withdraw(store, first.id, "alice")
    assert submit(store, META, [files[1]], "alice", free, structures_sha256=digest).structures_sha256 == digest


def test_rate_window_and_infrastructure_failures_do_not_count(store, files):
    old = submit(store, META, [files[0]], "alice", POLICY)
    q.update_job(store, old.id, lambda j: setattr(j, "created_at", q.iso(q.now() - dt.timedelta(days=8))) or j)
    broken = submit(store, META, [files[1]], "alice", POLICY)
    q.claim(store, "w", 60)
    q.claim(store, "w", 60)
    q.update_job(store, broken.id, lambda j: setattr(j, "max_attempts", 1) or j)
    assert q.fail(store, broken.id, "w", "disk full", q.INFRASTRUCTURE).status == q.FAILED
    for f in files[2:5]:
        submit(store, META, [f], "alice", POLICY)  # 3 counted in the window
    with pytest.raises(SubmissionError, match="rate limit"):
        submit(store, META, [files[5]], "alice", POLICY)


def test_claim_is_exclusive_under_contention(store, files):
    ids = {submit(store, META, [f], f"user{i}", POLICY).id for i, f in enumerate(files)}
    claimed, lock = [], threading.Lock()

    def worker(name):
        while (job := q.claim(store, name, 60)) is not None:
            with lock:
                claimed.append((job.id, name))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in claimed) == sorted(ids)  # each exactly once
    for job_id, name in claimed:
        job = q.get_job(store, job_id)
        assert job.status == q.RUNNING and job.lease_owner == name and job.attempts == 1
        assert [h["event"] for h in job.history] == ["submitted", "claimed"]


def test_leases_heartbeats_and_reclaim(store, files):
    job = submit(store, META, [files[0]], "alice", POLICY)
    assert q.claim(store, "w1", 60).id == job.id
    assert q.claim(store, "w2", 60) is None  # lease still valid
    beat = q.heartbeat(store, job.id, "w1", 60, {"done": 1, "total": 2, "stage": "validity"})
    assert beat.progress == {"done": 1, "total": 2, "stage": "validity"}
    with pytest.raises(q.LeaseLost):
        q.heartbeat(store, job.id, "w2", 60)
    q.heartbeat(store, job.id, "w1", -1)  # lease ran out (worker died)
    again = q.claim(store, "w2", 60)
    assert again.id == job.id and again.lease_owner == "w2" and again.attempts == 2
    with pytest.raises(q.LeaseLost):
        q.heartbeat(store, job.id, "w1", 60)  # the old owner notices
    with pytest.raises(q.LeaseLost):
        q.fail(store, job.id, "w1", "x", q.USER_ERROR)
    q.heartbeat(store, job.id, "w2", -1)
    q.update_job(store, job.id, lambda j: setattr(j, "max_attempts", 2) or j)
    assert q.claim(store, "w3", 60) is None  # expired after the last attempt: failed, not rerun
    final = q.get_job(store, job.id)
    assert final.status == q.FAILED and final.failure["kind"] == q.INFRASTRUCTURE
    assert "stopped responding" in final.failure["reason"]


def test_failure_kinds_and_release(store, files):
    user = submit(store, META, [files[0]], "alice", POLICY)
    infra = submit(store, META, [files[1]], "alice", POLICY)
    assert q.claim(store, "w", 60).id == user.id
    failed = q.fail(store, user.id, "w", "unsupported file format", q.USER_ERROR)
    assert failed.status == q.FAILED and failed.failure == {**failed.failure, "kind": "user",
                                                             "reason": "unsupported file format"}
    assert q.claim(store, "w", 60).id == infra.id
    retry = q.fail(store, infra.id, "w", "CUDA out of memory", q.INFRASTRUCTURE, retry_delay_s=3600)
    assert retry.status == q.PENDING and retry.last_error["reason"] == "CUDA out of memory"
    assert q.claim(store, "w", 60) is None  # waiting out the retry delay
    q.update_job(store, infra.id, lambda j: setattr(j, "not_before", None) or j)
    assert q.claim(store, "w", 60).attempts == 2
    released = q.release(store, infra.id, "w")
    assert released.status == q.PENDING and released.attempts == 1 and released.lease_owner is None


def test_publish_is_idempotent_and_table_readable(store, files, tmp_path):
    a = submit(store, META, [files[0]], "alice", POLICY)
    b = submit(store, {**META, "model_name": "Other", "training_set": "other",
                       "training_set_other": "own data"}, [files[1]], "bob", POLICY)
    for job in (a, b):
        claimed = q.claim(store, "w", 60)
        assert claimed.id == job.id
        done = publish(store, claimed, fake_summary(), table_bytes(), "w")
        assert done.status == q.FINISHED
    again = publish(store, q.get_job(store, a.id), fake_summary(), table_bytes(), "w")  # same owner
    assert again.status == q.FINISHED
    with pytest.raises(q.LeaseLost):
        publish(store, q.get_job(store, a.id), fake_summary(), table_bytes(), "intruder")
    table = load_results_table(store)
    assert sorted(table["submission_id"]) == sorted([a.id, b.id])  # one row each, no duplicate
    row = table.set_index("submission_id").loc[b.id]
    assert row["model_name"] == "Other" and row["training_set_other"] == "own data"
    assert row["validity.valid_count"] == 1 and row["validity.valid_frac_submitted"] == 0.5
    assert row["validity.charge_step_counts.oxi_prior"] == 1
    assert pd.isna(row["stability.mean_e_above_hull"]) and row["reference"] == "mp20"
    assert row["n_submitted"] == 2 and row["relaxed_before_submission"] == False  # noqa: E712
    summary = load_summary(store, a.id)
    assert summary["leaderboard"]["submission_id"] == a.id and summary["leaderboard"]["metadata"]["model_name"]
    assert list(load_structures(store, a.id)["parse_ok"]) == [True, True]

    import datasets

    local = store.local_path(LEADERBOARD_PATH)
    ds = datasets.load_dataset("parquet", data_files=str(local), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert ds.num_rows == 2 and "validity.valid_count" in ds.column_names

    # withdraw: owner only; hidden from the table, kept in the store
    with pytest.raises(q.QueueError, match="only the submitter"):
        withdraw(store, a.id, "bob")
    hidden = withdraw(store, a.id, "alice")
    assert hidden.status == q.HIDDEN and hidden.hidden_from == q.FINISHED
    assert list(load_results_table(store)["submission_id"]) == [b.id]
    assert list(pd.read_parquet(store.local_path(LEADERBOARD_PATH))["submission_id"]) == [b.id]
    assert load_summary(store, a.id) is not None


def test_results_table_reconciles_missing_rows(store, files):
    job = submit(store, META, [files[0]], "alice", POLICY)
    q.claim(store, "w", 60)
    publish(store, job, fake_summary(), table_bytes(), "w")
    store.delete(LEADERBOARD_PATH)  # e.g. lost by a crash between commits
    assert list(load_results_table(store)["submission_id"]) == [job.id]
    assert not store.exists(LEADERBOARD_PATH)  # reading never writes
    sync_leaderboard(store)
    assert store.exists(LEADERBOARD_PATH)
    assert load_results_table(store, reconcile=False)["submission_id"].tolist() == [job.id]


def test_cancel_and_requeue(store, files):
    job = submit(store, META, [files[0]], "alice", POLICY)
    with pytest.raises(q.QueueError):
        q.cancel(store, job.id, "bob")
    q.claim(store, "w", 60)
    assert q.cancel(store, job.id, "alice").status == q.CANCELLED
    with pytest.raises(q.LeaseLost):
        q.heartbeat(store, job.id, "w", 60)  # the worker learns at its next heartbeat
    with pytest.raises(q.QueueError, match="cannot cancel"):
        q.cancel(store, job.id, admin=True)
    back = q.requeue(store, job.id)
    assert back.status == q.PENDING and back.attempts == 0
    assert q.queue_position(store, job.id) == 1
    with pytest.raises(q.QueueError, match="no submission"):
        q.cancel(store, "nope", admin=True)


def test_claims_are_fifo_when_created_in_the_same_millisecond(store, files, monkeypatch):
    """Regression (flaky test_publish_is_idempotent_and_table_readable[hub]): two submissions in
    the same millisecond used to be ordered by their random id. Freeze the clock and hand out
    ids in reverse lexical order: claims must still follow submission order."""
    import leaderboard.intake.submissions as subs

    import leaderboard.jobs.job_store as job_store

    frozen, real_iso = "2026-01-01T00:00:00.000+00:00", q.iso
    monkeypatch.setattr(job_store, "iso", lambda t=None: frozen if t is None else real_iso(t))
    ids = iter(f"20260101-000000-{c * 8}" for c in "fedcba")
    monkeypatch.setattr(subs, "new_job_id", lambda: next(ids))
    jobs = [submit(store, META, [f], f"user{i}", POLICY) for i, f in enumerate(files)]
    assert len({j.created_at for j in jobs}) == 1
    # claims stamp real times: a heartbeat dated by the frozen clock would be months old,
    # and the queue distrusts a heartbeat older than the stall limit
    monkeypatch.setattr(job_store, "iso", real_iso)
    assert [q.claim(store, "w", 60).id for _ in jobs[:3]] == [j.id for j in jobs[:3]]
    assert [q.queue_position(store, j.id) for j in jobs[3:]] == [1, 2, 3]
    assert [j.id for j in q.list_jobs(store)] == [j.id for j in jobs]
    assert [j.seq for j in jobs] == [1, 2, 3, 4, 5, 6]


def test_order_survives_a_clock_step_back_and_a_lost_counter(store):
    """Order is commit order, not wall-clock order; a missing counter resumes after the last job."""
    made = []
    for i, t in enumerate(["00:00:02", "00:00:01", "00:00:00"]):  # NTP stepped the clock back
        if i == 2:
            store.delete(layout.SEQUENCE_PATH)  # e.g. a store from before sequencing
        made.append(q.create_job(store, q.Job(id=f"20260101-0000{i}0-{i}", submitter="alice",
                                              created_at=f"2026-01-01T{t}.000+00:00")))
    assert [j.seq for j in made] == [1, 2, 3] and store.read_bytes(layout.SEQUENCE_PATH) == b"3\n"
    assert [q.claim(store, "w", 60).id for _ in made] == [j.id for j in made]


def test_concurrent_submitters_get_distinct_sequence_numbers(tmp_path, files):
    """Several processes' stores (own HubStore/LocalStore objects on one repo/folder) submitting at
    once: every job gets its own number, the counter ends at the count, claims follow ``seq``."""
    from store_helpers import hub_store as make_hub
    from leaderboard.store.hubfake import FakeHfApi

    api = FakeHfApi()
    for make in (lambda: local_store(tmp_path), lambda: make_hub(api)):
        made, lock = [], threading.Lock()

        def one(i, make=make, made=made, lock=lock):  # bound now: the loop rebinds them
            job = submit(make(), META, [files[i]], f"user{i}", SubmissionPolicy(max_per_window=0))
            with lock:
                made.append(job)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(files))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store = make()
        assert sorted(j.seq for j in made) == list(range(1, len(files) + 1))
        assert store.read_bytes(layout.SEQUENCE_PATH) == f"{len(files)}\n".encode()
        by_seq = [j.id for j in sorted(made, key=lambda j: j.seq)]
        assert [q.claim(store, "w", 60).id for _ in made] == by_seq


def test_create_job_stays_write_once(store):
    job = q.create_job(store, q.Job(id="20260101-000000-00000000", submitter="alice"))
    with pytest.raises(q.PreconditionFailed):
        q.create_job(store, q.Job(id=job.id, submitter="mallory"))
    assert q.get_job(store, job.id).submitter == "alice" and store.read_bytes(layout.SEQUENCE_PATH) == b"1\n"


def test_unsafe_job_ids_are_unknown_not_errors(store):
    """A permalink's ?submission= is user input: path-like ids are simply not found."""
    for bad in ("../submissions/x/meta", "a/b", ".", "", "x.json"):
        assert q.get_job(store, bad) is None
        with pytest.raises(q.QueueError, match="no submission"):
            withdraw(store, bad, "alice")


@pytest.mark.parametrize("bad", [
    b'{\n "attempts": 0,\n "id": "ID',  # truncated
    b"[1, 2, 3]\n",  # JSON, not an object
    b'{"id": "ID", "status": "RUNNING", "attempts": "three", "created_at": "2026-01-01T00:00:00+00:00"}',
    b'{"id": "ID", "status": "PENDING", "created_at": "yesterday"}',
    b'{"id": "someone-else", "status": "PENDING", "created_at": "2026-01-01T00:00:00+00:00"}',
], ids=["truncated", "list", "wrong-type", "bad-time", "wrong-id"])
def test_corrupt_status_document_is_quarantined_not_fatal(store, files, bad, caplog):
    first = submit(store, META, [files[0]], "alice", POLICY)
    other = submit(store, META, [files[1]], "bob", POLICY)
    raw = bad.replace(b"ID", first.id.encode())
    store.write_bytes(layout.job_path(first.id), raw)
    with caplog.at_level("ERROR", logger="leaderboard.jobs.queue"):
        assert sorted(j.id for j in q.list_jobs(store)) == sorted([first.id, other.id])  # no error
    doc = q.get_job(store, first.id)
    assert doc.status == q.FAILED and doc.failure == {**doc.failure, "reason": q.CORRUPT_REASON,
                                                      "kind": q.INFRASTRUCTURE}
    assert (doc.submitter, doc.model_name) == ("alice", META["model_name"])  # from meta.json
    (copy,) = store.list(f"{layout.QUARANTINE_DIR}/queue/")
    assert store.read_bytes(copy) == raw and doc.history[-2]["copy"] == copy
    assert [r.getMessage() for r in caplog.records if first.id in r.getMessage()][0].startswith(
        "corrupt status document")
    assert q.claim(store, "w", 60).id == other.id  # every other job keeps working
    assert withdraw(store, first.id, "alice").status == q.HIDDEN  # answers, and is saved
    assert q.get_job(store, first.id).status == q.HIDDEN
    assert len(store.list(f"{layout.QUARANTINE_DIR}/")) == 1  # quarantined once


def test_corrupt_sequence_counter_is_quarantined_and_recomputed(store, files, caplog):
    jobs = [submit(store, META, [f], "alice", POLICY) for f in files[:2]]
    store.write_bytes(layout.SEQUENCE_PATH, b"twelve\n")
    with caplog.at_level("ERROR", logger="leaderboard.jobs.queue"):
        job = submit(store, META, [files[2]], "alice", POLICY)
    assert job.seq == 3 and store.read_bytes(layout.SEQUENCE_PATH) == b"3\n"
    (copy,) = store.list(f"{layout.QUARANTINE_DIR}/queue/")
    assert store.read_bytes(copy) == b"twelve\n"
    assert any("corrupt sequence counter" in r.getMessage() for r in caplog.records)
    assert [q.claim(store, "w", 60).id for _ in range(3)] == [jobs[0].id, jobs[1].id, job.id]


def test_history_records_attempts_and_the_previous_owner(store, files):
    job = submit(store, META, [files[0]], "alice", SubmissionPolicy(max_per_window=0, max_attempts=5))
    q.claim(store, "w1", 60)
    q.release(store, job.id, "w1")
    q.claim(store, "w2", 0.01)
    wait_until = q.now() + dt.timedelta(seconds=0.05)
    while q.now() < wait_until:  # the lease of 0.01 s expires (state, not speed: no assertion on time)
        pass
    q.claim(store, "w3", 60)
    q.fail(store, job.id, "w3", "stalled at novelty", q.INFRASTRUCTURE, 0, stalled_at="novelty")
    events = [(h["event"], h["by"], h.get("attempt")) for h in q.get_job(store, job.id).history]
    assert events == [("submitted", "alice", None), ("claimed", "w1", 1), ("released", "w1", 1),
                      ("claimed", "w2", 1), ("reclaimed", "w3", 2), ("stalled", "w3", 2), ("retry", "w3", 2)]
    assert q.get_job(store, job.id).history[4]["previous_owner"] == "w2"
