"""The worker side of step progress (issue 21): a step inside a long item is progress for
the stall watchdog, the tracker measures the work rate and keeps it on the job, and the
evaluation process relays step details (fake clock and a pipe; no sleeps)."""

import multiprocessing as mp

from evaluator.progress import CellStep, ProgressUpdate, StepProgress
from leaderboard.jobs.evalproc import _Relay, receive
from leaderboard.jobs.progress import ProgressTracker


def test_a_step_inside_a_large_cell_is_progress_and_gives_a_work_rate():
    now = [0.0]
    t = ProgressTracker(clock=lambda: now[0])
    t.update("stability: relax", 0, 29)
    now[0] = 100.0
    assert t.idle_s() == 100.0
    assert t.update("stability: relax", 0, 29, "relaxing 123-atom cell, step 40/97", 4920, 100_000)
    assert t.idle_s() == 0.0  # the watchdog sees the step: not a stall
    now[0] = 110.0
    assert t.update("stability: relax", 0, 29, "relaxing 123-atom cell, step 50/97", 6150, 100_000)
    assert not t.update("stability: relax", 0, 29, "relaxing 123-atom cell, step 50/97", 6150, 100_000)
    doc = t.doc()
    assert doc["detail"] == "relaxing 123-atom cell, step 50/97" and doc["work_total"] == 100_000
    assert doc["work_rate"] == (6150 - 4920) / 10 and doc["rate"] is None  # no structure finished yet
    now[0] = 200.0
    t.update("stability: hull", 0, 29)  # the next stage: its own counts; the relaxation's rate is kept
    doc = t.doc()
    assert doc["detail"] is None and doc["work_rate"] is None
    assert doc["work_rates"] == {"stability: relax": (6150 - 4920) / 10}


def test_the_evaluation_process_relays_step_details_once_per_change():
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    relay = _Relay(child)
    relay("stability: relax", 0, 2)
    detail = StepProgress((CellStep(246, 3, 48),), 738, 12_000)
    relay.steps("stability: relax", 0, 2, detail)
    relay.steps("stability: relax", 0, 2, detail)  # unchanged: not sent again
    relay("stability: relax", 0, 2)  # a plain re-call with the same counts keeps the detail: not sent
    relay("stability: relax", 1, 2)
    got = receive(parent).messages
    assert got == [ProgressUpdate("stability: relax", 0, 2),
                   ProgressUpdate("stability: relax", 0, 2, "relaxing 246-atom cell, step 3/48", 738, 12_000),
                   ProgressUpdate("stability: relax", 1, 2)]


def test_model_page_lists_the_relaxations_stopped_by_the_budget():
    import pandas as pd

    from leaderboard.ui.summary_view import budget_markdown

    summary = {"metrics": {"stability": {"budget_stopped_count": 1, "wall_time_stopped_count": 0}},
               "provenance": {"family": {"stability": {"relaxation": {"budget": {"atom_steps": 12000}}}}}}
    note = "relaxation stopped at the atom-step budget after 48 of 48 steps, max force 0.31 eV/Å"
    df = pd.DataFrame({"index": [0, 1], "formula": ["Na14Ta4Al4Si11SO48", "NaCl"], "nsites": [246, 8],
                       "stability_stop_note": [note, None]})
    text = budget_markdown(summary, df)
    assert "1 stopped at the relaxation budget (at most 12,000 atoms × steps per structure)" in text
    assert "#0 Na14Ta4Al4Si11SO48, 246 atoms: relaxation stopped at the atom" in text and "NaCl" not in text
    assert budget_markdown({"metrics": {"stability": {"budget_stopped_count": 0}}}, df) == ""
