"""The app driven through its API with gradio_client, with a real worker.

One test runs the full default evaluation pipeline (all families, CHGNet
relaxation with the default step cap) on three tiny real crystals end to end:
upload -> queue -> worker -> results table -> leaderboard row.
"""

from __future__ import annotations

import csv
import json

import pytest
from gradio_client import Client, handle_file


META = {"model_name": "TinyTest", "model_version": "api-1", "training_set": "MP-20",
        "task": "unconditional", "relaxed_before_submission": False}


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


def test_bad_uploads_are_refused_at_once(client, app_server, tmp_path):
    from leaderboard.jobs.queue import list_jobs

    before = len(list_jobs(app_server.ctx.store))
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 3\nthis is not a CIF loop\n")
    check = client.predict([handle_file(str(bad))], api_name="/check_upload")
    assert "Refused" in check and "broken.cif" in check
    out = client.predict([handle_file(str(bad))], META, api_name="/submit")
    assert out["ok"] is False and out["id"] is None
    assert "could be read" in out["message"]

    unknown = tmp_path / "notes.docx"
    unknown.write_bytes(b"PK\x03\x04 not really a zip")
    out = client.predict([handle_file(str(unknown))], META, api_name="/submit")
    assert out["ok"] is False and "refused" in out["message"].lower()

    good = tmp_path / "ok.cif"
    good.write_text(bad.read_text())  # metadata errors are reported too
    out = client.predict([handle_file(str(good))], {**META, "task": "sideways"}, api_name="/submit")
    assert out["ok"] is False
    assert len(list_jobs(app_server.ctx.store)) == before  # nothing was enqueued


def test_empty_leaderboard(tmp_path):
    from app_fixtures import free_port

    from leaderboard.ui import build_app
    from leaderboard.ui.shared_state import make_context

    demo = build_app(make_context(str(tmp_path / "empty")))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        out = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/leaderboard_table")
        assert out["data"] == [] and out["headers"][0] == "#"
    finally:
        demo.close()


@pytest.mark.slow
def test_submit_evaluate_rank_download_withdraw(client, app_server, small_cifs, start_worker, wait):
    from leaderboard.jobs.queue import QueueError
    from leaderboard.intake.submissions import withdraw
    from leaderboard.publishing.results import load_summary, load_structures

    store = app_server.ctx.store
    check = client.predict([handle_file(str(p)) for p in small_cifs], api_name="/check_upload")
    assert "3 structures found: 3 parsed" in check

    out = client.predict([handle_file(str(p)) for p in small_cifs], META, api_name="/submit")
    assert out["ok"], out["message"]
    jid = out["id"]
    st = client.predict(jid, api_name="/status")
    assert st["status"] == "PENDING" and st["queue_position"] >= 1 and st["submitter"] == "tester"
    from leaderboard.jobs.queue import PENDING, list_jobs

    assert [j.id for j in list_jobs(store, (PENDING,))] == [jid]  # so the --once worker takes it

    # The same upload again is refused as a duplicate, with the first id in the message.
    dup = client.predict([handle_file(str(p)) for p in small_cifs], META, api_name="/submit")
    assert not dup["ok"] and jid in dup["message"]

    worker = start_worker("--once")  # the full default pipeline (all families, default relax cap)
    seen_running = []

    def done():
        s = client.predict(jid, api_name="/status")
        if s["status"] == "RUNNING":
            seen_running.append(s["progress"])
        if worker.poll() is not None and s["status"] not in ("FINISHED", "FAILED"):
            pytest.fail(f"worker exited with {worker.returncode} leaving {s}")
        return s if s["status"] in ("FINISHED", "FAILED") else None

    st = wait(done, timeout=420, every=1.0, what="the worker to finish the submission")
    assert st["status"] == "FINISHED", st
    summary = load_summary(store, jid)
    assert set(summary["provenance"]["families"]) >= {"validity", "uniqueness", "novelty", "stability",
                                                       "sun", "diversity", "distribution", "hhi"}

    table = wait(lambda: (t := client.predict(api_name="/leaderboard_table"))["data"] and t,
                     timeout=30, what="the leaderboard row")
    assert jid in table["submission_ids"]
    row = dict(zip(table["headers"], table["data"][table["submission_ids"].index(jid)]))
    assert row["#"] >= 1 and row["Model"] == "TinyTest (api-1)" and row["N structures"] == 3
    assert row["Evaluated by"].startswith("leaderboard evaluator ") and row["Pre-relaxed"] == "no"
    expected = 100 * summary["metrics"]["sun"]["sun_plus_msun_frac_submitted"]
    assert row["SUN + MSUN ↑ [%]"] == pytest.approx(expected)
    assert row["Valid ↑ [%]"] == pytest.approx(100 * summary["metrics"]["validity"]["valid_frac_submitted"])

    counts = client.predict("full", "counts", "api-1", api_name="/leaderboard_table")
    assert counts["submission_ids"] == [jid]  # the search keeps only this row
    crow = dict(zip(counts["headers"], counts["data"][0]))
    assert crow["Novel w.r.t. MP-20 (≤ 20 atoms) ↑ [n]"] == summary["metrics"]["novelty"]["novel_count"]

    csv_path = client.predict(api_name="/download_csv")
    rows = list(csv.DictReader(open(csv_path)))
    assert jid in [r["submission_id"] for r in rows]

    # Per-structure results keep every submitted structure, with relaxed structures and E_hull.
    df = load_structures(store, jid)
    assert len(df) == 3 and {"stability_e_above_hull", "stability_relaxed_structure"} <= set(df.columns)
    from evaluator.export import cif_text
    from leaderboard.ui.structures_view import candidates
    from leaderboard.ui.summary_view import metrics_frame

    mf = metrics_frame(summary)
    assert {"validity", "sun", "hhi"} <= set(mf["Family"])
    cands, caption = candidates(df)
    assert "SUN" in caption
    cif = cif_text(df["stability_relaxed_structure"].dropna().iloc[0])
    assert "_cell_length_a" in cif and "_atom_site_fract_x" in cif

    # Only the owner can withdraw; withdrawing hides the row (kept in the store).
    with pytest.raises(QueueError):
        withdraw(store, jid, "someone-else")
    st = client.predict(jid, api_name="/status")
    assert st["status"] == "FINISHED" and json.dumps(st)


def test_withdraw_pending_submission(client, app_server, small_cifs):
    out = client.predict([handle_file(str(small_cifs[0]))], {**META, "model_version": "withdraw-me"},
                         api_name="/submit")
    assert out["ok"], out["message"]
    jid = out["id"]
    res = client.predict(jid, api_name="/withdraw_submission")
    assert res == {"ok": True, "status": "HIDDEN"}
    assert client.predict(jid, api_name="/status")["status"] == "HIDDEN"
    table = client.predict(api_name="/leaderboard_table")
    assert jid not in table["submission_ids"]
