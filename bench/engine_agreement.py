"""Agreement of the batched engine with the ASE reference path (same model, same settings).

Relaxes the same structures twice on CPU, with the ASE reference path
(``relax_serial``: FIRE + FrechetCellFilter one at a time) and with the batched
engine (``relax_engine``), and compares (issue 16's acceptance check):

- energy at the submitted geometry: largest |ΔE| per atom (target 1e-4 eV/atom);
- relaxed E_hull against the MP-20 DFT hull (MP2020 corrections for raw-PBE
  models): share of structures converged in both whose E_hull agrees within
  0.01 eV/atom (target >= 95 %).

Structures: ``--n-mp`` random ``mp_sample`` cells (rattled ``--rattle`` Å) and
``--n-mattergen`` MatterGen-paper CIFs as released (``mattergen_paper/cifs.zip``),
cells with at most ``--max-sites`` atoms (CPU time).

    python bench/engine_agreement.py --mlip sevenn --n-mp 20 --n-mattergen 12
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluator.mlip.relax_result import RelaxResult

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def mattergen_structures(data, n: int, max_sites: int, seed: int) -> dict:
    import numpy as np
    from pymatgen.core import Structure

    zpath = data.path("structures/mattergen_paper/cifs.zip")
    out = {}
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(nm for nm in zf.namelist() if nm.endswith(".cif") and "_symmetrized" not in nm)
        rng = np.random.default_rng(seed)
        for nm in rng.permutation(names):
            if len(out) >= n:
                break
            try:
                s = Structure.from_str(zf.read(nm).decode(), fmt="cif")
            except Exception:  # noqa: BLE001 - an unreadable CIF is skipped, not counted
                continue
            if len(s) <= max_sites and s.is_ordered:
                out[f"mattergen:{Path(nm).name}"] = s
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mlip", default="sevenn")
    p.add_argument("--model", default=None)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--n-mp", type=int, default=20)
    p.add_argument("--n-mattergen", type=int, default=12)
    p.add_argument("--max-sites", type=int, default=8)
    p.add_argument("--rattle", type=float, default=0.05)
    p.add_argument("--fmax", type=float, default=0.02)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-atoms", type=int, default=256, help="engine: atoms per batch")
    p.add_argument("--json", help="write per-structure results here")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from stability_speed import sample  # bench/ is on sys.path when this runs as a script
    from evaluator.data import DataDir
    from evaluator.mlip import describe_mlip, load_mlip
    from evaluator.mlip.engine import relax_engine
    from evaluator.mlip.relax import relax_serial
    from evaluator.families.stability.energy import energy_route
    from evaluator.families.stability.family import score_energy
    from evaluator.reference.hull import load_mp20_hull
    from evaluator.families.stability.runner import _to_atoms

    data = DataDir(args.data_dir)
    structures = {f"mp:{k}": s for k, s in sample(data, args.n_mp, args.seed, args.max_sites, args.rattle).items()}
    structures.update(mattergen_structures(data, args.n_mattergen, args.max_sites, args.seed))
    hull = load_mp20_hull(data).get("dft")
    route = energy_route(describe_mlip(args.mlip, args.model), hull)
    mlip = load_mlip(args.mlip, args.model, "cpu", args.dtype)
    items = [(k, _to_atoms(s)) for k, s in structures.items()]
    print(f"{len(items)} structures ({sum(k.startswith('mp:') for k in structures)} mp_sample rattled "
          f"{args.rattle} Å, {sum(k.startswith('mattergen:') for k in structures)} MatterGen), "
          f"{args.mlip} {mlip.model_id}, fmax {args.fmax}, <= {args.steps} steps", flush=True)

    def show(which):
        def on_result(key, r: RelaxResult):
            print(f"{which} {key}: {r.status} steps {r.steps} converged {r.converged} "
                  f"E {r.energy} ({r.reason or ''})", flush=True)
        return on_result

    t0, c0 = time.perf_counter(), time.process_time()
    ref = relax_serial(mlip, items, args.fmax, args.steps, on_result=show("ref"))
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    stats: dict = {}
    got = relax_engine(mlip, items, args.fmax, args.steps, max_atoms=args.max_atoms, stats=stats,
                       on_result=show("engine"))
    t_eng, c_eng = time.perf_counter() - t0, time.process_time() - c0

    def ehull(key, r: RelaxResult) -> float:
        if not r.ok:
            return math.nan
        return score_energy(hull, route, r.relaxed_structure(), r.energy).e_above_hull

    rows, de0 = [], []
    for key, atoms in items:
        r, g = ref[key], got[key]
        n = len(atoms)
        if r.energy_unrelaxed is not None and g.energy_unrelaxed is not None:
            de0.append(abs(r.energy_unrelaxed - g.energy_unrelaxed) / n)
        both = r.ok and g.ok and r.converged and g.converged
        h_r, h_g = ehull(key, r), ehull(key, g)
        rows.append({"key": key, "n_atoms": n, "ref_status": r.status, "engine_status": g.status,
                     "ref_steps": r.steps, "engine_steps": g.steps,
                     "converged_both": bool(both), "ref_e_hull": h_r, "engine_e_hull": h_g,
                     "d_e_hull": abs(h_r - h_g) if both else None})
    conv = [r for r in rows if r["converged_both"] and r["d_e_hull"] is not None and math.isfinite(r["d_e_hull"])]
    within = sum(r["d_e_hull"] <= 0.01 for r in conv)
    summary = {"n": len(rows), "mlip": args.mlip, "model": mlip.model_id,
               "max_abs_d_e_unrelaxed_ev_per_atom": max(de0) if de0 else None,
               "n_converged_both": len(conv), "n_e_hull_within_0.01": within,
               "frac_e_hull_within_0.01": within / len(conv) if conv else None,
               "max_abs_d_e_hull": max((r["d_e_hull"] for r in conv), default=None),
               "ref_wall_s": round(t_ref, 1), "engine_wall_s": round(t_eng, 1),
               "ref_cpu_s": round(c_ref, 1), "engine_cpu_s": round(c_eng, 1),
               "engine_speed_ratio_cpu_time": c_ref / c_eng if c_eng else None,
               "engine_stats": stats}
    for r in rows:
        print(json.dumps(r), flush=True)
    print("SUMMARY " + json.dumps(summary), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
