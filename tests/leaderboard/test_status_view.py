"""The ETA estimator, the status rendering and the example submission, without a browser."""

from __future__ import annotations

import re
import zipfile

import pytest

from evaluator.mlip.cost import cost_model
from leaderboard.jobs.eta import (OTHER_STAGES_S, TYPICAL_ATOMS, Estimate, Estimator, Hardware, deployment_hardware,
                             fmt_estimate, history_rates, is_later, measured_rate)
from leaderboard.jobs.queue import Job, JobStatus
from leaderboard.ui import jobs as J

NOW = J.to_epoch("2026-01-01T01:00:00+00:00")
CPU = Hardware("cpu", "chgnet", 300, workers=2)


def at(seconds_ago: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(NOW - seconds_ago, dt.UTC).isoformat(timespec="milliseconds")


def running(jid="r1", stage="stability: relax", done=30, total=120, rate=0.5, idle=2.0, **kw) -> Job:
    return Job(jid, "RUNNING", "me", "Gen", "1", created_at=at(900), started_at=at(600), attempts=2,
               lease_owner=kw.pop("owner", "worker-b"),
               progress={"stage": stage, "done": done, "total": total, "stage_started_at": at(62),
                         "updated_at": at(idle), "rate": rate}, **kw)


def finished(jid: str, rates: dict, finished_at: float) -> Job:
    job = Job(jid, "FINISHED", "x", "Old", "1", finished_at=at(finished_at))
    job.stage_rates = rates  # recorded by the worker on finished jobs (absent from old documents)
    return job


# ------------------------------------------------------------------ estimator
def test_fmt_estimate_rounds_to_meaning():
    assert fmt_estimate(20) == "under a minute"
    assert fmt_estimate(180) == "about 3 min"
    assert fmt_estimate(6250) == "about 1 h 45 min"
    assert fmt_estimate(7200) == "about 2 h"
    assert fmt_estimate(100 * 3600) == "about 100 h"


def test_cpu_cost_model_says_hours_for_2500_structures():
    est = Estimator.from_jobs([], CPU)
    assert not est.uses_history
    job = est.job(2500)
    assert job.seconds >= 3600  # the issue: a 2,500-structure upload on a CPU must say hours
    assert " h" in fmt_estimate(job.seconds)
    model = cost_model("chgnet", "cpu")
    per_cell = model.seconds(TYPICAL_ATOMS, CPU.budget)
    assert job.seconds == pytest.approx(2500 * (per_cell / 2 + OTHER_STAGES_S))  # 2 pool workers
    assert "cost model" in job.basis and "CPU" in job.basis and "CHGNet" in job.basis
    assert f"{TYPICAL_ATOMS} atoms assumed" in job.basis
    # known cell sizes: the cost grows with the atoms, and the atom-step budget caps large cells
    small, large, huge = (est.job(100, [n] * 100).seconds for n in (8, 120, 240))
    assert small < large and "assumed" not in est.job(100, [8] * 100).basis
    assert huge < 2 * large  # 240 atoms get half the steps of 120 (12,000 atom-steps)
    assert est.job(2, [8, 240]).seconds == pytest.approx(
        (model.seconds(8, CPU.budget) + model.seconds(240, CPU.budget)) / 2 + 2 * OTHER_STAGES_S)
    assert est.job(None).seconds is None and "not known" in est.job(None).basis
    # an unmeasured MLIP says so; fewer relaxation steps can only shorten the estimate
    assert "not measured" in Estimator.from_jobs([], Hardware("cpu", "newmlip", 300)).basis()
    assert Estimator.from_jobs([], Hardware("cpu", "chgnet", 30)).job(100).seconds < est.job(100).seconds


def test_deployment_hardware_reads_the_worker_settings():
    hw = deployment_hardware({"GENBENCH_DEVICE": "cuda:0", "GENBENCH_MLIP": "MACE", "GENBENCH_RELAX_STEPS": "50"})
    assert hw == Hardware("cuda", "mace", 50)
    hw = deployment_hardware({"GENBENCH_DEVICE": "cpu", "GENBENCH_OPTIONS":
                              '{"stability": {"relax_budget_atom_steps": 3000, "relax_workers": 3}}'})
    assert hw.budget.step_limit(100) == 30 and hw.relax_workers == 3
    # without GENBENCH_MLIP, the worker's own default: SevenNet-l3i5 on every device (the default protocol),
    # CHGNet when the service pins the named protocol "chgnet"
    assert deployment_hardware({"GENBENCH_DEVICE": "cuda"}).mlip == "sevenn"
    assert deployment_hardware({"GENBENCH_DEVICE": "cpu"}) == Hardware("cpu", "sevenn", 300)
    chgnet = deployment_hardware({"GENBENCH_DEVICE": "cpu", "GENBENCH_PROTOCOL": "chgnet"})
    assert chgnet == Hardware("cpu", "chgnet", 300)


def test_measured_rate_from_the_worker_or_from_timestamps_and_absent_in_old_documents():
    assert measured_rate({"rate": 0.25}) == 0.25
    p = {"done": 30, "stage_started_at": at(70), "updated_at": at(10), "rate": None}
    assert measured_rate(p) == pytest.approx(0.5)
    assert measured_rate({"done": 5, "total": 20, "stage": "validity"}) is None  # old document
    assert measured_rate({"done": 0, "stage_started_at": at(70), "updated_at": at(10)}) is None


def test_history_rates_are_medians_of_recent_finished_jobs():
    jobs = [finished("a", {"stability: relax": 0.2, "validity": 100.0}, 300),
            finished("b", {"stability: relax": 0.4, "ingest": 3.0}, 200),
            finished("c", {"stability: relax": 1.0}, 100),
            Job("old", "FINISHED", "x", "Old", "1"),  # no stage_rates: ignored
            running()]
    rates, n = history_rates(jobs)
    assert n == 3 and rates["stability: relax"] == pytest.approx(0.4) and rates["validity"] == 100.0
    assert history_rates(jobs, limit=1)[0]["stability: relax"] == 1.0  # the most recent one
    est = Estimator.from_jobs(jobs, CPU)
    assert est.uses_history and "3 finished jobs" in est.basis()
    # ingest counts files, not structures: not part of the per-structure cost
    assert est.seconds_per_structure() == pytest.approx(1 / 0.4 + 1 / 100)


def test_relaxation_eta_and_status_use_the_step_progress_of_a_large_cell():
    """While one large cell relaxes, no structure finishes: the remaining time comes from the
    work (atoms × steps) left at the measured work rate, and the status shows the step."""
    job = running(done=3, total=29, rate=None)
    job.progress.update(detail="relaxing 123-atom cell, step 140/300", work_done=40_000, work_total=100_000,
                        work_rate=200.0)
    left = Estimator.from_jobs([], CPU).remaining(job, NOW)
    assert left.seconds == pytest.approx(60_000 / 200.0) and "atoms × steps" in left.basis
    stage, prog = J.progress_text(job, NOW)
    assert prog.startswith("3/29 (10 %)") and "relaxing 123-atom cell, step 140/300" in prog
    assert "(40 k of ~100 k atom-steps)" in prog
    assert "relaxing 123-atom cell, step 140/300" in J.job_detail(job, None, now=NOW)
    # a finished job's measured work rate estimates later jobs of known sizes
    done = finished("f", {"stability: relax": 0.1, "validity": 100.0}, 100)
    done.progress = {"stage": "finished", "work_rates": {"stability: relax": 500.0}}
    est = Estimator.from_jobs([done], CPU)
    model = cost_model("chgnet", "cpu")
    assert est.work_rate == 500.0
    assert est.job(2, [10, 200]).seconds == pytest.approx(
        (model.atom_steps(10, CPU.budget) + model.atom_steps(200, CPU.budget)) / 500.0 + 2 / 100.0)


def test_remaining_time_of_a_running_job():
    est = Estimator.from_jobs([], CPU)
    left = est.remaining(running(), NOW)
    assert left.seconds == pytest.approx((120 - 30) / 0.5) and "measured rate" in left.basis
    # before relaxation, the relaxation of every structure is still to come
    early = est.remaining(running(stage="validity", done=50, total=100, rate=50.0), NOW)
    assert early.seconds == pytest.approx(1 + 100 * est.seconds_per_structure())
    assert "later stages" in early.basis
    # a stage with no measured rate yet: the cost model for the job's size (and says so)
    model = est.remaining(running(rate=None, done=0), NOW)
    assert model.seconds == pytest.approx(est.relax_seconds(120))  # the lumped light stages count as done
    assert "no rate measured yet for stability: relax: the cost model" in model.basis
    assert is_later("stability: relax", "novelty: match") and not is_later("validity", "novelty: match")
    assert is_later("stability: relax", "stability") and not is_later("stability: hull", "stability: relax")


def test_wait_of_a_pending_job_counts_the_running_job_and_the_queue_ahead():
    est = Estimator.from_jobs([], CPU)
    per = est.seconds_per_structure()
    ahead = Job("p1", "PENDING", "x", "G", "1", seq=1)
    mine = Job("p2", "PENDING", "me", "G", "1", seq=2)
    jobs = [running(), ahead, mine]
    start, finish = est.wait(mine, jobs, {"p1": 10, "p2": 40}, NOW)
    assert start.seconds == pytest.approx(180 + 10 * per)
    assert finish.seconds == pytest.approx(180 + 50 * per)
    # two workers share the queue
    two = est.wait(mine, [*jobs, running("r2", owner="worker-c")], {"p1": 10, "p2": 40}, NOW)[0]
    assert two.seconds == pytest.approx((360 + 10 * per) / 2) and "2 workers" in two.basis
    # a job ahead of unknown size makes the wait unknown, with the reason
    start, _ = est.wait(mine, jobs, {"p2": 40}, NOW)
    assert start.seconds is None and "not known" in start.basis
    assert (Estimate(1.0, "a") + Estimate(None, "why")).basis == "why"


def test_first_stage_without_a_rate_is_estimated_from_the_jobs_known_size():
    """A job a worker has just started (its first stage, no rate measured yet) is estimated
    from the cost model for its known cells, and the basis says so; unknown sizes are
    assumed, and said to be."""
    est = Estimator.from_jobs([], CPU)
    job = running(stage="ingest", done=0, total=1, rate=None)
    cells = [4, 8, 246]
    left = est.remaining(job, NOW, 3, cells)
    assert left.seconds == pytest.approx(est.job(3, cells).seconds)
    assert "no rate measured yet for ingest" in left.basis and "cost model" in left.basis
    assert "the cells' known sizes (4–246 atoms)" in left.basis and "assumed" not in left.basis
    assumed = est.remaining(job, NOW, 3)
    assert assumed.seconds == pytest.approx(est.job(3).seconds)
    assert f"cells of {TYPICAL_ATOMS} atoms assumed" in assumed.basis
    # with past jobs: their rate of the running stage
    past = Estimator.from_jobs([finished("f", {"stability: relax": 0.5, "validity": 100.0}, 100)], CPU)
    relax = past.remaining(running(rate=None, done=0, total=120), NOW)
    assert relax.seconds == pytest.approx(120 / 0.5) and "past jobs' rate of it" in relax.basis
    # the size of a job queued ahead is known: the wait behind it is estimated
    start, _ = est.wait(None, [job], {"r1": 3}, NOW, {"r1": cells})
    assert start.seconds == pytest.approx(left.seconds) and "cost model" in start.basis


def test_no_estimate_without_a_basis():
    """An estimate cannot be made without a basis, and a job whose last stage has just
    completed says what its estimate rests on (the issue's 'ETA: under a minute (estimate: )')."""
    with pytest.raises(ValueError, match="basis"):
        Estimate(10.0, "")
    with pytest.raises(ValueError, match="basis"):
        Estimate(None, "  ")
    est = Estimator.from_jobs([], CPU)
    last = est.remaining(running(stage="hhi", done=6, total=6, rate=3.0), NOW)
    assert last.seconds == 0.0 and "every stage done (hhi 6/6)" in last.basis
    assert last.text().startswith("under a minute (estimate: measured progress: every stage done")
    middle = est.remaining(running(stage="validity", done=10, total=10, rate=3.0), NOW)
    assert "validity complete (10/10)" in middle.basis and "later stages from the cost model" in middle.basis
    starting = est.remaining(running(stage="starting", done=0, total=0, rate=None), NOW, 5)
    assert starting.seconds == pytest.approx(est.job(5).seconds) and "every stage still to come" in starting.basis
    # nothing running or queued: no wait, and it says why
    assert est.wait(None, [], {}, NOW)[0].text() == "under a minute (estimate: nothing ahead in the queue)"
    assert Estimate.total([], "nothing").basis == "nothing"
    assert Estimate(None, "why").short() == "" and Estimate(90.0, "b").short() == "about 2 min"


def test_every_estimate_shown_states_its_basis(tmp_path):
    """The status detail, its table cell and the API go through ``Estimate.text``/``short``:
    the detail of a job whose last stage just completed never shows '(estimate: )'."""
    from leaderboard.jobs.queue import create_job, update_job
    from leaderboard.ui import status_tab as S
    from leaderboard.ui.shared_state import make_context

    ctx = make_context(str(tmp_path / "store"))
    job = create_job(ctx.store, Job("20260101-000009-lastdone", submitter="me", model_name="G", model_version="1",
                                    max_attempts=3))

    def last_done(j: Job) -> Job:
        j.status, j.attempts, j.lease_owner = JobStatus.RUNNING, 1, "w"
        j.started_at, j.lease_expires = J_iso(-120), J_iso(3600)
        j.progress = {"stage": "hhi", "done": 6, "total": 6, "stage_started_at": J_iso(-5),
                      "updated_at": J_iso(-2), "rate": 3.0}
        return j
    update_job(ctx.store, job.id, last_done)
    snap = S.Snapshot(ctx)
    md = snap.detail(ctx, job.id)
    assert "**ETA:** under a minute (estimate: measured progress: every stage done" in md, md
    assert not re.search(r"\(estimate:\s*\)", md)
    assert snap.eta_cell(snap.jobs[0]) == "under a minute"


def J_iso(offset_s: float) -> str:
    import datetime as dt

    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------ rendering
def test_detail_shows_stage_rate_eta_last_progress_attempts_and_history():
    job = running(history=[{"at": at(900), "event": "submitted", "by": "me"},
                           {"at": at(590), "event": "claimed", "by": "worker-a", "attempt": 1},
                           {"at": at(300), "event": "stalled", "by": "worker-a", "attempt": 1,
                            "stage": "novelty: match"},
                           {"at": at(299), "event": "retry", "by": "worker-a", "attempt": 1,
                            "reason": "stalled at novelty: match (no progress for 600 s)"},
                           {"at": at(240), "event": "reclaimed", "by": "worker-b", "attempt": 2,
                            "previous_owner": "worker-a"}],
                  max_attempts=3)
    eta = Estimator.from_jobs([], CPU).remaining(job, NOW)
    md = J.job_detail(job, None, now=NOW, eta=[("ETA", eta.text())], stall_s=300)
    assert "stability: relax · **30/120 (25 %), 0.50/s**" in md
    assert "- **ETA:** about 3 min (estimate: measured rate of stability: relax)" in md
    assert "- **Last progress:** 2 s ago" in md and "STALLED" not in md
    assert "attempt **2** of 3" in md
    hist = md.split("**History:**")[1]
    assert hist.index("claimed by worker-a (attempt 1)") \
        < hist.index("stalled by worker-a (attempt 1) at novelty: match") \
        < hist.index("failed, will retry by worker-a (attempt 1): stalled at novelty: match (no progress") \
        < hist.index("reclaimed (lease expired) by worker-b from worker-a (attempt 2)")


def test_stall_threshold_follows_the_worker_watchdog():
    from leaderboard.jobs.eta import stall_warn_s

    assert stall_warn_s({}) == 300  # half the worker's default 600 s stall timeout
    assert stall_warn_s({"GENBENCH_STALL_TIMEOUT": "120"}) == 60
    assert stall_warn_s({"GENBENCH_STALL_WARN_S": "90", "GENBENCH_STALL_TIMEOUT": "120"}) == 90


def test_stalled_warning_only_past_the_threshold(monkeypatch):
    monkeypatch.delenv("GENBENCH_STALL_WARN_S", raising=False)
    monkeypatch.delenv("GENBENCH_STALL_TIMEOUT", raising=False)
    quiet = running(idle=400)
    assert "**STALLED:** no progress for 6 min 40 s" in J.job_detail(quiet, None, now=NOW, stall_s=300)
    assert "STALLED" not in J.job_detail(quiet, None, now=NOW, stall_s=600)
    stale = Estimator.from_jobs([], CPU).remaining(quiet, NOW)  # default threshold: 300 s
    assert stale.seconds is None and "stalled" in stale.basis
    rows = J.status_rows([quiet, running("r2")], {}, now=NOW, stall_s=300).set_index("Submission")
    assert rows.loc["r1", "Status"] == "RUNNING (stalled)" and rows.loc["r2", "Status"] == "RUNNING"


def test_old_documents_without_times_or_history_still_render():
    old = Job("o1", "RUNNING", "me", "Gen", "1", progress={"done": 5, "total": 20, "stage": "validity"})
    md = J.job_detail(old, None, now=NOW)
    assert "5/20 (25 %)" in md and "Last progress" not in md and "History" not in md
    left = Estimator.from_jobs([old], CPU).remaining(old, NOW)  # no rate: the cost model, sizes assumed
    assert left.seconds is not None and "no rate measured yet for validity" in left.basis
    assert f"cells of {TYPICAL_ATOMS} atoms assumed" in left.basis


def test_status_rows_show_eta_and_rate():
    df = J.status_rows([running()], {}, now=NOW, etas={"r1": "about 3 min"})
    row = df.iloc[0]
    assert row["Progress"] == "30/120 (25 %), 0.50/s" and row["ETA"] == "about 3 min"
    assert list(df.columns) == J.STATUS_COLUMNS


def test_status_tab_tables_render_links_as_markdown():
    """The queue table's permalink column is Markdown (a link), not literal text, and every
    column has a width (the narrow auto width wrapped 'Queue position' one letter per line)."""
    from leaderboard.ui import status_tab as S

    assert S.QUEUE_DATATYPES[S.QUEUE_COLUMNS.index("Permalink")] == "markdown"
    assert len(S.QUEUE_DATATYPES) == len(S.QUEUE_COLUMNS) == len(S.QUEUE_WIDTHS)
    assert len(S.STATUS_DATATYPES) == len(J.STATUS_COLUMNS) == len(S.STATUS_WIDTHS)


def test_upload_estimate_states_device_and_mlip(tmp_path, monkeypatch):
    from leaderboard.ui.shared_state import make_context
    from leaderboard.ui.submit_tab import upload_estimate

    monkeypatch.setenv("GENBENCH_DEVICE", "cpu")
    monkeypatch.delenv("GENBENCH_MLIP", raising=False)
    monkeypatch.delenv("GENBENCH_PROTOCOL", raising=False)
    ctx = make_context(str(tmp_path / "store"))
    text = upload_estimate(ctx, 2500)  # the default protocol: SevenNet-l3i5
    assert re.search(r"Estimated evaluation time on this deployment: about \d+ h", text), text
    assert "CPU" in text and "SevenNet" in text and "estimated from the cost model" in text
    monkeypatch.setenv("GENBENCH_PROTOCOL", "chgnet")  # the opt-in CHGNet protocol
    text = upload_estimate(make_context(str(tmp_path / "store")), 2500)
    assert re.search(r"Estimated evaluation time on this deployment: about \d+ h", text) and "CHGNet" in text
    sized = upload_estimate(ctx, 3, atoms=[4, 8, 246])
    assert "cells of 4–246 atoms, 1 of more than 100 atoms" in sized and "assumed" not in sized


@pytest.mark.slow
def test_upload_check_of_2500_structures_says_hours_on_a_cpu(mp_sample, tmp_path, monkeypatch):
    """The real upload check (as the Submit tab runs it) on a zip of the 2,473 mp_sample CIFs."""
    from leaderboard.ui.shared_state import make_context
    from leaderboard.ui.submit_tab import check_files

    monkeypatch.setenv("GENBENCH_DEVICE", "cpu")
    monkeypatch.delenv("GENBENCH_MLIP", raising=False)
    monkeypatch.setenv("GENBENCH_PROTOCOL", "chgnet")  # the opt-in CHGNet protocol (the default is ~3.5x)
    upload = tmp_path / "mp_sample.zip"
    with zipfile.ZipFile(upload, "w") as z:
        for cif in sorted(mp_sample.glob("*.cif")):
            z.write(cif, cif.name)
    text = check_files([str(upload)], make_context(str(tmp_path / "store")))
    assert "2473 structures found" in text
    assert re.search(r"Estimated evaluation time on this deployment: about \d+ h", text), text
    assert "CPU, CHGNet" in text
    # the cells' sizes are known: the estimate is per cell and says how many are large
    assert re.search(r"cells of \d+–246 atoms, \d+ of more than 100 atoms", text) and "assumed" not in text


# ------------------------------------------------------------------ example submission
def test_example_is_the_base_models_unconditional_samples(data, tmp_path):
    from evaluator.ingest import inspect_upload
    from leaderboard.intake.example import BASE_FOLDER, EXAMPLE_META, base_members, build_example

    source = data.path("structures/mattergen_paper/cifs.zip")
    names = zipfile.ZipFile(source).namelist()
    members = base_members(names)
    twins = [n for n in names if n.startswith(BASE_FOLDER) and n.endswith("_symmetrized.cif")]
    assert len(members) == 21 and len(twins) == 21  # 42 base CIFs: 21 samples, each with a twin
    assert all(n.startswith(BASE_FOLDER) and "_symmetrized" not in n for n in members)
    path, n = build_example(source, tmp_path)
    assert n == 21 and path.parent == tmp_path
    assert sorted(zipfile.ZipFile(path).namelist()) == sorted(m.rsplit("/", 1)[1] for m in members)
    check = inspect_upload([str(path)])
    assert check.n_items == check.n_parsed == 21
    assert EXAMPLE_META["task"] == "unconditional" and "base model" in EXAMPLE_META["model_name"]


def test_stages_follow_the_pipeline_order() -> None:
    from leaderboard.jobs.eta import is_later, stage_key

    assert stage_key("ingest") == (0, 0)
    assert stage_key("validity") < stage_key("novelty: match") < stage_key("stability: relax") < stage_key("hhi")
    assert stage_key("starting") is None
    assert is_later("sun", "stability: relax") and not is_later("validity", "stability: relax")


def test_withdraw_button_only_for_the_owner_of_a_submission_not_yet_withdrawn():
    from leaderboard.ui.status_tab import can_withdraw

    assert can_withdraw(running(), "me")
    assert not can_withdraw(running(), "someone-else") and not can_withdraw(running(), None)
    assert can_withdraw(Job("f", "FINISHED", "me", "Gen", "1"), "me")
    assert not can_withdraw(Job("h", "HIDDEN", "me", "Gen", "1", hidden_from="FINISHED"), "me")  # withdrawn
    assert not can_withdraw(None, "me")


def test_the_example_submitted_twice_is_a_duplicate_though_its_zip_is_rebuilt(data, tmp_path, monkeypatch):
    """What the Submit tab does (issue 26): the example's zip is rebuilt on each load (new
    bytes), its structures are the same, so the second submission is refused."""
    from leaderboard.intake.example import EXAMPLE_META, build_example
    from leaderboard.intake.submissions import withdraw
    from leaderboard.ui.shared_state import make_context
    from leaderboard.ui.submit_tab import do_submit

    monkeypatch.delenv("GENBENCH_PROTOCOL", raising=False)
    source = data.path("structures/mattergen_paper/cifs.zip")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = build_example(source, tmp_path / "a")
    second, _ = build_example(source, tmp_path / "b")
    with zipfile.ZipFile(second, "a") as z:
        z.comment = b"rebuilt"  # the bytes differ whatever the clock did between the builds
    assert first.read_bytes() != second.read_bytes()
    ctx = make_context(str(tmp_path / "store"))
    meta = {**EXAMPLE_META, "model_version": "1"}
    msg, jid = do_submit(ctx, [str(first)], "alice", meta)
    assert jid is not None, msg
    msg, again = do_submit(ctx, [str(second)], "alice", meta)
    assert again is None and "already submitted these structures" in msg and jid in msg
    withdraw(ctx.store, jid, "alice")
    msg, again = do_submit(ctx, [str(second)], "alice", meta)
    assert again is not None, msg  # withdrawn: the same structures may be submitted again
