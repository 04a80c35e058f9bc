"""Speed of ``evaluator.ingest.read_inputs`` on the 2,473 MP CIFs of ``structures/mp_sample``.

Baseline in the same run: a bare loop of pymatgen ``CifParser.from_str(...).parse_structures``
over the same files. Prints seconds, structures/s, and our overhead as a ratio.

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

    t0 = time.perf_counter()
    items = read_inputs(files)
    ours = time.perf_counter() - t0
    failed = sum(it.error is not None for it in items)

    print(f"files: {len(files)}  (load: {os.getloadavg()[0]:.1f})")
    print(f"baseline CifParser loop: {base:.2f} s, {n_base / base:.0f} structures/s")
    print(f"read_inputs:             {ours:.2f} s, {len(items) / ours:.0f} structures/s, {failed} failed")
    print(f"ratio read_inputs / baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
