"""Refuse structures above ``max_atoms_per_structure`` before building them.

pymatgen's CIF reader expands every atom-site row by every symmetry operation and
deduplicates pairwise: quadratic in the expanded atom count, so a small CIF with
many general positions in Fm-3m (192 operations) takes minutes. ``cif_atom_problem``
bounds the count first, from the parsed CIF data (pymatgen's CifBlock dicts):

1. upper bound = site rows x symmetry operations; at most the limit -> nothing to do
   (every ordinary CIF, e.g. all P1 files, stops here);
2. otherwise the rows are expanded with numpy like pymatgen does (same row merging,
   same periodic tolerance, fractional units) and a *lower bound* of pymatgen's
   deduplicated count is taken from the graph of images closer than the tolerance:
   the larger of its number of connected components and a domination bound
   (fewest images whose neighbourhoods cover all images). pymatgen keeps a
   dominating set of that graph, so a structure that really has <= limit atoms is
   never refused here; the final exact check stays in ``checks.problem``.

POSCAR / extxyz / Structure dicts list every atom: their counts are checked
before a Structure is built (``count_problem``).

pymatgen and scipy are imported inside the functions: they run in the reading child
processes, not in the process that cuts the upload into Units.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evaluator.config import IngestLimits

if TYPE_CHECKING:
    from pymatgen.io.cif import CifParser

Floats = npt.NDArray[np.float64]
CifData = dict[str, Any]  # one data block as pymatgen's CifParser.as_dict() gives it

SITE_TOL = 1e-4  # fractional; pymatgen CifParser's default site_tolerance
MAX_IMAGES = 4_000_000  # rows x operations expanded at most (96 MB of float64)
_CHUNK = 200_000  # images per KD-tree query
_SYMOP_KEYS = ("_symmetry_equiv_pos_as_xyz", "_symmetry_equiv_pos_as_xyz_",
               "_space_group_symop_operation_xyz", "_space_group_symop_operation_xyz_")
_MAX_SG_OPS = 192  # largest order of a space group in a conventional cell (F m -3 m)
_NO_ATOM_PREFIX = re.compile(r"OH")  # pymatgen parses "OH"/"OH2" labels as no atom
NONFINITE = "non-finite number (NaN or inf) in the cell or coordinates"


def too_many_atoms(n: int, limit: int) -> str | None:
    """The "too many atoms" reason for an exact atom count ``n``, or None."""
    return f"too many atoms: {n} > max_atoms_per_structure={limit}" if n > limit else None


def count_problem(n: int, limits: IngestLimits) -> str | None:
    """``too_many_atoms`` against ``limits.max_atoms_per_structure`` (IngestLimits)."""
    return too_many_atoms(n, limits.max_atoms_per_structure)


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_atom(symbol: str) -> bool:
    """True when pymatgen's CifParser._parse_symbol turns ``symbol`` into an atom."""
    from pymatgen.core.periodic_table import Element

    if not symbol or _NO_ATOM_PREFIX.match(symbol):
        return False
    return (Element.is_valid_symbol(symbol[:2].title()) or Element.is_valid_symbol(symbol[0].upper())
            or re.match(r"w?[A-Z]", symbol) is not None)


def _rows(data: CifData) -> Floats | None:
    """Fractional coordinates (m, 3) of the rows pymatgen turns into atoms (NaN/inf kept);
    None if unreadable."""
    from pymatgen.io.cif import str2float

    try:
        labels = _as_list(data["_atom_site_label"])
        symbols = _as_list(data.get("_atom_site_type_symbol", labels))
        occus = _as_list(data.get("_atom_site_occupancy", ["1"] * len(labels)))
        xyz = [_as_list(data[f"_atom_site_fract_{c}"]) for c in "xyz"]
        rows = []
        for i in range(len(labels)):
            try:
                occu = str2float(occus[i])
            except (ValueError, TypeError):
                occu = 1.0
            if occu > 0 and _is_atom(str(symbols[i])):
                rows.append([str2float(xyz[0][i]), str2float(xyz[1][i]), str2float(xyz[2][i])])
    except (KeyError, IndexError, ValueError, TypeError):
        return None  # pymatgen reports the problem itself, before expanding anything
    return np.asarray(rows, dtype=float).reshape(-1, 3)


def _wrap(x: Floats) -> Floats:
    """Into [0, 1) (what cKDTree's periodic box needs)."""
    x = x - np.floor(x)
    x[x >= 1.0] = 0.0
    return x


def _dedup(x: Floats) -> Floats:
    """Distinct points (exact up to 1e-9), first occurrences in order."""
    _, first = np.unique(_wrap(np.round(_wrap(x), 9)), axis=0, return_index=True)
    return x[np.sort(first)]


def _lower_bound(points: Floats, tol: float = SITE_TOL) -> tuple[int, bool]:
    """(n, exact): at least n points survive any greedy deduplication at ``tol`` (periodic,
    max-norm); exact when no two points are that close (then every point survives)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(points)
    if n == 0:
        return 0, True
    pairs = cKDTree(points, boxsize=1.0).query_pairs(tol, p=np.inf, output_type="ndarray")
    if len(pairs) == 0:
        return n, True
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_comp = connected_components(graph, directed=False)[0]
    degree = np.bincount(pairs.ravel(), minlength=n)
    # a kept point covers itself and its neighbours: the fewest covering all n
    cover = np.cumsum(np.sort(degree)[::-1] + 1)
    n_dom = int(np.searchsorted(cover, n)) + 1
    return max(int(n_comp), n_dom), False


def _kept_rows(rows: Floats, rot: Floats, trans: Floats, tol: float) -> Floats:
    """pymatgen's row merging: a row whose image lies within ``tol`` of an earlier kept row is merged."""
    from scipy.spatial import cKDTree

    tree = cKDTree(rows, boxsize=1.0)
    n_ops = len(rot)
    earlier: list[list[int]] = [[] for _ in rows]
    step = max(1, _CHUNK // n_ops)
    for a in range(0, len(rows), step):
        images = _wrap(np.einsum("nij,mj->mni", rot, rows[a:a + step]) + trans).reshape(-1, 3)
        hits = cKDTree(images, boxsize=1.0).sparse_distance_matrix(tree, tol, p=np.inf, output_type="ndarray")
        for i, j in zip(hits["i"] // n_ops + a, hits["j"]):
            if j < i:
                earlier[i].append(int(j))
    kept = np.zeros(len(rows), dtype=bool)
    for i, cand in enumerate(earlier):
        kept[i] = not any(kept[j] for j in cand)
    return rows[kept]


def _symops(parser: CifParser, data: CifData, name: str) -> tuple[Floats, Floats]:
    """(rotations (n,3,3), translations (n,3)) as pymatgen would apply them to this block."""
    from pymatgen.io.cif import CifBlock

    block = CifBlock(data, [], name)
    flags = getattr(parser, "feature_flags", {}) or {}
    ops = parser.get_magsymops(block) if flags.get("magcif") else parser.get_symops(block)
    affine = np.unique(np.round(np.array([op.affine_matrix for op in ops], dtype=float), 9), axis=0)
    return affine[:, :3, :3], affine[:, :3, 3]


def _n_listed_ops(data: CifData) -> int:
    for key in _SYMOP_KEYS:
        if data.get(key):
            return len(_as_list(data[key]))
    return _MAX_SG_OPS  # from a symbol or number (or P1): a space group has at most 192


def block_problem(parser: CifParser, name: str, data: CifData, limit: int) -> str | None:
    """Why this CIF block has more than ``limit`` atoms, or None when it may not."""
    labels = data.get("_atom_site_label")
    if not labels or len(_as_list(labels)) * _n_listed_ops(data) <= limit:
        return None
    rows = _rows(data)
    if rows is None:
        return None
    if not np.isfinite(rows).all():  # pymatgen would expand it, uncounted, then refuse it
        return NONFINITE
    rows = _dedup(rows)
    too_many = f"> max_atoms_per_structure={limit}"
    listed, exact = _lower_bound(_wrap(rows.copy()))
    if listed > limit:  # the identity alone gives these
        if exact and _n_listed_ops(data) == 1:
            return too_many_atoms(listed, limit)
        return f"too many atoms: at least {listed} distinct sites listed {too_many}"
    rot, trans = _symops(parser, data, name)
    if len(rows) * len(rot) <= limit:
        return None
    if len(rows) * len(rot) > MAX_IMAGES:
        return (f"too many atoms: {len(rows)} sites x {len(rot)} symmetry operations "
                f"(more than {MAX_IMAGES:,} positions to expand) {too_many}")
    n, exact, n_rows = expanded_lower_bound(rows, rot, trans)
    if n > limit:
        return (f"too many atoms: {'' if exact else 'at least '}{n} after applying {len(rot)} symmetry operations "
                f"to {n_rows} sites {too_many}")
    return None


def expanded_lower_bound(rows: Floats, rot: Floats, trans: Floats) -> tuple[int, bool, int]:
    """(lower bound of pymatgen's atom count, whether it is exact, rows kept after merging)
    for fractional ``rows`` and the operations' rotations/translations."""
    rows = _kept_rows(_wrap(rows.copy()), rot, trans, SITE_TOL)
    images = _dedup((np.einsum("nij,mj->mni", rot, rows) + trans).reshape(-1, 3))
    n, exact = _lower_bound(_wrap(images))
    return n, exact, len(rows)


def cif_atom_problem(parser: CifParser, limits: IngestLimits) -> str | None:
    """First block of ``parser`` (a pymatgen CifParser) above the atom limit, as a reason; else None.

    Never raises: a block this check cannot read is left to pymatgen, which then
    fails before any symmetry expansion.
    """
    limit = limits.max_atoms_per_structure
    for name, data in parser.as_dict().items():
        try:
            why = block_problem(parser, name, data, limit)
        except Exception:  # noqa: BLE001 - the parse that follows reports it
            why = None
        if why:
            return why
    return None
