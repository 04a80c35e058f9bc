"""How many MP-20 materials of ``structures/mp_sample`` find their BAWL fingerprint in
the MP-20 fingerprint file (the README's recall figure), and how the order of the sites
changes that (LeMat-GenBench's WL hash depends on it).

Usage: .venv/bin/python bench/mp20_fingerprint_recall.py [--permuted 150] [--processes 1]
    [--graph vectorised|pymatgen]

``--graph pymatgen`` computes the fingerprints with pymatgen's StructureGraph (the path the
MP-20 file was made with); the default vectorised graph must give the same counts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from pymatgen.core import Structure


from evaluator.data import DataDir
from evaluator.identity.fingerprint import fingerprints
from evaluator.identity.fingerprint_index import load_fingerprint_file


def recall(index, results) -> tuple[int, int, int, int]:
    """(as given found, species-sorted found, either found, failed)."""
    given = sum(g is not None and g in index for g, _, _ in results)
    sorted_ = sum(s is not None and s in index for _, s, _ in results)
    either = sum((g is not None and g in index) or (s is not None and s in index) for g, s, _ in results)
    return given, sorted_, either, sum(e is not None for _, _, e in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--permuted", type=int, default=150, help="members re-listed in random site order")
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--graph", default="vectorised", choices=["vectorised", "pymatgen"])
    args = ap.parse_args()

    data = DataDir()
    sample = data.path("structures/mp_sample")
    meta = pd.read_csv(sample / "metadata.csv")
    mp20_ids = set(pd.read_parquet(data.path("reference/mp20/mp20_hull.parquet"), columns=["material_id"])
                   ["material_id"])
    members = [m for m in meta["material_id"] if m in mp20_ids]
    structures = [Structure.from_file(sample / f"mp_{m}.cif") for m in members]
    index = load_fingerprint_file(data.path("reference/mp20/mp20_bawl_fingerprints.txt.gz"))

    t0 = time.perf_counter()
    given, sorted_, either, failed = recall(index, fingerprints(structures, args.processes, graph=args.graph))
    n = len(structures)
    print(f"MP-20 members in mp_sample (material_id in mp20_hull.parquet): {n}; {args.graph} bonding graph")
    print(f"found, sites as in the CIF (LeMat-GenBench): {given}/{n} ({given / n:.1%})")
    print(f"found, sites species-sorted: {sorted_}/{n}; either: {either}/{n} ({either / n:.1%}); "
          f"failed: {failed}  [{time.perf_counter() - t0:.1f} s]")

    rng = np.random.default_rng(0)
    k = min(args.permuted, n)
    permuted = [Structure.from_sites([s[i] for i in rng.permutation(len(s))]) for s in structures[:k]]
    base = recall(index, fingerprints(structures[:k], args.processes, graph=args.graph))
    perm = recall(index, fingerprints(permuted, args.processes, graph=args.graph))
    print(f"first {k} members, sites randomly permuted: as given {perm[0]}/{k} (unpermuted {base[0]}), "
          f"species-sorted {perm[1]}/{k}, either {perm[2]}/{k}")


if __name__ == "__main__":
    main()
