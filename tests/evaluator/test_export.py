"""evaluator.export: the plain-data chemistry the app shows (it imports no science library)."""

from __future__ import annotations

import json

from pymatgen.core import Lattice, Structure
from pymatgen.core.periodic_table import Element

from evaluator.export import (atomic_number, cif_text, covalent_radius, element_counts, element_symbols,
                              jmol_colour)


def test_element_facts_agree_with_pymatgen_and_fall_back_for_unknown_symbols():
    symbols = element_symbols()
    assert symbols[0] == "X" and len(symbols) == 119
    for z in (1, 8, 26, 92, 118):
        assert symbols[z] == Element.from_Z(z).symbol and atomic_number(symbols[z]) == z
    assert atomic_number("Xx") is None and atomic_number("X") == 0
    assert jmol_colour("O") == "rgb(255,13,13)"
    assert jmol_colour("Xx") == jmol_colour("X")
    assert abs(covalent_radius("C") - 0.76) < 1e-9 and covalent_radius("Xx") == covalent_radius("X")


def test_element_counts_count_structures_not_atoms():
    assert element_counts(["Fe2O3", "Fe3O4", "O2", None, "", "not a formula!", "Xx2"]) == {"Fe": 2, "O": 3}


def test_cif_text_of_ordered_disordered_and_missing_structures():
    assert cif_text(None).startswith("# no structure")
    s = Structure(Lattice.cubic(4.0), ["Cu", {"Au": 0.5, "Ag": 0.5}], [[0, 0, 0], [0.5, 0.5, 0.5]])
    back = Structure.from_str(cif_text(json.dumps(s.as_dict())), fmt="cif")
    assert back.composition.almost_equals(s.composition) and not back.is_ordered
    ordered = Structure(Lattice.cubic(4.0), ["Cu", "Au"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    text = cif_text(json.dumps(ordered.as_dict()))
    assert text.startswith("# written by ase")
    assert Structure.from_str(text, fmt="cif").matches(ordered)


def test_cif_text_has_clean_coordinates_and_the_same_structure():
    """Float noise in stored coordinates (8.8e-33, 0.9999999999) is not written (issue 26)."""
    noisy = Structure(Lattice([[4.2, 1e-17, 0.0], [0.0, 4.2, 0.0], [0.0, 0.0, 4.2]]), ["Na", "Cl"],
                      [[8.8e-33, 0.5, -1e-17], [0.5, 0.9999999999, 0.30000000000000004]])
    text = cif_text(json.dumps(noisy.as_dict()))
    assert "e-" not in text.split("_atom_site_occupancy", 1)[1] and "e-17" not in text
    assert "0.9999999999" not in text and "0.30000000000000004" not in text
    back = Structure.from_str(text, fmt="cif")
    assert back.matches(noisy) and len(back) == 2
    site = [s for s in back if s.species_string == "Na"][0]
    assert list(site.frac_coords) == [0.0, 0.5, 0.0]
