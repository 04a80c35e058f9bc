"""Per-structure sanity checks applied to every parsed structure, and short reasons.

A failed check never raises: it becomes the ``error`` of the structure's Item.
Lengths in Å, volumes in Å³.
"""

from __future__ import annotations

import re

import numpy as np

from evaluator.config import IngestLimits
from evaluator.ingest.atomguard import too_many_atoms
from evaluator.ingest.types import Item

MIN_VOLUME = 1e-3  # Å³: below this the cell is degenerate
MIN_NORMALISED_VOLUME = 1e-6  # V / (a b c): flat or collinear cells
MAX_REASON = 200  # characters

_NONFINITE = re.compile(r"\b(nan|inf|infinity)\b", re.I)


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
        return "non-finite number (NaN or inf) in the cell or coordinates"
    if "singular matrix" in msg.lower():
        return "degenerate cell: singular lattice (zero volume)"
    if "not a valid element" in msg.lower():
        return shorten(f"unknown element: {msg}")
    return shorten(f"{prefix}: {msg or type(exc).__name__}")


def problem(structure, limits: IngestLimits) -> str | None:
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
        return f"degenerate cell: volume {volume:.3g} Å³ is zero or near zero"
    dummies = sorted({el.symbol for el in structure.composition if isinstance(el, DummySpecies)})
    if dummies:
        return shorten(f"unknown element: {', '.join(dummies)} (not a chemical element)")
    if not structure.is_ordered:
        i, site = next((i, s) for i, s in enumerate(structure) if not s.is_ordered)
        occ = ", ".join(f"{sp}:{x:g}" for sp, x in site.species.items())
        kind = "vacancy" if len(site.species) == 1 else "mixed occupancy"
        return f"disordered: partial occupancies not supported (site {i + 1}: {occ}, {kind})"
    return None


def finish(source: str, structure, limits: IngestLimits) -> Item:
    """An Item for a parsed structure: the structure if it passes ``problem``, else the reason."""
    try:
        why = problem(structure, limits)
    except Exception as exc:  # a broken object must not crash ingestion
        why = reason("unusable structure", exc)
    return Item(source, error=why) if why else Item(source, structure=structure)
