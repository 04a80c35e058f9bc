"""What a reference covers, in one sentence and two numbers (``Reference.describe()["coverage"]``).

``{"description": str, "n_structures": int, "max_sites": int | None}``:
``max_sites`` is the largest cell the novelty reference can match against. A submitted
structure whose primitive cell has more sites than that can never be found in the
reference, so "novel" then only means "not coverable" (per-structure flag
``novelty_beyond_reference_size``, :func:`beyond_reference_size`).

- MP-20 fingerprints: ``n_structures`` counts the distinct fingerprints in the file
  (44,654 for the 45,229 MP-20 materials); cell sizes are read from the cell formula that
  ends every BAWL fingerprint (MP-20 holds Materials Project cells of at most 20 atoms).
- Built references (CIFs, LeMat-Bulk): the matcher's reduced primitive-cell size of
  each row (``prim_nsites``), or its stored cell size where that is unknown (an upper
  bound of the primitive size).
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.identity import matcher as M
from evaluator.reference import Coverage

if TYPE_CHECKING:
    import pandas as pd
    from pymatgen.core.structure import Structure

    from evaluator.reference import Reference
    from evaluator.reference.hull import HullReference

_COUNT = re.compile(r"[A-Z][a-z]?(\d*(?:\.\d+)?)")
IMPOSSIBLE = "a structure whose primitive cell is larger than any reference cell cannot be matched"


def formula_sites(formula: str) -> int:
    """Atoms of a cell formula such as ``Cr4Fe1Cu1Se8`` (an element without a count is 1)."""
    return int(round(sum(float(n) if n else 1.0 for n in _COUNT.findall(formula))))


def mp20_coverage(fingerprints: Path, hull: Path | None = None) -> Coverage:
    """Coverage of the embedded MP-20 reference (fingerprint file + optional hull parquet)."""
    with gzip.open(fingerprints, "rt") as fh:
        distinct = {line.strip() for line in fh} - {""}
    n = len(distinct)
    largest = max((formula_sites(f.rsplit("_", 1)[-1]) for f in distinct), default=0)
    hull_note = ""
    if hull is not None and Path(hull).exists():
        import pyarrow.parquet as pq

        hull_note = (f"; the MP-20 stability hull has {pq.ParquetFile(hull).metadata.num_rows:,} near-hull "
                     f"entries and lacks competing phases larger than {largest} atoms")
    return {"description": f"MP-20: {n:,} distinct fingerprints of Materials Project structures with at "
                           f"most {largest} atoms per cell; {IMPOSSIBLE}{hull_note}",
            "n_structures": n, "max_sites": largest or None}


def built_coverage(path: Path, manifest: dict[str, Any]) -> Coverage:
    """Coverage of a reference folder made by ``reference build`` or ``reference lemat``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    largest: int | None = None
    for part in manifest.get("parts", []):
        t = pq.read_table(Path(path) / part["file"], columns=["nsites", "prim_nsites"])
        if t.num_rows == 0:
            continue
        size = pc.coalesce(t["prim_nsites"], t["nsites"])
        m = pc.max(size).as_py()
        if m is not None:
            largest = m if largest is None else max(largest, m)
    n = int(manifest.get("n_rows", 0))
    kind = (manifest.get("source") or {}).get("kind")
    kinds: dict[str | None, str] = {"lemat-bulk": "LeMat-Bulk structures",
                                    "cifs": "structures built from CIF files"}
    what = kinds.get(kind, "reference structures")
    name = manifest.get("id", Path(path).name)
    size = (f"largest primitive cell {largest} sites" if largest is not None else "cell sizes unknown")
    complete = "" if manifest.get("complete") else " (build incomplete)"
    return {"description": f"{name}: {n:,} {what}{complete}; {size}; {IMPOSSIBLE}",
            "n_structures": n, "max_sites": int(largest) if largest is not None else None}


def primitive_sites(structure: Structure) -> int:
    """Sites of the primitive cell the identity matcher compares (Niggli + primitive)."""
    return len(M.reduce_structure(structure))


def beyond_reference_size(structures: Sequence[Structure | None], rows: list[int],
                          reference: Reference) -> pd.Series[Any]:
    """Per row (boolean, null when unknown): its primitive cell has more sites than the
    largest reference cell, so the reference cannot contain it.

    A primitive cell has at most the cell's sites and at least those of one formula unit
    (the cell's sites over the gcd of its element counts), so only a structure between
    the two bounds is reduced; most uploads need no reduction at all.
    """
    import pandas as pd

    coverage = reference.coverage
    max_sites = coverage.get("max_sites") if coverage else None
    out = pd.Series(pd.NA, index=pd.Index(rows), dtype="boolean")
    if max_sites is None:
        return out
    for i in rows:
        s = structures[i]
        if s is None:
            continue
        if len(s) <= max_sites:
            out[i] = False
            continue
        counts = [int(round(n)) for n in s.composition.values()]
        if len(s) // math.gcd(*counts) > max_sites:
            out[i] = True
            continue
        try:
            out[i] = primitive_sites(s) > max_sites
        except Exception:  # noqa: BLE001 - reduction failed: unknown, never a guess
            out[i] = pd.NA
    return out


SPARSE_RULE = {
    "rule": "sparse when n_ref_compositions < n_elements + 1",
    "n_ref_compositions": "distinct reduced compositions among the reference hull entries whose elements "
                          "are a subset of the structure's chemical system (polymorphs count once; the "
                          "synthetic zero-energy elemental terminals not counted)",
    "why": "a chemical system of k elements has k end members; with at most k reference compositions the "
           "reference knows no compound of the system (at best its elements), so E_hull is measured "
           "against the elemental references alone and any negative formation energy looks stable",
}


def sparse_chemsys(structures: Sequence[Structure | None], rows: list[int],
                   hull: HullReference) -> pd.Series[Any]:
    """Per row (boolean): its chemical system has fewer than n_elements + 1 distinct reference
    compositions (``SPARSE_RULE``)."""
    import pandas as pd

    from evaluator.reference.hull import chemsys_key

    out = pd.Series(pd.NA, index=pd.Index(rows), dtype="boolean")
    counts: dict[tuple[str, ...], int] = {}
    for i in rows:
        s = structures[i]
        if s is None:
            continue
        key = chemsys_key(e.symbol for e in s.composition.element_composition.elements)
        if key not in counts:
            counts[key] = len({e.composition.reduced_formula for e in hull.entries_in(key)})
        out[i] = counts[key] < len(key) + 1
    return out
