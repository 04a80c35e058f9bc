"""The relaxation cost model against measured time, for mp_sample cells of every size band.

Samples ``--per-band`` cells of each size band of ``structures/mp_sample`` (seeded,
rattled by ``--rattle`` Å so that the relaxations do real work, as generated structures
need), relaxes each one at a time with plain ASE (FIRE + FrechetCellFilter, fmax 0.02,
the default step cap and atom-step budget of ``StabilityOptions``) in this process with
one torch thread (as each worker of the CPU default pool runs), and prints per cell and
per band the measured seconds and steps against the prediction of
``evaluator.mlip.cost.cost_model`` (committed constants), with the error of the
estimate: per cell (mean absolute % error) and for the band's total (what an ETA needs).

It also fits the model's constants on the cells measured here (seconds per step =
a + b·atoms by ordinary least squares, so the large cells that dominate a job's time
weigh the most; typical steps = mean steps of the cells the
budget did not cap), and reports the same errors for the refit constants, fitted on the
even-numbered cells and scored on the odd-numbered ones (held out).

    python bench/relax_cost.py --per-band 3
    python bench/relax_cost.py --estimate-only   # the committed model's estimate for all of mp_sample

``--estimate-only`` relaxes nothing: it prints what the committed model (and so the upload
check, ``leaderboard.jobs.eta``) estimates for relaxing all 2,473 ``mp_sample`` cells, from their
sizes, on a 2-worker CPU pool, with the default budget and without it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BANDS = ((1, 10), (11, 20), (21, 50), (51, 100), (101, 200), (201, 10_000))


def sample(data, per_band: int, seed: int, rattle: float):
    import numpy as np
    import pandas as pd
    from pymatgen.core import Structure

    folder = data.path("structures/mp_sample/metadata.csv").parent
    meta = pd.read_csv(folder / "metadata.csv")
    rng = np.random.default_rng(seed)
    out = []
    for lo, hi in BANDS:
        band = meta[(meta["nsites"] >= lo) & (meta["nsites"] <= hi)]
        for mid in band.sample(min(per_band, len(band)), random_state=seed)["material_id"]:
            s = Structure.from_file(folder / f"mp_{mid}.cif")
            if rattle:
                s = Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, rattle, (len(s), 3)),
                              coords_are_cartesian=True)
            out.append((f"{lo}-{hi if hi < 10_000 else ''}", mid, s))
    return out


def fit(rows):
    """(step_base_s, step_per_atom_s, typical_steps) from measured rows."""
    import numpy as np

    n = np.array([r["atoms"] for r in rows], float)
    per_step = np.array([r["seconds"] / max(1, r["steps"] + 1) for r in rows])
    # ordinary least squares on the seconds per step: the large cells, which dominate a job's
    # time (what an ETA must get right), weigh the most
    a, b = np.linalg.lstsq(np.stack([np.ones_like(n), n], 1), per_step, rcond=None)[0]
    free = [r["steps"] for r in rows if r["stopped_by"] in ("converged", "step_cap")]
    return max(float(a), 0.0), max(float(b), 1e-6), float(np.mean(free)) if free else 130.0


def errors(rows, model, budget):
    by_band: dict[str, dict] = {}
    for r in rows:
        pred = model.seconds(r["atoms"], budget)
        b = by_band.setdefault(r["band"], {"n": 0, "measured_s": 0.0, "predicted_s": 0.0, "abs_pct": []})
        b["n"] += 1
        b["measured_s"] += r["seconds"]
        b["predicted_s"] += pred
        b["abs_pct"].append(abs(pred - r["seconds"]) / r["seconds"] * 100)
    out = {}
    for band, b in by_band.items():
        out[band] = {"n": b["n"], "measured_s": round(b["measured_s"], 1), "predicted_s": round(b["predicted_s"], 1),
                     "total_err_pct": round((b["predicted_s"] - b["measured_s"]) / b["measured_s"] * 100, 1),
                     "cell_mape_pct": round(sum(b["abs_pct"]) / len(b["abs_pct"]), 1)}
    m = sum(r["seconds"] for r in rows)
    p = sum(model.seconds(r["atoms"], budget) for r in rows)
    out["all"] = {"n": len(rows), "measured_s": round(m, 1), "predicted_s": round(p, 1),
                  "total_err_pct": round((p - m) / m * 100, 1),
                  "cell_mape_pct": round(sum(abs(model.seconds(r["atoms"], budget) - r["seconds"]) / r["seconds"]
                                             for r in rows) / len(rows) * 100, 1)}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-band", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rattle", type=float, default=0.05)
    p.add_argument("--mlip", default="chgnet")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="write the measurements as JSON here")
    p.add_argument("--estimate-only", action="store_true", help="no relaxation: the model's mp_sample estimate")
    p.add_argument("--rows", help="report on the JSON lines an earlier run printed (its log) instead of relaxing")
    args = p.parse_args(argv)
    if args.estimate_only:
        estimate(args)
        return
    if args.rows:
        with open(args.rows) as fh:
            rows = [json.loads(line) for line in fh if line.startswith('{"band"')]
        report(rows, args, load0=None)
        return

    import torch

    from evaluator.data import DataDir
    from evaluator.families.stability.family import StabilityOptions
    from evaluator.families.stability.runner import _to_atoms
    from evaluator.mlip import load_mlip
    from evaluator.mlip.relax import RelaxBudget, relax_one

    torch.set_num_threads(1)
    opts = StabilityOptions()
    budget = RelaxBudget(steps=300, atom_steps=opts.relax_budget_atom_steps, min_steps=opts.relax_budget_min_steps)
    mlip = load_mlip(args.mlip, None, "cpu", "float32", None)
    cells = sample(DataDir(args.data_dir), args.per_band, args.seed, args.rattle)
    rows = []
    load0 = os.getloadavg()[0]
    for band, mid, s in cells:
        t0 = time.perf_counter()
        res = relax_one(mlip, _to_atoms(s), 0.02, 300, budget=budget)
        rows.append({"band": band, "id": mid, "atoms": len(s), "seconds": time.perf_counter() - t0,
                     "steps": res.steps or 0, "stopped_by": res.stopped_by, "status": res.status,
                     "load_avg_1min": round(os.getloadavg()[0], 1)})
        print(json.dumps(rows[-1]), flush=True)
    report(rows, args, load0)


def report(rows, args, load0) -> None:
    from evaluator.families.stability.family import StabilityOptions
    from evaluator.mlip.cost import cost_model
    from evaluator.mlip.relax import RelaxBudget

    opts = StabilityOptions()
    budget = RelaxBudget(steps=300, atom_steps=opts.relax_budget_atom_steps, min_steps=opts.relax_budget_min_steps)
    committed = cost_model(args.mlip, "cpu")
    a, b, typical = fit(rows[0::2])
    refit = replace(committed, step_base_s=a, step_per_atom_s=b, typical_steps=typical)
    a_all, b_all, typical_all = fit(rows)
    loads = [r["load_avg_1min"] for r in rows if "load_avg_1min" in r]
    out = {"load_avg_1min": {"start": None if load0 is None else round(load0, 1),
                             "mean_at_cells": round(sum(loads) / len(loads), 1) if loads else None},
              "budget": {"steps": budget.steps, "atom_steps": budget.atom_steps, "min_steps": budget.min_steps},
              "committed_model": {"step_base_s": committed.step_base_s, "step_per_atom_s": committed.step_per_atom_s,
                                  "typical_steps": committed.typical_steps,
                                  "errors_all_cells": errors(rows, committed, budget)},
              "refit_on_even_cells": {"step_base_s": round(a, 4), "step_per_atom_s": round(b, 5),
                                      "typical_steps": round(typical, 1),
                                      "errors_on_odd_cells": errors(rows[1::2], refit, budget)},
              "fit_on_all_cells": {"step_base_s": round(a_all, 4), "step_per_atom_s": round(b_all, 5),
                                   "typical_steps": round(typical_all, 1)}}
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"rows": rows, "report": out}, fh, indent=1)


def estimate(args) -> None:
    import pandas as pd

    from evaluator.data import DataDir
    from evaluator.mlip.cost import cost_model
    from evaluator.mlip.relax import DEFAULT_BUDGET, RelaxBudget

    meta = pd.read_csv(DataDir(args.data_dir).path("structures/mp_sample/metadata.csv"))
    model = cost_model(args.mlip, "cpu")
    sizes = [int(n) for n in meta["nsites"]]
    out = {"n_cells": len(sizes), "workers": 2, "mlip": args.mlip}
    for name, budget in (("default_budget", DEFAULT_BUDGET), ("no_budget", RelaxBudget(steps=300))):
        total = model.total_seconds(sizes, budget)
        largest = max(model.seconds(n, budget) for n in sizes)
        out[name] = {"relax_hours_2_workers": round(total / 2 / 3600, 2),
                     "largest_cell_minutes": round(largest / 60, 1),
                     "per_structure_s_2_workers": round(total / 2 / len(sizes), 2)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
