"""Speed of ``evaluator.ingest.read_inputs`` on the 2,473 MP CIFs of ``structures/mp_sample``.

Baseline in the same run: a bare loop of pymatgen ``CifParser.from_str(...).parse_structures``
over the same files. Prints seconds, structures/s, and our overhead as a ratio, for the
default (each structure read in a child process under ``max_read_seconds``; the first
read_inputs of a process also starts the fork server, which imports pymatgen) and for
``max_read_seconds=None`` (read in this process, no time limit). ``--repeat R`` repeats
the warm runs and the baseline, interleaved, and reports medians (a loaded machine is noisy).

    .venv/bin/python bench/ingest_speed.py [--limit N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N files only")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved repeats (medians reported)")
    args = ap.parse_args()

    from pymatgen.io.cif import CifParser

    from evaluator.config import IngestLimits
    from evaluator.data import DataDir
    from evaluator.ingest import read_inputs

    folder = DataDir().path("structures/mp_sample")
    files = sorted(folder.glob("*.cif"))[: args.limit]

    def baseline() -> tuple[float, int]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = sum(len(CifParser.from_str(f.read_text()).parse_structures(primitive=False)) for f in files)
        return time.perf_counter() - t0, n

    def ours(limits: IngestLimits) -> tuple[float, int, int]:
        t0 = time.perf_counter()
        items = read_inputs(files, limits)
        return time.perf_counter() - t0, len(items), sum(it.error is not None for it in items)

    base, n_base = baseline()
    runs = {"read_inputs (bounded, cold)": [ours(IngestLimits())]}
    bases = [base]
    for _ in range(args.repeat):
        runs.setdefault("read_inputs (bounded, warm)", []).append(ours(IngestLimits()))
        runs.setdefault("read_inputs (in-process)", []).append(ours(IngestLimits(max_read_seconds=None)))
        if args.repeat > 1:
            bases.append(baseline()[0])
    base = statistics.median(bases)

    print(f"files: {len(files)}  (load: {os.getloadavg()[0]:.1f}; medians of {len(bases)} baseline runs "
          f"and {args.repeat} warm runs)")
    print(f"baseline CifParser loop:     {base:.2f} s, {n_base / base:.0f} structures/s")
    for label, results in runs.items():
        secs = statistics.median(r[0] for r in results)
        n, failed = results[0][1], results[0][2]
        print(f"{label}: {secs:.2f} s, {n / secs:.0f} structures/s, {failed} failed, "
              f"ratio to baseline {secs / base:.2f}")


if __name__ == "__main__":
    main()
