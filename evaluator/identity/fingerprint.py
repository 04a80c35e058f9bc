"""BAWL structure fingerprints (Bonding-Algorithm Weisfeiler-Lehman), as LeMat-Bulk and
LeMat-GenBench compute them (material-hasher's ``BAWLHasher`` defaults).

``<WL hash>_<space group number>_<cell formula>`` where
- WL hash: structuregraph-helpers' Weisfeiler-Lehman hash (as ``generate_hash(graph,
  node_decorated=True, edge_decorated=False, iterations=100)``) of the networkx MultiDiGraph of the pymatgen
  StructureGraph built with ``EconNN(tol=0.2, cutoff=10, use_fictive_radius=True)``
  on the structure as given (no primitive reduction); node attribute ``specie`` = element;
- space group: spglib via ``SpacegroupAnalyzer(structure, symprec=0.01)`` (default
  angle tolerance 5°);
- cell formula: ``composition.formula`` without spaces (unreduced, e.g. ``Ti1H1``).

Because the formula is unreduced and the graph is built on the cell as given, a
supercell gets a different fingerprint. The WL hash also depends on the order of the
sites (edges are directed from lower to higher site index): listing the same crystal's
sites in another order changes it. We therefore also compute the fingerprint with the
sites sorted by species (pymatgen's ``get_sorted_structure``, the order Materials Project
structures use), from the same bonding graph. Fingerprints pre-screen; the matcher
decides where reference structures are available.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymatgen.core import Structure

BAWL_SETTINGS = {"bonding": "EconNN", "tol": 0.2, "cutoff": 10, "use_fictive_radius": True,
                 "wl_iterations": 100, "node_attr": "element", "symprec": 0.01,
                 "composition": "unreduced cell formula"}


def bonding_graph(structure: Structure):
    """networkx MultiDiGraph of the EconNN StructureGraph (edges run from lower to higher
    site index: pymatgen orients them so)."""
    from pymatgen.analysis.graphs import StructureGraph
    from pymatgen.analysis.local_env import EconNN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sg = StructureGraph.from_local_env_strategy(
            structure.copy(), EconNN(tol=0.2, cutoff=10, use_fictive_radius=True))
    return sg.graph


def _wl(graph) -> str:
    # structuregraph_helpers.hash.generate_hash(g, True, False, 100) is exactly this call;
    # its module cannot be imported with current pymatgen (BrunnerNN_relative was removed),
    # so the hasher it wraps is called directly.
    from structuregraph_helpers._hasher import weisfeiler_lehman_graph_hash

    return weisfeiler_lehman_graph_hash(graph, iterations=100, edge_attr=None, node_attr="specie")


def wl_hash(structure: Structure, graph=None) -> str:
    """Weisfeiler-Lehman hash of the species-decorated EconNN bonding graph (site order as given)."""
    graph = graph if graph is not None else bonding_graph(structure)
    for n, site in enumerate(structure):
        graph.nodes[n]["specie"] = site.specie.symbol
    return _wl(graph)


def wl_hash_reordered(structure: Structure, graph, order: list[int]) -> str:
    """The WL hash the same structure would get with its sites listed in ``order``.

    The WL hash runs on a *directed* graph whose edges point from the lower to the higher
    site index, so it depends on site order. Re-orienting the (order-independent) bonds
    gives the permuted structure's hash without rebuilding the graph (tested equal to
    hashing the permuted structure).
    """
    import networkx as nx

    new = {old: k for k, old in enumerate(order)}
    h = nx.DiGraph()
    for k, old in enumerate(order):
        h.add_node(k, specie=structure[old].specie.symbol)
    for u, v in graph.edges(keys=False):
        a, b = new[u], new[v]
        h.add_edge(min(a, b), max(a, b))
    return _wl(h)


def species_sorted_order(structure: Structure) -> list[int]:
    """Site order of ``structure.get_sorted_structure()`` (by electronegativity, stable)."""
    return sorted(range(len(structure)), key=lambda i: structure[i])


def space_group_number(structure: Structure, symprec: float = 0.01) -> int:
    """spglib space group number (pymatgen SpacegroupAnalyzer, angle tolerance 5°)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return int(SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset().number)


def cell_formula(structure: Structure) -> str:
    """Unreduced cell formula with explicit counts, e.g. ``Cr4Fe1Cu1Se8``."""
    return structure.composition.formula.replace(" ", "")


def bawl_fingerprint(structure: Structure) -> str:
    """``<WL hash>_<space group>_<cell formula>`` of one structure (raises on failure)."""
    return f"{wl_hash(structure)}_{space_group_number(structure)}_{cell_formula(structure)}"


def bawl_fingerprint_pair(structure: Structure) -> tuple[str, str]:
    """(fingerprint with sites as given, fingerprint with sites species-sorted), one graph build."""
    graph = bonding_graph(structure)
    tail = f"_{space_group_number(structure)}_{cell_formula(structure)}"
    given = wl_hash(structure, graph) + tail
    order = species_sorted_order(structure)
    if order == list(range(len(structure))):
        return given, given
    return given, wl_hash_reordered(structure, graph, order) + tail


FingerprintResult = tuple[str | None, str | None, str | None]  # (as given, species-sorted, error)


def _safe_fingerprint(structure_json: str) -> FingerprintResult:
    from pymatgen.core import Structure

    try:
        return (*bawl_fingerprint_pair(Structure.from_str(structure_json, fmt="json")), None)
    except Exception as exc:  # one bad structure never stops the batch
        return None, None, f"fingerprint failed: {type(exc).__name__}: {exc}"[:300]


def fingerprints(structures: Sequence[Structure], processes: int = 2,
                 progress: Callable[[int, int], None] | None = None,
                 ) -> list[FingerprintResult]:
    """(fingerprint as given, species-sorted fingerprint, error) per structure, in order;
    ``processes`` > 1 uses a process pool."""
    payload = [s.to_json() for s in structures]
    n = len(payload)
    out: list[FingerprintResult] = []
    if processes <= 1 or n < 8:
        for i, p in enumerate(payload, 1):
            out.append(_safe_fingerprint(p))
            if progress:
                progress(i, n)
        return out
    import multiprocessing as mp

    ctx = mp.get_context("spawn" if mp.get_start_method(allow_none=True) == "spawn" else "fork")
    with ctx.Pool(processes) as pool:
        for i, r in enumerate(pool.imap(_safe_fingerprint, payload, chunksize=4), 1):
            out.append(r)
            if progress:
                progress(i, n)
    return out
