"""All non-MLIP families end to end on the 2,473 mp_sample CIFs (FD off).

    .venv/bin/python bench/nonmlip_families_speed.py [--former-novelty]

validity, uniqueness, novelty (MP-20 reference), diversity, distribution and HHI run
through the pipeline (``run_families``) exactly as an evaluation does, with the
distribution family's Fréchet distance off (it needs an MLIP). Reading the CIFs
(pymatgen's CifParser) is not timed. Prints each family's wall seconds, the total, the
peak resident memory of this process and its children (psutil, sampled), and the load
average. ``--former-novelty`` also runs novelty the way it ran before issue 13 (pymatgen
graph, 2 workers, no bound, every structure fingerprinted) in the same run, for the ratio.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from novelty_speed import PeakRSS, read_mp_sample

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.identity import fingerprint_cache as fp_cache
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, resolve_families, run_families

warnings.filterwarnings("ignore")  # pymatgen and spglib chatter on odd structures

NON_MLIP = ["validity", "uniqueness", "novelty", "diversity", "distribution", "hhi"]


def run(structures, data, options) -> tuple[dict, float, float]:
    fp_cache._MEMORY.clear()
    table, parsed = build_table([Item(f"s{i}", s) for i, s in enumerate(structures)])
    ctx = EvalContext(table, parsed, EvalConfig(options=options), data)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = run_families(ctx, resolve_families(NON_MLIP))
        wall = time.perf_counter() - t0
    return out, wall, mem.peak / 2**30


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--former-novelty", action="store_true")
    ap.add_argument("--n", type=int, default=None, help="first N CIFs only (smoke test)")
    args = ap.parse_args()
    data = DataDir()
    structures = [s for _, s in read_mp_sample(data)[: args.n]]
    print(f"{len(structures)} mp_sample structures; {os.cpu_count()} CPUs; load average at start "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    out, wall, peak = run(structures, data, {"distribution": {"fd": False}})
    for name, sec in out["timings"].items():
        print(f"  {name:<14s} {sec:8.1f} s")
    print(f"  {'total':<14s} {wall:8.1f} s wall; peak memory {peak:.2f} GiB; valid "
          f"{out['metrics']['validity'].get('valid_count')}, novel {out['metrics']['novelty'].get('novel_count')}",
          flush=True)
    print(f"  LeMat-GenBench on the same CIFs (issue 13's measurement, not this run): 2,687 s -> "
          f"{2687 / wall:.0f}x", flush=True)
    if args.former_novelty:
        opts = {"distribution": {"fd": False},
                "novelty": {"fingerprint_graph": "pymatgen", "identity_processes": 2,
                            "fingerprint_timeout_s": None, "cheap_first": False}}
        old, wall_old, peak_old = run(structures, data, opts)
        print(f"former novelty (pymatgen graph, 2 workers, unbounded, all fingerprinted), same run: "
              f"novelty {old['timings']['novelty']:.1f} s vs {out['timings']['novelty']:.1f} s; total "
              f"{wall_old:.1f} s vs {wall:.1f} s; peak {peak_old:.2f} GiB")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
