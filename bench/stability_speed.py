"""Throughput of relax + E_hull: one-at-a-time ASE vs batched engine vs lock-step batched vs process pool.

N structures from ``structures/mp_sample`` (random, seeded; optionally rattled so
relaxations do real work) are relaxed with each mode in a fresh subprocess (so
peak memory is per mode) and scored against the mp20 hull. Prints structures/s,
the ratio to the one-at-a-time ASE baseline measured in the same run, peak RSS
(process + children) and, on CUDA, peak GPU memory.

    python bench/stability_speed.py --n 100                 # CPU: serial, batched, pool
    python bench/stability_speed.py --n 100 --mlip sevenn   # CPU: serial, pool, engine
    python bench/stability_speed.py --device cuda --n 2500 --mlip sevenn  # GPU: serial, engine

Modes: ``serial`` (ASE one at a time, the baseline), ``engine`` (evaluator.mlip.engine,
MACE/SevenNet only), ``batched`` (ASE lock-step), ``pool`` (process pool).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent


def sample(data, n: int, seed: int, max_sites: int | None, rattle: float):
    import numpy as np
    import pandas as pd
    from pymatgen.core import Structure

    folder = data.path("structures/mp_sample/metadata.csv").parent
    meta = pd.read_csv(folder / "metadata.csv")
    if max_sites:
        meta = meta[meta["nsites"] <= max_sites]
    meta = meta.sample(min(n, len(meta)), random_state=seed)
    rng = np.random.default_rng(seed)
    out = {}
    for i, mid in enumerate(meta["material_id"]):
        s = Structure.from_file(folder / f"mp_{mid}.cif")
        if rattle:
            s = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, rattle, (len(s), 3)),
                          coords_are_cartesian=True)
        out[i] = s
    return out


def one_mode(args) -> dict:
    """Run one mode in this process; print a JSON line."""
    import resource

    import torch

    from evaluator.data import DataDir
    from evaluator.mlip import describe_mlip
    from evaluator.families.stability.energy import energy_route
    from evaluator.families.stability.family import score_energy
    from evaluator.reference.hull import load_mp20_hull
    from evaluator.families.stability.runner import RelaxSettings, relax_all

    if args.threads:
        torch.set_num_threads(args.threads)
    data = DataDir(args.data_dir)
    structures = sample(data, args.n, args.seed, args.max_sites, args.rattle)
    hull = load_mp20_hull(data).get("dft")
    route = energy_route(describe_mlip(args.mlip, args.model), hull)
    if args.serial_n and args.mode == "serial":  # the slow baseline on a subset (per-structure rate)
        structures = dict(list(structures.items())[:args.serial_n])
    settings = RelaxSettings(mlip=args.mlip, model=args.model, device=args.device, dtype=args.dtype,
                             fmax=args.fmax, steps=args.steps, mode=args.mode,
                             workers=args.workers if args.mode == "pool" else 1, max_atoms=args.max_atoms)
    mlip = None
    if args.mode != "pool":
        from evaluator.mlip import load_mlip

        mlip = load_mlip(args.mlip, args.model, args.device, args.dtype)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    results, info = relax_all(structures, settings, None, mlip=mlip)
    t_relax = time.perf_counter() - t0
    n_hull = 0
    for r in results.values():
        if r.ok:
            n_hull += bool(math.isfinite(score_energy(hull, route, r.relaxed_structure(), r.energy).e_above_hull))
    wall = time.perf_counter() - t0
    ok = [r for r in results.values() if r.ok]
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    out = {"mode": args.mode, "workers": info["workers"], "device": info["device"], "n": len(structures),
           "n_ok": len(ok), "n_hull": n_hull, "atoms": int(sum(len(s) for s in structures.values())),
           "mean_steps": sum(r.steps or 0 for r in ok) / max(len(ok), 1),
           "converged": sum(bool(r.converged) for r in ok), "relax_s": round(t_relax, 2),
           "wall_s": round(wall, 2), "structures_per_s": len(structures) / wall,
           "peak_rss_mb_self_plus_largest_child": round(rss, 1)}
    if args.device.startswith("cuda"):
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print("RESULT " + json.dumps(out), flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-sites", type=int, default=None, help="only cells with at most this many atoms")
    p.add_argument("--rattle", type=float, default=0.05, help="Gaussian displacement (Å) so relaxations work")
    p.add_argument("--mlip", default="chgnet")
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--fmax", type=float, default=0.02)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--modes", default=None, help="comma list of serial,engine,batched,pool (default by device, MLIP)")
    p.add_argument("--serial-n", type=int, default=0, help="serial baseline on only the first N structures")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--max-atoms", type=int, default=4096, help="atoms per batched forward pass")
    p.add_argument("--threads", type=int, default=0, help="torch threads in-process (0 = torch default)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mode:
        one_mode(args)
        return
    from evaluator.mlip import ENGINE_BACKENDS

    cuda = args.device.startswith("cuda")
    if args.mlip in ENGINE_BACKENDS:
        default_modes = "serial,engine" if cuda else "serial,pool,engine"
    else:
        default_modes = "serial,batched" if cuda else "serial,batched,pool"
    modes = (args.modes or default_modes).split(",")
    results = []
    for mode in modes:
        cmd = [sys.executable, __file__, "--mode", mode] + [a for a in (argv or sys.argv[1:])]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{mode}: failed\n{proc.stderr[-3000:]}")
            continue
        results.append(json.loads(line[7:]))
        print(line[7:], flush=True)
    base = next((r for r in results if r["mode"] == "serial"), None)
    pool = next((r for r in results if r["mode"] == "pool"), None)
    print(f"\n{'mode':8} {'workers':>7} {'n':>5} {'struct/s':>9} {'x serial':>8} {'x pool':>7} {'wall s':>8} "
          f"{'steps':>6} {'peak MB':>8}")
    for r in results:
        ratio = r["structures_per_s"] / base["structures_per_s"] if base else float("nan")
        vs_pool = r["structures_per_s"] / pool["structures_per_s"] if pool else float("nan")
        print(f"{r['mode']:8} {r['workers']:>7} {r['n']:>5} {r['structures_per_s']:9.3f} {ratio:8.2f} {vs_pool:7.2f} "
              f"{r['wall_s']:8.1f} "
              f"{r['mean_steps']:6.1f} {r['peak_rss_mb_self_plus_largest_child']:8.0f}"
              + (f"  gpu {r['peak_gpu_mb']} MB" if "peak_gpu_mb" in r else ""))


if __name__ == "__main__":
    main()
