"""Novelty on all 2,473 mp_sample CIFs: vectorised vs pymatgen bonding graph, same run.

    .venv/bin/python bench/novelty_speed.py [--pymatgen-n N] [--skip-pymatgen]

Every CIF of ``structures/mp_sample`` is read with pymatgen's CifParser (not timed) and
treated as valid (``validity_valid`` set, validity not run), then the novelty family runs
against the default MP-20 fingerprint reference, each time with cold fingerprint caches
(no work folder, in-memory cache cleared):

0. (untimed for the comparison) a cold start on 20 structures: the fork server starts;
1. vectorised graph, cheap first, 1 worker, 30 s bound per structure (the default);
1b. the same in this process (no child, no bound);
2. the same with 2 workers (does a pool pay off?);
3. vectorised, every structure fingerprinted (no cheap first), 1 worker, bounded;
4. vectorised, every structure fingerprinted, in this process (no child, no bound);
5. pymatgen's StructureGraph + EconNN (the former default: 2 workers, no bound, every
   structure fingerprinted) on all structures, or on the first ``--pymatgen-n`` (then 3. is
   also re-timed on that subset for the ratio, and the output says so).

Verdict columns are compared between all runs (on the rows they share). Peak memory is
the largest sum of resident memory of this process and all its descendants (pool
children, fork server), sampled every 0.1 s (psutil). The largest single-structure time
is measured in this process, one structure at a time, with the vectorised graph.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.identity import fingerprint_cache as fp_cache
from evaluator.ingest.types import Item
from evaluator.pipeline import build_table, run_families

warnings.filterwarnings("ignore")  # pymatgen and spglib chatter on odd structures

VERDICTS = ["novelty_novel", "novelty_match_id", "novelty_fingerprint_hit", "novelty_novel_as_submitted",
            "novelty_status"]


class PeakRSS:
    """Largest RSS sum of this process + descendants while active (sampled)."""

    def __init__(self, every_s: float = 0.1) -> None:
        import psutil

        self.me = psutil.Process()
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> int:
        total = 0
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # noqa: BLE001 - a child that just ended
                pass
        return total

    def __enter__(self) -> PeakRSS:
        def loop() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self._sample())
                self._stop.wait(self.every_s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def read_mp_sample(data: DataDir) -> list[tuple[str, object]]:
    from pymatgen.io.cif import CifParser

    out = []
    for p in sorted(data.path("structures/mp_sample").glob("*.cif")):
        out.append((p.stem, CifParser(p).parse_structures(primitive=False)[0]))
    return out


def novelty_run(structures, data, options) -> tuple[pd.DataFrame, dict, float, float]:
    """(novelty columns, provenance, wall s, peak GiB) with cold fingerprint caches;
    ``options``: the novelty family's (``NoveltyOptions`` fields)."""
    fp_cache._MEMORY.clear()
    table, parsed = build_table([Item(f"s{i}", s) for i, s in enumerate(structures)])
    table["validity_valid"] = True
    ctx = EvalContext(table, parsed, EvalConfig(options={"novelty": options}), data)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = run_families(ctx, ["novelty"])
        wall = time.perf_counter() - t0
    return ctx.table, out["provenance"]["novelty"], wall, mem.peak / 2**30


def compare_verdicts(full: pd.DataFrame, cheap: pd.DataFrame) -> str:
    """Verdict columns compared on the rows ``full`` decides; rows it leaves undecided (its
    fingerprint failed) that ``cheap`` decides by the formula index are counted apart."""
    decided = full["novelty_status"] == "ok"
    same = full.loc[decided, VERDICTS].equals(cheap.loc[decided, VERDICTS])
    extra = int((~decided & (cheap["novelty_status"] == "ok")).sum())
    return (f"verdicts equal on all {int(decided.sum())} rows it decides: {same}; "
            f"{extra} rows it leaves undecided (fingerprint failed) are decided by the formula index")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pymatgen-n", type=int, default=None,
                    help="run the pymatgen baseline on the first N structures only (default: all)")
    ap.add_argument("--skip-pymatgen", action="store_true")
    ap.add_argument("--n", type=int, default=None, help="first N CIFs only (smoke test)")
    args = ap.parse_args()
    data = DataDir()
    named = read_mp_sample(data)[: args.n]
    structures = [s for _, s in named]
    print(f"{len(structures)} mp_sample structures ({sum(len(s) for s in structures)} sites); "
          f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    # the reference index is built once per process; build it outside the timed runs
    from evaluator.reference.registry import load_reference

    _ = load_reference("mp20", data).novelty

    # the fork server starts (and imports) once per process: time that apart, on 20 structures
    t0 = time.perf_counter()
    novelty_run(structures[:20], data, {"cheap_first": False})
    print(f"cold start (fork server + first child, 20 structures): {time.perf_counter() - t0:.1f} s; "
          "the runs below find the fork server running", flush=True)
    configs = {
        "1. vectorised, cheap first, 1 worker, bounded (default)": {},
        "1b. vectorised, cheap first, in-process, unbounded": {"identity_processes": 1, "fingerprint_timeout_s": None},
        "2. vectorised, cheap first, 2 workers, bounded": {"identity_processes": 2},
        "3. vectorised, all fingerprinted, 1 worker, bounded": {"cheap_first": False},
        "4. vectorised, all fingerprinted, in-process, unbounded": {
            "cheap_first": False, "identity_processes": 1, "fingerprint_timeout_s": None},
    }
    results: dict[str, tuple] = {}
    for label, opts in configs.items():
        results[label] = novelty_run(structures, data, opts)
        t, prov, wall, peak = results[label]
        print(f"{label}: {wall:.1f} s, peak {peak:.2f} GiB; fingerprints computed "
              f"{prov['fingerprints_computed']}, not needed {prov['fingerprints_not_needed']}; "
              f"novel {int(t['novelty_novel'].fillna(False).sum())}, failed "
              f"{int((t['novelty_status'] != 'ok').sum())}", flush=True)

    # largest single-structure time (vectorised, in this process)
    from evaluator.identity.fingerprint import bawl_fingerprint_pair

    times = []
    for name, s in named:
        t0 = time.perf_counter()
        try:
            bawl_fingerprint_pair(s)
        except Exception:  # noqa: BLE001 - timed all the same
            pass
        times.append((time.perf_counter() - t0, name, len(s)))
    times.sort(reverse=True)
    print(f"single structures, vectorised, in-process: total {sum(t for t, _, _ in times):.1f} s, largest "
          + ", ".join(f"{t:.2f} s ({n}, {k} sites)" for t, n, k in times[:3]), flush=True)

    base = results["1. vectorised, cheap first, 1 worker, bounded (default)"][0]
    for label, (t, _, _, _) in results.items():
        print(f"'{label}' vs the default: {compare_verdicts(t, base)}")

    if not args.skip_pymatgen:
        n = args.pymatgen_n or len(structures)
        sub = structures[:n]
        opts = {"fingerprint_graph": "pymatgen", "identity_processes": 2, "fingerprint_timeout_s": None,
                "cheap_first": False}
        t_p, _, wall_p, peak_p = novelty_run(sub, data, opts)
        label_v = "3. vectorised, all fingerprinted, 1 worker, bounded"
        if n < len(structures):
            _, _, wall_v, peak_v = novelty_run(sub, data, configs[label_v])
            _, _, wall_d, peak_d = novelty_run(sub, data, {})
            scope = f"the first {n} of {len(structures)} structures (SUBSET)"
        else:
            wall_v, peak_v = results[label_v][2], results[label_v][3]
            wall_d, peak_d = results["1. vectorised, cheap first, 1 worker, bounded (default)"][2:4]
            scope = f"all {n} structures"
        same = compare_verdicts(t_p, base.iloc[:n].set_axis(t_p.index))
        print(f"\npymatgen graph (former default: 2 workers, unbounded, all fingerprinted) on {scope}: "
              f"{wall_p:.1f} s, peak {peak_p:.2f} GiB; vs the vectorised default: {same}")
        print(f"ratio pymatgen / vectorised (all fingerprinted, 1 worker): {wall_p / wall_v:.1f}x "
              f"({wall_v:.1f} s, peak {peak_v:.2f} GiB); pymatgen / vectorised default (cheap first): "
              f"{wall_p / wall_d:.1f}x ({wall_d:.1f} s, peak {peak_d:.2f} GiB)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
