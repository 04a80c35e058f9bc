"""Family "stability": MLIP relaxation, formation energy and energy above the reference hull.

Every valid structure is relaxed (ASE FIRE on FrechetCellFilter, fmax
``config.relax_fmax`` eV/Å, at most ``config.relax_steps`` steps); the energy
at the submitted geometry ("unrelaxed", LeMat-GenBench compatible) and after
relaxation ("relaxed", headline) are both scored against the reference hull.

Columns (``stability_`` prefix; ``stability_unrelaxed_`` for the submitted
geometry, also scored when the relaxation itself failed): ``energy_per_atom``
(raw MLIP, eV/atom), ``corrected_energy_per_atom``
(on the hull's scale, e.g. after MP2020 corrections), ``formation_energy_per_atom``,
``e_above_hull`` (eV/atom, may be negative), ``stable``, ``metastable``; relaxed
only: ``steps``, ``converged``, ``fmax_final`` (eV/Å), ``rmsd`` (Å),
``volume_ratio``, ``relaxed_structure`` (pymatgen JSON), ``n_ref_entries``.

Config options (``EvalConfig.options``): ``hull`` (hull mode of the reference:
``dft`` default, or an own-MLIP hull such as ``mace``), ``relax_mode``
(auto/engine/batched/pool/serial), ``relax_workers``, ``relax_max_atoms``,
``mlip_energy_scale``, ``hull_declared_compatible``, ``hull_file`` (a compact
hull parquet, e.g. a LeMat hull written by ``evaluator.build.lemat_hull``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evaluator.families.base import FamilyResult

EHULL_TOL = 1e-9  # eV/atom: numerical noise allowed at the stability thresholds


def relax_settings(cfg):
    from evaluator.families.stability.runner import RelaxSettings

    o = cfg.options or {}
    return RelaxSettings(mlip=cfg.mlip, model=cfg.mlip_model, device=cfg.device, dtype=cfg.dtype,
                         fmax=cfg.relax_fmax, steps=cfg.relax_steps, mode=o.get("relax_mode", "auto"),
                         workers=o.get("relax_workers", "auto"), max_atoms=int(o.get("relax_max_atoms", 4096)),
                         energy_scale=o.get("mlip_energy_scale"))


def reference_hull(ctx):
    """The HullReference selected by ``options["hull"]`` from the context's reference."""
    from evaluator.reference.hull import HullReference, HullSet, load_hull_file

    options = ctx.config.options or {}
    if options.get("hull_file"):  # a compact hull file (e.g. from evaluator.build.lemat_hull)
        return load_hull_file(options["hull_file"])
    hull = ctx.reference.hull
    mode = options.get("hull")
    if isinstance(hull, HullSet):
        return hull.get(mode)
    if isinstance(hull, HullReference):
        if mode and mode not in (hull.name, hull.name.split("/")[-1]):
            raise ValueError(f"reference '{ctx.reference.id}' has only the hull '{hull.name}', not '{mode}'")
        return hull
    raise TypeError(f"reference hull has unexpected type {type(hull).__name__}")


def _nan(x) -> float:
    return float(x) if x is not None else math.nan


def score_energy(hull, route, structure, energy: float) -> dict:
    """Corrected energy, formation energy and E_hull (eV/atom) of one structure/energy."""
    from evaluator.families.stability.energy import hull_energy

    n = len(structure)
    out = {"energy_per_atom": energy / n if math.isfinite(energy) else math.nan,
           "corrected_energy_per_atom": math.nan, "formation_energy_per_atom": math.nan,
           "e_above_hull": math.nan, "n_ref_entries": 0, "reason": None}
    e_corr, why = hull_energy(route, structure, energy)
    if why:
        out["reason"] = why
        return out
    out["corrected_energy_per_atom"] = e_corr / n
    try:
        ef = hull.formation_energy_per_atom(structure.composition, e_corr)
    except KeyError as exc:
        out["reason"] = str(exc.args[0])
        out["n_ref_entries"] = 0
        return out
    out["formation_energy_per_atom"] = ef
    h = hull.e_above_hull(structure.composition, ef)
    out.update(e_above_hull=h.e_above_hull, n_ref_entries=h.n_ref_entries, reason=h.reason)
    return out


def _flags(e: np.ndarray, stable_thr: float, meta_thr: float):
    finite = np.isfinite(e)
    stable = pd.array(np.where(finite, e <= stable_thr + EHULL_TOL, False), dtype="boolean")
    meta = pd.array(np.where(finite, e <= meta_thr + EHULL_TOL, False), dtype="boolean")
    stable[~finite] = pd.NA
    meta[~finite] = pd.NA
    return stable, meta


def _summary(ctx, cols: pd.DataFrame, prefix: str, relaxed: bool, result: FamilyResult) -> dict:
    """Count and mean/median metrics of one geometry (relaxed or unrelaxed)."""
    e = cols[f"{prefix}e_above_hull"].to_numpy(float)
    ef = cols[f"{prefix}formation_energy_per_atom"].to_numpy(float)
    energy = cols[f"{prefix}energy_per_atom"].to_numpy(float)
    cfg = ctx.config
    m: dict = {}
    m.update(ctx.counted("evaluated", int(np.isfinite(energy).sum())))
    m.update(ctx.counted("hull_scored", int(np.isfinite(e).sum())))
    m.update(ctx.counted("stable", int((e[np.isfinite(e)] <= cfg.stable_threshold + EHULL_TOL).sum())))
    m.update(ctx.counted("metastable", int((e[np.isfinite(e)] <= cfg.metastable_threshold + EHULL_TOL).sum())))
    label = "relaxed" if relaxed else "unrelaxed"
    means = {"mean_e_above_hull": e, "median_e_above_hull": e, "mean_formation_energy_per_atom": ef}
    if relaxed:
        m.update(ctx.counted("converged", int(cols["stability_converged"].fillna(False).astype(bool).sum())))
        means["mean_rmsd"] = cols["stability_rmsd"].to_numpy(float)
        means["mean_steps"] = cols["stability_steps"].to_numpy(float)
    for name, arr in means.items():
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            m[name] = None
            result.missing[name if relaxed else f"unrelaxed.{name}"] = f"no {label} structure has this value"
        else:
            m[name] = float(np.median(arr) if name.startswith("median") else np.mean(arr))
    return m


def run(ctx) -> FamilyResult:
    from evaluator.mlip import describe_mlip
    from evaluator.mlip.relax import ENERGY_LIMIT_EV_PER_ATOM
    from evaluator.families.stability.energy import energy_route
    from evaluator.families.stability.runner import relax_all

    cfg = ctx.config
    result = FamilyResult()
    settings = relax_settings(cfg)
    spec = describe_mlip(settings.mlip, settings.model, settings.energy_scale)
    hull = reference_hull(ctx)
    declared = bool((cfg.options or {}).get("hull_declared_compatible", False))
    route = energy_route(spec, hull, declared)  # refuses an incompatible pair before any work

    rows = [i for i in ctx.valid_index if ctx.structures[i] is not None]
    relaxed, info = relax_all({i: ctx.structures[i] for i in rows}, settings,
                              ctx.checkpoint_dir("stability"), ctx.progress)
    from pymatgen.core import Structure

    records = []
    for i in ctx.track(rows, "stability: hull"):
        s, r = ctx.structures[i], relaxed[i]
        rec = {"index": i}
        if r.get("status") != "ok":
            rec.update(stability_status="failed", stability_reason=r.get("reason") or "relaxation failed")
            e0 = _nan(r.get("energy_unrelaxed"))  # the submitted geometry does not need the relaxation
            if math.isfinite(e0) and abs(e0) / len(s) <= ENERGY_LIMIT_EV_PER_ATOM:
                unrel = score_energy(hull, route, s, e0)
                for k in ("energy_per_atom", "corrected_energy_per_atom", "formation_energy_per_atom",
                          "e_above_hull"):
                    rec[f"stability_unrelaxed_{k}"] = unrel[k]
            records.append(rec)
            continue
        s_relaxed = Structure.from_str(r["structure_relaxed"], fmt="json")
        rel = score_energy(hull, route, s_relaxed, _nan(r.get("energy")))
        unrel = score_energy(hull, route, s, _nan(r.get("energy_unrelaxed")))
        for k in ("energy_per_atom", "corrected_energy_per_atom", "formation_energy_per_atom", "e_above_hull"):
            rec[f"stability_{k}"] = rel[k]
            rec[f"stability_unrelaxed_{k}"] = unrel[k]
        rec.update(stability_n_ref_entries=rel["n_ref_entries"], stability_steps=r["steps"],
                   stability_converged=r["converged"], stability_fmax_final=r["fmax_final"],
                   stability_rmsd=r["rmsd"], stability_volume_ratio=r["volume_ratio"],
                   stability_relaxed_structure=r["structure_relaxed"])
        ok = math.isfinite(rel["e_above_hull"])
        rec["stability_status"] = "ok" if ok else "failed"
        rec["stability_reason"] = None if ok else (rel["reason"] or "no energy above hull")
        records.append(rec)

    float_cols = [f"stability_{p}{k}" for p in ("", "unrelaxed_") for k in
                  ("energy_per_atom", "corrected_energy_per_atom", "formation_energy_per_atom", "e_above_hull")]
    float_cols += ["stability_fmax_final", "stability_rmsd", "stability_volume_ratio"]
    cols = pd.DataFrame.from_records(records, index="index") if records else pd.DataFrame(index=pd.Index([], name="index"))
    for c in float_cols:
        cols[c] = pd.to_numeric(cols[c], errors="coerce") if c in cols else np.nan
    for c, dtype in (("stability_n_ref_entries", "Int64"), ("stability_steps", "Int64"),
                     ("stability_converged", "boolean")):
        cols[c] = (cols[c] if c in cols else pd.Series(pd.NA, index=cols.index)).astype(dtype)
    for c in ("stability_relaxed_structure", "stability_status", "stability_reason"):
        if c not in cols:
            cols[c] = None
    for p in ("", "unrelaxed_"):
        st, me = _flags(cols[f"stability_{p}e_above_hull"].to_numpy(float), cfg.stable_threshold,
                        cfg.metastable_threshold)
        cols[f"stability_{p}stable"], cols[f"stability_{p}metastable"] = st, me
    cols.index.name = None
    result.columns = cols

    result.metrics = _summary(ctx, cols, "stability_", True, result)
    result.groups["stability_unrelaxed"] = _summary(ctx, cols, "stability_unrelaxed_", False, result)
    result.provenance = {
        "mlip": info["mlip"], "hull": hull.describe(), "energy_route": route,
        "hull_declared_compatible": declared,
        "relaxation": {"optimizer": ("FIRE with ASE's constants (evaluator.mlip.engine, batched on the device)"
                                     if info["mode"] == "engine" else "ase.optimize.FIRE"),
                       "filter": ("Frechet cell filter (ASE's FrechetCellFilter, batched)"
                                  if info["mode"] == "engine" else "ase.filters.FrechetCellFilter"),
                       "fmax_eV_per_A": cfg.relax_fmax, "max_steps": cfg.relax_steps,
                       "mode": info["mode"], "workers": info["workers"],
                       "engine": (info.get("mlip") or {}).get("engine"), "device": info.get("device"),
                       "n_relaxed_now": info["n_relaxed_now"], "n_from_checkpoint": info["n_from_checkpoint"]},
        "thresholds_eV_per_atom": {"stable": cfg.stable_threshold, "metastable": cfg.metastable_threshold,
                                   "tolerance": EHULL_TOL},
        "rmsd": "minimum-image fractional displacements (cells aligned), mean translation removed, in Å "
                "with the relaxed lattice",
    }
    return result
