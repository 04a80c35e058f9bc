"""One protocol at a time (issue 20): ranking within the pinned protocol, the protocol
selector, old results without a protocol, a worker that cannot produce the pinned protocol,
jobs carrying their protocol, and idempotent re-scoring from stored uploads."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from leaderboard_fixtures import protocol_block, publish_fixture
from store_helpers import META, local_store, write_cifs
from evaluator.config import build_config
from evaluator.protocol import from_block
from leaderboard.jobs import queue as q
from leaderboard.publishing.results import (LEADERBOARD_PATH, frame_to_parquet, load_results_table, rows_to_frame,
                                           sync_leaderboard)
from leaderboard.intake.submissions import SubmissionPolicy, file_paths, submit
from leaderboard.table.protocols import UNKNOWN, default_protocol, protocol_choices
from leaderboard.table.view import build_view

UNLIMITED = SubmissionPolicy(max_per_window=0)


@pytest.fixture(scope="module")
def blocks():
    return {"default": protocol_block("default"), "chgnet": protocol_block("chgnet")}


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory, blocks):
    """Alpha, Beta under the default protocol; Gamma (best SUN+MSUN) under CHGNet's; Delta unknown.
    (Shared by the tests of this module; only the last one, re-scoring, adds jobs to it.)"""
    tmp_path = tmp_path_factory.mktemp("mixed")
    store = local_store(tmp_path)
    ids = {"Alpha": publish_fixture(store, tmp_path, "Alpha", 12, 3, 2, protocol=blocks["default"]),
           "Beta": publish_fixture(store, tmp_path, "Beta", 10, 2, 1, protocol=blocks["default"]),
           "Gamma": publish_fixture(store, tmp_path, "Gamma", 8, 6, 2, protocol=blocks["chgnet"]),
           "Delta": publish_fixture(store, tmp_path, "Delta", 8, 7, 1, protocol=None)}
    return store, ids


def _shown(results, protocol):
    from leaderboard.ui.leaderboard_tab import render_table

    styler, caption = render_table(results, "compact", None, "% of submitted", "", "All", "All", "All", None,
                                   None, protocol)
    frame = styler.data
    return frame, caption


def test_a_store_with_two_protocols_ranks_only_the_pinned_one_by_default(mixed_store, blocks):
    store, ids = mixed_store
    res = load_results_table(store)
    pinned = from_block(blocks["default"])
    assert set(res["protocol_source"]) == {"summary", "unknown"}
    first = default_protocol(res, pinned.id)
    assert first == pinned.id
    frame, caption = _shown(res, first)
    assert [m.split(" (")[0] for m in frame["Model"]] == ["Alpha", "Beta"]  # Gamma and Delta score higher
    assert list(frame["#"]) == [1, 2]
    assert pinned.label in caption and "never ranked" in caption
    # the selector: the pinned protocol first, each with its label and row count; unknown last
    choices = protocol_choices(res, pinned.id, pinned.label)
    assert [k for _, k in choices] == [pinned.id, from_block(blocks["chgnet"]).id, UNKNOWN]
    assert choices[0][0] == f"{pinned.label} ({pinned.id}) · 2 rows · this service's protocol"
    assert choices[1][0].startswith("CHGNet 0.3.0 · MP-20 hull") and choices[1][0].endswith("· 1 row")
    assert choices[2][0] == "protocol unknown · 1 row"
    # another protocol is ranked on its own
    other, _ = _shown(res, from_block(blocks["chgnet"]).id)
    assert [m.split(" (")[0] for m in other["Model"]] == ["Gamma"] and list(other["#"]) == [1]
    # results of an unknown protocol are listed, never ranked
    unknown, cap = _shown(res, UNKNOWN)
    assert [m.split(" (")[0] for m in unknown["Model"]] == ["Delta"] and unknown["#"].isna().all()
    assert "unranked" in cap
    # rows of several protocols together get no rank at all
    assert build_view(res).frame["#"].isna().all()
    # a pinned protocol without rows yet: an empty ranking that points at the others
    empty, cap = _shown(res, "0123456789ab")
    assert empty.empty and "4 under other protocols" in cap


def test_downloads_and_compare_name_the_protocol(mixed_store, blocks):
    from leaderboard.ui.compare_tab import metric_table, protocol_warning

    store, ids = mixed_store
    res = load_results_table(store)
    pinned, chgnet = from_block(blocks["default"]), from_block(blocks["chgnet"])
    by_model = res.set_index("model_name")
    assert by_model.loc["Alpha", "protocol_id"] == pinned.id and by_model.loc["Gamma", "protocol_label"] == chgnet.label
    assert json.loads(by_model.loc["Alpha", "protocol_record"]) == pinned.record
    warning = protocol_warning(res, [ids["Alpha"], ids["Gamma"]])
    assert "Different protocols" in warning and pinned.id in warning and chgnet.id in warning
    assert protocol_warning(res, [ids["Alpha"], ids["Beta"]]) == ""
    table = metric_table(res, [ids["Alpha"], ids["Gamma"]])
    assert table.iloc[1, 0] == "Protocol" and chgnet.id in table.iloc[1, 2]


def test_old_rows_and_summaries_without_a_protocol_still_load(tmp_path, blocks):
    """A leaderboard row written before protocols is rebuilt from its summary; a summary
    without a protocol block whose provenance does not record every part is "unknown"."""
    store = local_store(tmp_path)
    jid = publish_fixture(store, tmp_path, "Old", 8, 1, 1, protocol=None)
    data = store.read_bytes(LEADERBOARD_PATH)
    old = pd.read_parquet(io.BytesIO(data)).drop(columns=[c for c in ("protocol_id", "protocol_label",
                                                                       "protocol_source", "protocol_record")])
    store.write_bytes(LEADERBOARD_PATH, frame_to_parquet(rows_to_frame(old.to_dict("records"))))
    res = load_results_table(store)
    assert res["submission_id"].tolist() == [jid]
    assert res["protocol_source"].tolist() == ["unknown"] and res["protocol_label"].tolist() == ["protocol unknown"]
    synced = sync_leaderboard(store)  # written back with the protocol columns
    assert synced["protocol_source"].tolist() == ["unknown"]


def test_a_worker_that_cannot_produce_the_pinned_protocol_refuses_to_start(tmp_path, blocks, capsys):
    from leaderboard.worker import CONFIG_ERROR, Worker, main

    store = local_store(tmp_path)
    pinned = from_block(blocks["default"])
    with pytest.raises(ValueError) as err:
        Worker(store, build_config(env={}, protocol="chgnet"), expect_protocol=pinned.id, work_root=tmp_path / "w")
    assert pinned.label in str(err.value) and "CHGNet 0.3.0 · MP-20 hull" in str(err.value)
    # the same by name, and missing weights: both named
    assert main(["--store", str(store.root), "--expect-protocol", "default", "--mlip", "chgnet",
                 "--mlip-model", str(tmp_path / "missing.pth.tar")]) == CONFIG_ERROR
    msg = capsys.readouterr().err
    assert msg.startswith("error: this worker cannot produce protocol SevenNet-l3i5") and "missing.pth.tar" in msg
    assert main(["--store", str(store.root), "--expect-protocol", "default", "--protocol", "chgnet"]) == CONFIG_ERROR
    msg = capsys.readouterr().err
    assert f"pins protocol {pinned.describe()}" in msg and "produces protocol CHGNet 0.3.0" in msg
    ok = Worker(store, build_config(env={}), expect_protocol="default", work_root=tmp_path / "w")
    assert ok.protocol.id == pinned.id


def test_a_job_carries_its_protocol_and_only_a_worker_producing_it_claims_it(tmp_path, blocks):
    store = local_store(tmp_path)
    pinned, chgnet = from_block(blocks["default"]), from_block(blocks["chgnet"])
    mine = submit(store, META, [write_cifs(tmp_path / "a", 1)], "alice", UNLIMITED, protocol=chgnet.id)
    assert q.get_job(store, mine.id).protocol == chgnet.id
    assert q.claim(store, "w-default", 30, protocol=pinned.id) is None  # left for a CHGNet worker
    got = q.claim(store, "w-chgnet", 30, protocol=chgnet.id)
    assert got is not None and got.id == mine.id
    legacy = submit(store, META, [write_cifs(tmp_path / "b", 2)], "bob", UNLIMITED)  # queued before protocols
    assert q.claim(store, "w-default", 30, protocol=pinned.id).id == legacy.id


def test_rescoring_is_idempotent_and_keeps_the_old_results(mixed_store, blocks, tmp_path, monkeypatch, capsys):
    from leaderboard.__main__ import main
    from leaderboard.jobs.rescore import rescore, rescore_id
    from leaderboard.ui.jobs import job_detail
    from leaderboard.worker import Worker

    store, ids = mixed_store
    pinned, chgnet = from_block(blocks["default"]), from_block(blocks["chgnet"])
    first = rescore(store, pinned.id)
    assert sorted(first.queued) == sorted(rescore_id(ids[m], pinned.id) for m in ("Gamma", "Delta"))
    assert "already under protocol" in first.skipped[ids["Alpha"]]
    again = rescore(store, pinned.id)
    assert again.queued == [] and all("already queued" in again.skipped[ids[m]] for m in ("Gamma", "Delta"))
    assert rescore(store, pinned.id, [rescore_id(ids["Gamma"], pinned.id)]).queued == []  # a rescore names its source

    job = q.get_job(store, rescore_id(ids["Gamma"], pinned.id))
    source = q.get_job(store, ids["Gamma"])
    assert (job.status, job.protocol, job.source, job.submitter) == (q.PENDING, pinned.id, source.id, source.submitter)
    assert file_paths(job) == file_paths(source)  # scored from the stored upload, nothing copied
    assert store.read_json(f"submissions/{job.id}/meta.json")[0]["model_name"] == "Gamma"
    worker = Worker(store, build_config(env={}), work_root=tmp_path / "w")
    inputs = worker._inputs(job, tmp_path / "w" / job.id)
    assert [p.read_bytes() for p in inputs] == [store.read_bytes(p) for p in file_paths(source)]
    detail = job_detail(job, 1, store)
    assert f"Re-scoring of:** `{source.id}`" in detail and pinned.id in detail
    # the old results stay, under their own protocol
    res = load_results_table(store)
    assert res.set_index("submission_id").loc[ids["Gamma"], "protocol_id"] == chgnet.id

    # the admin command: checked against the service's settings, idempotent too
    monkeypatch.setenv("GENBENCH_STORE", str(store.root))
    monkeypatch.setenv("GENBENCH_PROTOCOL", "chgnet")
    assert main(["rescore", "--protocol", "default", "--all"]) == 2
    assert "is not the current protocol CHGNet" in capsys.readouterr().err
    assert main(["rescore", "--protocol", "chgnet", ids["Alpha"], ids["Gamma"]]) == 0
    out = capsys.readouterr().out
    assert "queued 1 re-scoring job(s)" in out and rescore_id(ids["Alpha"], chgnet.id) in out
    assert main(["rescore", "--protocol", chgnet.id, ids["Alpha"]]) == 0
    assert "queued 0 re-scoring job(s)" in capsys.readouterr().out
