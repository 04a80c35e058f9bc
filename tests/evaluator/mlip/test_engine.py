"""The batched relaxation engine (evaluator.mlip.engine) on CPU: agreement with the ASE
reference path, failure isolation inside a batch, in-flight batching, resume and abort."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mlip_helpers import build_tiny_mace, mp_sample_cifs

# SMALL_MP20 materials whose elements the tiny MACE knows (mp-2 is Pd: the "bad" one below)
TINY_IDS = ["mp-2", "mp-1487", "mp-20411", "mp-22924", "mp-22898"]


@pytest.fixture(scope="module")
def data():
    import torch

    torch.set_num_threads(1)
    from evaluator.data import DataDir

    return DataDir()


@pytest.fixture(scope="module")
def tiny_mace(tmp_path_factory, data):
    from evaluator.mlip import load_mlip

    path = build_tiny_mace(tmp_path_factory.mktemp("mace") / "tiny.model")
    mlip = load_mlip("mace", str(path), device="cpu", dtype="float64")
    mlip.path = str(path)
    return mlip


def _rattled_atoms(data, ids, seed=0, amount=0.08):
    from pymatgen.core import Structure

    from evaluator.families.stability.runner import _to_atoms

    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(mp_sample_cifs(data, ids)):
        atoms = _to_atoms(Structure.from_file(p)) * (2, 1, 1)  # 2-4 atoms: something to relax
        atoms.positions += rng.normal(0, amount, atoms.positions.shape)
        atoms.set_cell(atoms.cell.array * (1 + 0.03 * (i % 3 - 1)), scale_atoms=True)  # strained cells too
        out.append((ids[i], atoms))
    return out


def test_frechet_cell_forces_match_scipy():
    import torch
    from scipy.linalg import expm_frechet

    from evaluator.mlip.engine import frechet_cell_forces

    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.1, (4, 3, 3))
    g = rng.normal(0, 1.0, (4, 3, 3))
    got = frechet_cell_forces(torch.tensor(a), torch.tensor(g)).numpy()
    for b in range(4):
        ref = np.zeros((3, 3))
        for mu in range(3):
            for nu in range(3):
                e = np.zeros((3, 3))
                e[mu, nu] = 1.0
                ref[mu, nu] = np.sum(expm_frechet(a[b], e, compute_expm=False) * g[b])
        np.testing.assert_allclose(got[b], ref, atol=1e-10)


def test_engine_follows_the_ase_reference_with_mace(data, tiny_mace):
    """Same model, same settings: same energies, same steps, same relaxed cells."""
    from evaluator.mlip.engine import relax_engine
    from evaluator.mlip.relax import relax_serial

    items = _rattled_atoms(data, TINY_IDS)
    ref = relax_serial(tiny_mace, items, fmax=0.02, steps=60)
    stats: dict = {}
    got = relax_engine(tiny_mace, items, fmax=0.02, steps=60, max_atoms=10, stats=stats)
    assert set(got) == set(ref)
    assert stats["model_calls"] == stats["iterations"] and stats["max_batch"] > 1
    for k, r in ref.items():
        g = got[k]
        assert r.status == g.status == "ok", (k, r.reason, g.reason)
        n = len(dict(items)[k])
        assert abs(r.energy_unrelaxed - g.energy_unrelaxed) / n < 1e-8
        assert abs(r.energy - g.energy) / n < 1e-6
        assert r.steps == g.steps and r.converged == g.converged
        assert g.rmsd == pytest.approx(r.rmsd, abs=1e-5)
        assert g.volume_ratio == pytest.approx(r.volume_ratio, abs=1e-6)
    assert any(r.steps > 3 for r in ref.values())  # the relaxations did real work


def test_engine_applies_the_atom_step_budget_like_the_ase_reference(data, tiny_mace):
    """Issue 21: the same per-cell step limits and stop reasons as the reference path, and a
    step report for every running structure at every iteration."""
    from evaluator.mlip.engine import relax_engine
    from evaluator.mlip.relax import RelaxBudget, relax_serial

    items = _rattled_atoms(data, TINY_IDS)
    budget = RelaxBudget(steps=60, atom_steps=12, min_steps=1)  # 2-4 atoms: 3-6 steps
    ref = relax_serial(tiny_mace, items, fmax=1e-9, budget=budget)
    steps: dict = {}
    got = relax_engine(tiny_mace, items, fmax=1e-9, max_atoms=10, budget=budget,
                       on_step=lambda k, n, s, lim: steps.setdefault(k, []).append((n, s, lim)))
    for k, r in ref.items():
        n = len(dict(items)[k])
        g = got[k]
        assert r.ok and g.ok and r.step_limit == g.step_limit == 12 // n
        assert (r.steps, r.stopped_by) == (g.steps, g.stopped_by) == (12 // n, "budget")
        assert abs(r.energy - g.energy) / n < 1e-6
        assert [s for _, s, _ in steps[k]] == list(range(12 // n))  # reported before each FIRE step
        assert {(m, lim) for m, _, lim in steps[k]} == {(n, 12 // n)}
    timed = relax_engine(tiny_mace, items[:1], fmax=1e-9, budget=RelaxBudget(steps=60, max_seconds=1e-9))
    assert next(iter(timed.values())).stopped_by == "wall_time"


def test_engine_follows_the_ase_reference_with_sevennet():
    from ase.build import bulk

    from evaluator.mlip import load_mlip
    from evaluator.mlip.engine import relax_engine
    from evaluator.mlip.relax import relax_serial

    a = bulk("NaCl", "rocksalt", a=5.3)
    a.rattle(0.05, seed=2)
    b = bulk("Si", "diamond", a=5.3)
    b.rattle(0.05, seed=1)
    items = [("nacl", a), ("si", b)]
    mlip = load_mlip("sevenn", device="cpu")
    assert mlip.describe()["model_id"] == "7net-l3i5" and mlip.energy_scale == "raw-pbe"
    ref = relax_serial(mlip, items, fmax=0.02, steps=100)
    got = relax_engine(mlip, items, fmax=0.02, steps=100)
    for k in ref:
        assert ref[k].converged and got[k].converged
        assert abs(ref[k].energy_unrelaxed - got[k].energy_unrelaxed) / len(a) < 1e-4
        assert abs(ref[k].energy - got[k].energy) / len(a) < 1e-4
        assert abs(ref[k].steps - got[k].steps) <= 2


class _Faulty:
    """A torch-sim model wrapper that misbehaves for structures holding a given element."""

    def __init__(self, inner, z: int, how: str):
        self.inner, self.z, self.how = inner, z, how
        self.device, self.dtype = inner.device, inner.dtype
        self.calls: list[int] = []

    def __call__(self, state):
        import torch

        self.calls.append(state.n_systems)
        bad = torch.zeros(state.n_systems, dtype=torch.bool)
        for s in range(state.n_systems):
            bad[s] = bool((state.atomic_numbers[state.system_idx == s] == self.z).any())
        if self.how == "raise" and bad.any() and state.n_systems > 1:
            raise RuntimeError("too many neighbours in this batch")
        if self.how == "raise_alone" and bad.any():
            raise RuntimeError("too many neighbours")
        out = self.inner(state)
        if self.how == "nan" and bad.any():
            out["forces"] = out["forces"].clone()
            out["forces"][bad[state.system_idx]] = float("nan")
        if self.how == "blowup" and bad.any():
            out["energy"] = out["energy"].clone()
            out["energy"][bad] = 1e9
        return out


class _WithModel:
    def __init__(self, model):
        self.model = model

    def ts_model(self):
        return self.model


@pytest.mark.parametrize("how,reason", [("nan", "non-finite"), ("blowup", "blown-up energy"),
                                        ("raise_alone", "too many neighbours")])
def test_one_bad_structure_never_fails_the_batch(data, tiny_mace, how, reason):
    from evaluator.mlip.engine import relax_engine

    items = _rattled_atoms(data, TINY_IDS)  # mp-2 is Pd: the bad one
    faulty = _Faulty(tiny_mace.ts_model(), 46, how)
    stats: dict = {}
    got = relax_engine(_WithModel(faulty), items, fmax=0.02, steps=30, stats=stats)
    assert set(got) == {k for k, _ in items}
    bad = got["mp-2"]
    assert bad.status == "failed" and reason in bad.reason
    assert stats["retried_alone"] >= 1 and 1 in faulty.calls  # it was retried alone before failing
    if how == "nan":  # the energy at the submitted geometry was fine: it is kept
        assert np.isfinite(bad.energy_unrelaxed)
    assert all(got[k].status == "ok" for k, _ in items if k != "mp-2")


def test_a_batch_wide_model_error_retries_each_structure_alone(data, tiny_mace):
    from evaluator.mlip.engine import relax_engine
    from evaluator.mlip.relax import relax_serial

    items = _rattled_atoms(data, TINY_IDS[:4])
    faulty = _Faulty(tiny_mace.ts_model(), 46, "raise")  # fails only when batched with Pd
    got = relax_engine(_WithModel(faulty), items, fmax=0.02, steps=30)
    ref = relax_serial(tiny_mace, items, fmax=0.02, steps=30)
    assert all(r.status == "ok" for r in got.values())  # alone, even Pd works
    for k in ref:
        assert got[k].energy == pytest.approx(ref[k].energy, abs=1e-6)


def test_in_flight_batching_respects_the_atom_budget(data, tiny_mace):
    from evaluator.mlip.engine import relax_engine

    items = _rattled_atoms(data, TINY_IDS)
    sizes = []

    class Recording(_Faulty):
        def __call__(self, state):
            sizes.append(state.n_atoms)
            return self.inner(state)

    order = []
    got = relax_engine(_WithModel(Recording(tiny_mace.ts_model(), 0, "")), items, fmax=0.02, steps=40,
                       max_atoms=6, on_result=lambda k, r: order.append(k))
    assert max(sizes) <= 6 and len(got) == len(items) == len(order)
    assert all(r.status == "ok" for r in got.values())


def test_engine_mode_checkpoints_resumes_and_aborts(data, tiny_mace, tmp_path):
    from pymatgen.core import Structure

    from evaluator.families.stability.runner import RelaxSettings, relax_all

    structures = {i: Structure.from_file(p) for i, p in enumerate(mp_sample_cifs(data, TINY_IDS[:4]))}
    settings = RelaxSettings(mlip="mace", model=tiny_mace.path, dtype="float64", steps=40, mode="engine",
                             device="cpu")

    class Abort(BaseException):  # what the worker raises from the progress callback on SIGTERM
        pass

    def stop_after_two(stage, done, total):
        if done >= 2:
            raise Abort

    with pytest.raises(Abort):
        relax_all(structures, settings, tmp_path, progress=stop_after_two, mlip=tiny_mace)
    [ck] = list(tmp_path.glob("relax-*.jsonl"))
    assert len(ck.read_text().splitlines()) == 2
    calls = []

    class Counting:
        def ts_model(self):
            calls.append(1)
            return tiny_mace.ts_model()

    results, info = relax_all(structures, settings, tmp_path, mlip=Counting())
    assert info["mode"] == "engine" and info["n_from_checkpoint"] == 2 and info["n_relaxed_now"] == 2
    assert info["mlip"]["engine"].startswith("torch-sim batched engine") and info["mlip"]["device"] == "cpu"
    assert info["mlip"]["checkpoint_sha256"] == tiny_mace.checkpoint_sha256
    assert all(r.status == "ok" for r in results.values()) and len(calls) == 1
    again, info2 = relax_all(structures, settings, tmp_path, mlip=Counting())
    assert info2["n_relaxed_now"] == 0 and len(calls) == 1
    assert again == results  # the same records, read back from the checkpoint


def test_abort_from_poll_stops_a_batch_in_which_nothing_finishes(data, tiny_mace):
    from evaluator.mlip.engine import relax_engine

    class Abort(BaseException):
        pass

    polls = []

    def poll():
        polls.append(1)
        raise Abort

    finished = []
    with pytest.raises(Abort):
        relax_engine(tiny_mace, _rattled_atoms(data, TINY_IDS), fmax=1e-9, steps=10_000, poll=poll,
                     poll_s=0.0, on_result=lambda k, r: finished.append(k))
    assert polls == [1] and finished == []


def test_auto_mode_picks_the_engine_on_cuda_and_refuses_it_for_chgnet():
    from evaluator.families.stability.runner import RelaxSettings, resolve_mode

    assert resolve_mode(RelaxSettings(mlip="sevenn"), "cuda", 100)[0] == "engine"
    assert resolve_mode(RelaxSettings(mlip="mace"), "cuda:0", 100)[0] == "engine"
    assert resolve_mode(RelaxSettings(mlip="chgnet"), "cuda", 100)[0] == "batched"
    assert resolve_mode(RelaxSettings(mlip="sevenn", mode="engine"), "cpu", 100)[0] == "engine"
    with pytest.raises(ValueError, match="torch-sim model"):
        resolve_mode(RelaxSettings(mlip="chgnet", mode="engine"), "cpu", 10)


def test_batched_neighbor_list_matches_ase():
    """Same edges (i, j, image shift) as ase.neighborlist for skewed, tiny and unwrapped cells."""
    import torch
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    from evaluator.mlip.neighbors import batched_neighbor_list, wrap_positions

    rng = np.random.default_rng(0)
    cells = [bulk("Cu", "fcc", a=2.6), bulk("NaCl", "rocksalt", a=5.6) * (1, 1, 2), bulk("Si", "diamond", a=5.4)]
    skew = bulk("Mg", "hcp", a=3.2, c=5.2)
    skew.set_cell(skew.cell.array + [[0, 0, 0], [1.1, 0, 0], [0.7, -0.4, 0]], scale_atoms=True)
    cells.append(skew)
    for a in cells:
        a.positions += rng.normal(0, 0.1, a.positions.shape) + rng.normal(0, 4.0, 3)  # some atoms outside the cell
    cutoff = 4.5
    pos = torch.tensor(np.concatenate([a.positions for a in cells]))
    row = torch.tensor(np.array([a.cell.array for a in cells]))
    counts = torch.tensor([len(a) for a in cells])
    idx = torch.repeat_interleave(torch.arange(len(cells)), counts)
    wrapped = wrap_positions(pos, row, idx)
    for chunk in (16_000_000, 7):  # one chunk, and many small chunks
        edges, shifts = batched_neighbor_list(wrapped, row, counts, cutoff, chunk_pairs=chunk)
        vec = wrapped[edges[1]] - wrapped[edges[0]] + torch.bmm(shifts.unsqueeze(1), row[idx[edges[0]]]).squeeze(1)
        got = sorted((int(i), int(j), round(float(d), 6)) for i, j, d in zip(edges[0], edges[1], vec.norm(dim=1)))
        ref, off = [], 0
        for a in cells:
            i, j, d = neighbor_list("ijd", a, cutoff)
            ref += [(int(x) + off, int(y) + off, round(float(z), 6)) for x, y, z in zip(i, j, d)]
            off += len(a)
        assert got == sorted(ref)
    assert len(ref) > 150 and any(i == j for i, j, _ in ref)  # tiny Cu cell: an atom sees its own images


def test_out_of_memory_halves_the_batch_instead_of_failing(data, tiny_mace):
    from evaluator.mlip.engine import memory_metric, relax_engine

    items = _rattled_atoms(data, TINY_IDS)
    limit = 2.5 * max(memory_metric(a) for _, a in items)  # "memory" for about two structures

    class SmallMemory(_Faulty):
        def __call__(self, state):
            self.calls.append(state.n_systems)
            counts = np.bincount(state.system_idx.numpy())
            vols = np.abs(np.linalg.det(state.cell.numpy())) / 1000.0
            if state.n_systems > 1 and float((counts * counts / vols).sum()) > limit:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.inner(state)

    model = SmallMemory(tiny_mace.ts_model(), 0, "")
    stats: dict = {}
    got = relax_engine(_WithModel(model), items, fmax=0.02, steps=30, stats=stats)
    assert all(r.status == "ok" for r in got.values()) and len(got) == len(items)
    assert stats["oom_halvings"] >= 1 and stats["retried_alone"] == 0
