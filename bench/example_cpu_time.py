"""CPU time of the example upload (the 21 MatterGen base samples of the Submit tab) under
both named protocols: ``default`` (SevenNet-l3i5 + MP2020 corrections) and ``chgnet``.

Each protocol runs the whole pipeline (all families, default settings, CPU) in a fresh
subprocess of ``python -m evaluator score``, one after the other, so import and model
loading count as they do for a worker. Prints wall and CPU seconds (the process and all its
descendants, sampled every 0.5 s with psutil, so pool workers count even when they are killed
rather than waited for), the stability family's time, and the ratio default / chgnet measured
in the same run.

    python bench/example_cpu_time.py            # both protocols
    python bench/example_cpu_time.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _tree_cpu(proc, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) of ``proc`` and its descendants, per pid."""
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        try:
            t = p.cpu_times()
            seen[p.pid] = max(seen.get(p.pid, 0.0), t.user + t.system)
        except psutil.Error:
            continue


def run(protocol: str, upload: Path, work: Path) -> dict:
    import psutil

    out = work / protocol
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "evaluator", "score", str(upload), "--out", str(out),
                              "--protocol", protocol, "--device", "cpu"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    watched, cpu = psutil.Process(child.pid), {}
    while child.poll() is None:
        _tree_cpu(watched, cpu)
        time.sleep(0.5)
    _, stderr = child.communicate()
    wall = time.perf_counter() - t0
    if child.returncode != 0:
        raise SystemExit(f"{protocol}: exit {child.returncode}\n{stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"protocol": protocol, "protocol_id": summary["protocol"]["id"], "label": summary["protocol"]["label"],
            "wall_s": round(wall, 1), "cpu_s": round(sum(cpu.values()), 1),
            "stability_s": summary["timings_s"].get("stability"), "n_submitted": summary["n_submitted"],
            "n_evaluated": summary["n_evaluated"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    from leaderboard.intake.example import build_example

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
