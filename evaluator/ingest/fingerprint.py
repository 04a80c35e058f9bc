"""Content fingerprints of uploaded structures: the same structures give the same digest
whatever the file format, archive, file names or order they came in.

A structure's digest is the sha256 of a canonical text: its lattice matrix (Å, rounded to
``LATTICE_DECIMALS``) and its sites as (species, fractional coordinates wrapped into [0, 1)
and rounded to ``FRAC_DECIMALS``), sites sorted. An upload's digest is the sha256 of its
structures' digests, sorted (a multiset: a structure given twice counts twice), and of its
number of structures that could not be read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

LATTICE_DECIMALS = 4  # Å
FRAC_DECIMALS = 5


def _num(x: float, decimals: int) -> str:
    return f"{round(float(x), decimals) + 0.0:.{decimals}f}"  # + 0.0: no "-0.0"


def _frac(x: float) -> str:
    wrapped = round(float(x) % 1.0, FRAC_DECIMALS) % 1.0  # 0.999999 and 1.0 are 0
    return _num(wrapped, FRAC_DECIMALS)


def canonical_text(structure: Structure) -> str:
    """The order-independent text a structure's digest is taken of."""
    lattice = " ".join(_num(v, LATTICE_DECIMALS) for row in structure.lattice.matrix for v in row)
    sites = sorted(f"{site.species_string} {' '.join(_frac(c) for c in site.frac_coords)}"
                   for site in structure)
    return lattice + "\n" + "\n".join(sites)


def structure_digest(structure: Structure) -> str:
    """sha256 (hex) of ``canonical_text``."""
    return hashlib.sha256(canonical_text(structure).encode()).hexdigest()


def upload_digest(digests: Iterable[str], n_failed: int = 0) -> str:
    """sha256 (hex) of an upload: its structures' digests, sorted, and its unreadable count."""
    body = "\n".join(sorted(digests)) + f"\nunreadable {int(n_failed)}"
    return hashlib.sha256(body.encode()).hexdigest()
