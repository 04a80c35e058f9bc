"""Time and peak memory of cutting hostile uploads into structures (issue 25, item 3).

    .venv/bin/python bench/ingest_split_bounds.py [--mb 190] [--cases a,b]

Each case is generated in a temporary folder (``--mb`` MB of text, or the archive limits)
and read with ``inspect_upload`` (the app's upload check) in a fresh child process; the
table gives the answer (refusal or row counts), the wall time and how much the child's
peak resident memory grew (``resource.getrusage``: ru_maxrss). The same cases at a few
MB, with bounds, are tests in tests/evaluator/ingest/test_split_bounds.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from evaluator.config import IngestLimits  # noqa: E402
from evaluator.procpool import call_bounded  # noqa: E402
from split_cases import CASES, measured_check  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=190.0)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    size = int(args.mb * 1e6)
    print("| case | input | answer | seconds | peak RSS growth (MiB) |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            path = CASES[name](Path(tmp), size)
            out = call_bounded(measured_check, ([str(path)], IngestLimits()), timeout_s=600,
                               max_memory_bytes=16 * 1024**3)
            if not out.ok:
                print(f"| {name} | {path.stat().st_size / 1e6:.0f} MB | did not finish: {out.error} | | |")
            else:
                v = out.value
                answer = v["refused"] or f"{v['n_items']} rows"
                print(f"| {name} | {path.stat().st_size / 1e6:.0f} MB | {answer[:90]} | {v['seconds']:.1f} | "
                      f"{v['grew_mib']:.0f} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
