"""Benchmark: uniqueness and novelty vs the naive all-pairs StructureMatcher approach.

    .venv/bin/python bench/identity_speed.py [--n 2500] [--subset 150] [--processes 2]

Workload: structures/mp_sample (2,473 real MP crystals) topped up to --n with perturbed
copies (0.5 % strain + translation + site permutation) of random members, so there are
real duplicates to find. Everything is measured in this one run on this machine:

- uniqueness: ours (one reduction per structure, fits only within reduced-formula /
  primitive-size groups, union-find) vs naive all-pairs ``StructureMatcher.fit`` over
  all n(n-1)/2 pairs. The naive time is measured on the first --subset structures and
  extrapolated quadratically (the output says so); the two agree on the subset's classes.
- novelty against a structure reference (the mp_sample CIFs as reference, built with
  ``reference build``'s code): ours (formula-indexed, fingerprint-first matcher) vs naive
  (fit every query against every reference structure), naive extrapolated linearly in
  queries × reference size from a measured sample of pairs.
- novelty against MP-20 fingerprints: fingerprints (--processes workers) + lookup, vs the
  naive matcher against 45,229 reference structures (per-pair cost measured, extrapolated).
- fingerprint lookup: the 44,654-entry MP-20 index vs a 10× larger synthetic index.
- memory: measured bytes per entry of the fingerprint index, scaled to 5 M entries.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import tracemalloc
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from evaluator.data import DataDir
from evaluator.identity import matcher as M

warnings.filterwarnings("ignore")  # pymatgen and spglib chatter on odd structures


def load_workload(n: int, seed: int = 0):
    from pymatgen.core import Structure

    from evaluator.build.reference_from_cifs import find_cifs, read_cif

    files = find_cifs([DataDir().path("structures/mp_sample")])
    base = [(f.stem, read_cif(f)[0][1]) for f in files]
    rng = random.Random(seed)
    out = list(base)
    nprng = np.random.default_rng(seed)
    while len(out) < n:
        sid, s = rng.choice(base)
        c = s.copy()
        c.apply_strain(list(nprng.uniform(-0.005, 0.005, 3)))
        c.translate_sites(list(range(len(c))), list(nprng.random(3)))
        c = Structure.from_sites([c[i] for i in nprng.permutation(len(c))])
        out.append((f"{sid}~copy{len(out)}", c))
    return out[:n], base


def naive_classes(structures):
    m = M.make_matcher()
    uf = M.UnionFind(len(structures))
    for i in range(len(structures)):
        for j in range(i + 1, len(structures)):
            if m.fit(structures[i], structures[j]):
                uf.union(i, j)
    return [uf.find(i) for i in range(len(structures))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--subset", type=int, default=150)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    t = time.perf_counter()
    work, base = load_workload(args.n)
    n_base = len(base)
    structures = [s for _, s in work]
    print(f"workload: {len(work)} structures ({min(n_base, len(work))} mp_sample + "
          f"{max(0, len(work) - n_base)} perturbed copies), read in {time.perf_counter() - t:.1f} s; "
          f"cpu count {os.cpu_count()}")

    # ---- uniqueness ---------------------------------------------------------------
    stats: dict = {}
    t = time.perf_counter()
    labels = M.equivalence_classes(structures, stats=stats)
    t_ours = time.perf_counter() - t
    n_classes = len(set(labels))
    k = args.subset
    t = time.perf_counter()
    naive_sub = naive_classes(structures[:k])
    t_naive_sub = time.perf_counter() - t
    ours_sub = M.equivalence_classes(structures[:k])
    agree = ours_sub == naive_sub
    pairs = len(structures) * (len(structures) - 1) / 2
    t_naive = t_naive_sub * pairs / (k * (k - 1) / 2)
    print("\n== uniqueness ==")
    print(f"ours: {t_ours:.1f} s, {n_classes} classes, {stats['reductions']} reductions, "
          f"{stats['fits']} matcher fits")
    print(f"naive all-pairs: measured {t_naive_sub:.1f} s on the first {k} structures "
          f"({k * (k - 1) // 2} pairs); EXTRAPOLATED quadratically to {int(pairs)} pairs: {t_naive:.0f} s")
    print(f"classes on the subset agree with naive all-pairs: {agree}")
    print(f"speed-up uniqueness: {t_naive / t_ours:.0f}x")

    # ---- fingerprints (shared by both novelty modes) ----------------------------------
    from evaluator.identity.fingerprint_cache import cached_fingerprints

    t = time.perf_counter()
    fps, _ = cached_fingerprints(structures, processes=args.processes)
    t_fp = time.perf_counter() - t
    n_fail = sum(f[0] is None for f in fps)
    print(f"\n== BAWL fingerprints ==\n{len(fps)} structures in {t_fp:.1f} s with {args.processes} "
          f"processes ({1000 * t_fp / len(fps):.0f} ms/structure wall; {n_fail} failed)")

    # ---- novelty against a structure reference (mp_sample) ------------------------------
    import tempfile

    from evaluator.build.reference_from_cifs import build_from_cifs, find_cifs
    from evaluator.identity.structure_index import StructureIndex

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_from_cifs(find_cifs([DataDir().path("structures/mp_sample")]), Path(tmp) / "ref",
                        processes=args.processes)
        t_build = time.perf_counter() - t
        idx = StructureIndex(Path(tmp) / "ref")
        t = time.perf_counter()
        matched = [idx.match(s, [f[0], f[1]]) for s, f in zip(structures, fps)]
        t_nov = time.perf_counter() - t
    n_known = sum(m.match_id is not None for m in matched)
    ref_structs = [s for _, s in base]
    m = M.make_matcher()
    rng = random.Random(1)
    sample = [(rng.randrange(len(structures)), rng.randrange(n_base)) for _ in range(3000)]
    t = time.perf_counter()
    for qi, ri in sample:
        m.fit(ref_structs[ri], structures[qi])
    per_pair = (time.perf_counter() - t) / len(sample)
    t_naive_nov = per_pair * len(structures) * n_base
    print(f"\n== novelty vs a structure reference ({n_base} mp_sample structures) ==")
    print(f"reference build (fingerprints cached in this process): {t_build:.1f} s")
    print(f"ours: {t_nov:.1f} s matcher stage + {t_fp:.1f} s fingerprints = {t_nov + t_fp:.1f} s; "
          f"{n_known}/{len(structures)} known (all are members or perturbed copies of members)")
    print(f"naive: {1e3 * per_pair:.2f} ms per random query-reference pair (measured on "
          f"{len(sample)} pairs) x {len(structures)} x {n_base} pairs = EXTRAPOLATED {t_naive_nov:.0f} s")
    print(f"speed-up novelty (structures): {t_naive_nov / (t_nov + t_fp):.0f}x")

    # ---- novelty against MP-20 fingerprints + lookup scaling ------------------------------
    from evaluator.identity.fingerprint_index import FingerprintIndex, read_fingerprint_lines

    lines = read_fingerprint_lines(DataDir().path("reference/mp20/mp20_bawl_fingerprints.txt.gz"))
    idx45 = FingerprintIndex(lines)
    rs = np.random.default_rng(2)
    synth = lines + [f"{rs.bytes(16).hex()}_{rs.integers(1, 231)}_X{k}" for k in range(9 * len(lines))]
    idx450 = FingerprintIndex(synth)
    queries = [f[0] for f in fps]
    reps = 20
    timings = {}
    for name, ix in (("45k", idx45), ("450k", idx450)):
        t = time.perf_counter()
        for _ in range(reps):
            res = ix.lookup(queries)
        timings[name] = (time.perf_counter() - t) / reps
    hits = sum(r is not None for r in res)
    t_naive_mp20 = per_pair * len(structures) * 45_229
    print("\n== novelty vs MP-20 fingerprints ==")
    print(f"lookup of {len(queries)} fingerprints: {1e3 * timings['45k']:.1f} ms in the {len(idx45):,}-entry "
          f"index, {1e3 * timings['450k']:.1f} ms in a {len(idx450):,}-entry synthetic index "
          f"(ratio {timings['450k'] / timings['45k']:.2f}; {hits} hits)")
    print(f"ours: {t_fp + timings['45k']:.1f} s (fingerprints dominate); naive matcher vs 45,229 "
          f"structures: EXTRAPOLATED {t_naive_mp20:.0f} s -> speed-up {t_naive_mp20 / (t_fp + timings['45k']):.0f}x")

    # ---- memory ------------------------------------------------------------------------
    tracemalloc.start()
    base_mem = tracemalloc.get_traced_memory()[0]
    with_ids = FingerprintIndex(synth, ids=[f"agm{k:09d}" for k in range(len(synth))])
    per_entry_ids = (tracemalloc.get_traced_memory()[0] - base_mem) / len(synth)
    tracemalloc.stop()
    per_entry = idx450.keys.nbytes / len(idx450)
    print(f"\n== memory ==\nfingerprint index: {per_entry:.0f} B/entry without ids (measured) -> "
          f"{per_entry * 5e6 / 2**20:.0f} MiB for 5 M entries; with 12-character string ids (id strings "
          f"included) {per_entry_ids:.0f} B/entry (tracemalloc) -> "
          f"{per_entry_ids * 5e6 / 2**20:.0f} MiB for 5 M entries")
    del with_ids


if __name__ == "__main__":
    main()
