"""Step-level progress of the relaxation (issue 21): the board's work accounting and
throttling (a fake clock, no sleeps), the pool's shared-memory side channel, and a real
pool of two CHGNet workers whose steps reach the progress callback while they relax."""

import multiprocessing as mp

import pytest

from evaluator.families.stability.step_progress import PoolSteps, StepBoard, attach_worker, worker_step
from evaluator.mlip.relax_result import RelaxResult
from evaluator.progress import CellStep, StepProgress, StepReporter


class Spy(StepReporter):
    def __init__(self):
        self.counts: list[tuple[str, int, int]] = []
        self.details: list[StepProgress] = []

    def __call__(self, stage, done, total):
        self.counts.append((stage, done, total))

    def steps(self, stage, done, total, detail):
        self.details.append(detail)


def _ok(steps):
    return RelaxResult("ok", energy_unrelaxed=0.0, energy=-1.0, steps=steps, converged=True, fmax_final=0.01,
                       rmsd=0.0, volume_ratio=1.0, structure_relaxed="{}", stopped_by="converged")


def test_board_counts_work_in_atoms_times_steps_and_reports_once_a_second():
    now = [0.0]
    spy = Spy()
    board = StepBoard("stability: relax", {"big": (246, 246 * 48), "small": (8, 8 * 130)}, spy, done=1, total=3,
                      clock=lambda: now[0])
    assert board.detail() == StepProgress((), 0, 246 * 48 + 8 * 130)
    board.step("big", 246, 10, 48)
    assert spy.details[-1].text() == "relaxing 246-atom cell, step 10/48"
    assert spy.details[-1].work_done == 2460 and spy.details[-1].work_total == 246 * 48 + 8 * 130
    board.step("big", 246, 11, 48)  # within the second: not reported
    assert len(spy.details) == 1
    now[0] = 1.0
    board.step("small", 8, 200, 300)  # past its expected 130 steps: the total grows, never below done
    d = spy.details[-1]
    assert d.text() == "relaxing 2 cells: 246-atom cell, step 11/48; 8 atoms step 200/300"
    assert d.work_done == 246 * 11 + 8 * 200 and d.work_total == 246 * 48 + 8 * 200
    board.finish("small", _ok(210))  # an item: counted at once, and the running cell re-reported
    assert spy.counts[-1] == ("stability: relax", 2, 3)
    assert spy.details[-1].running == (CellStep(246, 11, 48),)
    assert spy.details[-1].work_done == 8 * 210 + 246 * 11
    board.step("small", 8, 5, 300)  # a late report of a finished cell is ignored
    assert board.detail().running == (CellStep(246, 11, 48),)
    board.finish("big", _ok(48))
    assert board.detail() == StepProgress((), 8 * 210 + 246 * 48, 8 * 210 + 246 * 48)
    # a plain callback gets the item counts only
    plain = []
    StepBoard("s", {"k": (4, 40)}, lambda *a: plain.append(a), 0, 1).finish("k", _ok(3))
    assert plain == [("s", 1, 1)]


def test_pool_side_channel_reads_each_workers_slot():
    ctx = mp.get_context("spawn")
    spy = Spy()
    board = StepBoard("stability: relax", {"a": (10, 100), "b": (20, 400)}, spy, 0, 2, interval_s=0.0)
    channel = PoolSteps(ctx, workers=1, keys=["a", "b"], board=board)
    attach_worker(*channel.initargs)  # as a pool worker's initializer does (here in this process)
    worker_step(1, 20, 7, 300)
    channel.read_once()
    assert board.detail().running == (CellStep(20, 7, 300),)
    worker_step(0, 10, 3, 300)  # the same worker moved on to item 0
    channel.read_once()
    assert CellStep(10, 3, 300) in board.detail().running


@pytest.mark.slow
@pytest.mark.timeout(900)  # hang detection only
def test_pool_workers_report_their_steps_while_relaxing(tmp_path):
    """A real pool of two CHGNet workers: step reports with running cells reach the
    callback while no structure has finished, and every structure is checkpointed."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    from evaluator.families.stability.runner import RelaxSettings, relax_all

    rng = np.random.default_rng(1)
    structures = {}
    for i, (a, b, length) in enumerate([("Na", "Cl", 5.64), ("Mg", "O", 4.21), ("K", "Cl", 6.29)]):
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(length), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])
        structures[i] = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.1, (8, 3)),
                                  coords_are_cartesian=True)
    spy = Spy()
    # fmax unreachable: every cell takes its whole budget (240 atom-steps: 30 steps) -> flagged
    settings = RelaxSettings(fmax=1e-6, steps=300, mode="pool", workers=2, device="cpu", budget_atom_steps=240)
    results, info = relax_all(structures, settings, tmp_path, progress=spy)
    assert all(r.ok and r.stopped_by == "budget" and r.steps == 30 for r in results.values())
    assert spy.counts[0] == ("stability: relax", 0, 3) and spy.counts[-1] == ("stability: relax", 3, 3)
    assert [c[1] for c in spy.counts] == [0, 1, 2, 3]
    running = [d for d in spy.details if d.running]
    assert running and all(c.atoms == 8 and c.limit == 30 and 0 <= c.step <= 30 for d in running for c in d.running)
    assert info["step_reports"] == len(spy.details) and info["workers"] == 2
    (checkpoint,) = tmp_path.glob("relax-*.jsonl")
    assert len(checkpoint.read_text().splitlines()) == 3
