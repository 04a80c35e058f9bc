"""App pieces without a browser: the schema form, job display, and `python -m leaderboard.serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import gradio as gr

from leaderboard.ui import jobs as J
from leaderboard.ui.forms import SERVER_FIELDS, build_form, conditional_fields, load_schema
from repo_paths import REPO

def test_form_covers_schema_and_collects_valid_metadata():
    from leaderboard.intake.submissions import validate_meta

    schema = load_schema()
    with gr.Blocks():
        form = build_form(schema)
    assert set(form.names) == set(schema["properties"]) - set(SERVER_FIELDS)
    assert conditional_fields(schema)["relaxation_method"] == ("relaxed_before_submission", True)
    values = {n: None for n in form.names}
    values.update(model_name=" MyGen ", model_version="1", training_set="MP-20", task="unconditional",
                  relaxed_before_submission=False, relaxation_method="ignored: not relaxed",
                  n_structures=" 12 ", notes="")
    meta = form.collect(*[values[n] for n in form.names])
    assert meta == {"model_name": "MyGen", "model_version": "1", "training_set": "MP-20",
                    "task": "unconditional", "relaxed_before_submission": False, "n_structures": 12}
    assert validate_meta({**meta, "submitter": "me", "file_sha256": "0" * 64}) == []
    values.update(relaxed_before_submission=True, relaxation_method="", n_structures="many")
    bad = form.collect(*[values[n] for n in form.names])
    errors = " ".join(validate_meta({**bad, "submitter": "me", "file_sha256": "0" * 64}))
    assert "relaxation_method" in errors and "Number of structures" in errors


def test_job_rows_show_position_progress_elapsed_and_failure():
    from leaderboard.jobs.queue import Job

    t0 = "2026-01-01T00:00:00.000+00:00"
    running = Job("r1", "RUNNING", "me", "Gen", "2", created_at=t0, started_at="2026-01-01T00:01:00+00:00",
                  progress={"done": 5, "total": 20, "stage": "stability"})
    failed = Job("f1", "FAILED", "me", "Gen", "1", created_at="2025-12-31T00:00:00+00:00",
                 failure={"reason": "no structures found", "kind": "user"})
    pending = Job("p1", "PENDING", "me", "Gen", "3", created_at="2026-01-01T00:02:00+00:00")
    now = J.to_epoch("2026-01-01T00:03:30+00:00")
    df = J.status_rows([running, failed, pending], {"p1": 2}, now=now)
    rows = df.set_index("Submission")
    assert list(df["Submission"]) == ["p1", "r1", "f1"]  # newest first
    assert rows.loc["p1", "Queue position"] == "2" and rows.loc["p1", "Elapsed"] == "waiting 1 min 30 s"
    assert rows.loc["r1", "Stage"] == "stability" and rows.loc["r1", "Progress"] == "5/20 (25 %)"
    assert rows.loc["r1", "Elapsed"] == "running 2 min 30 s"
    assert rows.loc["f1", "Failure reason"] == "no structures found (user)"
    assert rows.loc["r1", "Permalink"] == "[open](?submission=r1)"
    assert "queue position **2**" in J.job_detail(pending, 2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie has exited
        return fh.read().split(") ")[1][0] != "Z"


def test_serve_starts_app_and_worker(tmp_path):
    """`python -m leaderboard.serve` (what `make run` runs): the page answers and a worker runs."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GENBENCH_STORE": str(tmp_path / "state"),
           "OPENBLAS_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "leaderboard.serve"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 120, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(1)
        log.seek(0)
        out = log.read()
        assert "Crystal generative-model leaderboard" in body, out
        assert "worker started (pid" in out
        pid = int(out.split("worker started (pid ")[1].split(")")[0])
        os.kill(pid, 0)  # the worker subprocess is alive
        proc.send_signal(signal.SIGTERM)  # as `timeout`/a process manager would: the worker goes too
        proc.wait(40)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.5)
        assert not _alive(pid), "worker outlived leaderboard.serve"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_user_metadata_is_escaped_in_markdown():
    """Model names, submitters, reasons and file names are shown literally (no HTML, links or images)."""
    from leaderboard.jobs.queue import Job
    from leaderboard.ui.summary_view import meta_markdown

    evil = '<img src=x onerror=alert(1)> ![x](https://e.example/p.png) [click](javascript:alert(1)) **b**'
    job = Job("f1", "FAILED", "<b>me</b>", evil, "1", failure={"reason": evil, "kind": "user"})
    for md in (J.job_detail(job, None),
               meta_markdown("f1", {"model_name": evil, "paper_url": "https://x.example/a)(javascript:y",
                                    "code_url": "https://github.com/org/repo", "notes": evil},
                             {"failures": {"parse": {evil: 2}}})):
        assert "<img" not in md and "<b>" not in md and "![" not in md and "[click]" not in md
        assert "&lt;img src=x onerror=alert(1)&gt;" in md and "\\*\\*b\\*\\*" in md
    md = meta_markdown("f1", {"code_url": "https://github.com/org/repo"}, {})
    assert "(https://github.com/org/repo)" in md  # a plain URL stays a link
    assert J.md_text("line one\n# heading") == "line one # heading"  # one line: no new blocks
