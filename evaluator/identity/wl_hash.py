"""Weisfeiler-Lehman hash of a bonded-pairs graph, identical to the one BAWL uses.

BAWL (material-hasher) calls structuregraph-helpers' ``weisfeiler_lehman_graph_hash(G,
node_attr="specie", edge_attr=None, iterations=100, digest_size=16)`` on pymatgen's
StructureGraph, a directed multigraph whose edges run from the lower to the higher site
index. Per iteration each node's new label is
``blake2b(label + "".join(sorted(labels of its successors)))`` (successors counted once;
a self-loop makes a node its own successor), the sorted (label, count) histogram is
appended, and the hash is blake2b of ``str(tuple(histograms))``.

This computes the same strings with plain lists, and once colour refinement is stable
(an iteration that does not increase the number of distinct labels; WL partitions only
ever refine) hashes one representative per class instead of every node: nodes of one
stable class have equal labels and equal multisets of neighbour classes, so every later
label is shared. The output is the same hex string (tested against the reference hasher).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b

import numpy as np


def _h(label: str, digest_size: int) -> str:
    return blake2b(label.encode("ascii"), digest_size=digest_size).hexdigest()


def successors(n_nodes: int, pairs: np.ndarray) -> list[list[int]]:
    """Successor lists of the directed graph lower -> higher index (``pairs``: i <= j)."""
    succ: list[list[int]] = [[] for _ in range(n_nodes)]
    for i, j in np.asarray(pairs, dtype=np.int64).reshape(-1, 2).tolist():
        succ[min(i, j)].append(max(i, j))
    return succ


def wl_hash(labels: Sequence[str], pairs: np.ndarray, iterations: int = 100, digest_size: int = 16) -> str:
    """WL hash of the graph with node labels ``labels`` and unordered pairs ``pairs``
    (directed from the lower to the higher index, as in pymatgen's StructureGraph)."""
    n = len(labels)
    succ = successors(n, pairs)
    lab = [str(x) for x in labels]
    history: list[tuple[str, int]] = []
    n_classes = len(set(lab))
    it = 0
    while it < iterations:
        new = [_h(lab[u] + "".join(sorted([lab[v] for v in succ[u]])), digest_size) for u in range(n)]
        counts = Counter(new)
        history.extend(sorted(counts.items(), key=lambda x: x[0]))
        lab = new
        it += 1
        if len(counts) == n_classes:
            break
        n_classes = len(counts)
    if it < iterations:
        # stable partition: one representative per class from here on
        cls_of = {label: k for k, label in enumerate(dict.fromkeys(lab))}
        node_cls = [cls_of[label] for label in lab]
        reps: dict[int, int] = {}
        for u, k in enumerate(node_cls):
            reps.setdefault(k, u)
        size = Counter(node_cls)
        cls_label = list(cls_of)
        cls_succ = [[node_cls[v] for v in succ[reps[k]]] for k in range(len(cls_label))]
        for _ in range(it, iterations):
            cls_label = [_h(cls_label[k] + "".join(sorted([cls_label[x] for x in cls_succ[k]])), digest_size)
                         for k in range(len(cls_label))]
            history.extend(sorted(((cls_label[k], size[k]) for k in range(len(cls_label))),
                                  key=lambda x: x[0]))
    return _h(str(tuple(history)), digest_size)
