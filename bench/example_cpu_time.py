"""CPU time of the example upload (the 21 MatterGen base samples of the Submit tab) under
both named protocols: ``default`` (SevenNet-l3i5 + MP2020 corrections) and ``chgnet``.

Each protocol runs the whole pipeline (all families, default settings, CPU) in a fresh
subprocess of ``python -m evaluator score``, one after the other, so import and model
loading count as they do for a worker. Prints wall and CPU seconds (the process and its
children), the stability family's time, and the ratio default / chgnet measured in the same
run.

    python bench/example_cpu_time.py            # both protocols
    python bench/example_cpu_time.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def run(protocol: str, upload: Path, work: Path) -> dict:
    out = work / protocol
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evaluator", "score", str(upload), "--out", str(out),
                           "--protocol", protocol, "--device", "cpu"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{protocol}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"protocol": protocol, "protocol_id": summary["protocol"]["id"], "label": summary["protocol"]["label"],
            "wall_s": round(wall, 1),
            "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "stability_s": summary["timings_s"].get("stability"), "n_submitted": summary["n_submitted"],
            "n_evaluated": summary["n_evaluated"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    from leaderboard.example import build_example

    with tempfile.TemporaryDirectory() as tmp:
        built = build_example(out_dir=Path(tmp))
        if built is None:
            raise SystemExit("the example's source zip is not in the data directory (GENBENCH_DATA_DIR)")
        upload, n = built
        load = os.getloadavg()[0]
        rows = [run(p, upload, Path(tmp)) for p in ("chgnet", "default")]
        load_end = os.getloadavg()[0]
    for r in rows:
        print(f"{r['label']} ({r['protocol_id']}): {r['n_submitted']} structures, {r['n_evaluated']} relaxed; "
              f"wall {r['wall_s']} s, CPU {r['cpu_s']} s, stability family {r['stability_s']} s")
    ratio = {k: round(rows[1][k] / rows[0][k], 2) for k in ("wall_s", "cpu_s", "stability_s") if rows[0][k]}
    print(f"default / chgnet: wall {ratio.get('wall_s')}x, CPU {ratio.get('cpu_s')}x, "
          f"stability {ratio.get('stability_s')}x (load average {load:.1f} at start, {load_end:.1f} at end, "
          f"{os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ratio": ratio, "load": [load, load_end]}, indent=2))


if __name__ == "__main__":
    main()
