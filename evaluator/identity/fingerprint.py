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

Two ways to the same bonding graph (``graph=``):
- ``"vectorised"`` (default): ``evaluator.identity.bonding_graph`` (one neighbour list for
  all sites, Hoppe's weights in numpy) and ``evaluator.identity.wl_hash``; fingerprints
  are identical to the reference path (``bench/fingerprint_parity.py`` checks every
  structure of the shipped sets, ``tests/evaluator/identity/test_fingerprint_parity.py`` a fixed sample);
- ``"pymatgen"``: the reference, pymatgen's StructureGraph with EconNN and
  structuregraph-helpers' hasher, kept to compare against.

``fingerprints`` runs a batch in child processes (``evaluator.procpool``: forkserver, never
fork) when a per-structure time bound or several workers are asked for; a structure over
the bound gets ``(None, None, "fingerprint timed out")`` and the batch goes on.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from evaluator.identity import bonding_graph as BG
from evaluator.identity.wl_hash import wl_hash as wl_hash_pairs
from evaluator.procpool import run_bounded

if TYPE_CHECKING:
    import networkx as nx
    from pymatgen.core.structure import Structure

# pymatgen, networkx and structuregraph-helpers are imported inside the functions that use
# them: importing this module (families do; the fork server preloads it) stays light, and
# the vectorised default path never loads the graph libraries (seconds per child process).

BAWL_SETTINGS = {"bonding": "EconNN", "tol": 0.2, "cutoff": 10, "use_fictive_radius": True,
                 "wl_iterations": 100, "node_attr": "element", "symprec": 0.01,
                 "composition": "unreduced cell formula"}
GRAPHS = ("vectorised", "pymatgen")
TIMED_OUT = "fingerprint timed out"
# modules the fork server imports once, so each fingerprint child starts warm
PRELOAD = ("evaluator.identity.fingerprint", "pymatgen.core", "pymatgen.symmetry.analyzer")


def bonding_graph(structure: Structure) -> nx.MultiDiGraph:
    """networkx MultiDiGraph of the EconNN StructureGraph (edges run from lower to higher
    site index: pymatgen orients them so)."""
    from pymatgen.analysis.graphs import StructureGraph
    from pymatgen.analysis.local_env import EconNN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sg = StructureGraph.from_local_env_strategy(
            structure.copy(), EconNN(tol=0.2, cutoff=10, use_fictive_radius=True))
    return sg.graph


def _wl(graph: nx.DiGraph) -> str:
    # structuregraph_helpers.hash.generate_hash(g, True, False, 100) is exactly this call;
    # its module cannot be imported with current pymatgen (BrunnerNN_relative was removed),
    # so the hasher it wraps is called directly.
    from structuregraph_helpers._hasher import weisfeiler_lehman_graph_hash

    return str(weisfeiler_lehman_graph_hash(graph, iterations=100, edge_attr=None, node_attr="specie"))


def wl_hash(structure: Structure, graph: nx.MultiDiGraph | None = None) -> str:
    """Weisfeiler-Lehman hash of the species-decorated EconNN bonding graph (site order as given)."""
    graph = graph if graph is not None else bonding_graph(structure)
    for n, site in enumerate(structure):
        graph.nodes[n]["specie"] = site.specie.symbol
    return _wl(graph)


def wl_hash_reordered(structure: Structure, graph: nx.MultiDiGraph, order: list[int]) -> str:
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


def _check_graph(graph: str) -> None:
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {GRAPHS}, got {graph!r}")


def _tail(structure: Structure) -> str:
    return f"_{space_group_number(structure)}_{cell_formula(structure)}"


def _species_labels(structure: Structure) -> list[str]:
    return [site.specie.symbol for site in structure]


def bawl_fingerprint(structure: Structure, graph: str = "vectorised") -> str:
    """``<WL hash>_<space group>_<cell formula>`` of one structure (raises on failure)."""
    _check_graph(graph)
    if graph == "pymatgen":
        return f"{wl_hash(structure)}{_tail(structure)}"
    pairs = BG.econ_bond_graph(structure).pairs
    return f"{wl_hash_pairs(_species_labels(structure), pairs)}{_tail(structure)}"


def bawl_fingerprint_pair(structure: Structure, graph: str = "vectorised") -> tuple[str, str]:
    """(fingerprint with sites as given, fingerprint with sites species-sorted), one graph build."""
    _check_graph(graph)
    if graph == "pymatgen":
        g = bonding_graph(structure)
        tail = _tail(structure)
        given = wl_hash(structure, g) + tail
        order = species_sorted_order(structure)
        if order == list(range(len(structure))):
            return given, given
        return given, wl_hash_reordered(structure, g, order) + tail
    labels = _species_labels(structure)
    pairs = BG.econ_bond_graph(structure).pairs
    tail = _tail(structure)
    given = wl_hash_pairs(labels, pairs) + tail
    order = species_sorted_order(structure)
    if order == list(range(len(structure))):
        return given, given
    new = np.empty(len(order), dtype=np.int64)
    new[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    return given, wl_hash_pairs([labels[i] for i in order], new[pairs]) + tail


FingerprintResult = tuple[str | None, str | None, str | None]  # (as given, species-sorted, error)


def safe_fingerprint_pair(item: tuple[Structure, str]) -> FingerprintResult:
    """``bawl_fingerprint_pair`` of ``(structure, graph)``; a failure is an error string."""
    structure, graph = item
    try:
        return (*bawl_fingerprint_pair(structure, graph), None)
    except Exception as exc:  # noqa: BLE001 - one bad structure never stops the batch
        return None, None, f"fingerprint failed: {type(exc).__name__}: {exc}"[:300]


def warm_up(graph: str = "vectorised") -> None:
    """Import what a fingerprint needs (run in each child before its first item, so the
    per-structure bound measures the fingerprint, not the imports)."""
    for module in PRELOAD + (("pymatgen.analysis.local_env", "pymatgen.analysis.graphs",
                              "structuregraph_helpers._hasher") if graph == "pymatgen" else ()):
        importlib.import_module(module)


def fingerprints(structures: Sequence[Structure], processes: int = 2,
                 progress: Callable[[int, int], None] | None = None,
                 timeout_s: float | None = None, graph: str = "vectorised",
                 ) -> list[FingerprintResult]:
    """(fingerprint as given, species-sorted fingerprint, error) per structure, in order.

    ``timeout_s`` (None: unbounded) bounds each structure: over it, the child computing it
    is killed and the structure gets ``(None, None, "fingerprint timed out")``. With a bound
    or ``processes`` > 1 the work runs in ``processes`` child processes
    (``evaluator.procpool``, forkserver); otherwise in this process. Workers that die
    for reasons that are not a structure's (cannot start, killed whatever they run)
    raise ``evaluator.procpool.PoolFailure``: no structure gets a failure for them.
    """
    _check_graph(graph)
    n = len(structures)
    if not n:
        return []
    if timeout_s is None and processes <= 1:
        out: list[FingerprintResult] = []
        for i, s in enumerate(structures, 1):
            out.append(safe_fingerprint_pair((s, graph)))
            if progress:
                progress(i, n)
        return out
    results: list[FingerprintResult | None] = [None] * n
    with run_bounded(safe_fingerprint_pair, [(s, graph) for s in structures],
                     workers=max(1, int(processes)), timeout_s=timeout_s, preload=PRELOAD,
                     initializer=warm_up, initargs=(graph,)) as outcomes:
        for done, o in enumerate(outcomes, 1):
            if o.ok:
                results[o.index] = o.value
            elif o.timed_out:
                results[o.index] = (None, None, TIMED_OUT)
            else:  # fn raised, or this structure alone, reproducibly, killed its worker
                results[o.index] = (None, None, f"fingerprint failed: {o.error}"[:300])
            if progress:
                progress(done, n)
    return [r if r is not None else (None, None, "fingerprint failed: no result") for r in results]
