"""MLIP layer: backends agree with their ASE calculators, relaxation drivers agree."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mlip_helpers import build_tiny_mace


@pytest.fixture(scope="session")
def torch_one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def chgnet(torch_one_thread):
    from evaluator.mlip import load_mlip

    return load_mlip("chgnet", device="cpu")


@pytest.fixture(scope="session")
def tiny_mace_path(tmp_path_factory, torch_one_thread):
    return build_tiny_mace(tmp_path_factory.mktemp("mace") / "tiny.model")


def _cells():
    from ase.build import bulk

    a = bulk("NaCl", "rocksalt", a=5.3)
    a.rattle(0.05, seed=2)
    b = bulk("Si", "diamond", a=5.3)
    b.rattle(0.05, seed=1)
    return [a, b]


def _check_predict_matches_calculator(mlip, cells, atol):
    preds = mlip.predict(cells)
    assert len(preds) == len(cells)
    for atoms, p in zip(cells, preds, strict=True):
        atoms = atoms.copy()
        atoms.calc = mlip.calculator()
        assert p["energy"] == pytest.approx(atoms.get_potential_energy(), abs=atol * len(atoms))
        np.testing.assert_allclose(p["forces"], atoms.get_forces(), atol=atol)
        np.testing.assert_allclose(p["stress"], atoms.get_stress(), atol=atol)
        assert p["forces"].shape == (len(atoms), 3) and p["stress"].shape == (6,)


def test_chgnet_batched_predict_matches_ase_calculator(chgnet):
    _check_predict_matches_calculator(chgnet, _cells(), atol=1e-4)
    d = chgnet.describe()
    assert d["name"] == "chgnet" and d["model_id"] == "0.3.0" and d["energy_scale"] == "mp2020-corrected"
    assert len(d["checkpoint_sha256"]) == 64


def test_chgnet_embedding_is_mean_pooled_and_size_invariant(chgnet):
    from ase.build import bulk

    cell = bulk("Cu", "fcc", a=3.6)
    emb = chgnet.embed([cell, cell * (2, 2, 1)])
    assert emb.shape == (2, 64) and np.all(np.isfinite(emb))
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-4)  # a supercell has the same mean features


def test_mace_local_checkpoint_through_production_path(tiny_mace_path):
    from evaluator.mlip import describe_mlip, load_mlip

    spec = describe_mlip("mace", str(tiny_mace_path))
    assert spec.energy_scale == "raw-pbe" and spec.checkpoint_sha256
    mace = load_mlip("mace", str(tiny_mace_path), device="cpu", dtype="float64")
    assert mace.checkpoint_sha256 == spec.checkpoint_sha256
    _check_predict_matches_calculator(mace, _cells(), atol=1e-8)
    emb = mace.embed(_cells())
    assert emb.shape[0] == 2 and emb.shape[1] > 0 and np.all(np.isfinite(emb))


def test_unknown_backend_and_bad_dtype_are_refused():
    from evaluator.mlip import load_mlip

    with pytest.raises(ValueError, match="unknown MLIP"):
        load_mlip("nonexistent")
    with pytest.raises(ValueError, match="float32"):
        load_mlip("chgnet", dtype="float64", device="cpu")


def test_periodic_rmsd_is_minimum_image_and_translation_free():
    from evaluator.mlip.relax import periodic_rmsd

    lat = np.diag([4.0, 5.0, 6.0])
    f0 = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    assert periodic_rmsd(f0, f0 + [1.0, 0.0, -1.0], lat) == pytest.approx(0.0, abs=1e-12)  # lattice vector
    assert periodic_rmsd(f0, f0 + 0.13, lat) == pytest.approx(0.0, abs=1e-12)  # rigid translation
    f1 = f0.copy()
    f1[1, 0] += 0.1  # one atom moves 0.4 Å along a; the centre of mass half of that
    assert periodic_rmsd(f0, f1, lat) == pytest.approx(0.2)
    f2 = f0.copy()
    f2[0, 0] = 0.98  # wraps: -0.02 in fractional, 0.08 Å
    assert periodic_rmsd(f0, f2, lat) == pytest.approx(0.04)


def test_batched_relaxation_follows_the_plain_ase_trajectory(chgnet):
    from ase.build import bulk

    from evaluator.mlip.relax import relax_batched, relax_serial

    c = bulk("Cu", "fcc", a=3.75) * (2, 1, 1)
    c.rattle(0.03, seed=3)
    items = [("nacl", _cells()[0]), ("cu", c)]
    serial = relax_serial(chgnet, items, fmax=0.02, steps=60)
    batched = relax_batched(chgnet, items, fmax=0.02, steps=60, max_atoms=3)  # forces continuous batching
    for k in serial:
        s, b = serial[k], batched[k]
        assert s.status == b.status == "ok"
        assert s.steps == b.steps and s.converged == b.converged
        assert s.energy == pytest.approx(b.energy, abs=1e-4)
        assert s.energy_unrelaxed == pytest.approx(b.energy_unrelaxed, abs=1e-5)
        assert s.rmsd == pytest.approx(b.rmsd, abs=1e-4)
    assert serial["nacl"].converged and serial["nacl"].fmax_final < 0.02
    assert serial["nacl"].energy < serial["nacl"].energy_unrelaxed  # relaxing lowers the energy
    assert serial["nacl"].volume_ratio > 1.05  # NaCl at a = 5.3 Å is compressed; CHGNet expands it


def test_step_cap_is_recorded_as_not_converged(chgnet):
    from evaluator.mlip.relax import relax_one

    res = relax_one(chgnet, _cells()[0], fmax=1e-6, steps=3)
    assert res.status == "ok" and res.steps == 3 and res.converged is False
    assert res.fmax_final > 1e-6


def test_mace_batched_relaxation_runs(tiny_mace_path):
    from evaluator.mlip import load_mlip
    from evaluator.mlip.relax import relax_batched

    mace = load_mlip("mace", str(tiny_mace_path), device="cpu", dtype="float64")
    cells = _cells()
    cells[0].positions[0] += [0.3, 0.0, 0.0]
    out = relax_batched(mace, list(enumerate(cells)), fmax=0.02, steps=20)
    assert all(r.status == "ok" and np.isfinite(r.energy) for r in out.values())


def test_sevenn_batched_predict_matches_ase_calculator(torch_one_thread):
    from evaluator.mlip import describe_mlip, load_mlip

    spec = describe_mlip("sevenn")
    assert spec.model_id == "7net-l3i5" and spec.energy_scale == "raw-pbe" and spec.checkpoint_sha256
    assert describe_mlip("sevenn", "7net-0").checkpoint_sha256 != spec.checkpoint_sha256
    mlip = load_mlip("sevenn", device="cpu")
    assert mlip.describe()["checkpoint_sha256"] == spec.checkpoint_sha256
    _check_predict_matches_calculator(mlip, _cells(), atol=1e-4)
    with pytest.raises(ValueError, match="float32"):
        load_mlip("sevenn", device="cpu", dtype="float64")
    with pytest.raises(ValueError, match="unknown SevenNet model"):
        describe_mlip("sevenn", "7net-nonexistent")


def test_default_mlip_is_sevenn_on_every_device():
    """One default protocol on every device: SevenNet-l3i5 on CPU as on GPU; CHGNet is opt-in."""
    from evaluator.config import EvalConfig, build_config
    from evaluator.mlip import default_mlip

    assert default_mlip("cuda") == "sevenn" and default_mlip("cuda:1") == "sevenn"
    assert default_mlip("cpu") == "sevenn" and default_mlip("auto") == "sevenn"
    assert EvalConfig().mlip == "sevenn"
    for device in ("cpu", "cuda", "auto"):
        cfg = build_config(device=device, env={})
        assert (cfg.mlip, cfg.mlip_model) == ("sevenn", None)
    assert build_config(env={}, protocol="chgnet").mlip == "chgnet"
    assert build_config(env={"GENBENCH_PROTOCOL": "chgnet"}).mlip == "chgnet"
    assert build_config(env={"GENBENCH_PROTOCOL": "chgnet"}, mlip="mace").mlip == "mace"  # explicit wins
    with pytest.raises(ValueError, match="unknown protocol 'chgnt'"):
        build_config(env={}, protocol="chgnt")
