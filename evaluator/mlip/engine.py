"""Batched relaxation engine: the whole batch lives on the device as tensors.

Same algorithm as the ASE reference path (:func:`evaluator.mlip.relax.relax_one`):
ASE's FIRE on a FrechetCellFilter (positions in the undeformed cell plus the
matrix log of the deformation gradient, scaled by the number of atoms), the same
FIRE constants (dt 0.1, dt_max 1.0, N_min 5, f_inc 1.1, f_dec 0.5, alpha 0.1,
f_alpha 0.99, max step 0.2 Å), the same convergence test (largest row norm of the
filter's forces, atoms and cell rows, below ``fmax``) and the same step cap.

Positions, cells, FIRE state (velocities, dt, alpha, N_pos) and step counters of
every active structure are batched tensors on the model's device. Each iteration
makes **one** model call for all active structures (torch-sim's ``MaceModel`` /
``SevenNetModel`` wrappers, neighbour lists by vesin), then:

- structures that converged, hit the step cap or failed leave the batch (their
  result is reported at once through ``on_result``, for checkpointing);
- the rest take one FIRE step on the device;
- waiting structures join (in-flight batching) while the batch stays under its
  budget: ``max_atoms`` atoms and, on CUDA, a memory budget measured from a
  probe forward pass (``memory_fraction`` of the free GPU memory).

What torch-sim 0.3.0 lacks, and this module adds (the rest is torch-sim's):
its FIRE step evaluates the Frechet derivative of the cell with a Python loop
(9 ``expm_frechet`` calls per structure per step), treats a batch that mixes
fresh and running structures as all fresh, and calls the model inside the step
(so a joining structure costs an extra model call). Here the cell forces come
from one batched ``matrix_exp`` of 6×6 block matrices (the adjoint of the
Frechet derivative of ``expm`` at A is the Frechet derivative at Aᵀ), fresh
structures are handled per structure, and the model is called once per iteration.

Every structure ends as a :class:`~evaluator.mlip.relax_result.RelaxResult`, as on
the reference path. Failures never fail the batch: a structure whose energy blows up or whose
forces are not finite is retried alone from its submitted geometry, then failed
with the reason; an exception in a batched model call (out of memory, too many
neighbours) halves the batch budget (OOM) or sends every structure of that
batch to be retried alone, and one that fails alone gets the reason.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, runtime_checkable

import numpy as np
import torch

from evaluator.mlip.relax import ENERGY_LIMIT_EV_PER_ATOM, K, OnResult, OnStep, RelaxBudget, final_result
from evaluator.mlip.relax_result import RelaxResult, StopReason

if TYPE_CHECKING:
    from ase import Atoms

# ASE FIRE defaults (ase.optimize.FIRE) and the FrechetCellFilter's exp_cell_factor = n atoms
DT_START, DT_MAX, N_MIN, F_INC, F_DEC, ALPHA_START, F_ALPHA, MAX_STEP = 0.1, 1.0, 5, 1.1, 0.5, 0.1, 0.99, 0.2


class TorchSimModel(Protocol):
    """What the engine needs of a torch-sim model (``torch_sim.models.interface.ModelInterface``)."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def __call__(self, state: Any) -> Mapping[str, torch.Tensor]:
        """Energy (n,), forces (atoms, 3) and stress (n, 3, 3) of a ``torch_sim.SimState``
        (torch-sim ships no type information, hence ``Any``)."""
        ...


@runtime_checkable
class TorchSimMLIP(Protocol):
    """An MLIP backend with a torch-sim model (MACE, SevenNet)."""

    def ts_model(self) -> TorchSimModel: ...


@dataclass
class _Job(Generic[K]):
    key: K
    atoms: Atoms  # submitted geometry
    alone: bool = False  # retried alone after a failure inside a batch
    e0: float | None = None
    t0: float = field(default_factory=time.perf_counter)
    limit: int = 300  # the most FIRE steps this cell may take (step cap or atom-step budget)
    joined: float | None = None  # when it joined a batch (the wall-time safety net counts from there)

    @property
    def n(self) -> int:
        return len(self.atoms)


def memory_metric(atoms: Atoms) -> float:
    """torch-sim's ``n_atoms_x_density`` memory scaler of one structure (atoms² per nm³)."""
    volume: float = atoms.get_volume()  # type: ignore[no-untyped-call]
    return len(atoms) * len(atoms) / (abs(volume) / 1000.0)


def frechet_cell_forces(log_f: torch.Tensor, ucf_grad: torch.Tensor) -> torch.Tensor:
    """Batched ``Σ_ij L(A, E_mn)_ij G_ij`` for all (m, n): ASE's FrechetCellFilter cell gradient.

    ``L(A, E)`` is the Frechet derivative of ``expm`` at ``A`` in direction ``E``; its
    adjoint is ``L(Aᵀ, ·)``, so the 3×3 result is ``L(Aᵀ, G)``: the upper-right block
    of ``expm([[Aᵀ, G], [0, Aᵀ]])``. ``log_f``, ``ucf_grad``: (n, 3, 3).
    """
    n = log_f.shape[0]
    block = torch.zeros((n, 6, 6), dtype=log_f.dtype, device=log_f.device)
    at = log_f.transpose(1, 2)
    block[:, :3, :3] = at
    block[:, 3:, 3:] = at
    block[:, :3, 3:] = ucf_grad
    expm: torch.Tensor = torch.linalg.matrix_exp(block)  # torch's stubs type linalg results as Any
    return expm[:, :3, 3:]


class _Batch(Generic[K]):
    """Tensors of the active structures (row-vector cells; ASE FIRE state per structure)."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self.jobs: list[_Job[K]] = []
        long = torch.long
        self.ref_cell = self._zeros(0, 3, 3)  # submitted cell (rows = lattice vectors)
        self.cell = self._zeros(0, 3, 3)
        self.u = self._zeros(0, 3)  # positions in the undeformed cell (ASE filter coordinates)
        self.numbers = self._zeros(0, dtype=long)
        self.masses = self._zeros(0)
        self.v = self._zeros(0, 3)
        self.cell_pos = self._zeros(0, 3, 3)  # logm(F) * n_atoms
        self.cell_v = self._zeros(0, 3, 3)
        self.dt = self._zeros(0)
        self.alpha = self._zeros(0)
        self.n_pos = self._zeros(0, dtype=long)
        self.steps = self._zeros(0, dtype=long)
        self.fresh = self._zeros(0, dtype=torch.bool)  # no FIRE step yet (ASE: velocities None)
        self.counts = self._zeros(0, dtype=long)

    def _zeros(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.zeros(shape, device=self.device, dtype=self.dtype if dtype is None else dtype)

    def _tensor(self, data: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.tensor(data, device=self.device, dtype=self.dtype if dtype is None else dtype)

    @property
    def n_atoms(self) -> int:
        return int(self.counts.sum()) if len(self.jobs) else 0

    def system_idx(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(len(self.jobs), device=self.device), self.counts)

    def add(self, jobs: list[_Job[K]]) -> None:
        if not jobs:
            return
        long = torch.long
        cells = self._tensor(np.array([j.atoms.cell.array for j in jobs]))
        pos = self._tensor(np.concatenate([j.atoms.positions for j in jobs]))
        n = len(jobs)
        counts = self._tensor([j.n for j in jobs], dtype=long)
        masses = np.concatenate([j.atoms.get_masses() for j in jobs])
        now = time.perf_counter()
        for j in jobs:
            j.joined = now if j.joined is None else j.joined
        self.jobs += jobs
        self.ref_cell = torch.cat([self.ref_cell, cells])
        self.cell = torch.cat([self.cell, cells.clone()])
        self.u = torch.cat([self.u, pos])  # F = 1 at the start: undeformed = Cartesian
        self.numbers = torch.cat([self.numbers, self._tensor(np.concatenate([j.atoms.numbers for j in jobs]),
                                                             dtype=long)])
        self.masses = torch.cat([self.masses, self._tensor(masses)])
        self.v = torch.cat([self.v, torch.zeros_like(pos)])
        self.cell_pos = torch.cat([self.cell_pos, self._zeros(n, 3, 3)])
        self.cell_v = torch.cat([self.cell_v, self._zeros(n, 3, 3)])
        self.dt = torch.cat([self.dt, torch.full((n,), DT_START, device=self.device, dtype=self.dtype)])
        self.alpha = torch.cat([self.alpha, torch.full((n,), ALPHA_START, device=self.device, dtype=self.dtype)])
        self.n_pos = torch.cat([self.n_pos, self._zeros(n, dtype=long)])
        self.steps = torch.cat([self.steps, self._zeros(n, dtype=long)])
        self.fresh = torch.cat([self.fresh, torch.ones(n, device=self.device, dtype=torch.bool)])
        self.counts = torch.cat([self.counts, counts])

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the structures where ``mask`` (per structure, bool) is True."""
        atom_mask = mask.repeat_interleave(self.counts)
        self.jobs = [j for j, k in zip(self.jobs, mask.tolist(), strict=True) if k]
        for name in ("ref_cell", "cell", "cell_pos", "cell_v", "dt", "alpha", "n_pos", "steps", "fresh", "counts"):
            setattr(self, name, getattr(self, name)[mask])
        for name in ("u", "numbers", "masses", "v"):
            setattr(self, name, getattr(self, name)[atom_mask])

    def deform_grad(self) -> torch.Tensor:
        F: torch.Tensor = torch.linalg.matrix_exp(self.cell_pos / self.counts.to(self.dtype).view(-1, 1, 1))
        return F

    def positions(self, F: torch.Tensor | None = None) -> torch.Tensor:
        """Cartesian positions: x = F u (per atom)."""
        F = self.deform_grad() if F is None else F
        return torch.bmm(F[self.system_idx()], self.u.unsqueeze(-1)).squeeze(-1)

    def sim_state(self) -> Any:
        """The batch as a ``torch_sim.SimState`` (torch-sim ships no type information)."""
        import torch_sim as ts

        return ts.SimState(positions=self.positions(), masses=self.masses, cell=self.cell.mT.contiguous(),
                           pbc=True, atomic_numbers=self.numbers, system_idx=self.system_idx())

    def filter_forces(self, out: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(atom forces @ F, cell forces) as ASE's FrechetCellFilter.get_forces gives them."""
        t = torch
        F = self.deform_grad()
        idx = self.system_idx()
        f_atoms = t.bmm(out["forces"].to(self.dtype).unsqueeze(1), F[idx]).squeeze(1)
        volume = t.linalg.det(self.cell).abs().view(-1, 1, 1)
        virial = -volume * out["stress"].to(self.dtype)
        ucf = t.bmm(virial, t.linalg.inv(F.transpose(1, 2)))
        log_f = self.cell_pos / self.counts.to(self.dtype).view(-1, 1, 1)
        f_cell = frechet_cell_forces(log_f, ucf) / self.counts.to(self.dtype).view(-1, 1, 1)
        return f_atoms, f_cell

    def fmax(self, f_atoms: torch.Tensor, f_cell: torch.Tensor) -> torch.Tensor:
        """Largest row norm of the filter's forces per structure (ASE's convergence measure)."""
        t = torch
        n = len(self.jobs)
        row = t.linalg.vector_norm(f_atoms, dim=1)
        out = t.zeros(n, device=self.device, dtype=self.dtype).scatter_reduce(
            0, self.system_idx(), row, reduce="amax", include_self=True)
        return t.maximum(out, t.linalg.vector_norm(f_cell, dim=2).amax(dim=1))

    def fire_step(self, f_atoms: torch.Tensor, f_cell: torch.Tensor) -> None:
        """One ASE FIRE step (per structure) on positions and the log-cell; no model call."""
        t = torch
        idx = self.system_idx()
        n = len(self.jobs)

        def per_sys(x: torch.Tensor) -> torch.Tensor:  # sum over atoms of each structure of a per-atom scalar
            return t.zeros(n, device=self.device, dtype=self.dtype).index_add_(0, idx, x)

        vf = per_sys((f_atoms * self.v).sum(1)) + (f_cell * self.cell_v).sum((1, 2))
        running = ~self.fresh
        pos = running & (vf > 0)
        neg = running & ~(vf > 0)
        vv = per_sys((self.v * self.v).sum(1)) + (self.cell_v ** 2).sum((1, 2))
        ff = per_sys((f_atoms * f_atoms).sum(1)) + (f_cell ** 2).sum((1, 2))
        a = self.alpha
        mix = t.sqrt(vv) / t.sqrt(ff).clamp_min(1e-300)  # ASE: a * f / |f| * |v|
        v_mix = (1 - a)[idx, None] * self.v + (a * mix)[idx, None] * f_atoms
        cv_mix = (1 - a).view(-1, 1, 1) * self.cell_v + (a * mix).view(-1, 1, 1) * f_cell
        self.v = t.where(pos[idx, None], v_mix, t.where(neg[idx, None], t.zeros_like(self.v), self.v))
        self.cell_v = t.where(pos.view(-1, 1, 1), cv_mix,
                              t.where(neg.view(-1, 1, 1), t.zeros_like(self.cell_v), self.cell_v))
        inc = pos & (self.n_pos > N_MIN)
        self.dt = t.where(inc, t.clamp(self.dt * F_INC, max=DT_MAX), self.dt)
        self.alpha = t.where(inc, self.alpha * F_ALPHA, self.alpha)
        self.n_pos = t.where(pos, self.n_pos + 1, self.n_pos)
        self.dt = t.where(neg, self.dt * F_DEC, self.dt)
        self.alpha = t.where(neg, t.full_like(self.alpha, ALPHA_START), self.alpha)
        self.n_pos = t.where(neg, t.zeros_like(self.n_pos), self.n_pos)
        self.fresh = t.zeros_like(self.fresh)
        # Euler step, then the whole step (atoms + cell) limited to MAX_STEP per structure
        self.v = self.v + self.dt[idx, None] * f_atoms
        self.cell_v = self.cell_v + self.dt.view(-1, 1, 1) * f_cell
        dr = self.dt[idx, None] * self.v
        dc = self.dt.view(-1, 1, 1) * self.cell_v
        norm = t.sqrt(per_sys((dr * dr).sum(1)) + (dc * dc).sum((1, 2)))
        scale = t.where(norm > MAX_STEP, MAX_STEP / norm.clamp_min(1e-300), t.ones_like(norm))
        self.u = self.u + scale[idx, None] * dr
        self.cell_pos = self.cell_pos + scale.view(-1, 1, 1) * dc
        self.steps = self.steps + 1
        self.cell = t.bmm(self.ref_cell, self.deform_grad().transpose(1, 2))


def _result(job: _Job[K], batch: _Batch[K], i: int, F: torch.Tensor, energy: float, converged: bool,
            fmax_final: float, stopped_by: StopReason | None = None) -> RelaxResult:
    """The reference path's result for structure ``i`` of the batch."""
    atoms: Atoms = job.atoms.copy()  # type: ignore[no-untyped-call]
    lo = int(batch.counts[:i].sum())
    pos = torch.bmm(F[i].expand(job.n, 3, 3), batch.u[lo:lo + job.n].unsqueeze(-1)).squeeze(-1)
    atoms.set_cell(batch.cell[i].detach().cpu().numpy().astype(float), scale_atoms=False)  # type: ignore[no-untyped-call]
    atoms.set_positions(pos.detach().cpu().numpy().astype(float))  # type: ignore[no-untyped-call]
    initial_frac = job.atoms.get_scaled_positions(wrap=False)  # type: ignore[no-untyped-call]
    initial_volume = job.atoms.get_volume()  # type: ignore[no-untyped-call]
    assert job.e0 is not None  # set at the first step, whose energy was finite
    out = final_result(atoms, initial_frac, initial_volume, job.e0, energy, int(batch.steps[i]), converged,
                       fmax_final, stopped_by, job.limit)
    return out.timed(time.perf_counter() - job.t0)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def relax_engine(mlip: TorchSimMLIP, items: Iterable[tuple[K, Atoms]], fmax: float = 0.02, steps: int = 300,
                 max_atoms: int = 4096, on_result: OnResult[K] | None = None,
                 memory_fraction: float = 0.6, stats: dict[str, Any] | None = None,
                 poll: Callable[[], None] | None = None, poll_s: float = 1.0, *,
                 budget: RelaxBudget | None = None, on_step: OnStep[K] | None = None) -> dict[K, RelaxResult]:
    """Relax ``(key, ase.Atoms)`` pairs with the batched engine; returns {key: result}.

    ``mlip`` must provide ``ts_model()`` (a torch-sim model; MACE and SevenNet do).
    ``on_result(key, result)`` is called as each structure finishes; an exception it
    raises (e.g. a shutdown request) stops the run at once. ``poll()`` is called about
    every ``poll_s`` seconds between iterations (so a shutdown request raised from it
    stops a long batch in which nothing finishes). ``stats``, when given,
    receives iterations, model calls, largest batch and the budget used. ``budget``
    (default: the step cap ``steps``) bounds each structure's steps by its size and its
    wall time from joining a batch; ``on_step(key, n_atoms, step, step_limit)`` is called
    after every iteration for each structure still running.
    """
    model = mlip.ts_model()
    device, dtype = model.device, model.dtype
    budget = budget if budget is not None else RelaxBudget(steps=steps)
    pending: deque[_Job[K]] = deque(_Job(k, a, limit=budget.step_limit(len(a))) for k, a in items)
    solo: deque[_Job[K]] = deque()  # structures to retry alone
    results: dict[K, RelaxResult] = {}
    st = stats if stats is not None else {}
    st.update(iterations=0, model_calls=0, max_batch=0, retried_alone=0, oom_halvings=0)
    mem_budget: float | None = None
    if device.type == "cuda":
        try:
            mem_budget = _memory_budget(model, list(pending), max_atoms, memory_fraction)
        except Exception as exc:  # noqa: BLE001 - the probe itself failed (e.g. out of memory): atom budget only
            st["memory_budget_error"] = f"{type(exc).__name__}: {exc}"
            torch.cuda.empty_cache()
    st["memory_budget"] = mem_budget

    def done(job: _Job[K], res: RelaxResult) -> None:
        results[job.key] = res
        if on_result is not None:
            on_result(job.key, res)

    def retry_or_fail(job: _Job[K], reason: str) -> None:
        if job.alone:
            done(job, RelaxResult.failed(reason, job.e0).timed(time.perf_counter() - job.t0))
        else:
            st["retried_alone"] += 1
            solo.append(_Job(job.key, job.atoms, alone=True, limit=job.limit))

    batch: _Batch[K] = _Batch(device, dtype)
    last_poll = time.monotonic()
    while pending or solo or batch.jobs:
        if poll is not None and time.monotonic() - last_poll >= poll_s:
            poll()
            last_poll = time.monotonic()
        # join: a solo retry runs only in an empty batch; otherwise fill up to the budget
        if not batch.jobs and solo:
            batch.add([solo.popleft()])
        elif not any(j.alone for j in batch.jobs):
            joining: list[_Job[K]] = []
            n_atoms, metric = batch.n_atoms, sum(memory_metric(j.atoms) for j in batch.jobs)
            while pending:
                job = pending[0]
                fits = n_atoms + job.n <= max_atoms and (
                    mem_budget is None or metric + memory_metric(job.atoms) <= mem_budget)
                if (batch.jobs or joining) and not fits:
                    break
                pending.popleft()
                joining.append(job)
                n_atoms += job.n
                metric += memory_metric(job.atoms)
            batch.add(joining)
        if not batch.jobs:
            continue
        st["iterations"] += 1
        st["max_batch"] = max(st["max_batch"], len(batch.jobs))
        try:
            st["model_calls"] += 1
            out = model(batch.sim_state())
            f_atoms, f_cell = batch.filter_forces(out)
            fmax_now = batch.fmax(f_atoms, f_cell)
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: never fail it, split it
            jobs = batch.jobs
            batch = _Batch(device, dtype)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if _is_oom(exc) and len(jobs) > 1:  # out of memory: half the budget, same structures again
                mem_budget = (mem_budget if mem_budget is not None
                              else sum(memory_metric(j.atoms) for j in jobs)) / 2
                st["oom_halvings"] += 1
                pending.extendleft(reversed([_Job(j.key, j.atoms, j.alone, t0=j.t0, limit=j.limit) for j in jobs]))
                continue
            for j in jobs:
                retry_or_fail(j, f"relaxation error: {type(exc).__name__}: {exc}")
            continue
        energy = out["energy"].detach().to(torch.float64).cpu().numpy()
        fmax_np = fmax_now.detach().to(torch.float64).cpu().numpy()
        bad_atoms = (~torch.isfinite(f_atoms).all(1)).to(torch.int32)  # int: index_add_ of bool is CPU-only
        finite_t = torch.zeros(len(batch.jobs), dtype=torch.int32, device=device).index_add_(
            0, batch.system_idx(), bad_atoms) == 0
        finite_t &= torch.isfinite(f_cell).all(2).all(1)
        finite_f = finite_t.cpu().numpy()
        steps_np = batch.steps.cpu().numpy()
        keep = np.ones(len(batch.jobs), dtype=bool)
        F: torch.Tensor | None = None
        for i, job in enumerate(batch.jobs):
            e = float(energy[i])
            ok_e = math.isfinite(e) and abs(e) / job.n <= ENERGY_LIMIT_EV_PER_ATOM
            if job.e0 is None and ok_e:
                job.e0 = e
            if not ok_e or not finite_f[i]:
                keep[i] = False
                what = "energy" if not ok_e else "forces/stress"
                retry_or_fail(job, f"relaxation error: non-finite or blown-up {what} from the MLIP "
                                   f"at step {int(steps_np[i])} ({e:.3g} eV)")
                continue
            converged = bool(fmax_np[i] < fmax)
            at_limit = bool(steps_np[i] >= job.limit)
            out_of_time = (budget.max_seconds is not None and job.joined is not None
                           and time.perf_counter() - job.joined >= budget.max_seconds)
            if converged or at_limit or out_of_time:
                keep[i] = False
                F = batch.deform_grad() if F is None else F
                stop: StopReason = ("wall_time" if out_of_time and not (converged or at_limit)
                                    else budget.stop_reason(job.n, converged))
                try:
                    res = _result(job, batch, i, F, e, converged, float(fmax_np[i]), stop)
                except Exception as exc:  # noqa: BLE001 - building one result failed: that structure fails alone
                    res = RelaxResult.failed(f"relaxation error: {type(exc).__name__}: {exc}", job.e0).timed(
                        time.perf_counter() - job.t0)
                done(job, res)
        if not keep.all():
            mask = torch.as_tensor(keep, device=device)
            f_atoms = f_atoms[mask.repeat_interleave(batch.counts)]
            f_cell = f_cell[mask]
            batch.keep(mask)
        if batch.jobs:
            if on_step is not None:
                for j, st_i in zip(batch.jobs, batch.steps.tolist(), strict=True):
                    on_step(j.key, j.n, int(st_i), j.limit)
            batch.fire_step(f_atoms, f_cell)
    return results


def _memory_budget(model: TorchSimModel, jobs: list[_Job[K]], max_atoms: int, fraction: float) -> float:
    """CUDA: the memory-scaler budget (Σ atoms²/nm³ per batch) that fits ``fraction`` of free memory.

    A probe forward pass on up to ``max_atoms`` atoms of the first structures measures the
    peak memory per unit of torch-sim's ``n_atoms_x_density`` scaler.
    """
    if not jobs:
        return float("inf")
    probe: list[_Job[K]] = []
    n = 0
    for j in jobs:
        if probe and n + j.n > min(max_atoms, 2048):
            break
        probe.append(j)
        n += j.n
    b: _Batch[K] = _Batch(model.device, model.dtype)
    b.add(probe)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    model(b.sim_state())
    torch.cuda.synchronize()
    per_unit = max(torch.cuda.max_memory_allocated() - base, 1) / sum(memory_metric(j.atoms) for j in probe)
    free, _ = torch.cuda.mem_get_info()
    del b
    torch.cuda.empty_cache()
    return fraction * (free + 0.0) / per_unit
