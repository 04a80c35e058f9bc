"""The EconNN bonding graph of a whole structure at once (vectorised, same edges as pymatgen).

pymatgen's reference path (``StructureGraph.from_local_env_strategy(structure,
EconNN(tol=0.2, cutoff=10, use_fictive_radius=True))``) asks for the neighbours of one
site at a time and builds a Python object per neighbour. Here one periodic neighbour list
(``Structure.get_neighbor_list``: the same cython ``find_points_in_spheres`` that
``get_neighbors`` calls, so the same pairs and bit-identical distances) covers all sites,
and Hoppe's effective-coordination weights are computed in numpy for every centre at once.

pymatgen's rule, per centre site ``c`` (``EconNN.get_nn_info``):
- neighbours: every periodic image within ``cutoff`` (+1e-8) except the site itself;
- fictive ionic radius of each neighbour ``p`` at distance ``d``:
  ``d * r_c / (r_c + r_p)`` with ``r`` from pymatgen's ``_get_radius`` (ionic radius for an
  oxidation-state decorated site, else 0) and, when that is 0, ``_get_default_radius``
  (covalent radius, else atomic radius). The same private functions are called here, once
  per species, so the radii are pymatgen's own;
- mean fictive ionic radius (MEFIR): ``sum(fir * e) / sum(e)``, ``e = exp(1 - (fir / m)**6)``
  with ``m`` = the smallest fir at first, then the previous mean, iterated while successive
  means differ by more than 1e-4;
- bond to ``p`` iff ``d < cutoff`` and ``exp(1 - (fir / mean)**6) > tol``.

``StructureGraph`` then adds each bond as an edge from the lower to the higher site index,
keyed by the lattice image, and drops a bond of a site to itself in the same image. The
WL hash used by BAWL walks ``G.neighbors`` (successors, each once) and ignores edge data,
so what it sees is exactly the set of unordered site pairs ``(i <= j)`` joined by at least
one bond (a self-pair ``(i, i)`` when a site bonds to one of its own images). Bonds
found from either end give the same pair, so the union over centres is taken.

Exactness. Distances are bit-identical; ``d * (r_c / (r_c + r_p))`` is the same IEEE
arithmetic. pymatgen sums the MEFIR terms sequentially in its neighbour order and uses
``math.exp``/``**``; numpy's order and its exp/pow may differ in the last bits. That can
only change a verdict where a weight lies within rounding of ``tol`` or a mean-change
within rounding of 1e-4 (which changes the number of MEFIR iterations). Such centres are
detected with a wide margin (1e-9 on the weight, 1e-12 on the convergence step) and
re-solved with pymatgen's own ``EconNN.get_nn_info`` for that site: pymatgen's rule, not
a guess. Structures with coincident atoms (distance <= 1e-8 Å between two sites), a site
without any neighbour within the cutoff, or non-periodic axes go through pymatgen's
whole-structure path (which raises exactly as before where it raised).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pymatgen.analysis.local_env import EconNN
    from pymatgen.core.periodic_table import Element, Species
    from pymatgen.core.sites import PeriodicSite
    from pymatgen.core.structure import Structure

# pymatgen.analysis.local_env takes seconds to import: only the fallbacks (ambiguous
# centres, whole structures on pymatgen's path) import it, inside the functions below.

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

TOL = 0.2
CUTOFF = 10.0
NUMERICAL_TOL = 1e-8  # pymatgen's get_neighbor_list default (coincidence / cutoff slack)
CONVERGENCE = 1e-4  # EconNN's MEFIR iteration stops when successive means differ by <= this
WEIGHT_MARGIN = 1e-9  # |w - tol| below this: re-solve the centre with pymatgen
STEP_MARGIN = 1e-12  # |step - 1e-4| below this: re-solve the centre with pymatgen


@dataclass(frozen=True)
class BondGraph:
    """Undirected bonded site pairs ``(i, j)`` with ``i <= j`` (sorted, unique).

    ``n_pymatgen_centres``: centres whose bonds came from pymatgen's ``get_nn_info``
    (numerically ambiguous); ``whole_structure_pymatgen``: why the whole structure went
    through pymatgen's path (None when vectorised)."""

    n_sites: int
    pairs: Ints
    n_pymatgen_centres: int = 0
    whole_structure_pymatgen: str | None = None


def _econ(tol: float = TOL, cutoff: float = CUTOFF) -> EconNN:
    from pymatgen.analysis.local_env import EconNN

    return EconNN(tol=tol, cutoff=cutoff, use_fictive_radius=True)


def _covalent_radii() -> dict[str, float]:
    try:  # pymatgen-core layout
        from pymatgen.core.molecule_structure_comparator import CovalentRadius
    except ImportError:  # older pymatgen
        from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
    return CovalentRadius.radius


def _default_radius(specie: Element | Species) -> float | None:
    """pymatgen's ``local_env._get_default_radius``: covalent radius, else atomic radius
    (None when pymatgen knows neither)."""
    try:
        return _covalent_radii()[specie.symbol]
    except Exception:  # noqa: BLE001 - the same fallback as pymatgen's
        return specie.atomic_radius


def _pymatgen_radius(site: PeriodicSite) -> float | None:
    """pymatgen's own ``_get_radius`` (ionic radius of an oxidation state), then default."""
    from pymatgen.analysis.local_env import EconNN

    local_env = sys.modules[EconNN.__module__]  # where the private helpers live
    r: float = local_env._get_radius(site)
    if r != 0:
        return r
    default: float | None = local_env._get_default_radius(site)
    return default


def site_radii(structure: Structure) -> Floats:
    """Per site, the radius EconNN's fictive-radius rule uses.

    A site without an oxidation state (an Element) gets 0 from pymatgen's ``_get_radius``
    (with a warning), hence ``_get_default_radius``: that rule is applied here directly,
    which spares importing ``local_env`` (seconds per process). Decorated sites go through
    pymatgen's own functions."""
    cache: dict[Element | Species, float | None] = {}
    out = np.empty(len(structure))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No oxidation states specified on sites!"
        for k, site in enumerate(structure):
            specie = site.specie  # raises on a disordered site, as pymatgen's path does
            if specie not in cache:
                cache[specie] = _pymatgen_radius(site) if hasattr(specie, "oxi_state") else _default_radius(specie)
            radius = cache[specie]
            if radius is None:  # e.g. Bk: pymatgen's arithmetic fails on None too
                raise TypeError(f"no covalent or atomic radius for {specie} (EconNN cannot weigh its bonds)")
            out[k] = radius
    return out


def _pairs_of(n_sites: int, centres: Ints, points: Ints, images: Ints) -> Ints:
    """Unique (min, max) site pairs of directed bonds, dropping a site's bond to itself in
    the same image (StructureGraph.add_edge ignores those)."""
    same_image_self = (centres == points) & ~np.any(images != 0, axis=1)
    a, b = centres[~same_image_self], points[~same_image_self]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keys = np.unique(lo.astype(np.int64) * max(n_sites, 1) + hi)
    return np.stack([keys // max(n_sites, 1), keys % max(n_sites, 1)], axis=1).astype(np.int64)


def pymatgen_pairs(structure: Structure, tol: float = TOL, cutoff: float = CUTOFF) -> Ints:
    """Bonded pairs of pymatgen's reference path (StructureGraph + EconNN), for comparison."""
    from pymatgen.analysis.graphs import StructureGraph

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sg = StructureGraph.from_local_env_strategy(structure.copy(), _econ(tol, cutoff))
    edges = np.array([(u, v) for u, v in sg.graph.edges(keys=False)], dtype=np.int64).reshape(-1, 2)
    n = len(structure)
    return _pairs_of(n, edges[:, 0], edges[:, 1], np.ones((len(edges), 3), dtype=np.int64))


def _mefir(fir: Floats, centres: Ints, m: Floats, n: int) -> Floats:
    """Hoppe's mean fictive ionic radius per centre, reference radius ``m`` per centre."""
    e = np.exp(1.0 - (fir / m[centres]) ** 6)
    return np.bincount(centres, weights=fir * e, minlength=n) / np.bincount(centres, weights=e, minlength=n)


def econ_bond_graph(structure: Structure, tol: float = TOL, cutoff: float = CUTOFF) -> BondGraph:
    """The EconNN(tol, cutoff, use_fictive_radius=True) bonded pairs of ``structure``."""
    n = len(structure)
    radii = site_radii(structure)
    if not all(structure.pbc):
        return BondGraph(n, pymatgen_pairs(structure, tol, cutoff), 0, "not periodic along every axis")
    centres, points, images, dist = structure.get_neighbor_list(r=cutoff, numerical_tol=NUMERICAL_TOL)
    centres = centres.astype(np.int64)
    points = points.astype(np.int64)
    if len(dist) and float(dist.min()) <= NUMERICAL_TOL:
        # pymatgen's single-site neighbour search keeps some coincident atoms (different
        # species) and drops others (any at site 0): its own path decides
        return BondGraph(n, pymatgen_pairs(structure, tol, cutoff), 0, "coincident atoms")
    counts = np.bincount(centres, minlength=n)
    if n and counts.min() == 0:
        # EconNN takes min() of an empty list there (ValueError): its own path raises
        return BondGraph(n, pymatgen_pairs(structure, tol, cutoff), 0, "a site without neighbours")

    fir = dist * (radii[centres] / (radii[centres] + radii[points]))
    minimum = np.full(n, np.inf)
    np.minimum.at(minimum, centres, fir)
    mean = _mefir(fir, centres, minimum, n)
    prev = np.full(n, np.inf)
    active = np.ones(n, dtype=bool)
    ambiguous = np.zeros(n, dtype=bool)
    for _ in range(10_000):  # pymatgen: "guaranteed to converge"; a bound all the same
        step = np.abs(prev - mean)
        ambiguous |= active & (np.abs(step - CONVERGENCE) < STEP_MARGIN)
        active &= step > CONVERGENCE
        if not active.any():
            break
        new = _mefir(fir, centres, mean, n)
        prev = np.where(active, mean, prev)
        mean = np.where(active, new, mean)
    else:
        ambiguous |= active
    w = np.exp(1.0 - (fir / mean[centres]) ** 6)
    bonded = (dist < cutoff) & (w > tol)
    near = np.abs(w - tol) < WEIGHT_MARGIN
    ambiguous[centres[near]] = True

    keep = bonded & ~ambiguous[centres]
    c, p, img = centres[keep], points[keep], images[keep]
    redo = np.flatnonzero(ambiguous)
    if len(redo):
        econ = _econ(tol, cutoff)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No oxidation states specified on sites!"
            extra = [(int(k), nn["site_index"], nn["image"]) for k in redo
                     for nn in econ.get_nn_info(structure, int(k))]
        if extra:
            c = np.concatenate([c, np.array([e[0] for e in extra], dtype=np.int64)])
            p = np.concatenate([p, np.array([e[1] for e in extra], dtype=np.int64)])
            img = np.concatenate([img, np.array([e[2] for e in extra], dtype=float).reshape(-1, 3)])
    return BondGraph(n, _pairs_of(n, c, p, np.rint(img).astype(np.int64)), len(redo), None)
