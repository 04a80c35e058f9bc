"""Cheap per-structure features shared by the diversity, distribution and HHI families.

Computed once per evaluation (memoised on the EvalContext) for the valid rows:

- ``counts``: (n, 118) element amounts per cell (atoms of element Z at column Z-1;
  fractional for disordered sites), from the element composition (oxidation
  states ignored).
- a DataFrame with ``nsites``, ``volume`` (Å³), ``density`` (g/cm³),
  ``atom_density`` (atoms/Å³), ``a``/``b``/``c`` (Å), ``packing_fraction``
  (Σ 4/3·π·r_cov³ / V, pymatgen CovalentRadius, as LeMat-GenBench), ``spacegroup``
  (int; from ``validity_spacegroup`` when validity ran, else spglib at symprec
  0.01, angle tolerance 5°; NaN where spglib fails) and ``error`` (None or why the
  structure's features could not be computed).

pymatgen and spglib are imported inside the functions that use them, so importing the
families that share these features stays light.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, SupportsInt

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.typing import NAType

from evaluator.families.validity.metrics import SPACEGROUP as VALIDITY_SPACEGROUP

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

    from evaluator.context import EvalContext

N_ELEMENTS = 118
AMU_G_PER_CM3_A3 = 1.66053906660  # 1 amu/Å³ in g/cm³
SYMPREC = 0.01
ANGLE_TOLERANCE = 5.0
_CTX_KEY = "_families_structure_features"
Floats = npt.NDArray[np.float64]
ElementTables = tuple[Floats, Floats, list[str]]  # masses (amu), covalent radii (Å), symbols; by Z-1


@dataclass
class StructureFeatures:
    index: list[int]  # ctx.table index of each row
    table: pd.DataFrame  # indexed by ``index``
    counts: Floats  # (n, 118) element amounts per cell

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        """Rows whose features were computed."""
        return self.table["error"].isna().to_numpy()


def _element_tables() -> ElementTables:
    """Atomic masses (amu), covalent radii (Å) and symbols indexed by Z-1."""
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
    from pymatgen.core.periodic_table import Element

    masses, radii = np.zeros(N_ELEMENTS), np.zeros(N_ELEMENTS)
    symbols: list[str] = []
    for z in range(1, N_ELEMENTS + 1):
        el = Element.from_Z(z)
        symbols.append(el.symbol)
        masses[z - 1] = float(el.atomic_mass)
        r = CovalentRadius.radius.get(el.symbol)
        if r is None:  # no Cordero covalent radius (Z > 96): empirical atomic radius, else 1.5 Å
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = el.atomic_radius or 1.5
        radii[z - 1] = float(r)
    return masses, radii, symbols


_TABLES: ElementTables | None = None


def element_tables() -> ElementTables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _element_tables()
    return _TABLES


def spacegroup_number(structure: Structure) -> int | None:
    """spglib space-group number (symprec 0.01, angle tolerance 5°), None on failure."""
    import spglib

    try:
        numbers = structure.atomic_numbers
    except AttributeError:  # disordered: spglib needs one species per site
        return None
    cell = (structure.lattice.matrix.tolist(), structure.frac_coords.tolist(), numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE)
    return int(ds.number) if ds is not None else None


def element_amounts(structure: Structure) -> Floats:
    """(118,) element amounts in the cell of ``structure``."""
    row = np.zeros(N_ELEMENTS)
    try:
        z = np.asarray(structure.atomic_numbers, dtype=int)
        np.add.at(row, z - 1, 1.0)
    except AttributeError:  # disordered sites
        for el, amt in structure.composition.element_composition.items():
            row[el.Z - 1] += float(amt)
    return row


def compute_features(structures: Sequence[Structure | None], index: Sequence[int],
                     spacegroups: Sequence[int | None] | None = None) -> StructureFeatures:
    """Features of ``structures`` (rows ``index``); ``spacegroups`` reuses known numbers.
    A structure that is None (not parsed) gets an error row."""
    masses, radii, _ = element_tables()
    vol_per_atom = 4.0 / 3.0 * math.pi * radii**3
    n = len(index)
    counts = np.zeros((n, N_ELEMENTS))
    cols = {k: np.full(n, np.nan) for k in
            ("nsites", "volume", "density", "atom_density", "a", "b", "c", "packing_fraction", "spacegroup")}
    errors: list[str | None] = [None] * n
    for k, s in enumerate(structures):
        try:
            if s is None:
                raise ValueError("no parsed structure")
            counts[k] = element_amounts(s)
            vol = float(s.volume)
            natoms = counts[k].sum()
            cols["nsites"][k] = len(s)
            cols["volume"][k] = vol
            cols["density"][k] = counts[k] @ masses / vol * AMU_G_PER_CM3_A3
            cols["atom_density"][k] = len(s) / vol
            cols["a"][k], cols["b"][k], cols["c"][k] = s.lattice.abc
            cols["packing_fraction"][k] = counts[k] @ vol_per_atom / vol
            sg = spacegroups[k] if spacegroups is not None else None
            if sg is None:
                sg = spacegroup_number(s)
            if sg is None:
                errors[k] = "spglib found no space group (symprec 0.01)"
            else:
                cols["spacegroup"][k] = int(sg)
            if not natoms > 0:
                errors[k] = "structure has no atoms"
        except Exception as exc:  # noqa: BLE001 - one bad structure never stops the family
            counts[k] = 0.0
            errors[k] = f"features failed: {type(exc).__name__}: {exc}"
    table = pd.DataFrame(cols, index=pd.Index(index))
    table["error"] = errors
    return StructureFeatures(list(index), table, counts)


def _as_spacegroup(value: SupportsInt | str | NAType | None) -> int | None:
    """A space-group number from the validity column (int, float or 'Fm-3m (225)')."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or isinstance(value, NAType):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        digits = re.findall(r"\d+", str(value))
        number = int(digits[-1]) if digits else 0
    return number if 1 <= number <= 230 else None


def structure_features(ctx: EvalContext) -> StructureFeatures:
    """Features of ``ctx.valid_index``, computed once per context."""
    index = ctx.valid_index
    cached = ctx.__dict__.get(_CTX_KEY)
    if isinstance(cached, StructureFeatures) and cached.index == index:
        return cached
    spacegroups = None
    if VALIDITY_SPACEGROUP.name in ctx.table:
        spacegroups = [_as_spacegroup(v) for v in ctx.table.loc[index, VALIDITY_SPACEGROUP.name]]
    feats = compute_features([ctx.structures[i] for i in index], index, spacegroups)
    ctx.__dict__[_CTX_KEY] = feats
    return feats


def crystal_system(spacegroup: int) -> int:
    """LeMat-GenBench crystal-system code 1..7 (triclinic..cubic) of a space group."""
    for code, last in enumerate((2, 15, 74, 142, 167, 194, 230), start=1):
        if 1 <= spacegroup <= last:
            return code
    raise ValueError(f"space group {spacegroup} outside 1..230")


CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
