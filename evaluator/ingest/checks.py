"""Per-structure sanity checks applied to every parsed structure, and short reasons.

A failed check never raises: it becomes the ``error`` of the structure's Item.
Lengths in Å, volumes in Å³.

pymatgen is imported inside the functions that need it: they run in the reading child
processes (``units``), while the process that cuts an upload into Units (the app's
upload check) imports this module for ``shorten`` alone and stays light.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from evaluator.config import IngestLimits
from evaluator.ingest.atomguard import NONFINITE, too_many_atoms
from evaluator.ingest.types import Item

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

MIN_VOLUME = 1e-3  # Å³: below this the cell is degenerate
MIN_NORMALISED_VOLUME = 1e-6  # V / (a b c): flat or collinear cells
MAX_REASON = 200  # characters

_THIN = re.compile(r"thickness=\[(.*?)\] Å below threshold")
_NONFINITE = re.compile(r"\b(nan|inf|infinity)\b", re.I)
_BAD_SYMBOL = re.compile(r"'([^']{1,40})' is not a valid Element|Can't parse Element or Species from '([^']{1,40})'")
# IUPAC systematic (placeholder) symbols of elements 100-299: Uue, Ubn, Uuo, ...
PLACEHOLDER_SYMBOL = re.compile(r"^[UB][nubtqphsoe]{2}$")


def unknown_element(symbol: str) -> str:
    """The one reason every format gives for a symbol that names no chemical element."""
    return shorten(f"unknown element: {symbol} (not a chemical element)")


def symbol_problem(symbol: str) -> str | None:
    """``unknown_element`` when ``symbol`` (an element symbol, optionally followed by digits or
    a charge: ``Fe``, ``Fe3+``, ``O2-``) names no chemical element (``Xx``, ``Uue``), else None.
    A symbol that does not start with a letter is left to the format's parser."""
    from pymatgen.core.periodic_table import Element

    m = re.match(r"[A-Za-z]+", str(symbol).strip())
    if m is None:
        return None
    letters = m.group()
    if Element.is_valid_symbol(letters) or Element.is_valid_symbol(letters.title()):
        return None
    return unknown_element(letters)


def occupancy_problem(value: float, site: str) -> str | None:
    """The one reason every format gives for an occupancy that is zero, negative or not finite
    (a site that would otherwise be dropped or mis-read without a word); None when it is fine.
    Occupancies above 1 are left to the readers (overlapping atoms)."""
    if math.isfinite(value) and value > 0:
        return None
    return shorten(f"invalid occupancy {value:g} on site {site}: occupancies must be greater than 0 "
                   "(and at most 1)")


def occupancy_sum_problem(total: float) -> str:
    """The one reason every format gives when the occupancies on one site add up to more than 1."""
    return f"invalid occupancy: occupancies on one site sum to {total:g} > 1 (overlapping atoms?)"


def missing_species(where: str) -> str:
    """The one reason every format gives when atoms have no element: ``missing species: <where>``."""
    return shorten(f"missing species: {where}")


def count_mismatch(declared: int, listed: int, where: str) -> str:
    """The one reason every format gives when a declared atom count and the atoms listed differ."""
    return shorten(f"atom count mismatch: {where} declares {declared} atoms but {listed} positions follow")


def cell_volume_problem(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> str | None:
    """Why cell parameters (Å, degrees) give no usable cell: angles that close no
    parallelepiped, or a volume of (near) zero (same text as ``problem``); else None."""
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    factor = 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg
    if factor <= 0:
        return shorten(f"degenerate cell: the angles alpha={alpha:g}, beta={beta:g}, gamma={gamma:g} "
                       "degrees close no cell (zero volume)")
    volume = a * b * c * math.sqrt(factor)
    lengths = a * b * c
    if volume < MIN_VOLUME or volume < MIN_NORMALISED_VOLUME * lengths:
        return degenerate_volume(volume)
    return None


def degenerate_volume(volume: float) -> str:
    return f"degenerate cell: volume {volume:.3g} Å³ is zero or near zero"


def is_placeholder_symbol(symbol: str) -> bool:
    """True for a name starting with an IUPAC placeholder symbol (``Uue``, ``Uue1``)."""
    m = re.match(r"[A-Za-z]+", str(symbol).strip())
    return m is not None and PLACEHOLDER_SYMBOL.match(m.group().title()) is not None


def shorten(msg: str, limit: int = MAX_REASON) -> str:
    """One line, at most ``limit`` characters."""
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def reason(prefix: str, exc: BaseException) -> str:
    """A short reason for a parse exception: known causes first, else ``prefix: message``."""
    msg = str(exc).strip()
    if isinstance(exc, KeyError):
        return shorten(f"{prefix}: missing field {msg}")
    if _NONFINITE.search(msg):
        return NONFINITE
    thin = _THIN.search(msg)
    if thin:
        least = min(float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", thin.group(1)))
        return f"degenerate cell: {least:.3g} Å thick along one axis (too flat to be a crystal)"
    if "singular matrix" in msg.lower():
        return "degenerate cell: singular lattice (zero volume)"
    bad = _BAD_SYMBOL.search(msg)
    if bad:
        return unknown_element(bad.group(1) or bad.group(2))
    if "not a valid element" in msg.lower():
        return shorten(f"unknown element: {msg}")
    return shorten(f"{prefix}: {msg or type(exc).__name__}")


def problem(structure: Structure, limits: IngestLimits) -> str | None:
    """Why ``structure`` cannot be evaluated, or None if it can."""
    from pymatgen.core.periodic_table import DummySpecies

    n = len(structure)
    if n == 0:
        return "no atoms"
    if n > limits.max_atoms_per_structure:
        return too_many_atoms(n, limits.max_atoms_per_structure)
    matrix = structure.lattice.matrix
    if not np.isfinite(matrix).all():
        return "non-finite lattice (NaN or inf)"
    if not np.isfinite(structure.cart_coords).all():
        return "non-finite coordinates (NaN or inf)"
    volume = abs(float(np.linalg.det(matrix)))
    lengths = np.linalg.norm(matrix, axis=1)
    if volume < MIN_VOLUME or volume < MIN_NORMALISED_VOLUME * float(np.prod(lengths)):
        return degenerate_volume(volume)
    dummies = sorted({el.symbol for el in structure.composition if isinstance(el, DummySpecies)})
    if dummies:
        return unknown_element(", ".join(dummies))
    if not structure.is_ordered:
        i, site = next((i, s) for i, s in enumerate(structure) if not s.is_ordered)
        occ = ", ".join(f"{sp}:{x:g}" for sp, x in site.species.items())
        kind = "vacancy" if len(site.species) == 1 else "mixed occupancy"
        return f"disordered: partial occupancies not supported (site {i + 1}: {occ}, {kind})"
    return None


def right_handed(structure: Structure) -> Structure:
    """The same crystal on a right-handed cell.

    A left-handed lattice (negative determinant: a negative CIF cell length, a mirrored
    POSCAR or JSON lattice) has its three vectors negated: lengths, angles and every
    Cartesian position stay the same, fractional coordinates change sign (then wrapped
    into the cell). A right-handed structure is returned as is.
    """
    from pymatgen.core.lattice import Lattice
    from pymatgen.core.structure import Structure

    matrix = structure.lattice.matrix
    if float(np.linalg.det(matrix)) >= 0:
        return structure
    return Structure(Lattice(-matrix, pbc=structure.lattice.pbc), structure.species_and_occu,
                     -structure.frac_coords, site_properties=structure.site_properties,
                     properties=structure.properties, labels=structure.labels, to_unit_cell=True)


def finish(source: str, structure: Structure, limits: IngestLimits) -> Item:
    """An Item for a parsed structure: the structure (on a right-handed cell) if it passes
    ``problem``, else the reason."""
    try:
        why = problem(structure, limits)
        if not why:
            structure = right_handed(structure)
    except Exception as exc:  # noqa: BLE001 - a broken object must not crash ingestion
        why = reason("unusable structure", exc)
    return Item(source, error=why) if why else Item(source, structure=structure)
