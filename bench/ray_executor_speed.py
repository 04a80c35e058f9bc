"""Local executor vs Ray executor on the same structures, CPU, in one run.

The same N structures of ``structures/mp_sample`` (random, seeded, at most ``--max-sites``
atoms, rattled so the relaxations do real work) are relaxed twice, each in a fresh process:

- ``local``: the CPU default, a process pool of ``--workers`` (the runner's ``pool`` mode);
- ``ray``: the Ray executor on a local cluster of ``--workers`` CPUs (one CHGNet actor per CPU,
  chunks balanced by atoms), started by this script so its start-up is timed apart.

Printed: the wall time of each (the relaxation call: pool start-up and model loads
included, resp. actor start-up and model loads included), the Ray cluster's start-up, the
end-to-end ratio (Ray start-up + relaxation over local relaxation) and the ratio of the
relaxation calls alone, the actors' utilisation (busy seconds / (actors x wall)), the
per-call overhead of Ray (round trip of a no-op actor method, and of one carrying a chunk's
worth of structure JSON), and the largest per-structure energy difference between the two
(eV/atom; the executors must agree to 1e-6).

    python bench/ray_executor_speed.py                 # 64 structures, 2 workers, CHGNet
    python bench/ray_executor_speed.py --n 64 --workers 2 --steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))


class Echo:
    """A no-op actor: ``ping`` returns its argument's length."""

    def ping(self, payload: object = None) -> int:
        return len(payload) if isinstance(payload, list | str) else 0


def one(args) -> None:
    from stability_speed import sample

    from evaluator.data import DataDir
    from evaluator.execution import ExecutionSettings
    from evaluator.families.stability.runner import RelaxSettings, relax_all

    structures = sample(DataDir(args.data_dir), args.n, args.seed, args.max_sites, args.rattle)
    settings = RelaxSettings(mlip=args.mlip, device="cpu", steps=args.steps, mode="pool", workers=args.workers)
    out: dict = {"executor": args.executor, "n": len(structures),
                 "atoms": int(sum(len(s) for s in structures.values()))}
    if args.executor == "ray":
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        import logging

        import ray

        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
        out["ray_init_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        results, info = relax_all(structures, settings, None, execution=ExecutionSettings(executor="ray"))
        out["relax_s"] = round(time.perf_counter() - t0, 2)
        ex = info["execution"]
        out["execution"] = ex
        out["utilisation"] = round(ex["actor_busy_s"] / (ex["actors"] * out["relax_s"]), 3)
        # per-call overhead: a no-op actor method, empty and with one chunk's structure JSON
        echo = ray.remote(Echo).options(num_cpus=0).remote()
        ray.get(echo.ping.remote())
        chunk = [(str(i), s.to_json()) for i, s in list(structures.items())[:8]]
        for name, payload in (("empty", None), ("chunk_of_8_structures", chunk)):
            times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                ray.get(echo.ping.remote(payload))
                times.append(time.perf_counter() - t0)
            out[f"call_ms_{name}"] = round(1000 * statistics.median(times), 3)
        ray.shutdown()
    else:
        t0 = time.perf_counter()
        results, info = relax_all(structures, settings, None)
        out["relax_s"] = round(time.perf_counter() - t0, 2)
    out["mode"], out["workers"] = info["mode"], info["workers"]
    out["ok"] = sum(r.ok for r in results.values())
    out["energy_per_atom"] = {str(i): (r.energy / len(structures[i]) if r.energy is not None else None)
                              for i, r in results.items()}
    print("RESULT " + json.dumps(out), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-sites", type=int, default=12)
    p.add_argument("--rattle", type=float, default=0.05)
    p.add_argument("--mlip", default="chgnet")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--workers", type=int, default=2, help="pool processes = Ray CPUs = actors")
    p.add_argument("--calls", type=int, default=200, help="round trips timed per overhead figure")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--executor", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.executor:
        one(args)
        return
    runs = {}
    for executor in ("local", "ray"):
        cmd = [sys.executable, __file__, "--executor", executor, *(argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{executor}: failed\n{proc.stderr[-3000:]}")
        runs[executor] = json.loads(line[7:])
    local, ray = runs["local"], runs["ray"]
    diffs = [abs(a - b) for k, a in local["energy_per_atom"].items()
             if a is not None and (b := ray["energy_per_atom"].get(k)) is not None]
    print(f"{local['n']} structures ({local['atoms']} atoms), {args.workers} workers, {args.mlip}, "
          f"<= {args.steps} steps; ok: local {local['ok']}, ray {ray['ok']}")
    print(f"local executor (pool of {local['workers']}): {local['relax_s']:.1f} s")
    print(f"ray executor ({ray['execution']['actors']} actors, {ray['execution']['chunks']} chunks): "
          f"{ray['relax_s']:.1f} s + {ray['ray_init_s']:.1f} s cluster start-up; "
          f"actor utilisation {ray['utilisation']:.2f}")
    print(f"end-to-end ratio ray/local: {(ray['relax_s'] + ray['ray_init_s']) / local['relax_s']:.2f} "
          f"(relaxation call alone: {ray['relax_s'] / local['relax_s']:.2f})")
    print(f"Ray per-call overhead (median of {args.calls}): no-op {ray['call_ms_empty']:.2f} ms, "
          f"with 8 structures' JSON {ray['call_ms_chunk_of_8_structures']:.2f} ms")
    print(f"largest |energy difference| local vs ray: {max(diffs):.2e} eV/atom over {len(diffs)} structures")
    print("SUMMARY " + json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "energy_per_atom"}
                                   for k, v in runs.items()} | {"max_energy_diff_eV_per_atom": max(diffs)}))


if __name__ == "__main__":
    main()
