"""Physical plausibility of one structure (METRICS.md section 1).

Checks, all thresholds inclusive unless stated: mass density in [0.01, 25] g/cm³,
number density in [1e-5, 0.5] atoms/Å³, cell volume > 1 Å³, lattice lengths in
[1, 100] Å, angles strictly inside (0°, 180°), and spglib finds a space group at
symprec 0.01 Å, angle tolerance 5° (pymatgen's SpacegroupAnalyzer defaults, as
LeMat-GenBench uses them).

The space group *reported* for a structure (``validity_spacegroup_loose``,
``reported_spacegroup``) is found at a tolerance suited to relaxed structures, a
protocol option (``validity.spacegroup_symprec`` / ``validity.spacegroup_angle_tolerance``,
default 0.1 Å and 5°: the Materials Project's setting for its relaxed structures and
MatterGen's evaluation setting). At 0.01 Å, DFT- and MLIP-relaxed cells whose atoms sit
a few hundredths of an Å off their special positions come out as P1, e.g. the
DFT-relaxed MatterGen-paper CIFs in
``tests/evaluator/families/validity/test_spacegroup_tolerance.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evaluator.structure_features import AMU_G_PER_CM3_A3  # 1 amu/Å³ in g/cm³

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

MASS_DENSITY_RANGE = (0.01, 25.0)  # g/cm³
NUMBER_DENSITY_RANGE = (1e-5, 0.5)  # atoms/Å³
MIN_VOLUME = 1.0  # Å³, strict
LATTICE_LENGTH_RANGE = (1.0, 100.0)  # Å
SYMPREC = 0.01  # Å
ANGLE_TOLERANCE = 5.0  # degrees
REPORT_SYMPREC = 0.1  # Å, default of the reported space group (MP, MatterGen: relaxed structures)
REPORT_ANGLE_TOLERANCE = 5.0  # degrees


@cache
def _element_mass(symbol: str) -> float:
    from pymatgen.core.periodic_table import Element

    return float(Element(symbol).atomic_mass)


def _mass_amu(structure: Structure) -> float:
    """Cell mass in amu (pymatgen's Structure.density without its unit objects)."""
    return float(sum(_element_mass(el.symbol) * amt for el, amt in structure.composition.element_composition.items()))


@dataclass
class Plausibility:
    """Result of the plausibility checks.

    failures: readable reasons, empty when plausible.
    spacegroup: international number (1-230) or None when spglib found none.
    equivalent_atoms: spglib's site -> representative index (None without symmetry);
        the charge cascade reuses it for symmetry-inequivalent sites.
    """

    plausible: bool
    failures: list[str] = field(default_factory=list)
    spacegroup: int | None = None
    mass_density: float = float("nan")
    number_density: float = float("nan")
    equivalent_atoms: npt.NDArray[np.integer[Any]] | None = None


def check_plausibility(structure: Structure) -> Plausibility:
    """Run every plausibility check on ``structure`` (a pymatgen Structure)."""
    failures: list[str] = []
    lattice = structure.lattice
    volume = float(lattice.volume)
    if not volume > MIN_VOLUME:
        failures.append(f"cell volume {volume:.3g} Å³ <= {MIN_VOLUME:g}")
    # Density in g/cm³ from the composition weight (amu) and volume (Å³).
    mass_density = _mass_amu(structure) * AMU_G_PER_CM3_A3 / volume if volume > 0 else float("nan")
    lo, hi = MASS_DENSITY_RANGE
    if not lo <= mass_density <= hi:
        failures.append(f"density {mass_density:.3g} g/cm³ outside [{lo:g}, {hi:g}]")
    number_density = len(structure) / volume if volume > 0 else float("nan")
    lo, hi = NUMBER_DENSITY_RANGE
    if not lo <= number_density <= hi:
        failures.append(f"{number_density:.3g} atoms/Å³ outside [{lo:g}, {hi:g}]")
    lo, hi = LATTICE_LENGTH_RANGE
    bad = [f"{n}={x:.3g}" for n, x in zip("abc", lattice.abc) if not lo <= x <= hi]
    if bad:
        failures.append(f"lattice length {', '.join(bad)} Å outside [{lo:g}, {hi:g}]")
    bad = [f"{n}={x:.3g}" for n, x in zip(("alpha", "beta", "gamma"), lattice.angles) if not 0 < x < 180]
    if bad:
        failures.append(f"lattice angle {', '.join(bad)}° outside (0, 180)")

    spacegroup, equivalent = None, None
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(structure, symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE)
        number = int(sga.get_space_group_number())
        if 1 <= number <= 230:
            spacegroup = number
            equivalent = np.asarray(sga.get_symmetry_dataset().equivalent_atoms)
    except Exception as exc:  # noqa: BLE001 - spglib gives up on degenerate cells in many ways
        failures.append(f"spglib found no space group ({type(exc).__name__}: {exc})"[:200])
    else:
        if spacegroup is None:
            failures.append("spglib found no space group")
    return Plausibility(not failures, failures, spacegroup, mass_density, number_density, equivalent)


def reported_spacegroup(structure: Structure, symprec: float = REPORT_SYMPREC,
                        angle_tolerance: float = REPORT_ANGLE_TOLERANCE) -> int | None:
    """spglib's international number of ``structure`` at the reporting tolerance, None
    where spglib finds none (a degenerate cell)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        number = int(SpacegroupAnalyzer(structure, symprec=symprec,
                                        angle_tolerance=angle_tolerance).get_space_group_number())
    except Exception:  # noqa: BLE001 - spglib gives up on degenerate cells in many ways
        return None
    return number if 1 <= number <= 230 else None
