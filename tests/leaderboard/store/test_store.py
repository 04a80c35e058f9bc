"""Store contract: both back ends (local folder, Hub against FakeHfApi) pass the same tests."""

import multiprocessing as mp
import threading

import pytest

from store_helpers import hub_store, local_store
from leaderboard.store import ABSENT, PreconditionFailed, StoreError, etag_of, open_store
from leaderboard.store.hub import HubStore
from leaderboard.store.hubfake import FakeHfApi
from leaderboard.store.local import LocalStore


@pytest.fixture(params=["local", "hub"])
def store(request, tmp_path):
    return local_store(tmp_path) if request.param == "local" else hub_store()


def test_read_write_list_delete(store):
    assert store.read("a/b.json") == (None, None)
    assert store.read_bytes("a/b.json") is None and not store.exists("a/b.json")
    assert store.list("a/") == []
    tag = store.write_bytes("a/b.json", b"{}")
    assert tag == etag_of(b"{}") == store.etag("a/b.json")
    store.write_json("a/c/d.json", {"x": 1})
    store.write_bytes("ab.txt", b"other")
    assert store.read_json("a/c/d.json")[0] == {"x": 1}
    assert store.list("a/") == ["a/b.json", "a/c/d.json"]
    assert store.list("a/c") == ["a/c/d.json"]
    assert "ab.txt" in store.list("")
    local = store.local_path("a/b.json")
    assert local.read_bytes() == b"{}" and local.name == "b.json"
    assert store.local_path("nope.json") is None
    store.delete("a/b.json")
    assert store.list("a/") == ["a/c/d.json"]


def test_compare_and_swap(store):
    tag = store.write_bytes("q/1.json", b"v1", if_match=ABSENT)
    with pytest.raises(PreconditionFailed):
        store.write_bytes("q/1.json", b"again", if_match=ABSENT)  # create-only
    tag2 = store.write_bytes("q/1.json", b"v2", if_match=tag)
    with pytest.raises(PreconditionFailed):
        store.write_bytes("q/1.json", b"v3", if_match=tag)  # stale etag
    assert store.read("q/1.json") == (b"v2", tag2)
    with pytest.raises(PreconditionFailed):
        store.delete("q/1.json", if_match=tag)
    assert store.exists("q/1.json")


def test_multi_file_commit_is_all_or_nothing(store):
    store.write_bytes("doc.json", b"1")
    with pytest.raises(PreconditionFailed):
        store.commit({"x/a": b"a", "x/b": b"b", "doc.json": b"2"},
                     if_match={"doc.json": etag_of(b"0")})
    assert store.list("x/") == [] and store.read_bytes("doc.json") == b"1"
    store.commit({"x/a": b"a", "x/b": b"b", "doc.json": b"2"}, if_match={"doc.json": etag_of(b"1")})
    assert store.list("x/") == ["x/a", "x/b"] and store.read_bytes("doc.json") == b"2"


def test_bad_paths_refused(store):
    for bad in ("../escape", "a//b", "", "a/./b"):
        with pytest.raises(StoreError):
            store.write_bytes(bad, b"x")


def _increment(store, n):
    for _ in range(n):
        while True:
            data, tag = store.read("counter")
            value = int(data or b"0")
            try:
                store.write_bytes("counter", str(value + 1).encode(), if_match=tag or ABSENT)
                break
            except PreconditionFailed:
                continue


def test_concurrent_cas_increments_lose_nothing(store):
    threads = [threading.Thread(target=_increment, args=(store, 15)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.read_bytes("counter") == b"60"


def _proc_increment(root, n):
    _increment(open_store(root), n)


def test_local_cas_across_processes(tmp_path):
    root = str(tmp_path / "state")
    ctx = mp.get_context("forkserver")  # never fork a threaded process (pytest, the app)
    procs = [ctx.Process(target=_proc_increment, args=(root, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert open_store(root).read_bytes("counter") == b"75"


def test_open_store_uris(tmp_path, monkeypatch):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path.resolve()
    monkeypatch.setenv("GENBENCH_STORE", str(tmp_path / "env"))
    assert open_store().root == (tmp_path / "env").resolve()
    hub = HubStore.from_uri("hf://datasets/org/name@dev", api=FakeHfApi())
    assert (hub.repo_id, hub.revision) == ("org/name", "dev")
    for bad in ("hf://models/org/name", "hf://datasets/name"):
        with pytest.raises(StoreError):
            HubStore.from_uri(bad, api=FakeHfApi())


# -- Hub specifics -------------------------------------------------------------
def test_hub_retries_429_and_5xx_with_backoff():
    api = FakeHfApi()
    store = hub_store(api)
    store.write_bytes("a", b"1")
    api.fail_next = [429, 503, 502]
    assert store.read_bytes("a") == b"1"
    assert len(store.sleeps) == 3 and store.sleeps == sorted(store.sleeps)
    api.fail_next = [401]
    with pytest.raises(Exception) as info:
        store.read_bytes("a")
    assert info.value.response.status_code == 401


def test_hub_unrelated_commit_is_no_conflict_and_lost_reply_is_success():
    api = FakeHfApi()
    store, other = hub_store(api), hub_store(api)
    tag = store.write_bytes("doc", b"1")
    other.write_bytes("elsewhere", b"x")  # moves the branch
    real = api.create_commit
    calls = []

    def commit_once_stale(*args, **kwargs):  # the branch moves between our read and commit
        if not calls:
            calls.append(1)
            real(args[0], [], commit_message="racing commit", repo_type="dataset")
        return real(*args, **kwargs)

    api.create_commit = commit_once_stale
    tag = store.write_bytes("doc", b"2", if_match=tag)  # 412 once, re-checked, retried
    api.create_commit = real
    assert store.read_bytes("doc") == b"2"

    def applied_but_reply_lost(*args, **kwargs):
        real(*args, **kwargs)
        api.create_commit = real
        api.fail_next = [503]
        return real(*args, **kwargs)  # the retry of the same commit hits a moved head

    api.create_commit = applied_but_reply_lost
    store.write_bytes("doc", b"3", if_match=tag)
    assert store.read_bytes("doc") == b"3"


def test_hub_commits_are_paced():
    api = FakeHfApi()
    store = hub_store(api, max_commits_per_hour=3)
    for i in range(5):
        store.write_bytes(f"f{i}", b"x")
    assert api.n_commits == 5
    # a budget of 3 keeps 0 in reserve (int(0.9)): the hour holds the initial commit, f0 and
    # f1, so f2 waits ~1 h, then f3 and f4 fit
    assert len([s for s in store.sleeps if s > 3000]) == 1 and api.refused == 0


def test_hub_commit_budget_is_the_repos_shared_by_every_process():
    """The budget is counted from the repo's own commits: a process that made none waits
    when others filled the hour."""
    from store_helpers import VirtualClock

    api = FakeHfApi(clock=VirtualClock())
    # a budget of 10: 7 for ordinary commits, 3 more kept for lease renewals
    a, b = hub_store(api, max_commits_per_hour=10), hub_store(api, max_commits_per_hour=10)
    for i in range(6):
        a.write_bytes(f"a{i}", b"x")  # with the initial commit: 7 in the hour
    from leaderboard.store import urgent_commits

    for i in range(3):  # the reserve: urgent commits (lease renewals) go on up to the full budget
        with urgent_commits():
            a.write_bytes(f"lease{i}", b"x")
    assert a.budget_waits == [] and a.recent_commits()[0][1] is True
    b.write_bytes("b0", b"x")  # b made no commit, but the repo's hour is full
    assert len(b.budget_waits) == 1 and b.budget_waits[0] > 3000 and api.refused == 0


def test_fake_hub_refuses_the_129th_commit_of_an_hour_with_429():
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError
    from store_helpers import VirtualClock

    clock = VirtualClock()
    api = FakeHfApi(clock=clock)
    api.create_repo("o/r", repo_type="dataset")
    for i in range(128):
        api.create_commit("o/r", [CommitOperationAdd(f"f{i}", b"x")], commit_message="c", repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit("o/r", [CommitOperationAdd("g", b"x")], commit_message="c", repo_type="dataset")
    assert err.value.response.status_code == 429 and api.refused == 1
    assert 3500 < int(err.value.response.headers["retry-after"]) <= 3601
    # a store whose own budget is above the Hub's waits out the 429 (Retry-After) and commits
    store = hub_store(api, repo="o/r", max_commits_per_hour=1000)
    store.write_bytes("h", b"x")
    assert api.refused == 2 and store.read_bytes("h") == b"x" and max(clock.sleeps) > 3500


def test_hub_lazily_creates_repo_and_reads_empty():
    api = FakeHfApi()
    store = hub_store(api)
    assert store.list("queue/") == [] and store.read_bytes("x") is None
    assert api.repos == {}
    store.write_bytes("x", b"1")
    assert list(api.repos) == ["test-org/leaderboard-state"]


def test_layout_names_the_paths_existing_stores_use():
    """The layout module is the one place store paths are spelled; these are the
    names already in stores on disk and on the Hub, so they must not drift."""
    from leaderboard.store import layout

    jid = "20250101-120000-1a2b3c4d"
    assert layout.meta_path(jid) == f"submissions/{jid}/meta.json"
    assert layout.upload_path(jid, "gens.zip") == f"submissions/{jid}/files/gens.zip"
    assert layout.job_path(jid) == f"queue/{jid}.json"
    assert layout.SEQUENCE_PATH == "queue/sequence.txt"
    assert layout.summary_path(jid) == f"results/{jid}/summary.json"
    assert layout.table_path(jid) == f"results/{jid}/structures.parquet"
    assert layout.LEADERBOARD_PATH == "results/leaderboard.parquet"
    tag = etag_of(b"x")
    assert layout.quarantine_path(layout.job_path(jid), tag) == f"quarantine/queue/{jid}.{tag[:12]}.json"
    assert layout.quarantine_path(layout.SEQUENCE_PATH, tag) == f"quarantine/queue/sequence.{tag[:12]}.txt"


def test_layout_job_id_of_inverts_job_path(store):
    from leaderboard.store import layout

    store.write_bytes(layout.job_path("a-1"), b"{}")
    store.write_bytes(layout.SEQUENCE_PATH, b"1\n")
    listed = store.list(layout.QUEUE_DIR + "/")
    assert sorted(listed) == sorted([layout.job_path("a-1"), layout.SEQUENCE_PATH])
    assert [layout.job_id_of(p) for p in listed if layout.job_id_of(p)] == ["a-1"]
    assert layout.job_id_of(layout.SEQUENCE_PATH) is None
    assert layout.job_id_of(layout.meta_path("a-1")) is None
