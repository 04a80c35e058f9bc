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

Result of one relaxation: a :class:`~evaluator.mlip.relax_result.RelaxResult`
(energies at the submitted and final geometry, steps, convergence, final max force,
RMSD, volume ratio, relaxed structure, status and reason, wall time). A structure
that fails is a failed result with the reason, never an exception.

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
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evaluator.mlip.relax_result import RelaxResult, StopReason

if TYPE_CHECKING:
    from ase import Atoms

    from evaluator.mlip import MLIP

# FrechetCellFilter takes scipy's matrix logarithm of the deformation gradient each
# step; scipy warns about ~1e-13 round-off, hundreds of lines per relaxation.
warnings.filterwarnings("ignore", message="logm result may be inaccurate", category=RuntimeWarning)

ENERGY_LIMIT_EV_PER_ATOM = 1e3  # |E|/N beyond this is a numerical blow-up, not a result

K = TypeVar("K", bound=Hashable)  # the caller's key of a structure (row, structure hash, ...)
OnResult = Callable[[K, RelaxResult], None]
# on_step(key, n_atoms, step, step_limit): called at every FIRE step of a running relaxation
OnStep = Callable[[K, int, int, int], None]


@dataclass(frozen=True)
class RelaxBudget:
    """How far one structure's relaxation may go.

    steps: the FIRE step cap (``--relax-steps``).
    atom_steps: the deterministic per-structure budget, in atoms x FIRE steps: an n-atom
        cell may take at most ``atom_steps // n`` steps (never fewer than ``min_steps``,
        never more than ``steps``). It depends on nothing but the cell, so a score never
        depends on the machine's speed. None: no budget beyond ``steps``.
    min_steps: the fewest steps the budget leaves any cell.
    max_seconds: a wall-clock safety net per structure (None: none). A relaxation stopped
        by it is flagged ``wall_time``, a machine-dependent result; the atom-step budget
        should stop every cell long before it.
    """

    steps: int = 300
    atom_steps: int | None = None
    min_steps: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 0 or self.min_steps < 0:
            raise ValueError("step counts must be >= 0")
        if self.atom_steps is not None and self.atom_steps < 1:
            raise ValueError(f"the atom-step budget must be >= 1 or None, got {self.atom_steps}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 or None, got {self.max_seconds}")

    def step_limit(self, n_atoms: int) -> int:
        """The most FIRE steps an ``n_atoms`` cell may take."""
        if self.atom_steps is None:
            return self.steps
        return min(self.steps, max(self.min_steps, self.atom_steps // max(1, int(n_atoms))))

    def stop_reason(self, n_atoms: int, converged: bool) -> StopReason:
        """Why a relaxation that ended at its step limit (or converged) stopped."""
        if converged:
            return "converged"
        return "budget" if self.step_limit(n_atoms) < self.steps else "step_cap"


# The defaults of StabilityOptions (relax_budget_atom_steps, relax_budget_min_steps,
# relax_max_seconds) with the default step cap: cells of up to 40 atoms keep 300 steps,
# a 246-atom cell gets 48; the wall-time net is far above what the budget allows on a CPU.
DEFAULT_BUDGET = RelaxBudget(steps=300, atom_steps=12_000, min_steps=20, max_seconds=3600.0)


def periodic_rmsd(initial_frac: ArrayLike, final_frac: ArrayLike, final_lattice: ArrayLike) -> float:
    """RMSD (Å) between two fractional-coordinate sets of the same atoms (see module doc)."""
    d = np.asarray(final_frac, float) - np.asarray(initial_frac, float)
    d -= np.round(d)
    d -= d.mean(axis=0)
    d -= np.round(d)
    cart = d @ np.asarray(final_lattice, float)
    return float(np.sqrt((cart ** 2).sum(axis=1).mean()))


def _fmax(gradient: NDArray[np.floating[Any]]) -> float:
    return float(np.sqrt((gradient.reshape(-1, 3) ** 2).sum(axis=1).max()))


def final_result(atoms: Atoms, initial_frac: NDArray[np.float64], initial_volume: float, e0: float,
                 energy: float, steps: int, converged: bool, fmax_final: float,
                 stopped_by: StopReason | None = None, step_limit: int | None = None) -> RelaxResult:
    """The result of a finished relaxation of ``atoms`` (final geometry, submitted-geometry
    energy ``e0`` and final ``energy`` in eV); failed when an energy is non-physical."""
    from pymatgen.io.ase import AseAtomsAdaptor

    n = len(atoms)
    energies = {"energy_unrelaxed": float(e0), "energy": float(energy)}
    bad = [k for k, e in energies.items() if not math.isfinite(e) or abs(e) / n > ENERGY_LIMIT_EV_PER_ATOM]
    if bad:
        return RelaxResult("failed", f"non-physical {bad[0]} from the MLIP ({energies[bad[0]]:.3g} eV)",
                           energy_unrelaxed=energies["energy_unrelaxed"], energy=energies["energy"],
                           steps=int(steps), converged=bool(converged), fmax_final=float(fmax_final),
                           stopped_by=stopped_by, step_limit=step_limit)
    final_frac = atoms.get_scaled_positions(wrap=False)  # type: ignore[no-untyped-call]
    volume = atoms.get_volume()  # type: ignore[no-untyped-call]
    return RelaxResult(
        "ok", None, energy_unrelaxed=energies["energy_unrelaxed"], energy=energies["energy"], steps=int(steps),
        converged=bool(converged), fmax_final=float(fmax_final),
        rmsd=periodic_rmsd(initial_frac, final_frac, atoms.cell.array), volume_ratio=float(volume / initial_volume),
        structure_relaxed=AseAtomsAdaptor.get_structure(atoms).to_json(), stopped_by=stopped_by,
        step_limit=step_limit)


def relax_one(mlip: MLIP, atoms: Atoms, fmax: float = 0.02, steps: int = 300, *,
              budget: RelaxBudget | None = None, on_step: Callable[[int, int], None] | None = None) -> RelaxResult:
    """Relax one ASE Atoms with plain ASE (FIRE + FrechetCellFilter).

    ``budget`` (default: just the step cap ``steps``) bounds the steps by the cell's size
    and the wall time; ``on_step(step, step_limit)`` is called at every step (progress).
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    budget = budget if budget is not None else RelaxBudget(steps=steps)
    t0 = time.perf_counter()
    atoms = atoms.copy()  # type: ignore[no-untyped-call]
    atoms.calc = mlip.calculator()
    initial_frac = atoms.get_scaled_positions(wrap=False)  # type: ignore[no-untyped-call]
    initial_volume = atoms.get_volume()  # type: ignore[no-untyped-call]
    limit = budget.step_limit(len(atoms))
    e0 = None
    try:
        e0 = atoms.get_potential_energy()  # type: ignore[no-untyped-call]
        filt = FrechetCellFilter(atoms)  # type: ignore[no-untyped-call]
        opt = FIRE(filt, logfile=None)
        converged = False
        stopped_by: StopReason | None = None
        for converged in opt.irun(fmax=fmax, steps=limit):
            if on_step is not None:
                on_step(opt.nsteps, limit)
            if (not converged and opt.nsteps < limit and budget.max_seconds is not None
                    and time.perf_counter() - t0 >= budget.max_seconds):
                stopped_by = "wall_time"  # the safety net: scored from this (last) state
                break
        converged = bool(converged)
        stopped_by = stopped_by or budget.stop_reason(len(atoms), converged)
        fmax_final = _fmax(opt.optimizable.get_gradient())
        energy = atoms.get_potential_energy()  # type: ignore[no-untyped-call]
        out = final_result(atoms, initial_frac, initial_volume, e0, energy, opt.nsteps, converged, fmax_final,
                           stopped_by, limit)
    except Exception as exc:  # noqa: BLE001 - a model failure mid-relaxation (e.g. isolated atom) fails this structure only
        out = RelaxResult.failed(f"relaxation error: {type(exc).__name__}: {exc}", e0)
    return out.timed(time.perf_counter() - t0)


class _Relaxation:
    """One structure's ASE FIRE + FrechetCellFilter, driven from outside."""

    def __init__(self, atoms: Atoms, fmax: float, budget: RelaxBudget):
        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE

        self.atoms: Atoms = atoms.copy()  # type: ignore[no-untyped-call]
        self.budget = budget
        self.fmax, self.max_steps = fmax, budget.step_limit(len(self.atoms))
        self.initial_frac = self.atoms.get_scaled_positions(wrap=False)
        self.initial_volume = self.atoms.get_volume()
        self.filter = FrechetCellFilter(self.atoms)  # type: ignore[no-untyped-call]
        self.opt = FIRE(self.filter, logfile=None)
        self.opt.fmax = fmax
        self.e0: float | None = None
        self.t0 = time.perf_counter()

    def advance(self, prediction: Mapping[str, Any]) -> RelaxResult | None:
        """Take the model's prediction for the current geometry; return the result when done.

        Mirrors ``Optimizer.irun``: check convergence at the current geometry,
        stop when converged or at the step cap, else take one FIRE step.
        """
        from ase.calculators.singlepoint import SinglePointCalculator

        if "error" in prediction:
            return RelaxResult.failed(f"relaxation error: {prediction['error']}", self.e0).timed(
                time.perf_counter() - self.t0)
        energy = prediction["energy"]
        self.atoms.calc = SinglePointCalculator(  # type: ignore[no-untyped-call]
            self.atoms, energy=energy, free_energy=energy, forces=prediction["forces"], stress=prediction["stress"])
        if self.e0 is None:
            self.e0 = float(energy)
        gradient = self.opt.optimizable.get_gradient()
        converged = bool(self.opt.optimizable.converged(gradient, self.fmax))
        out_of_time = (self.budget.max_seconds is not None
                       and time.perf_counter() - self.t0 >= self.budget.max_seconds)
        if converged or self.opt.nsteps >= self.max_steps or out_of_time or not np.all(np.isfinite(gradient)):
            stopped_by: StopReason = ("wall_time" if out_of_time and not converged and self.opt.nsteps < self.max_steps
                                      else self.budget.stop_reason(len(self.atoms), converged))
            out = final_result(self.atoms, self.initial_frac, self.initial_volume, self.e0, energy,
                               self.opt.nsteps, converged, _fmax(gradient), stopped_by, self.max_steps)
            return out.timed(time.perf_counter() - self.t0)
        self.opt.step()
        self.opt.nsteps += 1
        return None


def relax_batched(mlip: MLIP, items: Iterable[tuple[K, Atoms]], fmax: float = 0.02, steps: int = 300,
                  max_atoms: int = 4096, max_structures: int = 512,
                  on_result: OnResult[K] | None = None, *, budget: RelaxBudget | None = None,
                  on_step: OnStep[K] | None = None) -> dict[K, RelaxResult]:
    """Relax ``(key, atoms)`` pairs in lock-step batches; returns {key: result}.

    ``on_result(key, result)`` is called as each structure finishes (checkpointing);
    ``on_step(key, n_atoms, step, step_limit)`` after every lock-step iteration for each
    structure still running. At most ``max_atoms`` atoms / ``max_structures`` structures go
    through one forward pass; a structure larger than ``max_atoms`` runs alone.
    ``budget`` (default: the step cap ``steps``) bounds each structure's steps.
    """
    budget = budget if budget is not None else RelaxBudget(steps=steps)
    pending = list(items)[::-1]
    active: list[tuple[K, _Relaxation]] = []
    results: dict[K, RelaxResult] = {}

    def done(key: K, res: RelaxResult) -> None:
        results[key] = res
        if on_result is not None:
            on_result(key, res)

    while pending or active:
        n_atoms = sum(len(r.atoms) for _, r in active)
        while pending and len(active) < max_structures:
            key, atoms = pending[-1]
            if active and n_atoms + len(atoms) > max_atoms:
                break
            pending.pop()
            try:
                active.append((key, _Relaxation(atoms, fmax, budget)))
                n_atoms += len(atoms)
            except Exception as exc:  # noqa: BLE001 - a structure ASE cannot set up fails alone
                done(key, RelaxResult.failed(f"relaxation setup error: {exc}"))
        if not active:
            continue
        preds: list[Mapping[str, Any]]
        try:
            preds = list(mlip.predict([r.atoms for _, r in active]))
        except Exception as exc:  # noqa: BLE001 - a whole-batch failure: retry each structure alone
            preds = []
            for _, r in active:
                try:
                    preds.extend(mlip.predict([r.atoms]))
                except Exception as exc1:  # noqa: BLE001 - this structure fails, the batch goes on
                    preds.append({"error": f"{type(exc1).__name__}: {exc1} (batch: {exc})"})
        still = []
        for (key, r), p in zip(active, preds, strict=True):
            try:
                res = r.advance(p)
            except Exception as exc:  # noqa: BLE001 - one structure's ASE step failed: it alone fails
                res = RelaxResult.failed(f"relaxation error: {type(exc).__name__}: {exc}")
            if res is None:
                still.append((key, r))
                if on_step is not None:
                    on_step(key, len(r.atoms), r.opt.nsteps, r.max_steps)
            else:
                done(key, res)
        active = still
    return results


def relax_serial(mlip: MLIP, items: Iterable[tuple[K, Atoms]], fmax: float = 0.02, steps: int = 300,
                 on_result: OnResult[K] | None = None, *, budget: RelaxBudget | None = None,
                 on_step: OnStep[K] | None = None) -> dict[K, RelaxResult]:
    """Relax ``(key, atoms)`` pairs one at a time with plain ASE; returns {key: result}.

    ``on_step(key, n_atoms, step, step_limit)`` is called at every step of the running one."""
    results: dict[K, RelaxResult] = {}
    for key, atoms in items:
        step_cb = None
        if on_step is not None:
            def step_cb(step: int, limit: int, key: K = key, n: int = len(atoms)) -> None:
                on_step(key, n, step, limit)
        res = relax_one(mlip, atoms, fmax, steps, budget=budget, on_step=step_cb)
        results[key] = res
        if on_result is not None:
            on_result(key, res)
    return results
