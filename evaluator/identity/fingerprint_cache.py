"""Cache of BAWL fingerprints keyed by the structure's content.

Key: sha256 of the structure's lattice, species and fractional coordinates (rounded
to 1e-8), so re-scoring the same structure (or SUN re-using novelty) never recomputes.
In memory for the process, and in ``<work_dir>/checkpoints/novelty/bawl.jsonl`` when
the evaluation has a work folder (an interrupted run resumes from it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluator.identity.fingerprint import TIMED_OUT, FingerprintResult, fingerprints

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

_MEMORY: dict[str, FingerprintResult] = {}


def structure_key(structure: Structure) -> str:
    h = hashlib.sha256()
    h.update(np.round(structure.lattice.matrix, 8).tobytes())
    h.update(np.round(structure.frac_coords, 8).tobytes())
    h.update(",".join(site.species_string for site in structure).encode())
    return h.hexdigest()


def cached_fingerprints(structures: Sequence[Structure], cache_file: Path | None = None,
                        processes: int = 2,
                        progress: Callable[[int, int], None] | None = None,
                        timeout_s: float | None = None, graph: str = "vectorised",
                        ) -> tuple[list[FingerprintResult], int]:
    """(fingerprint as given, species-sorted fingerprint, error) per structure, computing
    only those not cached; also returns how many were computed. A timed-out fingerprint is
    returned but not cached (a later run with a larger bound retries it)."""
    keys = [structure_key(s) for s in structures]
    if cache_file is not None and cache_file.exists():
        for line in cache_file.read_text().splitlines():
            try:
                k, fp, fp_sorted, err = json.loads(line)
                _MEMORY.setdefault(k, (fp, fp_sorted, err))
            except ValueError:
                continue  # a torn last line from an interrupted run
    todo = sorted({k: i for i, k in enumerate(keys) if k not in _MEMORY}.values())
    fresh: dict[str, FingerprintResult] = {}
    if todo:
        results = fingerprints([structures[i] for i in todo], processes=processes, progress=progress,
                               timeout_s=timeout_s, graph=graph)
        lines = []
        for i, r in zip(todo, results):
            fresh[keys[i]] = r
            if r[2] == TIMED_OUT:
                continue
            _MEMORY[keys[i]] = r
            lines.append(json.dumps([keys[i], *r]))
        if cache_file is not None and lines:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with open(cache_file, "a") as fh:
                fh.write("\n".join(lines) + "\n")
    return [fresh[k] if k in fresh else _MEMORY[k] for k in keys], len(todo)
