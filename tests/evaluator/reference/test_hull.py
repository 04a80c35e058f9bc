"""Hulls, energy scales and the LeMat hull loader (offline)."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _toy_hull():
    from evaluator.reference.hull import HullReference

    entries = pd.DataFrame({"entry_id": ["ab", "a2b", "a"], "formula": ["Na1 Cl1", "Na2 Cl1", "Na2"],
                            "e_form_per_atom": [-0.5, -0.2, 0.05]})
    return HullReference("toy", "dft-mp2020", entries, {"Na": -1.0, "Cl": -2.0})


def test_e_above_hull_on_a_toy_binary_allows_negative_values():
    from pymatgen.core import Composition

    hull = _toy_hull()
    nacl = Composition("NaCl")
    assert hull.e_above_hull(nacl, -0.4).e_above_hull == pytest.approx(0.1)
    assert hull.e_above_hull(nacl, -0.6).e_above_hull == pytest.approx(-0.1)  # below the hull: kept
    # Na2Cl (x_Cl = 1/3) sits between Na (0) and NaCl (-0.5): hull at -1/3; the entry at -0.2 is above it
    r = hull.e_above_hull(Composition("Na2Cl"), -0.2)
    assert r.e_above_hull == pytest.approx(-0.2 + 1 / 3)
    assert r.n_ref_entries == 3  # NaCl, Na2Cl and the unary Na entry (not the synthetic terminals)
    assert hull.e_above_hull(Composition("Na"), 0.0).e_above_hull == pytest.approx(0.0)


def test_formation_energy_and_unspanned_chemical_system():
    from pymatgen.core import Composition

    hull = _toy_hull()
    assert hull.formation_energy_per_atom(Composition("NaCl"), -4.0) == pytest.approx(-0.5)
    with pytest.raises(KeyError, match="K"):
        hull.formation_energy_per_atom(Composition("KCl"), -4.0)
    r = hull.e_above_hull(Composition("KCl"), -0.3)
    assert math.isnan(r.e_above_hull) and "K" in r.reason and r.n_ref_entries == 0


def test_mp20_dft_hull_reproduces_the_dft_e_above_hull_of_its_entries():
    from pymatgen.core import Composition

    from evaluator.data import DataDir
    from evaluator.reference.hull import load_mp20_hull

    data = DataDir()
    hull = load_mp20_hull(data).get("dft")
    assert hull.energy_scale == "dft-mp2020" and len(hull.mu) >= 80
    df = pd.read_parquet(data.path("reference/mp20/mp20_hull.parquet")).sample(25, random_state=1)
    err = [hull.e_above_hull(Composition(f), e).e_above_hull - d
           for f, e, d in zip(df["formula"], df["e_form_per_atom_mp2020_dft"], df["dft_e_above_union_hull"])]
    assert np.max(np.abs(err)) < 0.015  # the union hull also has the MLIP hulls' entries
    assert np.median(np.abs(err)) < 1e-6


def test_energy_routes_and_refusals():
    from evaluator.data import DataDir
    from evaluator.mlip import MLIPSpec
    from evaluator.families.stability.energy import IncompatibleEnergyScale, energy_route
    from evaluator.reference.hull import load_mp20_hull

    hulls = load_mp20_hull(DataDir())
    chgnet = MLIPSpec("chgnet", "0.3.0", None, "mp2020-corrected")
    mace = MLIPSpec("mace", "medium-mpa-0", None, "raw-pbe")
    omat = MLIPSpec("mace", "medium-omat-0", None, "raw-pbe-omat")
    assert energy_route(chgnet, hulls.get("dft")) == "direct"
    assert energy_route(mace, hulls.get("dft")) == "mp2020"
    assert energy_route(mace, hulls.get("mace")) == "direct"
    with pytest.raises(IncompatibleEnergyScale, match="refusing"):
        energy_route(chgnet, hulls.get("mace"))
    with pytest.raises(IncompatibleEnergyScale, match="refusing"):
        energy_route(MLIPSpec("mace", "small", None, "raw-pbe"), hulls.get("mace"))
    assert energy_route(chgnet, hulls.get("mace"), declared_compatible=True) == "direct"
    with pytest.raises(IncompatibleEnergyScale):
        energy_route(omat, hulls.get("dft"))
    with pytest.raises(ValueError, match="no 'bogus' hull"):
        hulls.get("bogus")


def test_mp2020_corrections_for_raw_pbe_energies():
    from pymatgen.core import Lattice, Structure

    from evaluator.families.stability.energy import mp2020_compatibility, mp2020_corrected_energy

    fe2o3 = Structure(Lattice.cubic(5.0), ["Fe", "Fe", "O", "O", "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0], [0.75, 0.25, 0.5], [0.25, 0.75, 0.5]])
    e, why = mp2020_corrected_energy(fe2o3, -40.0)
    compat = mp2020_compatibility()
    expected = -40.0 + 3 * compat.comp_correction["oxide"] + 2 * compat.u_corrections["O"]["Fe"]
    assert why is None and e == pytest.approx(expected, abs=1e-6)
    alni = Structure(Lattice.cubic(2.9), ["Al", "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert mp2020_corrected_energy(alni, -10.0) == (pytest.approx(-10.0), None)  # metals: no correction


def _lemat_frame():
    # Schema of LeMat-Bulk-MLIP-Hull rows (the columns the loader reads, plus typical others)
    return pd.DataFrame({
        "immutable_id": ["agm1", "agm2", "agm3", "agm4", "agm5"],
        "species_at_sites": [["Na", "Na"], ["Cl", "Cl"], ["Na", "Cl"], ["Na", "Na", "Cl"], ["Na"]],
        "chemical_formula_descriptive": ["Na2", "Cl2", "NaCl", "Na2Cl", "Na"],
        "energy": [-2.6, -3.6, -6.8, -9.0, -1.2],
        "nsites": [2, 2, 2, 3, 1],
    })


def test_lemat_loader_builds_a_compact_hull_offline(tmp_path):
    from pymatgen.core import Composition

    from evaluator.reference.hull import load_hull_file, write_hull_file
    from evaluator.build.lemat_hull import load_lemat_hull

    hull = load_lemat_hull("mace_mp", frame=_lemat_frame())
    assert hull.energy_scale == "mlip:mace_mp" and hull.compatible == {"mace": ["medium-0b3"]}
    assert hull.mu == {"Na": pytest.approx(-1.3), "Cl": pytest.approx(-1.8)}  # lowest unary energy per atom
    # NaCl: (-6.8 - (-1.3 - 1.8)) / 2 = -1.85
    ef = dict(zip(hull.entries["entry_id"], hull.entries["e_form_per_atom"]))
    assert ef["agm3"] == pytest.approx(-1.85) and ef["agm1"] == pytest.approx(0.0)
    path = write_hull_file(hull, tmp_path / "lemat.parquet")
    back = load_hull_file(path)
    assert back.energy_scale == hull.energy_scale and back.mu == hull.mu and back.compatible == hull.compatible
    r = back.e_above_hull(Composition("NaCl"), -1.80)
    assert r.e_above_hull == pytest.approx(0.05) and r.n_ref_entries == 5
    dft = load_lemat_hull("dft", frame=_lemat_frame())
    assert dft.energy_scale == "dft-pbe-raw"
    with pytest.raises(ValueError, match="energy column"):
        load_lemat_hull("uma", frame=_lemat_frame().drop(columns=["energy"]))
