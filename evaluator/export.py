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
from typing import Any


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


COORD_DECIMALS = 8  # fractional coordinates are rounded to this (float noise such as 8.8e-33 → 0)
COORD_ZERO = 10.0 ** -COORD_DECIMALS  # lattice entries below this are 0


def _clean(x: float) -> float:
    r = round(x, COORD_DECIMALS)
    return 0.0 if r in (0.0, 1.0) else r  # 1 is the same site as 0, inside the cell


def clean_structure_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A Structure dict with its fractional coordinates rounded to ``COORD_DECIMALS`` (1 becomes 0:
    the same site) and lattice entries below ``COORD_ZERO`` set to 0: no ``8.8e-33`` in an exported CIF.
    Cartesian ``xyz`` is dropped (readers rebuild it from ``abc`` and the lattice)."""
    out = dict(d)
    lattice = d.get("lattice")
    if isinstance(lattice, dict) and isinstance(lattice.get("matrix"), list):
        out["lattice"] = {**lattice, "matrix": [[0.0 if isinstance(v, float) and abs(v) < COORD_ZERO else v
                                                 for v in row] for row in lattice["matrix"]]}
    sites = d.get("sites")
    if isinstance(sites, list):
        cleaned = []
        for site in sites:
            if isinstance(site, dict) and isinstance(site.get("abc"), list):
                site = {k: v for k, v in site.items() if k != "xyz"}
                site["abc"] = [_clean(float(c)) if isinstance(c, (int, float)) else c for c in site["abc"]]
            cleaned.append(site)
        out["sites"] = cleaned
    return out


def cif_text(structure_json: str | None) -> str:
    """CIF text of a pymatgen Structure JSON string (written by ase for ordered structures;
    pymatgen's CifWriter only for partial occupancies)."""
    if not isinstance(structure_json, str) or not structure_json:
        return "# no structure stored for this row"
    d = clean_structure_dict(json.loads(structure_json))
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
