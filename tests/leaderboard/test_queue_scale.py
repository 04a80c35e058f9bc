"""The queue at scale on the (fake) Hub: the queue index, batched lease renewals, the
commit budget per repo shared by the app and the workers, and the Hub's 128 commits/hour."""

import io
import threading

import pandas as pd
import pytest

from store_helpers import META, VirtualClock, hub_store, local_store, write_unique_files
from leaderboard.jobs import queue as q
from leaderboard.jobs import queue_index
from leaderboard.publishing.dataset import publish
from leaderboard.store.hubfake import HUB_COMMITS_PER_HOUR, FakeHfApi
from leaderboard.store.layout import QUEUE_INDEX_PATH
from leaderboard.intake.submissions import SubmissionPolicy, submit, withdraw

UNLIMITED = SubmissionPolicy(max_per_window=0)
BUDGET = 40


def _summary(n=2):
    return {"n_submitted": n, "n_parsed": n, "n_valid": n, "metrics": {"validity": {"valid_count": n}},
            "provenance": {"families": ["validity"]}}


def _table(n=2):
    buf = io.BytesIO()
    pd.DataFrame({"index": list(range(n)), "parse_ok": [True] * n}).to_parquet(buf)
    return buf.getvalue()


def _index_from_documents(store):
    return {j.id: queue_index.entry(j) for j in q.listed_jobs(store)}


@pytest.fixture(params=["local", "hub"])
def store(request, tmp_path):
    return local_store(tmp_path) if request.param == "local" else hub_store()


def test_the_index_follows_every_change_and_is_rebuilt_when_missing(store, tmp_path):
    files = write_unique_files(tmp_path / "up", 4)
    a, b, c, d = (submit(store, META, [f], f"user{i % 2}", UNLIMITED) for i, f in enumerate(files))
    q.claim(store, "w1", 60)
    q.heartbeat(store, a.id, "w1", 60, {"done": 1, "total": 2, "stage": "validity"})
    publish(store, q.get_job(store, a.id), _summary(), _table(), "w1")
    q.claim(store, "w2", 60)
    q.fail(store, b.id, "w2", "CUDA out of memory", q.INFRASTRUCTURE, retry_delay_s=3600)
    q.cancel(store, c.id, "user0")
    withdraw(store, d.id, "user1")
    entries, _ = queue_index.read(store)
    assert entries == _index_from_documents(store)
    assert {i: e["status"] for i, e in entries.items()} == {a.id: q.FINISHED, b.id: q.PENDING,
                                                            c.id: q.CANCELLED, d.id: q.HIDDEN}
    assert [j.id for j in q.list_jobs(store, submitter="user0")] == [a.id, c.id]
    assert q.claim(store, "w3", 60) is None  # b waits out its retry delay
    # a store from before the index: listing still works, the next write rebuilds it
    store.delete(QUEUE_INDEX_PATH)
    assert [j.id for j in q.list_jobs(store)] == [a.id, b.id, c.id, d.id]
    q.update_job(store, b.id, lambda j: setattr(j, "not_before", None) or j)
    assert queue_index.read(store)[0] == _index_from_documents(store)
    assert q.claim(store, "w3", 60).id == b.id
    # an unreadable index is read around and rebuilt the same way
    store.write_bytes(QUEUE_INDEX_PATH, b"{not json")
    assert len(q.list_jobs(store)) == 4
    q.release(store, b.id, "w3")
    assert queue_index.read(store)[0] == _index_from_documents(store)


def test_an_idle_poll_reads_one_document_and_lists_nothing(tmp_path):
    api = FakeHfApi()
    store = hub_store(api)
    for f in write_unique_files(tmp_path / "up", 5):
        job = submit(store, META, [f], "alice", UNLIMITED)
        claimed = q.claim(store, "w", 60)
        publish(store, claimed, _summary(), _table(), "w")
        assert q.get_job(store, job.id).status == q.FINISHED
    before = dict(api.calls)
    assert q.claim(store, "w", 60) is None
    delta = {k: v - before.get(k, 0) for k, v in api.calls.items() if v != before.get(k, 0)}
    assert delta == {"hf_hub_download": 1}  # the index; no listing, no status document


def test_lease_renewals_of_all_held_jobs_go_into_one_commit(tmp_path):
    api = FakeHfApi()
    store = hub_store(api, max_commits_per_hour=None)  # every renewal due: count the commits
    jobs = [submit(store, META, [f], "alice", UNLIMITED) for f in write_unique_files(tmp_path / "up", 3)]
    held = [q.claim(store, "w", 60) for _ in jobs]
    q.cancel(store, jobs[2].id, "alice")
    n = api.n_commits
    before = {j.id: q.get_job(store, j.id).lease_expires for j in held}
    renewed, lost = q.renew_leases(store, "w", {j.id: {"done": 1, "total": 2, "stage": "x"} for j in held}, 600)
    assert api.n_commits == n + 1  # two leases renewed, one commit
    assert set(renewed) == {jobs[0].id, jobs[1].id} and set(lost) == {jobs[2].id}
    for jid in renewed:
        doc = q.get_job(store, jid)
        assert doc.lease_expires > before[jid] and doc.progress["stage"] == "x"
    assert queue_index.read(store)[0] == _index_from_documents(store)


def test_on_a_budgeted_repo_renewals_stretch_with_the_running_jobs(tmp_path):
    api = FakeHfApi()
    store = hub_store(api)  # budget 120/hour, advice 240 s
    assert q.lease_plan(store, 1, 900) == q.LeasePlan(240.0, 900.0)
    # 60 running jobs: 60 renewals per interval within a quarter of the budget (30/hour)
    many = q.lease_plan(store, 60, 900)
    assert many.interval_s == pytest.approx(7200.0) and many.lease_s == pytest.approx(3 * 7200.0)
    assert q.lease_plan(local_store(tmp_path), 60, 60) == q.LeasePlan(0.0, 60)  # no budget: every call
    job = submit(store, META, write_unique_files(tmp_path / "up", 1), "alice", UNLIMITED)
    q.claim(store, "w", 900)
    n = api.n_commits
    assert q.heartbeat(store, job.id, "w", 900).id == job.id  # just claimed: not due, no commit
    assert api.n_commits == n
    with pytest.raises(q.LeaseLost):
        q.heartbeat(store, job.id, "intruder", 900)  # ownership is still checked


def _commits_per_hour_peak(api, repo):
    times = sorted(c.created_at for c in api.repos[repo].commits[1:])
    return max((sum(1 for u in times if t <= u < t + 3600) for t in times), default=0)


def test_the_commit_budget_holds_with_the_app_and_three_workers_writing_together(tmp_path, monkeypatch):
    """The app submits 40 jobs while three workers claim, renew leases and publish, each
    process with its own HubStore on the same two repos, all on one virtual clock, with a
    budget of 40 commits/hour (below the fake Hub's 128, so it binds within the test): no
    hour holds more than the budget (plus the commits of processes that checked at the same
    instant), because every process counts the repo's commits, not its own (per-process
    counting would allow four times as many); nothing is refused (429); and lease renewals
    never wait for the budget (they use its reserve) while submissions, claims and results
    fill the hour."""
    import datetime as dt

    clock = VirtualClock()
    api = FakeHfApi(clock=clock)
    import leaderboard.jobs.documents as documents
    import leaderboard.jobs.leases as leases

    for module in (q, documents, leases):  # every module of the queue that reads the time
        monkeypatch.setattr(module, "now", lambda: dt.datetime.fromtimestamp(clock(), dt.UTC))

    def open_pair():
        s = hub_store(api, repo="org/requests", clock=clock, max_commits_per_hour=BUDGET)
        s.results = hub_store(api, repo="org/results", clock=clock, max_commits_per_hour=BUDGET)
        return s

    app, workers = open_pair(), [open_pair() for _ in range(3)]
    files = write_unique_files(tmp_path / "up", 40)
    submitted = []
    done = threading.Event()
    errors, lost = [], []

    def app_loop():
        try:
            for f in files:
                clock.sleep(30)  # a submission every 30 s
                submitted.append(submit(app, META, [f], "alice", UNLIMITED).id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    def worker_loop(i, store):
        try:
            while True:
                job = q.claim(store, f"w{i}", 900)
                if job is None:
                    if done.is_set() and not q.list_jobs(store, (q.PENDING, q.RUNNING)):
                        return
                    clock.sleep(5)  # poll interval
                    continue
                try:  # as the worker does: a lost lease abandons the job (another worker has it)
                    for k in range(12):  # progress every 100 s; renewals are due every 1080 s (3 running)
                        clock.sleep(100)
                        q.heartbeat(store, job.id, f"w{i}", 900, {"done": k, "total": 12, "stage": "x"})
                    publish(store, job, _summary(), _table(), f"w{i}")
                except q.LeaseLost:
                    lost.append(job.id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def taking_part(fn, *args):
        with clock.participant():
            fn(*args)

    threads = [threading.Thread(target=taking_part, args=(app_loop,))] + [
        threading.Thread(target=taking_part, args=(worker_loop, i, s)) for i, s in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and not any(t.is_alive() for t in threads)
    assert sorted(j.id for j in q.list_jobs(app, (q.FINISHED,))) == sorted(submitted) and len(submitted) == 40
    assert api.refused == 0
    total = len(api.repos["org/requests"].commits) - 1
    assert total > 3 * BUDGET  # hours of budget were needed ...
    assert sum(len(s.budget_waits) for s in (app, *workers)) > 0  # ... so processes waited for it
    renewals = [c for c in api.repos["org/requests"].commits if "renew" in c.title]
    assert renewals and not any(s.urgent_waits for s in workers)  # renewals never waited for the budget
    assert not lost  # so no lease lapsed
    for repo in ("org/requests", "org/results"):
        assert _commits_per_hour_peak(api, repo) <= BUDGET + 3 < HUB_COMMITS_PER_HOUR
    public = api.repos["org/results"].commits[-1].files  # the results repo: a dataset, no request
    assert "README.md" in public and sum(p.endswith("/structures.parquet") for p in public) == 40
    assert not [p for p in public if p.startswith(("queue/", "submissions/"))]
