"""Structures cut into chunks of about equal atom count, for actors that relax a chunk at a time.

The cost of a relaxation grows with its atom count (one model call per step over all atoms),
so chunks are balanced by atoms, not by structures: largest first, each to the chunk with the
fewest atoms so far (the LPT rule, within 4/3 of the best possible largest chunk).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping

CHUNKS_PER_ACTOR = 4  # at least this many chunks per actor, so a slow or lost chunk is a small share


def n_chunks(total_atoms: int, n_structures: int, n_actors: int, chunk_atoms: int) -> int:
    """How many chunks: about ``chunk_atoms`` atoms each, at least ``CHUNKS_PER_ACTOR`` per
    actor, at most one per structure (and at least one when there is a structure)."""
    if n_structures <= 0:
        return 0
    wanted = max(math.ceil(total_atoms / max(chunk_atoms, 1)), CHUNKS_PER_ACTOR * max(n_actors, 1))
    return max(1, min(n_structures, wanted))


def balanced_chunks(sizes: Mapping[str, int], count: int) -> list[list[str]]:
    """``count`` chunks of the keys of ``sizes`` ({key: atoms}) with about equal atom sums,
    heaviest chunk first; within a chunk, largest structure first. Every key is in exactly
    one chunk; no chunk is empty."""
    count = max(1, min(count, len(sizes)))
    if not sizes:
        return []
    heap = [(0, i) for i in range(count)]  # (atoms so far, chunk index)
    chunks: list[list[str]] = [[] for _ in range(count)]
    atoms = [0] * count
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        total, i = heapq.heappop(heap)
        chunks[i].append(key)
        atoms[i] = total + sizes[key]
        heapq.heappush(heap, (atoms[i], i))
    order = sorted(range(count), key=lambda i: -atoms[i])
    return [chunks[i] for i in order]
