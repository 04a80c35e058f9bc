"""Validity family: hand-made structures, the assignment search, end to end."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from evaluator.config import EvalConfig
from evaluator.data import DataDir
from evaluator.ingest.types import Item
from evaluator.families.validity import charge as charge_mod
from evaluator.families.validity.charge import ChargeCascade, OxiPriors, best_balanced
from evaluator.families.validity.core import check_many, check_structure

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="module")
def priors() -> OxiPriors:
    return OxiPriors.load(DataDir())


@pytest.fixture()
def cascade(priors) -> ChargeCascade:
    return ChargeCascade(priors)


def fcc_lattice(a: float) -> Lattice:
    """Primitive cell of the face-centred cubic lattice with conventional edge a (Å)."""
    return Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])


def rocksalt(a=5.64, cation="Na", anion="Cl") -> Structure:
    return Structure(fcc_lattice(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def fcc(el="Cu", a=3.61) -> Structure:
    return Structure(fcc_lattice(a), [el], [[0, 0, 0]])


def test_nacl_is_valid_and_neutral(cascade):
    row = check_structure(rocksalt(), cascade)
    assert row["valid"] and row["status"] == "ok" and row["reason"] is None
    assert row["charge_neutral"] and row["charge_step"] in ("oxi_prior", "bvanalyzer")
    assert "Na+1" in row["charge_detail"] and "Cl-1" in row["charge_detail"]
    assert row["spacegroup"] == 225
    # Na-Cl 2.82 Å vs 0.5 × (0.7 + 1.8 + 1.0) = 1.75 Å
    assert row["min_distance_ratio"] == pytest.approx(2.82 / 1.75, rel=1e-3)


def test_bvanalyzer_step_on_its_own(cascade):
    ok, detail = cascade.bvanalyzer(rocksalt())
    assert ok and "Na+1" in detail and "Cl-1" in detail


def test_copper_is_metallic(cascade):
    row = check_structure(fcc(), cascade)
    assert row["valid"] and row["charge_step"] == "metallic"


def test_bv_sum_zero_for_metal_without_metallic_score(cascade):
    # Na-K alloy: few d-block metals, low SMACT score, but no electronegative neighbour.
    s = Structure(Lattice.cubic(4.5), ["Na", "K"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert cascade.metallicity(s.composition) <= charge_mod.METALLIC_THRESHOLD
    assert cascade.run(s, np.array([0, 1])).step == "bv_sum_zero"


def test_nan_bv_sum_is_not_zero(cascade, monkeypatch):
    import pymatgen.core.bond_valence as bv

    nacl = rocksalt()
    monkeypatch.setattr(bv, "calculate_bv_sum", lambda site, nn: float("nan"))
    ok, detail = cascade.bv_sums_zero(nacl, np.array([0, 1]))
    assert not ok and "nan" in detail


def test_nacl2_is_not_neutral(cascade):
    # Fluorite-type cell with Na on the cation and Cl on the anion sites: NaCl2.
    s = Structure(fcc_lattice(6.9), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.25] * 3, [0.75] * 3])
    assert s.composition.reduced_formula == "NaCl2"
    row = check_structure(s, cascade)
    assert row["charge_neutral"] is False and row["charge_step"] == "not_neutral"
    assert not row["valid"] and row["status"] == "ok"
    assert "not charge neutral" in row["reason"]
    assert row["distance_valid"] and row["plausible"]


def test_atoms_too_close(cascade):
    s = Structure(Lattice.cubic(5.0), ["Cu", "Cu"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 Å apart
    row = check_structure(s, cascade)
    assert row["distance_valid"] is False and not row["valid"]
    # Cu radius 1.35 Å: threshold 0.5 × (0.7 + 2.7) = 1.7 Å
    assert row["min_distance_ratio"] == pytest.approx(0.3 / 1.7, rel=1e-3)
    assert "atoms too close" in row["reason"]


def test_periodic_self_image_counts(cascade):
    # One Cu atom in a 1.5 Å cubic cell: no second site, but its image is 1.5 Å away.
    row = check_structure(Structure(Lattice.cubic(1.5), ["Cu"], [[0, 0, 0]]), cascade)
    assert row["distance_valid"] is False
    assert row["min_distance_ratio"] == pytest.approx(1.5 / 1.7, rel=1e-3)


def test_sparse_cell_ratio_is_exact(cascade):
    # Two atoms far apart in a big cell: the worst ratio needs the widened search.
    s = Structure(Lattice.cubic(40.0), ["Cu", "Cu"], [[0, 0, 0], [0.25, 0, 0]])
    row = check_structure(s, cascade)
    assert row["distance_valid"]
    assert row["min_distance_ratio"] == pytest.approx(10.0 / 1.7, rel=1e-3)


def test_density_too_low(cascade):
    row = check_structure(Structure(Lattice.cubic(60.0), ["Cu"], [[0, 0, 0]]), cascade)
    assert row["plausible"] is False and not row["valid"]
    assert "g/cm³" in row["reason"] and row["distance_valid"]


def test_huge_lattice(cascade):
    s = Structure(Lattice.orthorhombic(150.0, 3.61, 3.61), ["Cu"] * 2, [[0, 0, 0], [0.5, 0.5, 0.5]])
    row = check_structure(s, cascade)
    assert row["plausible"] is False
    assert "lattice length a=150" in row["reason"]


def test_degenerate_cell_is_invalid_without_hanging(cascade):
    # Nearly flat cell (volume ~1e-6 Å³): decided by the packing bound, no image enumeration.
    lat = Lattice([[4, 0, 0], [0, 4, 0], [0, 0, 1e-7]])
    row = check_structure(Structure(lat, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]), cascade)
    assert not row["valid"] and row["distance_valid"] is False and row["plausible"] is False
    assert math.isnan(row["min_distance_ratio"])


def test_oxidation_decorated_and_disordered_structures(cascade):
    s = rocksalt()
    s.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    assert check_structure(s, cascade)["valid"]
    dis = Structure(Lattice.cubic(3.61), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    row = check_structure(dis, cascade)
    assert row["status"] in ("ok", "failed") and row["distance_valid"] is not None


def test_exception_in_a_check_marks_row_failed(cascade, monkeypatch):
    import evaluator.families.validity.core as core

    def boom(structure):
        raise RuntimeError("kaput")

    monkeypatch.setattr(core, "check_distances", boom)
    row = check_structure(rocksalt(), cascade)
    assert row["status"] == "failed" and not row["valid"]
    assert "error in distance check: RuntimeError: kaput" in row["reason"]
    assert row["charge_neutral"] and row["plausible"]  # the other checks still ran


def test_too_complex_is_not_neutral(priors, monkeypatch):
    monkeypatch.setattr(charge_mod, "MAX_DP_WORK", 10)
    c = ChargeCascade(priors)
    # Fe3O4-like composition that metallic / BV steps do not decide.
    s = Structure(Lattice.cubic(8.4), ["Fe"] * 3 + ["O"] * 4,
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.25] * 3, [0.75, 0.75, 0.25],
                   [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]])
    v = c.run(s, None, structure_steps=False)
    assert v.step == "too_complex" and v.neutral is False


# -- the exact assignment search -----------------------------------------------------------
def _brute_adjacent(amounts: dict[str, int], states: dict[str, list[int]]) -> bool:
    per_el = []
    for el, n in amounts.items():
        sums = {sum(c) for c in itertools.combinations_with_replacement(states[el], n) if max(c) - min(c) <= 1}
        per_el.append(sums)
    return any(sum(x) == 0 for x in itertools.product(*per_el))


@pytest.mark.parametrize("seed", range(40))
def test_balanced_search_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    els = ["A", "B", "C"][: rng.integers(1, 4)]
    amounts = {el: int(rng.integers(1, 6)) for el in els}
    states = {el: sorted(set(int(x) for x in rng.integers(-4, 6, size=rng.integers(1, 4)))) for el in els}
    options = [charge_mod._options_adjacent(el, amounts[el], states[el], lambda e, s: 0.5) for el in els]
    assert (best_balanced(options, mean=True) is not None) == _brute_adjacent(amounts, states)


@pytest.mark.parametrize("formula", ["Fe3O4", "CdN2F", "MnPbSe", "K3SrBr", "LiFePO4", "Cs3Li2NdI9"])
def test_electronegativity_assignment_matches_pymatgen(cascade, formula):
    """Our DP's best all-states assignment equals pymatgen's top oxi_state_guesses."""
    comp = Composition(formula)
    guess = comp.oxi_state_guesses(all_oxi_states=True, max_sites=-1)[0]
    _, detail = cascade.electronegativity(comp)
    for el, state in guess.items():
        assert f"{el}{state:+.3g}" in detail


def test_prior_respects_adjacent_rule(cascade):
    # Fe3O4 needs Fe2+/Fe3+ mixing (adjacent): allowed.
    ok, detail = cascade.oxi_prior(Composition("Fe3O4"))
    assert ok and "Fe+2.67" in detail
    # Fe2+/Fe4+ mixing is not adjacent: FeO2-like Fe3O5 would need it with states {2, 4}.
    assert charge_mod._options_adjacent("Fe", 2, [2, 4], lambda e, s: 1.0) == {4: 1.0, 8: 1.0}


def test_parallel_rows_equal_in_process(priors):
    structures = [rocksalt(a=5.0 + 0.02 * k) for k in range(30)] + [fcc(a=3.5 + 0.01 * k) for k in range(30)]
    serial = list(check_many(structures, priors, workers=1))
    parallel = list(check_many(structures, priors, workers=2))
    assert [r["valid"] for r in serial] == [r["valid"] for r in parallel]
    assert [r["charge_step"] for r in serial] == [r["charge_step"] for r in parallel]


# -- end to end through the pipeline ------------------------------------------------------
def test_evaluate_items_end_to_end():
    from evaluator.pipeline import evaluate_items

    bad = Structure(Lattice.cubic(5.0), ["Cu", "Cu"], [[0, 0, 0], [0.06, 0, 0]])
    items = [Item("nacl.cif", rocksalt()), Item("broken.cif", None, "CIF parse error: no atoms"),
             Item("cu.cif", fcc()), Item("close.cif", bad)]
    ev = evaluate_items(items, EvalConfig(families=["validity"]))
    t = ev.table
    cols = ["validity_valid", "validity_charge_neutral", "validity_charge_step", "validity_distance_valid",
            "validity_min_distance_ratio", "validity_plausible", "validity_spacegroup", "validity_spacegroup_loose",
            "validity_status", "validity_reason"]
    assert all(c in t for c in cols)
    assert list(t["validity_status"]) == ["ok", "skipped", "ok", "ok"]
    assert t.loc[1, "validity_reason"] == "parse failed"
    assert list(t["validity_valid"].fillna(False)) == [True, False, True, False]
    assert t.loc[0, "validity_spacegroup"] == 225 and t.loc[0, "validity_spacegroup_loose"] == 225
    m = ev.summary["metrics"]["validity"]
    assert m["valid_count"] == 2 and m["valid_frac_submitted"] == pytest.approx(0.5)
    assert m["valid_frac_valid"] == pytest.approx(1.0)
    assert m["distance_valid_count"] == 2 and m["distance_valid_frac_parsed"] == pytest.approx(2 / 3)
    assert m["distance_valid_frac_valid"] is None and "distance_valid_frac_valid" in ev.summary["missing"]["validity"]
    assert sum(m["charge_step_counts"].values()) == 3
    assert ev.summary["n_valid"] == 2
    assert "lemat/oxi_state_mapping.json" in ev.summary["provenance"]["data_files"]
    assert ev.summary["provenance"]["family"]["validity"]["thresholds"]["plausibility"]["symprec"] == 0.01
