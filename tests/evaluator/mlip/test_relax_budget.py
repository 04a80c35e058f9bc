"""The per-structure relaxation budget (issue 21): deterministic step limits by cell size, a
wall-time safety net, flagged stop reasons, and step callbacks on the serial and lock-step
paths (CHGNet on CPU, small cells, a few steps). The engine's budget is tested in
test_engine.py, the pool's step channel in tests/evaluator/families/stability/."""

import numpy as np
import pytest

from evaluator.mlip.relax import DEFAULT_BUDGET, RelaxBudget
from evaluator.mlip.relax_result import RelaxResult


@pytest.fixture(scope="module")
def chgnet():
    import torch

    torch.set_num_threads(1)
    from evaluator.mlip import load_mlip

    return load_mlip("chgnet", device="cpu")


def _rattled(seed=0, n_cells=2):
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for i, (sym, a) in enumerate([("NaCl", 5.64), ("MgO", 4.21)][:n_cells]):
        atoms = bulk(sym, "rocksalt", a=a, cubic=True)  # 8 atoms
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        out.append((f"c{i}", atoms))
    return out


def test_step_limits_scale_with_the_cell_and_never_depend_on_the_machine():
    b = DEFAULT_BUDGET
    assert (b.steps, b.atom_steps, b.min_steps) == (300, 12_000, 20)
    assert [b.step_limit(n) for n in (1, 8, 40, 41, 123, 246, 500, 5000)] == [300, 300, 300, 292, 97, 48, 24, 20]
    assert RelaxBudget(steps=300).step_limit(10_000) == 300  # no budget: the step cap only
    assert b.stop_reason(246, False) == "budget" and b.stop_reason(8, False) == "step_cap"
    assert b.stop_reason(246, True) == "converged"
    with pytest.raises(ValueError):
        RelaxBudget(atom_steps=0)
    with pytest.raises(ValueError):
        RelaxBudget(max_seconds=0)


def test_relax_one_stops_at_the_budget_flags_it_and_reports_every_step(chgnet):
    from evaluator.mlip.relax import relax_one

    (_, atoms), = _rattled(n_cells=1)
    steps = []
    budget = RelaxBudget(steps=300, atom_steps=24, min_steps=0)  # 8 atoms: 3 steps
    res = relax_one(chgnet, atoms, fmax=1e-6, budget=budget, on_step=lambda s, lim: steps.append((s, lim)))
    assert res.ok and res.steps == 3 and res.step_limit == 3 and not res.converged
    assert res.stopped_by == "budget" and res.flagged
    assert steps == [(0, 3), (1, 3), (2, 3), (3, 3)]
    note = res.stop_note()
    assert note.startswith("relaxation stopped at the atom-step budget after 3 of 3 steps, max force ")
    assert f"{res.fmax_final:.3g} eV/Å" in note
    # scored from its last state: the energy went down from the submitted geometry
    assert res.energy < res.energy_unrelaxed and res.structure_relaxed
    # the step cap alone is not a budget: not flagged
    capped = relax_one(chgnet, atoms, fmax=1e-6, steps=2)
    assert capped.stopped_by == "step_cap" and not capped.flagged and capped.stop_note() is None
    # the wall-time safety net: stopped at once, flagged as such
    timed = relax_one(chgnet, atoms, fmax=1e-6, budget=RelaxBudget(steps=300, max_seconds=1e-9))
    assert timed.ok and timed.stopped_by == "wall_time" and timed.steps == 0
    assert "wall-time limit (machine dependent)" in timed.stop_note()


def test_lock_step_and_serial_paths_apply_the_same_budget(chgnet):
    from evaluator.mlip.relax import relax_batched, relax_serial

    items = _rattled()
    budget = RelaxBudget(steps=300, atom_steps=40, min_steps=0)  # 5 steps for 8 atoms
    seen: dict[str, list[int]] = {}

    def on_step(key, n, step, limit):
        assert (n, limit) == (8, 5)
        seen.setdefault(key, []).append(step)

    serial = relax_serial(chgnet, items, fmax=1e-6, budget=budget, on_step=on_step)
    assert seen == {"c0": [0, 1, 2, 3, 4, 5], "c1": [0, 1, 2, 3, 4, 5]}
    seen.clear()
    batched = relax_batched(chgnet, items, fmax=1e-6, budget=budget, on_step=on_step)
    assert set(seen) == {"c0", "c1"} and max(max(v) for v in seen.values()) <= 5
    for key in ("c0", "c1"):
        a, b = serial[key], batched[key]
        assert (a.steps, a.stopped_by, a.step_limit) == (b.steps, b.stopped_by, b.step_limit) == (5, "budget", 5)
        assert a.energy == pytest.approx(b.energy, abs=1e-4)


def test_stop_reason_survives_the_checkpoint_format_and_older_records_load():
    res = RelaxResult("ok", energy_unrelaxed=-1.0, energy=-2.0, steps=12, converged=False, fmax_final=0.3,
                      rmsd=0.1, volume_ratio=1.0, structure_relaxed="{}", stopped_by="budget", step_limit=12)
    back = RelaxResult.from_dict(res.to_dict())
    assert back == res and back.flagged
    old = {k: v for k, v in res.to_dict().items() if k not in ("stopped_by", "step_limit")}
    assert RelaxResult.from_dict(old).stopped_by is None and not RelaxResult.from_dict(old).flagged
    with pytest.raises(ValueError):
        RelaxResult.from_dict({**res.to_dict(), "stopped_by": "tired"})
