"""Speed of ``evaluator.ingest.read_inputs`` on the 2,473 MP CIFs of ``structures/mp_sample``.

Baseline in the same run: a bare loop of pymatgen ``CifParser.from_str(...).parse_structures``
over the same files. Prints seconds, structures/s, and our overhead as a ratio, for the
default (each structure read in a child process under ``max_read_seconds``; the first
read_inputs of a process also starts the fork server, which imports pymatgen) and for
``max_read_seconds=None`` (read in this process, no time limit).

    .venv/bin/python bench/ingest_speed.py [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N files only")
    args = ap.parse_args()

    from pymatgen.io.cif import CifParser

    from evaluator.config import IngestLimits
    from evaluator.data import DataDir
    from evaluator.ingest import read_inputs

    folder = DataDir().path("structures/mp_sample")
    files = sorted(folder.glob("*.cif"))[: args.limit]

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n_base = sum(len(CifParser.from_str(f.read_text()).parse_structures(primitive=False))
                     for f in files)
    base = time.perf_counter() - t0

    runs = {}
    for label, limits in (("read_inputs (bounded, cold)", IngestLimits()),
                          ("read_inputs (bounded, warm)", IngestLimits()),
                          ("read_inputs (in-process)", IngestLimits(max_read_seconds=None))):
        t0 = time.perf_counter()
        items = read_inputs(files, limits)
        runs[label] = (time.perf_counter() - t0, len(items), sum(it.error is not None for it in items))

    print(f"files: {len(files)}  (load: {os.getloadavg()[0]:.1f})")
    print(f"baseline CifParser loop:     {base:.2f} s, {n_base / base:.0f} structures/s")
    for label, (secs, n, failed) in runs.items():
        print(f"{label}: {secs:.2f} s, {n / secs:.0f} structures/s, {failed} failed, "
              f"ratio to baseline {secs / base:.2f}")


if __name__ == "__main__":
    main()
