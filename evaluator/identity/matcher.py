"""Structure equivalence with pymatgen's StructureMatcher, made fast and well defined.

Settings (METRICS.md section 2): ltol=0.1, stol=0.3, angle_tol=5°, primitive_cell=True,
scale=True, attempt_supercell=False, SpeciesComparator.

Speed without changing the answer:
- the matcher only matches structures whose composition hash (reduced formula) is
  equal, so structures are compared only inside reduced-formula groups;
- with ``attempt_supercell=False`` two structures whose reduced (Niggli, primitive)
  cells have different site counts can never match (the site-mapping mask is not
  square), so groups are split further by primitive site count;
- each structure is reduced once (Niggli + primitive, exactly as ``group_structures``
  does) and every fit is called with ``skip_structure_reduction=True``;
- a structure alone in its reduced formula is never reduced at all.

Well-defined classes: the matcher is neither transitive nor exactly symmetric, so
classes are the connected components (union-find) of the graph with an edge i—j
(i < j) when ``fit(reduced_i, reduced_j)`` is true. A new structure is tested against
every member of every existing component of its group until one member matches
(the component's first member is tried first); matching several components merges
them. The label of a class is its lowest index (the first occurrence).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core.structure import Structure


class MatcherSettings(TypedDict):
    """StructureMatcher keyword arguments (lengths relative, angles in degrees)."""

    ltol: float
    stol: float
    angle_tol: float
    primitive_cell: bool
    scale: bool
    attempt_supercell: bool


MATCHER_SETTINGS: MatcherSettings = {"ltol": 0.1, "stol": 0.3, "angle_tol": 5, "primitive_cell": True,
                                     "scale": True, "attempt_supercell": False}
# Counters ``equivalence_classes`` fills: "fits", "reductions", "fit_errors".
MatchStats = dict[str, int]


def make_matcher() -> StructureMatcher:
    """The StructureMatcher every identity comparison uses (METRICS.md settings)."""
    # pymatgen's analysis modules take seconds to import: only where a matcher is made
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(**MATCHER_SETTINGS)


def describe() -> dict[str, object]:
    """Provenance of the equivalence used for uniqueness / matcher-confirmed novelty."""
    return {"equivalence": "pymatgen StructureMatcher", **MATCHER_SETTINGS,
            "comparator": "SpeciesComparator",
            "classes": "union-find (connected components) of fit(earlier, later) within "
                       "groups of equal reduced formula and primitive-cell site count"}


def group_key(structure: Structure) -> str:
    """Reduced formula (elements). Structures with unequal keys never match: the matcher
    first requires equal fractional compositions (its comparator hash), which implies
    equal reduced formulas (the key is at most coarser, e.g. it ignores oxidation states)."""
    return structure.composition.reduced_formula


def reduce_structure(structure: Structure, matcher: StructureMatcher | None = None) -> Structure:
    """Niggli-reduced primitive cell, exactly as the matcher computes it before fitting."""
    matcher = matcher or make_matcher()
    (s,) = matcher._process_species([structure])  # type: ignore[no-untyped-call]  # pymatgen: untyped
    return matcher._get_reduced_structure(s, matcher._primitive_cell, niggli=True)


def fit_reduced(a: Structure, b: Structure, matcher: StructureMatcher | None = None) -> bool:
    """``matcher.fit`` on two already-reduced structures (a is the earlier / reference one)."""
    if len(a) != len(b):
        return False
    matcher = matcher or make_matcher()
    return bool(matcher.fit(a, b, skip_structure_reduction=True))


class UnionFind:
    """Disjoint sets over 0..n-1; the root of a set is always its smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> int:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            lo, hi = min(ri, rj), max(ri, rj)
            self.parent[hi] = lo
            return lo
        return ri


def _classes_in_group(members: list[int], reduced: dict[int, Structure], uf: UnionFind,
                      matcher: StructureMatcher, stats: MatchStats) -> None:
    """Union the members of one (formula, primitive size) group that the matcher joins."""
    components: list[list[int]] = []  # each a list of member indices, first = lowest
    for j in members:
        hits: list[int] = []
        for c, comp in enumerate(components):
            for i in comp:
                stats["fits"] += 1
                try:
                    joined = fit_reduced(reduced[i], reduced[j], matcher)
                except Exception:  # noqa: BLE001 - a pathological pair: counted, treated as not equivalent
                    stats["fit_errors"] = stats.get("fit_errors", 0) + 1
                    joined = False
                if joined:
                    hits.append(c)
                    break
        if not hits:
            components.append([j])
            continue
        merged = [j]
        for c in hits:
            for i in components[c]:
                uf.union(i, j)
            merged.extend(components[c])
        components = [comp for c, comp in enumerate(components) if c not in hits]
        components.append(sorted(merged))


def equivalence_classes(structures: Sequence[Structure | None], stats: MatchStats | None = None,
                        reduced: dict[int, Structure] | None = None) -> list[int]:
    """Class label of each structure: the index of its class's first occurrence.

    ``structures[i] is None`` gets its own singleton class. ``stats`` (optional dict)
    receives counts of reductions and fits; ``reduced`` (optional) supplies or caches
    reduced cells by index.
    """
    matcher = make_matcher()
    stats = stats if stats is not None else {}
    stats.setdefault("fits", 0)
    stats.setdefault("reductions", 0)
    reduced = reduced if reduced is not None else {}
    n = len(structures)
    uf = UnionFind(n)
    by_formula: dict[str, list[int]] = defaultdict(list)
    parsed = {i: s for i, s in enumerate(structures) if s is not None}
    for i, s in parsed.items():
        by_formula[group_key(s)].append(i)
    for members in by_formula.values():
        if len(members) < 2:
            continue
        by_size: dict[int, list[int]] = defaultdict(list)
        for i in members:
            if i not in reduced:
                reduced[i] = reduce_structure(parsed[i], matcher)
                stats["reductions"] += 1
            by_size[len(reduced[i])].append(i)
        for group in by_size.values():
            if len(group) > 1:
                _classes_in_group(group, reduced, uf, matcher, stats)
    return [uf.find(i) for i in range(n)]


def duplicate_groups(labels: Sequence[int], index: Sequence[int] | None = None) -> list[list[int]]:
    """Classes with more than one member, as lists of (optionally re-mapped) indices."""
    index = list(index) if index is not None else list(range(len(labels)))
    groups: dict[int, list[int]] = defaultdict(list)
    for pos, lab in enumerate(labels):
        groups[lab].append(index[pos])
    return [sorted(g) for _, g in sorted(groups.items()) if len(g) > 1]


def row_classes(
    rows: Sequence[int],
    structure_of: Callable[[int], Structure | None],
    track: Callable[[Sequence[int]], Iterable[int]] = iter,
) -> tuple[dict[int, int], dict[int, str], MatchStats]:
    """Equivalence classes of table rows: ({row: its class's first row in ``rows`` order},
    {row: why it belongs to no class}, matcher stats).

    A row without a structure, or one the matcher cannot reduce (primitive/Niggli), is
    in no class and gets a reason; it never stops the others. ``track`` wraps the
    iteration over ``rows`` (progress reporting).
    """
    matcher = make_matcher()
    reduced: dict[int, Structure] = {}
    failed: dict[int, str] = {}
    keep: list[int] = []
    kept: list[Structure] = []
    for row in track(rows):
        structure = structure_of(row)
        if structure is None:
            failed[row] = "no parsed structure"
            continue
        try:
            reduced[len(keep)] = reduce_structure(structure, matcher)
        except Exception as exc:  # noqa: BLE001 - recorded per structure, never fatal
            failed[row] = f"primitive/Niggli reduction failed: {type(exc).__name__}: {exc}"[:300]
            continue
        keep.append(row)
        kept.append(structure)
    stats: MatchStats = {}
    labels = equivalence_classes(kept, stats=stats, reduced=reduced)
    return {row: keep[lab] for row, lab in zip(keep, labels)}, failed, stats
