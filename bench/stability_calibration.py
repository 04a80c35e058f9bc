"""Calibration: MLIP E_hull of real MP-20 materials against their DFT E_hull.

The MP-20 materials among ``structures/mp_sample`` (on or near the MP hull) are
relaxed with the MLIP and scored against the embedded ``mp20`` DFT hull; the
script reports the MAE of E_hull vs ``dft_e_above_union_hull``, the MAE of the
formation energy vs the DFT one, and the fractions classified stable / metastable
(E_hull <= 0 / <= 0.1 eV/atom), for relaxed and unrelaxed geometry.

Structures run smallest cell first, in chunks, each result checkpointed, so
``--minutes`` bounds the wall time and the N reported is what finished; a re-run
with the same ``--work`` continues where it stopped.

    python bench/stability_calibration.py --n 200 --minutes 30 --work /tmp/calib
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def mp20_sample(data, n: int | None):
    """(material_id, cif path, DFT row) of MP-20 materials in mp_sample, smallest cells first."""
    import pandas as pd

    folder = data.path("structures/mp_sample/metadata.csv").parent
    meta = pd.read_csv(folder / "metadata.csv")
    hull = pd.read_parquet(data.path("reference/mp20/mp20_hull.parquet"))
    df = meta[["material_id", "nsites"]].merge(hull.drop(columns=["nsites"]), on="material_id")
    df = df.sort_values(["nsites", "material_id"]).reset_index(drop=True)
    df["path"] = [str(folder / f"mp_{m}.cif") for m in df["material_id"]]
    df = df[[os.path.exists(p) for p in df["path"]]]
    return df.head(n) if n else df


def run(args) -> dict:
    import numpy as np
    import torch
    from pymatgen.core import Structure

    from evaluator.data import DataDir
    from evaluator.mlip import describe_mlip
    from evaluator.families.stability.energy import energy_route
    from evaluator.families.stability.family import score_energy
    from evaluator.reference.hull import load_mp20_hull
    from evaluator.families.stability.runner import RelaxSettings, relax_all

    torch.set_num_threads(args.threads)
    data = DataDir(args.data_dir)
    df = mp20_sample(data, args.n)
    hull = load_mp20_hull(data).get("dft")
    settings = RelaxSettings(mlip=args.mlip, model=args.model, device=args.device, fmax=args.fmax,
                             steps=args.steps, mode=args.mode, workers=args.workers)
    route = energy_route(describe_mlip(args.mlip, args.model), hull)
    structures = {i: Structure.from_file(p) for i, p in enumerate(df["path"])}
    mlip = None
    if settings.mode in ("batched", "serial") or args.workers == 1:
        from evaluator.mlip import load_mlip

        mlip = load_mlip(args.mlip, args.model, args.device)  # once, not per chunk
    t0, results = time.perf_counter(), {}
    for start in range(0, len(structures), args.chunk):
        if time.perf_counter() - t0 > args.minutes * 60:
            break
        chunk = {i: structures[i] for i in range(start, min(start + args.chunk, len(structures)))}
        res, info = relax_all(chunk, settings, args.work, mlip=mlip)
        results.update(res)
        print(f"{len(results)}/{len(structures)} done, {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for i, r in results.items():
        if not r.ok or r.energy is None or r.energy_unrelaxed is None:
            rows.append({"material_id": df["material_id"].iat[i], "status": r.reason})
            continue
        rel = score_energy(hull, route, r.relaxed_structure(), r.energy)
        unrel = score_energy(hull, route, structures[i], r.energy_unrelaxed)
        rows.append({"material_id": df["material_id"].iat[i], "nsites": int(df["nsites"].iat[i]),
                     "dft_e_hull": float(df["dft_e_above_union_hull"].iat[i]),
                     "dft_e_form": float(df["e_form_per_atom_mp2020_dft"].iat[i]),
                     "e_hull": rel.e_above_hull, "e_form": rel.formation_energy_per_atom,
                     "e_hull_unrelaxed": unrel.e_above_hull, "steps": r.steps,
                     "converged": r.converged, "status": "ok"})
    ok = [r for r in rows if r["status"] == "ok" and np.isfinite(r["e_hull"])]
    e, d = np.array([r["e_hull"] for r in ok]), np.array([r["dft_e_hull"] for r in ok])
    eu = np.array([r["e_hull_unrelaxed"] for r in ok])
    ef, dfm = np.array([r["e_form"] for r in ok]), np.array([r["dft_e_form"] for r in ok])
    summary = {
        "mlip": args.mlip, "model": args.model, "fmax": args.fmax, "steps": args.steps,
        "n_selected": len(df), "n_finished": len(results), "n_scored": len(ok),
        "max_nsites_scored": max((r["nsites"] for r in ok), default=None),
        "mae_e_hull_relaxed": float(np.mean(np.abs(e - d))) if ok else None,
        "mean_signed_e_hull_error_relaxed": float(np.mean(e - d)) if ok else None,
        "mae_e_hull_unrelaxed": float(np.mean(np.abs(eu - d))) if ok else None,
        "mae_e_form_relaxed": float(np.mean(np.abs(ef - dfm))) if ok else None,
        "frac_stable_relaxed": float(np.mean(e <= 1e-9)) if ok else None,
        "frac_metastable_relaxed": float(np.mean(e <= 0.1 + 1e-9)) if ok else None,
        "frac_metastable_unrelaxed": float(np.mean(eu <= 0.1 + 1e-9)) if ok else None,
        "frac_metastable_dft": float(np.mean(d <= 0.1 + 1e-9)) if ok else None,
        "converged_frac": float(np.mean([r["converged"] for r in ok])) if ok else None,
        "wall_s": round(time.perf_counter() - t0, 1),
        "failures": [r for r in rows if r["status"] != "ok"],
    }
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="smallest-cell N MP-20 materials (0 = all)")
    p.add_argument("--minutes", type=float, default=30.0, help="stop starting new chunks after this")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--mlip", default="chgnet")
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--mode", default="auto")
    p.add_argument("--workers", default="1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fmax", type=float, default=0.02)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--work", default="/tmp/stability_calibration", help="checkpoint folder (resumable)")
    p.add_argument("--out", default=None, help="write summary + per-material rows as JSON")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    args.workers = args.workers if args.workers == "auto" else int(args.workers)
    summary = run(args)
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1))
    print(f"failures: {len(summary['failures'])}")


if __name__ == "__main__":
    main()
