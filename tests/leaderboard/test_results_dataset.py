"""The results store as a Hugging Face dataset: real jobs (the real evaluator, in the worker)
into two local stores, then ``datasets.load_dataset`` on the results folder, offline."""

import os
import re

import pandas as pd
import pytest
import yaml

from store_helpers import META, write_cifs, write_unique_files
from evaluator.config import EvalConfig
from leaderboard.jobs import queue as q
from leaderboard.publishing.card import describe
from leaderboard.publishing.results import load_results_table, load_structures, load_summary
from leaderboard.store import open_store
from leaderboard.store.layout import CARD_PATH, LEADERBOARD_PATH, summary_path, table_path
from leaderboard.intake.submissions import SubmissionPolicy, submit, withdraw
from leaderboard.worker import Worker

UNLIMITED = SubmissionPolicy(max_per_window=0)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    counter = iter(range(1000))

    def load(path, config):
        import datasets

        # a fresh cache each time: the folder changes between loads
        return datasets.load_dataset(str(path), config, split="train",
                                     cache_dir=str(tmp_path / f"hf-cache-{next(counter)}"))

    return load


def _run_jobs(store, tmp_path, configs):
    """Run one real job per config (one worker each, in submission order)."""
    for i, config in enumerate(configs):
        w = Worker(store, config, worker_id=f"w{i}", work_root=tmp_path / "work", heartbeat_s=1,
                   progress_interval_s=0.5, lease_s=60)
        done = w.run_one()
        assert done is not None and done.status == q.FINISHED, done


def test_load_dataset_after_real_jobs_and_withdrawal(tmp_path, offline):
    store = open_store(tmp_path / "requests", tmp_path / "results")
    results_root = tmp_path / "results"
    assert store.results_store is not store and store.results_store.root == results_root.resolve()
    uploads = [write_cifs(tmp_path / "a", 3), write_cifs(tmp_path / "b", 2, name="two"),
               *write_unique_files(tmp_path / "c", 1)]
    jobs = [submit(store, {**META, "model_name": f"Gen{i}"}, [u], f"user{i}", UNLIMITED)
            for i, u in enumerate(uploads)]
    # the third job runs one more family: its table has columns the others lack
    _run_jobs(store, tmp_path, [EvalConfig(families=["validity"]), EvalConfig(families=["validity"]),
                                EvalConfig(families=["validity", "uniqueness"])])
    ids = [j.id for j in jobs]

    board = offline(results_root, "leaderboard")
    assert sorted(board["submission_id"]) == sorted(ids)
    for col in ("protocol_id", "protocol_label", "model_name", "validity.valid_count", "n_submitted", "mlip"):
        assert col in board.column_names
    by_id = {r["submission_id"]: r for r in board}
    assert [by_id[i]["n_submitted"] for i in ids] == [3, 2, 1]
    assert by_id[ids[2]]["uniqueness.unique_count"] == 1 and by_id[ids[0]]["uniqueness.unique_count"] is None

    structures = offline(results_root, "structures")
    assert structures.num_rows == 6
    frame = structures.to_pandas()
    assert frame.groupby("submission_id").size().to_dict() == dict(zip(ids, [3, 2, 1]))
    assert {"submission_id", "protocol_id", "validity_valid"} <= set(frame.columns)
    assert frame.columns[:2].tolist() == ["submission_id", "protocol_id"]
    assert (frame.groupby("submission_id")["protocol_id"].first().to_dict()
            == {r["submission_id"]: r["protocol_id"] for r in board})  # the same protocol as the row
    unique_cols = [c for c in frame.columns if c.startswith("uniqueness_")]
    assert unique_cols and frame.loc[frame.submission_id == ids[0], unique_cols].isna().all().all()
    # the app still reads each submission's table as the evaluator wrote it
    assert not any(c.startswith("uniqueness_") for c in load_structures(store, ids[0]).columns)
    assert len(load_structures(store, ids[2])) == 1

    # the card declares both configs and documents every leaderboard column
    card = (results_root / CARD_PATH).read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["leaderboard", "structures"]
    assert header["license"] and "## Citation" in card and "## Protocols" in card
    for col in board.column_names:
        assert f"| `{col}` |" in card
        if re.match(r"(validity|uniqueness)\.", col):
            unit, _, meaning = describe(col)
            assert meaning, col
    assert "| `validity.valid_frac_submitted` |" in card and "fraction of submitted" in card

    # requests never appear in the results store
    public = sorted(p.relative_to(results_root).as_posix() for p in results_root.rglob("*")
                    if p.is_file() and not p.name.startswith("."))
    assert not [p for p in public if p.startswith(("submissions/", "queue/", "quarantine/"))]
    upload_bytes = {u.read_bytes() for u in uploads}
    assert not [p for p in public if (results_root / p).read_bytes() in upload_bytes]

    # withdrawing: gone from both configs and from the public files; the requests store keeps it
    withdraw(store, ids[1], "user1")
    board = offline(results_root, "leaderboard")
    structures = offline(results_root, "structures").to_pandas()
    assert sorted(board["submission_id"]) == sorted([ids[0], ids[2]])
    assert set(structures["submission_id"]) == {ids[0], ids[2]} and len(structures) == 4
    assert not (results_root / summary_path(ids[1])).exists()
    assert not (results_root / table_path(ids[1])).exists()
    assert ids[1] not in (results_root / CARD_PATH).read_text()
    assert q.get_job(store, ids[1]).status == q.HIDDEN
    assert store.read_json(summary_path(ids[1]))[0]["n_submitted"] == 2  # the private record
    assert sorted(load_results_table(store)["submission_id"]) == sorted([ids[0], ids[2]])
    assert load_summary(store, ids[0])["leaderboard"]["submission_id"] == ids[0]


def test_a_submission_hidden_before_it_finishes_is_never_published(tmp_path, offline):
    store = open_store(tmp_path / "requests", tmp_path / "results")
    job = submit(store, META, [write_cifs(tmp_path / "a", 1)], "alice", UNLIMITED)
    claimed = q.claim(store, "w", 60)
    withdraw(store, job.id, "alice")
    from leaderboard.publishing.dataset import publish

    with pytest.raises(q.LeaseLost):
        publish(store, claimed, {"n_submitted": 1, "metrics": {}}, b"", "w")
    assert not (tmp_path / "results" / summary_path(job.id)).exists()
    assert pd.read_parquet(tmp_path / "results" / LEADERBOARD_PATH).empty


def test_store_settings(tmp_path, monkeypatch):
    from leaderboard.store import resolve_uris

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENBENCH_STORE", raising=False)
    monkeypatch.delenv("GENBENCH_RESULTS_STORE", raising=False)
    assert resolve_uris() == ("state/requests", "state/results")  # side by side
    (tmp_path / "state" / "queue").mkdir(parents=True)  # a single store of an earlier version
    assert resolve_uris() == ("state", None)
    monkeypatch.setenv("GENBENCH_STORE", "hf://datasets/org/requests")
    assert resolve_uris() == ("hf://datasets/org/requests", None)  # alone: single store, as before
    monkeypatch.setenv("GENBENCH_RESULTS_STORE", "hf://datasets/org/results")
    assert resolve_uris() == ("hf://datasets/org/requests", "hf://datasets/org/results")
    assert os.environ["GENBENCH_RESULTS_STORE"] == "hf://datasets/org/results"
