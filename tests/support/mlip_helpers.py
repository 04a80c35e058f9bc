"""Shared test helpers for the MLIP and stability tests.

- ``build_tiny_mace``: mace-torch builds a small randomly initialised model in well under
  a second; tests save it and load it through exactly the production path
  (``load_mlip("mace", path)``).
- ``validate_mlip``: the conformance check every registered backend passes (the
  torch-sim ``validate_model_outputs`` pattern), run by ``test_mlip_conformance.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_ELEMENTS = ("H", "Li", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "Cl", "K", "Ca", "Ti", "Fe",
                 "Ni", "Cu", "Zn", "Sr", "Pd", "In", "I", "Ba", "Bi")


def build_tiny_mace(path: Path, elements=TINY_ELEMENTS) -> Path:
    """Save a float64 random ScaleShiftMACE (r_max 4 Å, one small layer) to ``path``."""
    import mace  # noqa: F401  (before e3nn)
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules
    from pymatgen.core import Element

    torch.manual_seed(0)
    z = sorted(Element(e).Z for e in elements)
    model = modules.ScaleShiftMACE(
        r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=len(z), hidden_irreps=o3.Irreps("8x0e + 8x1o"),
        MLP_irreps=o3.Irreps("8x0e"), atomic_energies=-np.linspace(1.0, 3.0, len(z)),
        avg_num_neighbors=8.0, atomic_numbers=z, correlation=2, gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    ).to(torch.float64)
    torch.save(model, path)
    return path


def mp_sample_cifs(data, material_ids):
    """Paths of mp_sample CIFs by material id (real MP-20 crystals)."""
    folder = data.path("structures/mp_sample/metadata.csv").parent
    return [folder / f"mp_{m}.cif" for m in material_ids]


# Small MP-20 materials of structures/mp_sample (1-2 atoms per cell), for fast tests.
SMALL_MP20 = ["mp-2", "mp-1487", "mp-20411", "mp-22924", "mp-348", "mp-11564", "mp-22704", "mp-22898"]


# --- the conformance check every MLIP backend passes (tests/evaluator/mlip/test_mlip_conformance.py) ---

# (finite-difference step Å / strain, force tolerance eV/Å, stress tolerance eV/Å³, energy tolerance eV)
# per dtype: float32 energies carry ~1e-6 relative round-off, so its differences need a larger step.
FD_TOLERANCES = {"float64": (1e-3, 1e-6, 1e-7, 1e-8), "float32": (3e-3, 2e-3, 5e-5, 2e-4)}
_SHEAR = {3: (1, 2), 4: (0, 2), 5: (0, 1)}  # ASE Voigt order xx yy zz yz xz xy


def conformance_cells(data):
    """Two real 2-atom MP-20 crystals (KI rocksalt, tetragonal NaBi), rattled and strained so
    that forces and stress are far from zero."""
    import numpy as np
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    strain = np.array([[0.01, 0.005, 0.0], [0.005, -0.01, 0.002], [0.0, 0.002, 0.005]])
    cells = []
    for seed, path in enumerate(mp_sample_cifs(data, ["mp-22898", "mp-22924"]), start=1):
        atoms = AseAtomsAdaptor.get_atoms(Structure.from_file(path))
        atoms.rattle(0.05, seed=seed)
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
        cells.append(atoms)
    return cells


def _strained(atoms, j, h):
    """``atoms`` under the symmetric strain whose Voigt component ``j`` is ``h`` (engineering shear)."""
    import numpy as np

    eps = np.zeros((3, 3))
    if j < 3:
        eps[j, j] = h
    else:
        a, b = _SHEAR[j]
        eps[a, b] = eps[b, a] = h / 2
    out = atoms.copy()
    out.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    return out


def _assert_same(p, q, e_tol, f_tol, s_tol, what):
    import numpy as np

    assert abs(p["energy"] - q["energy"]) <= e_tol, f"{what}: energy {p['energy']} != {q['energy']}"
    np.testing.assert_allclose(p["forces"], q["forces"], atol=f_tol, rtol=0, err_msg=f"{what}: forces")
    np.testing.assert_allclose(p["stress"], q["stress"], atol=s_tol, rtol=0, err_msg=f"{what}: stress")


def validate_mlip(mlip, spec, cells) -> None:
    """Every property the rest of the evaluator relies on, checked on real outputs of ``mlip``.

    ``spec``: ``describe_mlip`` of the same backend and model; ``cells``: small periodic
    structures with non-zero forces and stress (``conformance_cells``). Raises
    AssertionError naming the first property that fails.
    """
    import numpy as np

    from evaluator.mlip import ENGINE_BACKENDS, UnsupportedCapability, registered_backends
    from evaluator.mlip.base import ENERGY_SCALES, MLIP, voigt_stress

    h, f_tol, s_tol, e_tol = FD_TOLERANCES[mlip.dtype]

    # identity and provenance
    assert isinstance(mlip, MLIP) and registered_backends()[mlip.name] is type(mlip)
    d = mlip.describe()
    assert set(d) == {"name", "model_id", "checkpoint_sha256", "device", "dtype", "energy_scale"}
    assert d["energy_scale"] in ENERGY_SCALES and d["energy_scale"] == spec.energy_scale
    assert (d["name"], d["model_id"]) == (spec.name, spec.model_id)
    assert len(d["checkpoint_sha256"]) == 64 and d["checkpoint_sha256"] == spec.checkpoint_sha256

    # shapes, finiteness, batches
    assert mlip.predict([]) == []
    preds = mlip.predict(cells)
    assert len(preds) == len(cells)
    for atoms, p in zip(cells, preds, strict=True):
        assert "error" not in p, p.get("error")
        assert isinstance(p["energy"], float) and np.isfinite(p["energy"])
        assert p["forces"].shape == (len(atoms), 3) and np.all(np.isfinite(p["forces"]))
        assert p["stress"].shape == (6,) and np.all(np.isfinite(p["stress"]))
        # translation invariance: forces sum to zero; a rigid shift (wrapped back into the cell)
        # changes nothing
        np.testing.assert_allclose(p["forces"].sum(axis=0), 0.0, atol=f_tol)
        shifted = atoms.copy()
        shifted.positions += [0.31, -0.17, 2.23]
        shifted.wrap()
        _assert_same(mlip.predict([shifted])[0], p, e_tol, f_tol, s_tol, "translated")
    for atoms, p in zip(cells, preds, strict=True):
        _assert_same(mlip.predict([atoms])[0], p, e_tol, f_tol, s_tol, "single vs batch")

    # forces = -dE/dx and stress = (1/V) dE/dε by central differences (all components of one
    # structure, predicted as one batch); both must be far from zero for the check to mean anything
    atoms, p = cells[0], preds[0]
    n = len(atoms)
    moved = []
    for i in range(n):
        for k in range(3):
            for sign in (1, -1):
                b = atoms.copy()
                b.positions[i, k] += sign * h
                moved.append(b)
    moved += [_strained(atoms, j, sign * h) for j in range(6) for sign in (1, -1)]
    e = np.array([q["energy"] for q in mlip.predict(moved)])
    fd_forces = -(e[:6 * n:2] - e[1:6 * n:2]).reshape(n, 3) / (2 * h)
    fd_stress = (e[6 * n::2] - e[6 * n + 1::2]) / (2 * h) / atoms.get_volume()
    assert np.abs(p["forces"]).max() > 20 * f_tol and np.abs(p["stress"]).max() > 20 * s_tol
    np.testing.assert_allclose(p["forces"], fd_forces, atol=f_tol, rtol=0, err_msg="forces != -dE/dx")
    np.testing.assert_allclose(p["stress"], fd_stress, atol=s_tol, rtol=0, err_msg="stress != dE/dε / V")

    # the ASE calculator is the same model
    calc_atoms = atoms.copy()
    calc_atoms.calc = mlip.calculator()
    _assert_same({"energy": calc_atoms.get_potential_energy(), "forces": calc_atoms.get_forces(),
                  "stress": calc_atoms.get_stress()}, p, e_tol * 10, f_tol, s_tol, "ASE calculator")

    # capabilities are honest: present iff declared
    if mlip.supports_embeddings:
        emb = np.asarray(mlip.embed([atoms, atoms * (2, 1, 1)]))
        assert emb.ndim == 2 and emb.shape[0] == 2 and emb.shape[1] > 0 and np.all(np.isfinite(emb))
        np.testing.assert_allclose(emb[0], emb[1], atol=1e-4, err_msg="embedding is not a mean over atoms")
    else:
        with pytest.raises(UnsupportedCapability):
            mlip.embed([atoms])
    assert (mlip.name in ENGINE_BACKENDS) == mlip.supports_engine
    if mlip.supports_engine:
        import torch_sim as ts

        model = mlip.ts_model()
        out = model(ts.io.atoms_to_state(list(cells), model.device, model.dtype))
        lo = 0
        for k, (c, q) in enumerate(zip(cells, preds, strict=True)):
            full = out["stress"][k].cpu().numpy()
            assert full.shape == (3, 3)
            np.testing.assert_allclose(full, full.T, atol=s_tol, err_msg="torch-sim stress is not symmetric")
            _assert_same({"energy": float(out["energy"][k]),
                          "forces": out["forces"][lo:lo + len(c)].cpu().numpy().astype(float),
                          "stress": voigt_stress(full)}, q, e_tol, f_tol, s_tol,
                         "torch-sim model")
            lo += len(c)
    else:
        with pytest.raises(UnsupportedCapability):
            mlip.ts_model()
