"""Candidate pages (sun_candidate): relaxed structure with bonds, phase diagram with the
candidate on it, E_hull before/after, RMSD, nearest reference entry."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure

from evaluator import candidates as C
from evaluator.data import DataDir
from evaluator.reference.registry import load_reference
from evaluator.reference.hull import chemsys_key

warnings.filterwarnings("ignore", message=".*electronegativity.*")


@pytest.fixture(scope="module")
def hull():
    return load_reference("mp20", DataDir()).hull.get("dft")


def rocksalt(a="Na", b="Cl", lat=5.64) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def hull_energy(hull, comp: Composition) -> float:
    pd_, _ = hull.phase_diagram(chemsys_key(e.symbol for e in comp.elements))
    return float(pd_.get_hull_energy_per_atom(comp))


def row(structure: Structure, e_form: float, e_hull: float) -> dict:
    return {"formula": structure.composition.formula.replace(" ", ""), "structure": structure.to_json(),
            "stability_relaxed_structure": structure.to_json(), "stability_e_above_hull": e_hull,
            "stability_unrelaxed_e_above_hull": e_hull + 0.04, "stability_rmsd": 0.12,
            "stability_formation_energy_per_atom": e_form}


def candidate_trace(figure: dict) -> dict:
    traces = [t for t in figure["data"] if t.get("name") == C.CANDIDATE_TRACE]
    assert len(traces) == 1
    return traces[0]


def test_sun_candidate_round_trips_with_structure_bonds_and_phase_diagram(hull):
    nacl = rocksalt().get_primitive_structure()
    e_form = hull_energy(hull, nacl.composition) - 0.05  # 50 meV/atom below the reference hull
    table = pd.DataFrame([row(nacl, e_form, -0.05)], index=[7])
    pages, prov = C.candidate_pages(table, [7], [], hull)
    page = json.loads(pages[7])
    assert page["kind"] == "SUN" and page["row"] == 7
    assert (page["e_hull_relaxed"], page["e_hull_unrelaxed"], page["rmsd"]) == (-0.05, pytest.approx(-0.01), 0.12)

    view = page["structure"]
    rebuilt = Structure(view["lattice"], view["species"], view["cart_coords"], coords_are_cartesian=True)
    assert rebuilt.matches(nacl) and np.allclose(view["lattice"], nacl.lattice.matrix, atol=1e-4)
    bonds = view["bonds"]
    assert bonds, "rocksalt NaCl has Na-Cl bonds"
    for i, j, a, b in bonds:
        assert {view["species"][i], view["species"][j]} == {"Na", "Cl"}
        assert np.allclose(a, view["cart_coords"][i], atol=1e-4)
        assert np.linalg.norm(np.subtract(b, a)) == pytest.approx(5.64 / 2, abs=1e-3)
    # six Cl around the Na, each drawn (bonds leaving the cell end at the image position)
    na = view["species"].index("Na")
    assert sum(1 for i, *_ in bonds if i == na) + sum(1 for _, j, *_ in bonds if j == na) >= 6

    fig = page["phase_diagram"]
    point = candidate_trace(fig)
    texts = point["hovertext"] if isinstance(point["hovertext"], list) else [point["hovertext"]]
    assert len(texts) == 1 and "row 7" in texts[0]
    ys = point.get("y")
    assert ys is not None and len(ys) == 1
    assert ys[0] == pytest.approx(e_form, abs=1e-3)  # binary plot: formation energy on the y axis

    near = page["nearest_reference"]
    assert near["relation"] == "same reduced formula" and near["formula"] == "NaCl"
    assert near["material_id"].startswith("mp-")
    assert prov["n_pages"] == 1 and prov["cap"] == C.CAP and not prov["failures"]


def test_msun_without_reference_formula_gets_its_decomposition(hull):
    s = Structure(Lattice.cubic(4.6), ["Na", "Na", "Na", "Cl"],
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    e_form = hull_energy(hull, s.composition) + 0.05
    table = pd.DataFrame([row(s, e_form, 0.05)])
    page = json.loads(C.candidate_pages(table, [], [0], hull)[0][0])
    assert page["kind"] == "MSUN"
    near = page["nearest_reference"]
    assert near["relation"] == "decomposition"
    assert {p["formula"] for p in near["products"]} == {"NaCl", "Na"}
    assert sum(p["fraction"] for p in near["products"]) == pytest.approx(1.0)
    assert candidate_trace(page["phase_diagram"])


def test_ternary_candidate_is_on_its_phase_diagram(hull):
    s = Structure(Lattice.cubic(4.2), ["Li", "Fe", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]])
    e_form = hull_energy(hull, s.composition) + 0.03
    page = json.loads(C.candidate_pages(pd.DataFrame([row(s, e_form, 0.03)]), [], [0], hull)[0][0])
    point = candidate_trace(page["phase_diagram"])
    assert len(point.get("x") or point.get("a") or []) == 1


def test_more_than_four_elements_has_no_diagram_but_a_reason(hull):
    s = Structure(Lattice.cubic(6.0), ["Li", "Na", "K", "O", "F"],
                  [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0.5]])
    e_form = hull_energy(hull, s.composition) + 0.02
    page = json.loads(C.candidate_pages(pd.DataFrame([row(s, e_form, 0.02)]), [], [0], hull)[0][0])
    assert page["phase_diagram"] is None and "5 elements" in page["phase_diagram_reason"]
    assert page["nearest_reference"] is not None or page["nearest_reference_reason"]


def test_cap_keeps_the_lowest_e_hull(hull):
    nacl = rocksalt().get_primitive_structure()
    base = hull_energy(hull, nacl.composition)
    table = pd.DataFrame([row(nacl, base + d, d) for d in (0.08, -0.02, 0.01)])
    pages, prov = C.candidate_pages(table, [1], [0, 2], hull, cap=2)
    assert sorted(pages.index) == [1, 2]
    assert prov["n_candidates"] == 3 and prov["n_beyond_cap"] == 1 and prov["order"].startswith("lowest")


def test_sun_family_writes_candidate_column():
    from evaluator.config import EvalConfig
    from evaluator.context import EvalContext
    from evaluator.families.sun.family import FAMILY as SUN
    from evaluator.families.stability.family import _flags

    h = load_reference("mp20", DataDir()).hull.get("dft")
    nacl = rocksalt().get_primitive_structure()
    kcl = rocksalt("K", "Cl", 6.3).get_primitive_structure()
    rows = [row(nacl, hull_energy(h, nacl.composition) - 0.01, -0.01),
            row(kcl, hull_energy(h, kcl.composition) + 0.5, 0.5)]
    table = pd.DataFrame(rows)
    e = table["stability_e_above_hull"].to_numpy(float)
    st, me = _flags(e, 0.0, 0.1)
    table = table.assign(index=range(2), parse_ok=True, validity_valid=True, stability_stable=st,
                         stability_metastable=me, stability_reason=None,
                         novelty_novel=pd.array([True, True], dtype="boolean"))
    ctx = EvalContext(table, [nacl, kcl], EvalConfig(), DataDir(),
                      reference_loader=lambda: load_reference("mp20", DataDir()))
    res = SUN.run(ctx, SUN.options_from())
    assert res.metrics["sun_count"] == 1
    page = json.loads(res.columns.loc[0, "sun_candidate"])
    assert page["kind"] == "SUN" and page["structure"]["species"]
    assert pd.isna(res.columns.loc[1, "sun_candidate"])
    assert res.provenance["candidates"]["n_pages"] == 1


def test_unary_candidate_has_a_diagram_and_a_same_formula_reference(hull):
    s = Structure(Lattice.cubic(4.3), ["Na", "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    page = json.loads(C.candidate_pages(pd.DataFrame([row(s, 0.05, 0.05)]), [], [0], hull)[0][0])
    assert candidate_trace(page["phase_diagram"])
    assert page["nearest_reference"]["formula"] == "Na"
