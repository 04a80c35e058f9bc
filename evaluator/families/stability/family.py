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
``volume_ratio``, ``relaxed_structure`` (pymatgen JSON), ``n_ref_entries``,
``stopped_by`` (converged, step_cap, budget or wall_time), ``step_limit`` (the cell's
most steps under the budget) and ``stop_note`` (why a budget-stopped row stopped, in
words: "relaxation stopped at the atom-step budget after 48 of 48 steps, max force
0.31 eV/Å"; null otherwise).

Options (``StabilityOptions``, ``EvalConfig.options["stability"]``): ``hull`` (hull
mode of the reference: ``dft`` default, or an own-MLIP hull such as ``mace``),
``hull_file`` (a compact hull parquet, e.g. a LeMat hull written by
``evaluator.build.lemat_hull``), ``hull_declared_compatible``, ``relax_mode``
(auto/engine/batched/pool/serial), ``relax_workers``, ``relax_max_atoms``,
``mlip_energy_scale``, ``relax_budget_atom_steps``, ``relax_budget_min_steps``,
``relax_max_seconds`` (the per-structure budget, ``StabilityOptions``). The MLIP,
device, dtype, fmax and step cap are ``EvalConfig`` fields (they are recorded with every
result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult
from evaluator.families.stability.energy import energy_route, hull_energy
from evaluator.families.stability.metrics import METRICS
from evaluator.families.stability.runner import RelaxMode, RelaxSettings, relax_all
from evaluator.mlip import describe_mlip
from evaluator.mlip.relax import DEFAULT_BUDGET, ENERGY_LIMIT_EV_PER_ATOM
from evaluator.reference.hull import HullReference, HullSet, load_hull_file

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

    from evaluator.config import EvalConfig

EHULL_TOL = 1e-9  # eV/atom: numerical noise allowed at the stability thresholds
ENERGY_KEYS = ("energy_per_atom", "corrected_energy_per_atom", "formation_energy_per_atom", "e_above_hull")


@dataclass(frozen=True)
class StabilityOptions:
    """hull: hull mode of the reference (None: its default, ``dft``; or e.g. ``mace``).
    hull_file: a compact hull parquet to score against instead of the reference's hull.
    hull_declared_compatible: accept an own-MLIP hull not declared for this MLIP.
    relax_mode: auto | engine | batched | pool | serial (``runner`` module doc).
    relax_workers: pool processes, or "auto" (CPU cores when there are >= 8 structures).
    relax_max_atoms: atoms per batched forward pass.
    mlip_energy_scale: overrides the backend's energy scale (e.g. ``raw-pbe-omat``).
    relax_budget_atom_steps: the per-structure relaxation budget in atoms × FIRE steps: an
        n-atom cell takes at most ``relax_budget_atom_steps // n`` steps (never more than the
        step cap, never fewer than ``relax_budget_min_steps``); deterministic, so scores do
        not depend on the machine. Cells of up to 40 atoms keep the full 300 steps by default.
        null: no budget beyond the step cap. A cell stopped by it is scored from its last
        state and flagged (``stability_stopped_by = "budget"``).
    relax_budget_min_steps: the fewest steps the budget leaves any cell.
    relax_max_seconds: wall-clock safety net per structure (null: none); a cell stopped by
        it is flagged ``wall_time`` (machine dependent, unlike the budget).
    """

    hull: str | None = None
    hull_file: str | Path | None = None
    hull_declared_compatible: bool = False
    relax_mode: RelaxMode = "auto"
    relax_workers: int | Literal["auto"] = "auto"
    relax_max_atoms: int = 4096
    mlip_energy_scale: str | None = None
    relax_budget_atom_steps: int | None = DEFAULT_BUDGET.atom_steps
    relax_budget_min_steps: int = DEFAULT_BUDGET.min_steps
    relax_max_seconds: float | None = DEFAULT_BUDGET.max_seconds

    def __post_init__(self) -> None:
        for name in ("hull", "mlip_energy_scale", "hull_file"):
            if getattr(self, name) is not None and not str(getattr(self, name)):
                raise ValueError(f"stability.{name} must not be empty (null: the default)")
        if self.relax_workers != "auto" and self.relax_workers < 1:
            raise ValueError(f"stability.relax_workers must be >= 1 or \"auto\", got {self.relax_workers!r}")
        if self.relax_max_atoms < 1:
            raise ValueError(f"stability.relax_max_atoms must be >= 1, got {self.relax_max_atoms!r}")
        if self.relax_budget_atom_steps is not None and self.relax_budget_atom_steps < 1:
            raise ValueError("stability.relax_budget_atom_steps must be >= 1 or null, "
                             f"got {self.relax_budget_atom_steps!r}")
        if self.relax_budget_min_steps < 0:
            raise ValueError(f"stability.relax_budget_min_steps must be >= 0, got {self.relax_budget_min_steps!r}")
        if self.relax_max_seconds is not None and not self.relax_max_seconds > 0:
            raise ValueError(f"stability.relax_max_seconds must be > 0 or null, got {self.relax_max_seconds!r}")


def relax_settings(cfg: EvalConfig, options: StabilityOptions) -> RelaxSettings:
    """The relaxation settings of a run: model and relaxation from the config, engine from the options."""
    return RelaxSettings(mlip=cfg.mlip, model=cfg.mlip_model, device=cfg.device, dtype=cfg.dtype,
                         fmax=cfg.relax_fmax, steps=cfg.relax_steps, mode=options.relax_mode,
                         workers=options.relax_workers, max_atoms=options.relax_max_atoms,
                         energy_scale=options.mlip_energy_scale,
                         budget_atom_steps=options.relax_budget_atom_steps,
                         budget_min_steps=options.relax_budget_min_steps, max_seconds=options.relax_max_seconds)


def reference_hull(ctx: EvalContext, options: StabilityOptions | None = None) -> HullReference:
    """The hull ``options`` select (``hull_file``, else mode ``hull`` of the context's reference).

    ``options`` defaults to the run's stability options (``ctx.config``), so another
    family (sun) scores against the same hull."""
    if options is None:
        options = FAMILY.options_from(ctx.config.family_options("stability"))
    if options.hull_file:  # a compact hull file (e.g. from evaluator.build.lemat_hull)
        return load_hull_file(options.hull_file)
    hull = ctx.reference.hull
    mode = options.hull
    if isinstance(hull, HullSet):
        return hull.get(mode)
    if isinstance(hull, HullReference):
        if mode and mode not in (hull.name, hull.name.split("/")[-1]):
            raise ValueError(f"reference '{ctx.reference.id}' has only the hull '{hull.name}', not '{mode}'")
        return hull
    raise TypeError(f"reference hull has unexpected type {type(hull).__name__}")


def _nan(x: float | None) -> float:
    return float(x) if x is not None else math.nan


@dataclass(frozen=True)
class HullScore:
    """One structure's energy on a hull (eV/atom); NaN where not computed, with ``reason``."""

    energy_per_atom: float = math.nan  # raw MLIP
    corrected_energy_per_atom: float = math.nan  # on the hull's energy scale
    formation_energy_per_atom: float = math.nan
    e_above_hull: float = math.nan
    n_ref_entries: int = 0
    reason: str | None = None


def score_energy(hull: HullReference, route: str, structure: Structure, energy: float) -> HullScore:
    """Corrected energy, formation energy and E_hull (eV/atom) of one structure/energy."""
    n = len(structure)
    per_atom = energy / n if math.isfinite(energy) else math.nan
    e_corr, why = hull_energy(route, structure, energy)
    if why:
        return HullScore(per_atom, reason=why)
    try:
        ef = hull.formation_energy_per_atom(structure.composition, e_corr)
    except KeyError as exc:
        return HullScore(per_atom, e_corr / n, reason=str(exc.args[0]))
    h = hull.e_above_hull(structure.composition, ef)
    return HullScore(per_atom, e_corr / n, ef, h.e_above_hull, h.n_ref_entries, h.reason)


def _flags(e: np.ndarray[Any, np.dtype[np.float64]], stable_thr: float,
           meta_thr: float) -> tuple[pd.arrays.BooleanArray, pd.arrays.BooleanArray]:
    finite = np.isfinite(e)
    stable = pd.array(np.where(finite, e <= stable_thr + EHULL_TOL, False), dtype="boolean")
    meta = pd.array(np.where(finite, e <= meta_thr + EHULL_TOL, False), dtype="boolean")
    stable[~finite] = pd.NA
    meta[~finite] = pd.NA
    return stable, meta


def _summary(ctx: EvalContext, cols: pd.DataFrame, prefix: str, relaxed: bool,
             result: FamilyResult) -> dict[str, Any]:
    """Count and mean/median metrics of one geometry (relaxed or unrelaxed)."""
    e = cols[f"{prefix}e_above_hull"].to_numpy(float)
    ef = cols[f"{prefix}formation_energy_per_atom"].to_numpy(float)
    energy = cols[f"{prefix}energy_per_atom"].to_numpy(float)
    cfg = ctx.config
    m: dict[str, Any] = {}
    m.update(ctx.counted("evaluated", int(np.isfinite(energy).sum())))
    m.update(ctx.counted("hull_scored", int(np.isfinite(e).sum())))
    m.update(ctx.counted("stable", int((e[np.isfinite(e)] <= cfg.stable_threshold + EHULL_TOL).sum())))
    m.update(ctx.counted("metastable", int((e[np.isfinite(e)] <= cfg.metastable_threshold + EHULL_TOL).sum())))
    label = "relaxed" if relaxed else "unrelaxed"
    means = {"mean_e_above_hull": e, "median_e_above_hull": e, "mean_formation_energy_per_atom": ef}
    if relaxed:
        m.update(ctx.counted("converged", int(cols["stability_converged"].fillna(False).astype(bool).sum())))
        stopped = cols["stability_stopped_by"]
        m.update(ctx.counted("budget_stopped", int((stopped == "budget").sum())))
        m.update(ctx.counted("wall_time_stopped", int((stopped == "wall_time").sum())))
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


def run(ctx: EvalContext, options: StabilityOptions) -> FamilyResult:
    cfg = ctx.config
    result = FamilyResult()
    settings = relax_settings(cfg, options)
    spec = describe_mlip(settings.mlip, settings.model, settings.energy_scale)
    hull = reference_hull(ctx, options)
    declared = options.hull_declared_compatible
    route = energy_route(spec, hull, declared)  # refuses an incompatible pair before any work

    structures = {i: s for i in ctx.valid_index if (s := ctx.structures[i]) is not None}
    relaxed, info = relax_all(structures, settings, ctx.checkpoint_dir("stability"), ctx.progress,
                              execution=cfg.execution)

    records: list[dict[str, Any]] = []
    for i in ctx.track(list(structures), "stability: hull"):
        s, r = structures[i], relaxed[i]
        rec: dict[str, Any] = {"index": i}
        if not r.ok:
            rec.update(stability_status="failed", stability_reason=r.reason or "relaxation failed")
            e0 = _nan(r.energy_unrelaxed)  # the submitted geometry does not need the relaxation
            if math.isfinite(e0) and abs(e0) / len(s) <= ENERGY_LIMIT_EV_PER_ATOM:
                unrel = score_energy(hull, route, s, e0)
                for k in ENERGY_KEYS:
                    rec[f"stability_unrelaxed_{k}"] = getattr(unrel, k)
            records.append(rec)
            continue
        rel = score_energy(hull, route, r.relaxed_structure(), _nan(r.energy))
        unrel = score_energy(hull, route, s, _nan(r.energy_unrelaxed))
        for k in ENERGY_KEYS:
            rec[f"stability_{k}"] = getattr(rel, k)
            rec[f"stability_unrelaxed_{k}"] = getattr(unrel, k)
        rec.update(stability_n_ref_entries=rel.n_ref_entries, stability_steps=r.steps,
                   stability_converged=r.converged, stability_fmax_final=r.fmax_final,
                   stability_rmsd=r.rmsd, stability_volume_ratio=r.volume_ratio,
                   stability_relaxed_structure=r.structure_relaxed, stability_stopped_by=r.stopped_by,
                   stability_step_limit=r.step_limit, stability_stop_note=r.stop_note())
        ok = math.isfinite(rel.e_above_hull)
        rec["stability_status"] = "ok" if ok else "failed"
        rec["stability_reason"] = None if ok else (rel.reason or "no energy above hull")
        records.append(rec)

    float_cols = [f"stability_{p}{k}" for p in ("", "unrelaxed_") for k in ENERGY_KEYS]
    float_cols += ["stability_fmax_final", "stability_rmsd", "stability_volume_ratio"]
    cols = (pd.DataFrame.from_records(records, index="index") if records
            else pd.DataFrame(index=pd.Index([], name="index")))
    for c in float_cols:
        cols[c] = pd.to_numeric(cols[c], errors="coerce") if c in cols else np.nan
    absent = pd.Series(pd.NA, index=cols.index)
    cols["stability_n_ref_entries"] = cols.get("stability_n_ref_entries", absent).astype("Int64")
    cols["stability_steps"] = cols.get("stability_steps", absent).astype("Int64")
    cols["stability_step_limit"] = cols.get("stability_step_limit", absent).astype("Int64")
    cols["stability_converged"] = cols.get("stability_converged", absent).astype("boolean")
    for c in ("stability_relaxed_structure", "stability_status", "stability_reason", "stability_stopped_by",
              "stability_stop_note"):
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
    engine = info["mode"] == "engine"
    result.provenance = {
        "mlip": info["mlip"], "hull": hull.describe(), "energy_route": route,
        "hull_declared_compatible": declared,
        "relaxation": {"optimizer": ("FIRE with ASE's constants (evaluator.mlip.engine, batched on the device)"
                                     if engine else "ase.optimize.FIRE"),
                       "filter": ("Frechet cell filter (ASE's FrechetCellFilter, batched)"
                                  if engine else "ase.filters.FrechetCellFilter"),
                       "fmax_eV_per_A": cfg.relax_fmax, "max_steps": cfg.relax_steps,
                       "budget": {"atom_steps": settings.budget_atom_steps, "min_steps": settings.budget_min_steps,
                                  "max_seconds": settings.max_seconds,
                                  "rule": "an n-atom cell takes at most min(max_steps, max(min_steps, "
                                          "atom_steps // n)) FIRE steps; a cell stopped there (or by the "
                                          "wall-time safety net) is scored from its last state and flagged "
                                          "in stability_stopped_by / stability_stop_note"},
                       "predicted_s": info.get("predicted_s"), "step_reports": info.get("step_reports"),
                       "mode": info["mode"], "workers": info["workers"],
                       "engine": (info.get("mlip") or {}).get("engine"), "device": info.get("device"),
                       "n_relaxed_now": info["n_relaxed_now"], "n_from_checkpoint": info["n_from_checkpoint"]},
        # where it ran (executor, cluster size, actors): execution only, it changes no value
        "execution": info["execution"],
        "thresholds_eV_per_atom": {"stable": cfg.stable_threshold, "metastable": cfg.metastable_threshold,
                                   "tolerance": EHULL_TOL},
        "rmsd": "minimum-image fractional displacements (cells aligned), mean translation removed, in Å "
                "with the relaxed lattice",
    }
    return result


FAMILY = Family(name="stability", requires=("validity",), options=StabilityOptions, metrics=METRICS, run=run,
                description="MLIP relaxation + E_hull")
