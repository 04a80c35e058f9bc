"""Chemistry the leaderboard app shows, as plain data: element facts, the elements of
formulas, and CIF text of a stored structure.

The app (``leaderboard/``) imports no science library; it calls these functions,
which take and return strings, numbers and dicts. ase and pymatgen are imported
inside the functions, only when one is called, so importing this module stays cheap.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable


def atomic_number(symbol: str) -> int | None:
    """Atomic number of an element symbol (``"X"`` is 0), None if it is not one."""
    from ase.data import atomic_numbers

    z = atomic_numbers.get(symbol)
    return int(z) if z is not None else None


def element_symbols() -> tuple[str, ...]:
    """Element symbols indexed by atomic number (index 0 is ``"X"``, then H to Og)."""
    from ase.data import chemical_symbols

    return tuple(chemical_symbols)


def jmol_colour(symbol: str) -> str:
    """Jmol colour of an element as ``"rgb(r,g,b)"`` (an unknown symbol gets element 0's)."""
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors

    z = atomic_numbers.get(symbol, 0)
    r, g, b = (int(255 * c) for c in jmol_colors[z])
    return f"rgb({r},{g},{b})"


def covalent_radius(symbol: str) -> float:
    """Covalent radius of an element in Å (an unknown symbol gets element 0's)."""
    from ase.data import atomic_numbers, covalent_radii

    return float(covalent_radii[atomic_numbers.get(symbol, 0)])


def element_counts(formulas: Iterable[str | None]) -> Counter[str]:
    """Number of structures containing each element, from (reduced) formulas (ase's
    formula parser). A missing, unparsable or non-element formula counts nothing."""
    from ase.data import atomic_numbers
    from ase.formula import Formula

    counts: Counter[str] = Counter()
    for f in formulas:
        if not isinstance(f, str) or not f:
            continue
        try:
            els = {el for el, n in Formula(f.replace(" ", "")).count().items() if n}
        except Exception:  # noqa: BLE001 - an unparsable formula contributes nothing
            continue
        if els and all(el in atomic_numbers and atomic_numbers[el] > 0 for el in els):
            counts.update(els)
    return counts


def cif_text(structure_json: str | None) -> str:
    """CIF text of a pymatgen Structure JSON string (written by ase for ordered structures;
    pymatgen's CifWriter only for partial occupancies)."""
    if not isinstance(structure_json, str) or not structure_json:
        return "# no structure stored for this row"
    d = json.loads(structure_json)
    sites = d.get("sites") or []
    ordered = all(len(site.get("species") or []) == 1 and float(site["species"][0].get("occu", 1)) == 1.0
                  for site in sites)
    if not ordered:
        from pymatgen.core.structure import Structure
        from pymatgen.io.cif import CifWriter

        return str(CifWriter(Structure.from_dict(d)))
    from ase import Atoms
    from ase.io import write

    atoms = Atoms(symbols=[site["species"][0]["element"] for site in sites],
                  scaled_positions=[site["abc"] for site in sites], cell=d["lattice"]["matrix"], pbc=True)
    buf = io.BytesIO()
    write(buf, atoms, format="cif")
    return "# written by ase from the stored structure\n" + buf.getvalue().decode()
