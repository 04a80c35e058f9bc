"""Minimum interatomic distance check (METRICS.md section 1), vectorised.

Every pair of atoms, periodic images included (an atom and its own image too),
must be at least ``0.5 × (0.7 + r_i + r_j)`` Å apart, r = pymatgen's empirical
atomic radius of the element (Å; oxidation-decorated species use their element's
radius; an element without a radius uses 1.0 Å; a disordered site uses the
occupancy-weighted mean radius). The worst pair is reported as the ratio
distance / threshold (< 1 means too close).

LeMat-GenBench checks the same threshold but only on the minimum-image distance
matrix of distinct sites; we also check each atom against its own periodic images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

SCALE = 0.5
OFFSET = 0.7  # Å
DEFAULT_RADIUS = 1.0  # Å
_SEARCH = 1.5  # pairs with ratio <= this are always found in the first search
# Above this number density (atoms/Å³) some pair is closer than the smallest possible
# threshold (H-H: 0.5 × (0.7 + 2 × 0.25) = 0.6 Å): equal spheres of diameter d pack
# at most 0.7405 of space, so d_min <= (6 × 0.7405 / (π ρ))^(1/3). Such cells (also
# near-degenerate ones) are decided without enumerating their millions of images.
DENSE_LIMIT = 6.6


@cache
def element_radius(symbol: str) -> float:
    """Empirical atomic radius of an element in Å (1.0 Å when pymatgen has none)."""
    from pymatgen.core.periodic_table import Element

    r = Element(symbol).atomic_radius
    return float(r) if r is not None else DEFAULT_RADIUS


def site_radii(structure: Structure) -> npt.NDArray[np.float64]:
    """Radius (Å) of each site; disordered sites use the occupancy-weighted mean."""
    radii = np.empty(len(structure))
    for i, site in enumerate(structure):
        species = site.species
        total = sum(species.values())
        radii[i] = sum(element_radius(sp.symbol) * occ for sp, occ in species.items()) / total
    return radii


@dataclass
class DistanceResult:
    """valid: no pair below its threshold. ratio: min distance/threshold over pairs.
    worst: readable description of the worst pair (elements, distance, threshold)."""

    valid: bool
    ratio: float
    worst: str


def _pairs(structure: Structure, r: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                                                     npt.NDArray[np.float64]]:
    """(centre index, neighbour index, distance) of every pair closer than ``r`` Å."""
    centers, points, _, dists = structure.get_neighbor_list(r, exclude_self=True)
    return centers, points, dists


def check_distances(structure: Structure) -> DistanceResult:
    """Check every pair of ``structure`` against the radius-based threshold."""
    volume = float(structure.lattice.volume)
    density = len(structure) / volume if volume > 0 else float("inf")
    if not density <= DENSE_LIMIT:
        bound = (6 * 0.7405 / (np.pi * density)) ** (1 / 3) if np.isfinite(density) else 0.0
        return DistanceResult(False, float("nan"), f"cell of {density:.3g} atoms/Å³: some pair is closer "
                              f"than {bound:.3g} Å, below every threshold (>= 0.6 Å)")
    radii = site_radii(structure)
    max_t = SCALE * (OFFSET + 2 * radii.max())
    r = _SEARCH * max_t
    centers, points, dists = _pairs(structure, r)
    if len(dists) == 0:
        # Sparse cell: the shortest lattice vector (<= min(a, b, c)) is an image distance.
        r = max(r, float(min(structure.lattice.abc)) * 1.001)
        centers, points, dists = _pairs(structure, r)
    ratio = float((dists / (SCALE * (OFFSET + radii[centers] + radii[points]))).min())
    if ratio * max_t > r:
        # Pairs beyond r have ratio > r / max_t: widen until the minimum found is exact.
        centers, points, dists = _pairs(structure, ratio * max_t * 1.001)
    thresholds = SCALE * (OFFSET + radii[centers] + radii[points])
    ratios = dists / thresholds
    k = int(np.argmin(ratios))
    i, j = int(centers[k]), int(points[k])
    a, b = structure[i].species_string, structure[j].species_string
    worst = (f"{a}-{b} (sites {i},{j}) {dists[k]:.3f} Å vs threshold {thresholds[k]:.3f} Å"
             if i != j else f"{a} site {i} and its periodic image {dists[k]:.3f} Å vs threshold {thresholds[k]:.3f} Å")
    return DistanceResult(bool(ratios[k] >= 1.0), float(ratios[k]), worst)
