"""The upload flow without a browser (issue 26 item 1, and item 5's intake side): the check
and Submit are called as the Submit tab calls them, on real MP crystals.

- the limits on the page come from the policy object the check and Submit enforce;
- Submit gives the check's verdict on the same files (30 files, good + empty, empty only,
  the rate limit);
- files the check refused are deleted and leave the upload box;
- no server path or errno reaches a message, whatever fails;
- the estimate is a paragraph of its own, never inside the last bullet;
- a job submitted through the app carries its size (structures, atoms per cell).
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from markdown_it import MarkdownIt

from evaluator.config import IngestLimits
from evaluator.protocol import Protocol
from leaderboard.intake.policy import SubmissionPolicy, ingest_limits, policy_for
from leaderboard.intake.submissions import SubmissionError, submit
from leaderboard.jobs.queue import CorruptDocument, claim, get_job, iso, parse_job, update_job
from leaderboard.store import dumps
from leaderboard.ui import status_tab, submit_tab
from leaderboard.ui.shared_state import make_context

META = {"model_name": "FlowGen", "model_version": "1", "training_set": "MP-20", "task": "unconditional",
        "relaxed_before_submission": False}
USER = "flow-user"
# a server path or an errno in a message: what must never reach the page
LEAK = re.compile(r"Errno|/tmp/|gradio/|/home/|/work/|/srv/|/var/|Traceback")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """Gradio's upload cache, where the app's uploads live (only files there are ever deleted)."""
    root = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(root))
    monkeypatch.setenv("GENBENCH_RATE_LIMIT", "0")
    monkeypatch.delenv("SPACE_ID", raising=False)
    root.mkdir()
    return root


@pytest.fixture
def ctx(tmp_path):
    return make_context(str(tmp_path / "store"))


def upload(cache: Path, mp_sample: Path, n: int, start: int = 0) -> list[str]:
    """``n`` distinct real MP crystals as Gradio stores uploads: one hash folder per file."""
    out = []
    for i, src in enumerate(sorted(mp_sample.glob("mp_*.cif"))[start:start + n]):
        folder = cache / f"{start + i:040x}"
        folder.mkdir()
        out.append(str(shutil.copy(src, folder / src.name)))
    return out


def empty_file(cache: Path, name: str = "empty.cif") -> str:
    folder = cache / "e" / name
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"")
    return str(folder / name)


def verdict(text: str) -> str:
    head = text.split("\n")[0]
    if head.startswith(("**Refused:**", "**Not submitted:**", "**Not checked:**")):
        return "refused"
    if head.startswith(("**OK:**", "**Accepted:**")):
        return "ok"
    raise AssertionError(f"no verdict: {text[:200]!r}")


def test_limits_on_the_page_come_from_the_policy_submit_enforces(ctx, monkeypatch):
    monkeypatch.setenv("GENBENCH_RATE_LIMIT", "2")
    monkeypatch.setenv("GENBENCH_RATE_WINDOW_DAYS", "3")
    monkeypatch.setenv("GENBENCH_MAX_UPLOAD_MB", "50")
    policy = submit_tab.current_policy(ctx)
    assert (policy.max_files, policy.upload_bytes, policy.max_per_window) == (20, 50 * 1024**2, 2)
    text = policy.limits_text()
    for said in ("**20 files**", "**50 MB in all**", "**10,000 structures**", "500 atoms",
                 "at most 2 submissions per account every 3 days", "empty files are left out"):
        assert said in text, (said, text)
    with gr.Blocks() as demo:
        handles = submit_tab.build(ctx, gr.State(None))
    assert handles.files.label == "Structures (at most 20 files, 50 MB)"
    shown = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "submit-limits"]
    assert shown == [text]  # stated under the upload box, before anything is uploaded
    # the reading limits are the pinned protocol's (its record's "ingest" block)
    record = {"ingest": {**IngestLimits().__dict__, "max_structures": 300, "max_atoms_per_structure": 64}}
    limits = ingest_limits(Protocol("p", "label", record))
    assert (limits.max_structures, limits.max_atoms_per_structure) == (300, 64)
    assert "**300 structures**" in policy_for(Protocol("p", "label", record)).limits_text()
    assert ingest_limits(None) == IngestLimits()


def test_thirty_files_the_check_and_submit_refuse_alike_naming_the_limit(ctx, cache, mp_sample):
    files = upload(cache, mp_sample, 30)
    check = submit_tab.check_files(files, ctx, USER)
    assert verdict(check) == "refused" and "at most 20 files" in check and "zip or tar archive" in check
    assert not any(Path(f).exists() for f in files)  # refused uploads are deleted ...
    v = submit_tab.safely(files, ctx, USER)
    assert v.kept == [] and submit_tab.box_update(files, v)["value"] is None  # ... and leave the box
    again = upload(cache, mp_sample, 30, start=100)
    msg, jid = submit_tab.do_submit(ctx, again, USER, META)
    assert jid is None and verdict(msg) == "refused" and "at most 20 files" in msg
    msg, jid = submit_tab.do_submit(ctx, None, USER, META)  # what Submit sees once the box is emptied
    assert jid is None and verdict(msg) == "refused" and "upload box is empty" in msg


def test_good_and_empty_files_the_empty_one_leaves_and_both_verdicts_are_ok(ctx, cache, mp_sample):
    good = upload(cache, mp_sample, 2)
    empty = empty_file(cache)
    check = submit_tab.check_files([*good, empty], ctx, USER)
    assert verdict(check) == "ok" and "2 structures found: 2 parsed" in check
    assert "empty.cif: empty file" in check and "removed from the upload box" in check
    assert not Path(empty).exists() and all(Path(p).exists() for p in good)
    v = submit_tab.safely([*good, empty_file(cache, "blank.cif")], ctx, USER)
    assert v.ok and v.kept == good
    assert submit_tab.box_update([*good, "x"], v)["value"] == good  # the box keeps the good files only
    assert submit_tab.box_update(good, v) == gr.update()  # nothing removed: the box is left alone
    # Submit on the same files says the same: accepted, the empty file left out
    msg, jid = submit_tab.do_submit(ctx, [*good, empty_file(cache, "again.cif")], USER, META)
    assert verdict(msg) == "ok" and jid is not None and "again.cif: empty file" in msg
    assert [f["name"] for f in get_job(ctx.store, jid).files] == [Path(p).name for p in good]
    # submit() called directly does not leave files out silently
    with pytest.raises(SubmissionError, match="empty file"):
        submit(ctx.store, {**META, "model_version": "2"}, [*good, empty_file(cache, "x.cif")], USER,
               SubmissionPolicy(max_per_window=0))


def test_only_empty_files_are_refused_by_check_and_submit(ctx, cache):
    empty = empty_file(cache)
    check = submit_tab.check_files([empty], ctx, USER)
    assert verdict(check) == "refused" and "nothing to submit" in check and "empty.cif" in check
    assert not Path(empty).exists()
    msg, jid = submit_tab.do_submit(ctx, [empty_file(cache, "e2.cif")], USER, META)
    assert jid is None and verdict(msg) == "refused" and "nothing to submit" in msg


def test_no_server_path_reaches_the_page_whatever_fails(ctx, cache, mp_sample, monkeypatch):
    # a file the check deleted, still named by the box (what once gave "[Errno 2] ... gradio/<hash>/empty.cif")
    gone = upload(cache, mp_sample, 1)
    Path(gone[0]).unlink()
    for text in (submit_tab.check_files(gone, ctx, USER), submit_tab.do_submit(ctx, gone, USER, META)[0]):
        assert verdict(text) == "refused" and "is no longer on the server" in text and not LEAK.search(text), text
    files = upload(cache, mp_sample, 1, start=5)

    def store_down(*args, **kwargs):
        raise OSError(5, "Input/output error", f"{cache}/../state/queue/index.json")

    monkeypatch.setattr(submit_tab, "list_jobs", store_down)  # the account's history cannot be read
    text = submit_tab.check_files(files, ctx, USER)
    assert text.startswith("**Not checked:**") and "not refused" in text and not LEAK.search(text), text
    assert Path(files[0]).exists()  # the server's failure refuses nothing and deletes nothing
    msg, jid = submit_tab.do_submit(ctx, files, USER, META)
    assert jid is None and msg.startswith("**Not submitted:**") and not LEAK.search(msg), msg
    monkeypatch.undo()

    def commit_fails(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", f"{cache}/abc123/{Path(files[0]).name}")

    monkeypatch.setattr(submit_tab, "submit", commit_fails)
    msg, jid = submit_tab.do_submit(ctx, files, USER, META)
    assert jid is None and "is no longer on the server" in msg and not LEAK.search(msg), msg

    def bug(*args, **kwargs):
        raise RuntimeError(f"unexpected state in {cache}/state/queue/x.json")

    monkeypatch.setattr(submit_tab, "submit", bug)
    msg, jid = submit_tab.do_submit(ctx, files, USER, META)
    assert jid is None and msg.startswith("**Not submitted:**") and not LEAK.search(msg), msg


def test_duplicates_and_rate_limit_are_the_checks_verdict_too(ctx, cache, mp_sample, monkeypatch):
    monkeypatch.setenv("GENBENCH_RATE_LIMIT", "2")
    first = upload(cache, mp_sample, 1)
    assert "your submissions in the last 7 days: 0 of 2" in submit_tab.check_files(first, ctx, USER)
    msg, jid = submit_tab.do_submit(ctx, first, USER, META)
    assert jid is not None, msg
    same = shutil.copy(first[0], cache / "copy.cif")  # the same structures, another file
    check = submit_tab.check_files([str(same)], ctx, USER)
    assert verdict(check) == "refused" and "already submitted" in check and jid in check
    other = upload(cache, mp_sample, 1, start=1)
    assert "1 of 2" in submit_tab.check_files(other, ctx, USER)
    assert submit_tab.do_submit(ctx, other, USER, {**META, "model_version": "2"})[1] is not None
    third = upload(cache, mp_sample, 1, start=2)
    check = submit_tab.check_files(third, ctx, USER)
    assert verdict(check) == "refused" and "rate limit: at most 2 submissions per 7 days" in check
    third = upload(cache, mp_sample, 1, start=3)
    msg, again = submit_tab.do_submit(ctx, third, USER, {**META, "model_version": "3"})
    assert again is None and "rate limit: at most 2 submissions per 7 days" in msg
    # another account is not limited by this one's history
    assert verdict(submit_tab.check_files(upload(cache, mp_sample, 1, start=4), ctx, "someone-else")) == "ok"


def test_estimate_is_a_paragraph_of_its_own_after_the_failures_list(ctx, cache, mp_sample):
    folder = cache / "zip"
    folder.mkdir()
    archive = folder / "gens.zip"
    src = sorted(mp_sample.glob("mp_*.cif"))[0]
    with zipfile.ZipFile(archive, "w") as z:
        z.write(src, src.name)
        z.writestr("broken.cif", "data_x\n_cell_length_a 3\n")
    text = submit_tab.check_files([str(archive)], ctx, USER)
    assert verdict(text) == "ok" and "**1 failed to parse**" in text and "- gens.zip:broken.cif" in text
    html = MarkdownIt().render(text)
    items = re.findall(r"<li>(.*?)</li>", html, re.S)
    assert items and not any("Estimated evaluation time" in li for li in items), html
    assert re.search(r"<p><strong>Estimated evaluation time", html), html


def test_a_job_submitted_through_the_app_carries_its_size(ctx, cache, mp_sample, monkeypatch):
    files = upload(cache, mp_sample, 3)
    check = submit_tab.inspect(files)
    msg, jid = submit_tab.do_submit(ctx, files, USER, META)
    assert jid is not None, msg
    job = get_job(ctx.store, jid)
    assert job.n_structures == 3
    assert sorted(n for n, c in job.cell_atoms for _ in range(c)) == sorted(check.atoms)
    # after a restart (nothing remembered in the process) the status view still knows its size
    monkeypatch.setattr(status_tab, "_SIZES", {})
    snap = status_tab.Snapshot(ctx)
    assert snap.sizes[jid] == 3 and sorted(snap.atoms[jid]) == sorted(check.atoms)
    text = submit_tab.check_files(upload(cache, mp_sample, 1, start=10), ctx, USER)
    assert "1 submission ahead in the queue: it would start in" in text and "not known" not in text
    # a worker has just started it: its first stage has no rate yet, so the cost model for its known size
    claim(ctx.store, "w1", 600)

    def first_stage(j):
        j.progress = {"stage": "ingest", "done": 0, "total": 1, "stage_started_at": iso(), "updated_at": iso()}
        return j

    update_job(ctx.store, jid, first_stage)
    text = submit_tab.check_files(upload(cache, mp_sample, 1, start=11), ctx, USER)
    assert "1 submission ahead in the queue: it would start in" in text and "not known" not in text, text
    assert "no rate measured yet for ingest" in text and "the cells' known sizes" in text, text
    # the fields are checked when a status document is read back
    doc = job.to_dict()
    assert parse_job(dumps(doc), jid).cell_atoms == job.cell_atoms
    for bad in ({"n_structures": "3"}, {"cell_atoms": [[4]]}, {"cell_atoms": [["4", 1]]}):
        with pytest.raises(CorruptDocument):
            parse_job(dumps({**doc, **bad}), jid)
