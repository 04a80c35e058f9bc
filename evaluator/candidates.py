"""Candidate pages: what a researcher needs to judge one SUN / MSUN candidate.

For each counted SUN and MSUN representative (relaxed geometry, the headline), lowest
relaxed E_hull first and at most ``CAP`` per submission, the sun family stores a JSON
string in ``sun_candidate`` (null for every other row):

- ``structure``: the relaxed structure (``stability_relaxed_structure``) as ``species``,
  ``cart_coords`` (Å), ``lattice`` (3×3 row vectors, Å) and ``bonds``: ``[i, j, [x, y, z]
  of atom i, [x, y, z] of atom j's periodic image]`` for every pair closer than
  ``BOND_TOLERANCE`` × the sum of pymatgen's covalent radii (Cordero et al. 2008), from
  ``Structure.get_neighbor_list``; a bond that crosses the cell ends at the image position.
- ``phase_diagram``: the plotly figure (``PDPlotter(backend="plotly")``, as a JSON object)
  of the reference hull of the candidate's chemical system with the candidate added and
  highlighted (trace named ``CANDIDATE_TRACE``); null with ``phase_diagram_reason`` for more
  than 4 elements or when it cannot be built.
- ``e_hull_relaxed``, ``e_hull_unrelaxed`` (eV/atom), ``rmsd`` (Å), ``formation_energy_per_atom``:
  the table's stability columns, unchanged.
- ``nearest_reference``: the lowest-energy reference hull entry with the same reduced
  formula (``relation = "same reduced formula"``), otherwise the products the reference
  hull decomposes the candidate's composition into (``relation = "decomposition"``,
  ``products``); null with ``nearest_reference_reason`` when neither exists.

Nothing here is a metric: every value is the table's or the reference's.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from evaluator.columns import FORMULA, STRUCTURE
from evaluator.families.stability import metrics as S
from evaluator.reference.hull import chemsys_key

if TYPE_CHECKING:
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core.composition import Composition
    from pymatgen.core.structure import Structure

    from evaluator.reference.hull import HullReference

CAP = 100
BOND_TOLERANCE = 1.2  # bond when distance <= 1.2 * (r_cov,i + r_cov,j)
DEFAULT_COVALENT_RADIUS = 1.5  # Å, for an element without a tabulated covalent radius
MAX_PD_ELEMENTS = 4  # PDPlotter draws unary to quaternary systems
CANDIDATE_TRACE = "candidate"
DIGITS = 5


def _covalent_radius(symbol: str) -> float:
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    return float(CovalentRadius.radius.get(symbol, DEFAULT_COVALENT_RADIUS))


def structure_view(structure: Structure) -> dict[str, Any]:
    """Species, Cartesian coordinates, lattice and covalent-radius bonds of one structure."""
    import numpy as np

    species = [site.specie.symbol for site in structure]
    radii = np.array([_covalent_radius(s) for s in species])
    cutoff = BOND_TOLERANCE * 2 * float(radii.max()) if len(radii) else 0.0
    bonds: list[list[Any]] = []
    if len(structure) and cutoff > 0:
        centers, neighbors, images, dist = structure.get_neighbor_list(cutoff)
        keep = dist <= BOND_TOLERANCE * (radii[centers] + radii[neighbors])
        keep &= dist > 1e-8
        cart = structure.cart_coords
        lattice = structure.lattice.matrix
        for i, j, image in zip(centers[keep], neighbors[keep], images[keep]):
            zero = not np.any(image)
            if zero and j < i:  # inside the cell each bond once; crossing bonds from both ends
                continue
            end = cart[j] + np.asarray(image, float) @ lattice
            bonds.append([int(i), int(j), np.round(cart[i], DIGITS).tolist(), np.round(end, DIGITS).tolist()])
    return {"species": species, "cart_coords": np.round(structure.cart_coords, DIGITS).tolist(),
            "lattice": np.round(structure.lattice.matrix, DIGITS).tolist(), "bonds": bonds}


def _entry(composition: Composition, energy: float, entry_id: str) -> PDEntry:
    from pymatgen.analysis.phase_diagram import PDEntry

    e = PDEntry(composition, energy, name=entry_id)
    e.entry_id = entry_id  # type: ignore[attr-defined]  # PDPlotter's hover text shows entry_id
    return e


def phase_diagram_figure(reference_pd: PhaseDiagram, composition: Composition, e_form_per_atom: float,
                         label: str) -> dict[str, Any]:
    """Plotly figure (JSON object) of ``reference_pd`` plus the candidate, highlighted."""
    from pymatgen.analysis.phase_diagram import PDPlotter, PhaseDiagram

    entries = [_entry(e.composition, e.energy, str(e.name)) for e in reference_pd.all_entries]
    candidate = _entry(composition, e_form_per_atom * composition.num_atoms, label)
    pd_ = PhaseDiagram([*entries, candidate])
    e_above = pd_.get_e_above_hull(candidate)
    if e_above is None:  # pymatgen returns None only with on_error="ignore", not used here
        raise ValueError("no energy above hull for the candidate")
    fig = PDPlotter(pd_, backend="plotly", show_unstable=max(0.2, e_above + 0.05)).get_plot(
        highlight_entries=[candidate])
    if fig is None:
        raise ValueError("PDPlotter drew no figure")
    fig.update_traces(selector={"name": "Highlighted"}, name=CANDIDATE_TRACE)
    fig.update_layout(title={"text": f"{label} on the reference hull"})
    figure: dict[str, Any] = json.loads(fig.to_json())
    return figure


def nearest_reference(hull: HullReference, reference_pd: PhaseDiagram, composition: Composition,
                      e_form_per_atom: float) -> tuple[dict[str, Any] | None, str | None]:
    """(nearest reference entry or decomposition, None) or (None, why)."""
    from pymatgen.analysis.phase_diagram import PDEntry

    key = chemsys_key(e.symbol for e in composition.elements)
    reduced = composition.reduced_formula
    same = [e for e in hull.entries_in(key) if e.composition.reduced_formula == reduced]
    if same:
        best = min(same, key=lambda e: e.e_form_per_atom)
        ref_entry = _entry(best.composition, best.e_form_per_atom * best.composition.num_atoms, "")
        e_above = reference_pd.get_e_above_hull(ref_entry, allow_negative=True)
        if e_above is None:  # pymatgen returns None only with on_error="ignore", not used here
            return None, "the reference hull gives no energy above hull for this formula"
        return {"relation": "same reduced formula", "material_id": best.entry_id,
                "formula": reduced, "e_form_per_atom": best.e_form_per_atom,
                "e_above_hull": float(e_above),
                "candidate_minus_reference_e_form": e_form_per_atom - best.e_form_per_atom}, None
    probe = _entry(composition, e_form_per_atom * composition.num_atoms, "candidate")
    decomp, _ = reference_pd.get_decomp_and_e_above_hull(probe, allow_negative=True)
    if not decomp:
        return None, "the reference hull gives no decomposition for this composition"
    products: list[dict[str, Any]] = []
    for e, f in sorted(decomp.items(), key=lambda kv: -kv[1]):
        name = str(e.name) if isinstance(e, PDEntry) else str(e)  # every entry here is a PDEntry
        products.append({"material_id": None if name.endswith("(reference)") else name,
                         "formula": e.composition.reduced_formula, "fraction": float(f)})
    return {"relation": "decomposition", "material_id": " + ".join(p["material_id"] or p["formula"] for p in products),
            "formula": " + ".join(p["formula"] for p in products), "products": products}, None


def _num(x: Any) -> float | None:  # a table cell: Python/numpy number, None, NaN or pd.NA
    return float(x) if x is not None and not pd.isna(x) and math.isfinite(float(x)) else None


def candidate_page(row: pd.Series[Any], index: int, kind: str, hull: HullReference) -> dict[str, Any]:
    """The candidate JSON object of one table row (see module docstring)."""
    from pymatgen.core.structure import Structure

    page: dict[str, Any] = {"row": int(index), "kind": kind, "formula": row.get(FORMULA.name),
                  "e_hull_relaxed": _num(row.get(S.E_ABOVE_HULL.name)),
                  "e_hull_unrelaxed": _num(row.get(S.UNRELAXED_E_ABOVE_HULL.name)),
                  "rmsd": _num(row.get(S.RMSD.name)),
                  "formation_energy_per_atom": _num(row.get(S.FORMATION_ENERGY_PER_ATOM.name))}
    relaxed = row.get(S.RELAXED_STRUCTURE.name)
    if isinstance(relaxed, str) and relaxed:
        s = Structure.from_str(relaxed, fmt="json")
        page["structure"] = structure_view(s)
    else:
        page["structure"], page["structure_reason"] = None, "no relaxed structure in the table"
        s = Structure.from_str(row[STRUCTURE.name], fmt="json")
    comp = s.composition.element_composition
    key = chemsys_key(e.symbol for e in comp.elements)
    e_form = page["formation_energy_per_atom"]
    page["phase_diagram"] = page["nearest_reference"] = None
    if e_form is None:
        page["phase_diagram_reason"] = page["nearest_reference_reason"] = "no formation energy"
        return page
    try:
        reference_pd, _ = hull.phase_diagram(key)
    except Exception as exc:  # noqa: BLE001 - any hull failure is reported on the page, not raised
        page["phase_diagram_reason"] = page["nearest_reference_reason"] = \
            f"reference hull unavailable: {type(exc).__name__}: {exc}"[:300]
        return page
    if len(key) > MAX_PD_ELEMENTS:
        page["phase_diagram_reason"] = f"{len(key)} elements: phase diagrams are drawn up to {MAX_PD_ELEMENTS}"
    else:
        try:
            page["phase_diagram"] = phase_diagram_figure(reference_pd, comp, e_form,
                                                         f"{comp.reduced_formula} (row {index}, {kind})")
        except Exception as exc:  # noqa: BLE001 - a failed figure leaves the rest of the page
            page["phase_diagram_reason"] = f"phase diagram failed: {type(exc).__name__}: {exc}"[:300]
    try:
        page["nearest_reference"], why = nearest_reference(hull, reference_pd, comp, e_form)
        if why:
            page["nearest_reference_reason"] = why
    except Exception as exc:  # noqa: BLE001 - a failed lookup leaves the rest of the page
        page["nearest_reference_reason"] = f"lookup failed: {type(exc).__name__}: {exc}"[:300]
    return page


def candidate_pages(table: pd.DataFrame, sun_rows: list[int], msun_rows: list[int], hull: HullReference,
                    cap: int = CAP) -> tuple[pd.Series[Any], dict[str, Any]]:
    """(``sun_candidate`` JSON strings indexed like ``table`` rows that have one, provenance)."""
    t0 = time.perf_counter()
    kinds = {**{i: "MSUN" for i in msun_rows}, **{i: "SUN" for i in sun_rows}}
    e = pd.to_numeric(table.loc[list(kinds), S.E_ABOVE_HULL.name], errors="coerce") if kinds \
        else pd.Series(dtype=float)
    order = sorted(kinds, key=lambda i: (e.get(i, math.inf), i))
    pages: dict[int, str] = {}
    failures: dict[int, str] = {}
    for i in order[:cap]:
        try:
            row = table.loc[i]
            if not isinstance(row, pd.Series):
                raise ValueError(f"row label {i} is not unique in the table")
            pages[i] = json.dumps(candidate_page(row, i, kinds[i], hull), allow_nan=False)
        except Exception as exc:  # noqa: BLE001 - one bad candidate never costs the others their page
            failures[i] = f"{type(exc).__name__}: {exc}"[:300]
    provenance = {
        "rows": "counted SUN and MSUN representatives (relaxed E_hull)",
        "cap": cap, "order": "lowest relaxed E_hull first", "n_candidates": len(order),
        "n_pages": len(pages), "n_beyond_cap": max(0, len(order) - cap),
        "failures": {str(k): v for k, v in failures.items()},
        "bonds": f"pymatgen Structure.get_neighbor_list; bond when d <= {BOND_TOLERANCE} x (sum of "
                 f"pymatgen CovalentRadius radii), {DEFAULT_COVALENT_RADIUS} Å where none is tabulated",
        "phase_diagram": f"pymatgen PDPlotter(backend='plotly') of the reference hull with the candidate "
                         f"highlighted (trace '{CANDIDATE_TRACE}'), up to {MAX_PD_ELEMENTS} elements",
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return pd.Series(pages, dtype=object), provenance
