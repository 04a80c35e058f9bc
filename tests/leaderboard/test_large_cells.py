"""Issue 21: an upload with large cells finishes on a CPU, visibly step by step, and a
killed worker resumes without redoing finished structures (real worker processes, CHGNet,
the relaxation pool of two processes).

Two Materials Project cells of more than 200 atoms and four small rattled cells, a short
stall timeout (60 s, a tenth of the default; the pool must load CHGNet within it) and a
small atom-step budget set by option (2,000: the large cells get at most 8-9 FIRE steps,
the 8-atom cells 250, more than they need). The first worker is killed
(SIGKILL) once a structure is checkpointed; a second worker reclaims the job, relaxes only
what was not finished and publishes it. Waits are on job states, never fixed sleeps; the
time limits only detect hangs.
"""

import json
import re
import shutil
import threading

import pytest

from store_helpers import META, local_store, start_worker, wait_for
from evaluator.config import build_config
from leaderboard.jobs import queue as q
from leaderboard.publishing.results import load_structures, load_summary
from leaderboard.intake.submissions import SubmissionPolicy, submit
from leaderboard.worker import Worker

LARGE = ("mp-2716122", "mp-2714338")  # 210 and 246 atoms
BUDGET = 2000  # atoms x steps: 9 steps for 210 atoms, 8 for 246; 8-atom cells 250
STALL_S = 60
OPTIONS = ("stability.relax_mode=pool", "stability.relax_workers=2",
           f"stability.relax_budget_atom_steps={BUDGET}", "stability.relax_budget_min_steps=3")
STEP_DETAIL = re.compile(r"relaxing (2 cells: )?2\d\d-atom cell, step \d+/[89]")


def _upload(folder, data):
    import numpy as np
    from pymatgen.core import Lattice, Structure

    folder.mkdir(parents=True)
    for mid in LARGE:
        shutil.copy(data.path(f"structures/mp_sample/mp_{mid}.cif"), folder / f"{mid}.cif")
    rng = np.random.default_rng(0)
    for i, (a, b, length) in enumerate([("Na", "Cl", 5.64), ("Mg", "O", 4.21), ("K", "Cl", 6.29),
                                        ("Li", "F", 4.03)]):
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(length), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])
        s = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.1, (len(s), 3)),
                      coords_are_cartesian=True)
        (folder / f"small_{i}.cif").write_text(s.to(fmt="cif"))
    return sorted(folder.iterdir())


class _Watch:
    """Reads the job document while the workers run; keeps every step detail it saw."""

    def __init__(self, store, job_id):
        self.store, self.job_id = store, job_id
        self.details: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.1):
            p = q.get_job(self.store, self.job_id).progress or {}
            if p.get("detail") and (not self.details or self.details[-1] != p):
                self.details.append(dict(p))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # hang detection only: CHGNet on 246 atoms on a loaded 2-core machine is slow
def test_large_cells_finish_step_by_step_and_a_killed_worker_resumes(tmp_path, data):
    store = local_store(tmp_path)
    files = _upload(tmp_path / "up", data)
    job = submit(store, META, files, "alice", SubmissionPolicy(max_per_window=0))
    work = tmp_path / "work"
    args = ["--families", "validity,stability", "--mlip", "chgnet", "--stall-timeout", str(STALL_S),
            "--heartbeat", "0.5", "--progress-interval", "0.05", "--lease", "3", "--poll", "0.3",
            "--work-dir", str(work), "--keep-work"]
    for opt in OPTIONS:
        args += ["--option", opt]
    watch = _Watch(store, job.id)
    first = start_worker(store.root, *args, "--worker-id", "doomed", log=tmp_path / "doomed.log")
    try:
        def one_checkpointed():
            j = q.get_job(store, job.id)
            assert j.status in (q.PENDING, q.RUNNING), (tmp_path / "doomed.log").read_text()[-3000:]
            p = j.progress or {}
            return p.get("stage") == "stability: relax" and p.get("done", 0) >= 1

        wait_for(one_checkpointed, 1500, 0.1, "the first worker to checkpoint a relaxation")
    finally:
        first.kill()  # SIGKILL: the worker dies mid-job; its evaluation and pool die with it
        first.wait(60)
    killed = q.get_job(store, job.id)
    assert killed.status == q.RUNNING and killed.lease_owner == "doomed" and killed.attempts == 1
    (checkpoint,) = (work / job.id / "eval").rglob("relax-*.jsonl")
    n_before = len(checkpoint.read_text().splitlines())
    assert n_before >= 1

    # the status showed step progress inside the large cells while nothing finished
    seen = [d for d in watch.details if STEP_DETAIL.search(d["detail"])]
    assert seen, [d["detail"] for d in watch.details][:5]
    assert all(d["work_total"] >= d["work_done"] >= 0 for d in seen) and any(d["work_done"] > 0 for d in seen)
    assert any(d["done"] == 0 for d in seen)  # before any structure had finished

    config = build_config(families="validity,stability", device="cpu", mlip="chgnet", options=list(OPTIONS))
    second = Worker(store, config, worker_id="rescuer", work_root=work, lease_s=30, heartbeat_s=0.5,
                    progress_interval_s=0.05, stall_timeout_s=STALL_S, keep_work=True)
    final = wait_for(lambda: (j := second.run_one()) is not None and j, 120, 0.5,
                     "the lease of the killed worker to expire and the job to be reclaimed")
    watch.stop.set()
    watch.thread.join()
    assert final.status == q.FINISHED, final.failure
    assert final.attempts == 2 and [h["event"] for h in final.history] == ["submitted", "claimed", "reclaimed",
                                                                           "finished"]
    # nothing redone: the second attempt relaxed only what the first had not checkpointed
    summary = load_summary(store, job.id)
    relax = summary["provenance"]["family"]["stability"]["relaxation"]
    assert relax["n_from_checkpoint"] == n_before and relax["n_relaxed_now"] == len(files) - n_before
    lines = [json.loads(line) for line in checkpoint.read_text().splitlines()]
    assert len(lines) == len({rec["key"] for rec in lines}) == len(files)
    # every structure has a row; the large ones are relaxed or flagged at the budget
    table = load_structures(store, job.id)
    assert len(table) == len(files) and (table["stability_status"] == "ok").all(), table["stability_reason"]
    large = table[table["nsites"] > 200]
    assert len(large) == 2
    for _, row in large.iterrows():
        assert row["stability_converged"] or row["stability_stopped_by"] == "budget"
        assert row["stability_step_limit"] == BUDGET // row["nsites"]
        if row["stability_stopped_by"] == "budget":
            assert row["stability_steps"] == row["stability_step_limit"]
            assert row["stability_stop_note"].startswith("relaxation stopped at the atom-step budget after ")
            assert "max force" in row["stability_stop_note"]
    small = table[table["nsites"] <= 8]
    assert (small["stability_step_limit"] == BUDGET // 8).all() and small["stability_stop_note"].isna().all()
    stab = summary["metrics"]["stability"]
    assert stab["budget_stopped_count"] == int((table["stability_stopped_by"] == "budget").sum())
    assert stab["wall_time_stopped_count"] == 0
    assert relax["budget"]["atom_steps"] == BUDGET
