"""Structure relaxation: ASE FIRE on a FrechetCellFilter (positions and cell free).

Two drivers give the same trajectory (same ASE FIRE and filter objects):

- :func:`relax_one` — plain ASE, one structure, the model's ASE calculator.
- :func:`relax_batched` — many structures in lock-step: each FIRE iteration
  evaluates every active structure in one batched model call
  (``MLIP.predict``), hands each its energy/forces/stress through a
  SinglePointCalculator and lets that structure's own ASE FIRE take its step.
  A finished structure leaves the batch and the next waiting one joins
  (continuous batching, capped by ``max_atoms`` per forward pass). This is the
  GPU path for CHGNet; on CPU, batching costs more than it saves for 10–40-atom
  cells. MACE and SevenNet use the device-resident engine
  (``evaluator.mlip.engine``), which follows the same algorithm; these drivers
  stay the reference implementation.

Result of one relaxation (JSON-serialisable dict):
``energy_unrelaxed`` / ``energy`` (eV, total, submitted / final geometry; a failed
relaxation keeps ``energy_unrelaxed`` when the model gave it),
``steps`` (FIRE steps taken), ``converged`` (max filter force < fmax),
``fmax_final`` (eV/Å, max force incl. the cell's virial term as the filter sees it),
``rmsd`` (Å), ``volume_ratio`` (final/initial volume), ``structure_relaxed``
(pymatgen JSON), ``status`` ("ok"/"failed") and ``reason``.

RMSD: atom i is followed through the relaxation (same order), so no matching
is needed. Displacements are taken in fractional coordinates of each cell
(which removes the cell change: "cells aligned"), wrapped to the minimum image
[-0.5, 0.5), their mean removed (rigid translation), then converted to Å with
the relaxed lattice; RMSD = sqrt(mean |d_i|²).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np

# FrechetCellFilter takes scipy's matrix logarithm of the deformation gradient each
# step; scipy warns about ~1e-13 round-off, hundreds of lines per relaxation.
warnings.filterwarnings("ignore", message="logm result may be inaccurate", category=RuntimeWarning)

ENERGY_LIMIT_EV_PER_ATOM = 1e3  # |E|/N beyond this is a numerical blow-up, not a result


def periodic_rmsd(initial_frac: np.ndarray, final_frac: np.ndarray, final_lattice: np.ndarray) -> float:
    """RMSD (Å) between two fractional-coordinate sets of the same atoms (see module doc)."""
    d = np.asarray(final_frac, float) - np.asarray(initial_frac, float)
    d -= np.round(d)
    d -= d.mean(axis=0)
    d -= np.round(d)
    cart = d @ np.asarray(final_lattice, float)
    return float(np.sqrt((cart ** 2).sum(axis=1).mean()))


def _fmax(gradient: np.ndarray) -> float:
    return float(np.sqrt((gradient.reshape(-1, 3) ** 2).sum(axis=1).max()))


def _finish(atoms, initial_frac, initial_volume, e0, energy, steps, converged, fmax_final) -> dict:
    from pymatgen.io.ase import AseAtomsAdaptor

    n = len(atoms)
    out = {"energy_unrelaxed": float(e0), "energy": float(energy), "steps": int(steps),
           "converged": bool(converged), "fmax_final": float(fmax_final)}
    bad = [k for k in ("energy_unrelaxed", "energy")
           if not math.isfinite(out[k]) or abs(out[k]) / n > ENERGY_LIMIT_EV_PER_ATOM]
    if bad:
        return {**out, "status": "failed", "reason": f"non-physical {bad[0]} from the MLIP ({out[bad[0]]:.3g} eV)"}
    structure = AseAtomsAdaptor.get_structure(atoms)
    out.update(rmsd=periodic_rmsd(initial_frac, atoms.get_scaled_positions(wrap=False), atoms.cell.array),
               volume_ratio=float(atoms.get_volume() / initial_volume),
               structure_relaxed=structure.to_json(), status="ok", reason=None)
    return out


def _failed(reason: str, e0: float | None = None) -> dict:
    """A failed relaxation; keeps the submitted-geometry energy ``e0`` (eV) when it was computed."""
    out = {"status": "failed", "reason": reason}
    if e0 is not None:
        out["energy_unrelaxed"] = float(e0)
    return out


def relax_one(mlip, atoms, fmax: float = 0.02, steps: int = 300) -> dict:
    """Relax one ASE Atoms with plain ASE (FIRE + FrechetCellFilter). Returns a result dict."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    t0 = time.perf_counter()
    atoms = atoms.copy()
    atoms.calc = mlip.calculator()
    initial_frac, initial_volume = atoms.get_scaled_positions(wrap=False), atoms.get_volume()
    e0 = None
    try:
        e0 = atoms.get_potential_energy()
        filt = FrechetCellFilter(atoms)
        opt = FIRE(filt, logfile=None)
        converged = opt.run(fmax=fmax, steps=steps)
        fmax_final = _fmax(opt.optimizable.get_gradient())
        out = _finish(atoms, initial_frac, initial_volume, e0, atoms.get_potential_energy(),
                      opt.nsteps, converged, fmax_final)
    except Exception as exc:  # model failure mid-relaxation (e.g. isolated atom)
        out = _failed(f"relaxation error: {type(exc).__name__}: {exc}", e0)
    out["wall_s"] = round(time.perf_counter() - t0, 4)
    return out


class _Relaxation:
    """One structure's ASE FIRE + FrechetCellFilter, driven from outside."""

    def __init__(self, key, atoms, fmax: float, steps: int):
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE

        self.key, self.atoms, self.fmax, self.max_steps = key, atoms.copy(), fmax, steps
        self.initial_frac = self.atoms.get_scaled_positions(wrap=False)
        self.initial_volume = self.atoms.get_volume()
        self.filter = FrechetCellFilter(self.atoms)
        self.opt = FIRE(self.filter, logfile=None)
        self.opt.fmax = fmax
        self.e0 = None
        self.t0 = time.perf_counter()

    def advance(self, result: dict) -> dict | None:
        """Take the model result for the current geometry; return a final dict when done.

        Mirrors ``Optimizer.irun``: check convergence at the current geometry,
        stop when converged or at the step cap, else take one FIRE step.
        """
        from ase.calculators.singlepoint import SinglePointCalculator

        if "error" in result:
            return {**_failed(f"relaxation error: {result['error']}", self.e0),
                    "wall_s": round(time.perf_counter() - self.t0, 4)}
        self.atoms.calc = SinglePointCalculator(self.atoms, energy=result["energy"], free_energy=result["energy"],
                                                forces=result["forces"], stress=result["stress"])
        if self.e0 is None:
            self.e0 = result["energy"]
        gradient = self.opt.optimizable.get_gradient()
        converged = bool(self.opt.optimizable.converged(gradient, self.fmax))
        if converged or self.opt.nsteps >= self.max_steps or not np.all(np.isfinite(gradient)):
            out = _finish(self.atoms, self.initial_frac, self.initial_volume, self.e0, result["energy"],
                          self.opt.nsteps, converged, _fmax(gradient))
            out["wall_s"] = round(time.perf_counter() - self.t0, 4)
            return out
        self.opt.step()
        self.opt.nsteps += 1
        return None


def relax_batched(mlip, items: Iterable[tuple[object, object]], fmax: float = 0.02, steps: int = 300,
                  max_atoms: int = 4096, max_structures: int = 512,
                  on_result: Callable[[object, dict], None] | None = None) -> dict:
    """Relax ``(key, atoms)`` pairs in lock-step batches; returns {key: result}.

    ``on_result(key, result)`` is called as each structure finishes (checkpointing).
    At most ``max_atoms`` atoms / ``max_structures`` structures go through one
    forward pass; a structure larger than ``max_atoms`` runs alone.
    """
    pending = list(items)[::-1]
    active: list[_Relaxation] = []
    results: dict = {}

    def done(key, res):
        results[key] = res
        if on_result is not None:
            on_result(key, res)

    while pending or active:
        n_atoms = sum(len(r.atoms) for r in active)
        while pending and len(active) < max_structures:
            key, atoms = pending[-1]
            if active and n_atoms + len(atoms) > max_atoms:
                break
            pending.pop()
            try:
                active.append(_Relaxation(key, atoms, fmax, steps))
                n_atoms += len(atoms)
            except Exception as exc:
                done(key, _failed(f"relaxation setup error: {exc}"))
        if not active:
            continue
        try:
            preds = mlip.predict([r.atoms for r in active])
        except Exception as exc:  # a whole-batch failure: retry each structure alone
            preds = []
            for r in active:
                try:
                    preds.extend(mlip.predict([r.atoms]))
                except Exception as exc1:
                    preds.append({"error": f"{type(exc1).__name__}: {exc1} (batch: {exc})"})
        still = []
        for r, p in zip(active, preds, strict=True):
            try:
                res = r.advance(p)
            except Exception as exc:
                res = _failed(f"relaxation error: {type(exc).__name__}: {exc}")
            if res is None:
                still.append(r)
            else:
                done(r.key, res)
        active = still
    return results


def relax_serial(mlip, items: Iterable[tuple[object, object]], fmax: float = 0.02, steps: int = 300,
                 on_result: Callable[[object, dict], None] | None = None) -> dict:
    """Relax ``(key, atoms)`` pairs one at a time with plain ASE; returns {key: result}."""
    results = {}
    for key, atoms in items:
        res = relax_one(mlip, atoms, fmax, steps)
        results[key] = res
        if on_result is not None:
            on_result(key, res)
    return results
