"""Relax many structures with checkpointing: batched on GPU, a process pool on CPU.

Modes (``RelaxSettings.mode``):
- ``auto``: on CUDA ``engine`` for backends with a torch-sim model (MACE,
  SevenNet) and ``batched`` for CHGNet; on CPU ``pool``.
- ``engine``: the GPU-resident batched engine (``evaluator.mlip.engine``):
  positions, cells and FIRE state of all active structures are device tensors,
  one model call per step, in-flight batching under a memory budget.
- ``batched``: in-process lock-step batched FIRE (one forward pass per step for
  all active structures; see ``evaluator.mlip.relax``).
- ``pool``: ``workers`` processes (``evaluator.procpool``: forkserver, never fork;
  they die with this process), each loading the model once with torch threads = 1
  and relaxing one structure at a time with plain ASE; ``workers=1`` runs in this
  process (no pool).
- ``serial``: plain ASE one at a time in this process.

Every finished structure is appended to the checkpoint at once (a
:class:`~evaluator.mlip.relax_result.RelaxResult` per structure), so an
interrupted run resumes without recomputing finished structures.

Each structure's relaxation is bounded by ``RelaxSettings.budget`` (the step cap, the
deterministic atom-step budget and a wall-time safety net; ``evaluator.mlip.relax.RelaxBudget``).
Every path reports the running cells' FIRE steps to a ``StepBoard`` (``step_progress``),
which passes them on to a progress callback that takes them; pool workers publish theirs
through a shared-memory side channel. Relaxations run largest expected cost first
(``evaluator.mlip.cost``). :func:`relax_chunk` relaxes a chunk of structures in this
process with a result and a step callback (what another executor calls).

Cancellation: ``progress`` may raise to stop the run; in pool mode that kills
the pool's processes at once (no waiting for running relaxations).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, get_args

from evaluator.families.stability.checkpoint import Checkpoint, structure_key
from evaluator.families.stability.executors.ray_executor import LocalFunctions, relax_on_ray
from evaluator.families.stability.step_progress import PoolSteps, StepBoard, attach_worker, worker_step
from evaluator.mlip import ENGINE_BACKENDS, describe_mlip, load_mlip, resolve_device
from evaluator.mlip.cost import cost_model
from evaluator.mlip.relax import OnResult, OnStep, RelaxBudget, relax_batched, relax_one, relax_serial
from evaluator.mlip.relax_result import RelaxResult
from evaluator.procpool import run_bounded
from evaluator.progress import Progress

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core.structure import Structure

    from evaluator.execution import ExecutionSettings
    from evaluator.mlip import MLIP, MLIPSpec

R = TypeVar("R", bound=Hashable)  # the caller's row key
RELAX_STAGE = "stability: relax"
POOL_POLL_S = 1.0  # seconds between polls of the engine (step progress, shutdown requests)
RelaxMode = Literal["auto", "engine", "batched", "pool", "serial"]
RELAX_MODES: tuple[str, ...] = get_args(RelaxMode)
ENGINE_NAMES = {"engine": "torch-sim batched engine (evaluator.mlip.engine)",
                "batched": "ASE FIRE lock-step batched (evaluator.mlip.relax.relax_batched)",
                "pool": "ASE FIRE one at a time, process pool", "serial": "ASE FIRE one at a time"}


@dataclass
class RelaxSettings:
    mlip: str = "chgnet"
    model: str | None = None
    device: str = "auto"
    dtype: str = "float32"
    fmax: float = 0.02  # eV/Å
    steps: int = 300
    mode: str = "auto"  # auto | engine | batched | pool | serial
    workers: int | str = "auto"  # pool size; auto = CPU cores when there are >= 8 structures
    max_atoms: int = 4096  # atoms per batched forward pass
    energy_scale: str | None = None  # override the backend's energy scale
    budget_atom_steps: int | None = None  # per-structure budget in atoms x steps (None: the step cap only)
    budget_min_steps: int = 0  # the fewest steps the budget leaves a cell
    max_seconds: float | None = None  # wall-clock safety net per structure (flagged "wall_time")

    @property
    def budget(self) -> RelaxBudget:
        """How far each structure's relaxation may go (step cap, atom-step budget, wall time)."""
        return RelaxBudget(steps=self.steps, atom_steps=self.budget_atom_steps, min_steps=self.budget_min_steps,
                           max_seconds=self.max_seconds)

    def checkpoint_settings(self, spec: MLIPSpec) -> dict[str, object]:
        """What a result depends on (device and parallelism do not change it)."""
        return {"mlip": spec.name, "model_id": spec.model_id, "checkpoint_sha256": spec.checkpoint_sha256,
                "dtype": self.dtype, "fmax": self.fmax, "steps": self.steps, "optimizer": "FIRE",
                "filter": "FrechetCellFilter", "budget_atom_steps": self.budget_atom_steps,
                "budget_min_steps": self.budget_min_steps, "max_seconds": self.max_seconds}


def _to_atoms(structure: Structure) -> Atoms:
    from pymatgen.io.ase import AseAtomsAdaptor

    s = structure.copy()
    s.remove_oxidation_states()
    if "magmom" in s.site_properties:
        s.remove_site_property("magmom")
    return AseAtomsAdaptor.get_atoms(s)


# ---- pool workers ---------------------------------------------------------------------------
_WORKER_MLIP: MLIP | None = None
WORKER_STEP_S = 0.5  # a pool worker publishes its step at most this often


def _init_worker(name: str, model: str | None, device: str, dtype: str, energy_scale: str | None,
                 steps_array: Any = None, steps_counter: Any = None, slots: int = 0) -> None:
    global _WORKER_MLIP
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

    if steps_array is not None:
        attach_worker(steps_array, steps_counter, slots)
    _WORKER_MLIP = load_mlip(name, model, device, dtype, energy_scale)


def _worker_relax(index: int, structure_json: str, fmax: float, budget: RelaxBudget) -> RelaxResult:
    from pymatgen.core.structure import Structure

    if _WORKER_MLIP is None:
        raise RuntimeError("the relaxation worker was started without its model (_init_worker)")
    atoms = _to_atoms(Structure.from_str(structure_json, fmt="json"))
    last = [-float("inf")]

    def on_step(step: int, limit: int) -> None:
        now = time.monotonic()
        if now - last[0] >= WORKER_STEP_S or step >= limit:
            last[0] = now
            worker_step(index, len(atoms), step, limit)

    return relax_one(_WORKER_MLIP, atoms, fmax, budget.steps, budget=budget, on_step=on_step)


def _relax_item(item: tuple[int, str, float, RelaxBudget]) -> RelaxResult:
    return _worker_relax(*item)


def resolve_mode(settings: RelaxSettings, device: str, n: int) -> tuple[str, int]:
    """(relax mode, pool workers) for ``n`` structures on ``device`` (``auto`` resolved)."""
    mode = settings.mode
    if mode == "auto":
        if device.startswith("cuda"):
            mode = "engine" if settings.mlip in ENGINE_BACKENDS else "batched"
        else:
            mode = "pool"
    if mode == "engine" and settings.mlip not in ENGINE_BACKENDS:
        raise ValueError(f"relax mode 'engine' needs a torch-sim model ({', '.join(ENGINE_BACKENDS)}), "
                         f"not {settings.mlip}: use mode batched, pool or serial")
    if mode not in RELAX_MODES[1:]:
        raise ValueError(f"unknown relax mode '{mode}': use auto, engine, batched, pool or serial")
    workers = 1
    if mode == "pool":
        w = settings.workers
        workers = (os.cpu_count() or 1) if w == "auto" and n >= 8 else (1 if w == "auto" else int(w))
        workers = max(1, min(workers, n))
    return mode, workers


def cost_order(todo: Mapping[str, Structure], settings: RelaxSettings, device: str) -> list[str]:
    """Keys by expected cost (``evaluator.mlip.cost``), largest first: a pool keeps every core
    busy to the end (longest-processing-time-first) and the largest cells never come last."""
    model = cost_model(settings.mlip, device)
    budget = settings.budget
    return sorted(todo, key=lambda k: (-model.seconds(len(todo[k]), budget), -len(todo[k])))


def relax_chunk(mlip: MLIP, items: list[tuple[str, Atoms]], settings: RelaxSettings, mode: str,
                on_result: OnResult[str], on_step: OnStep[str] | None = None,
                poll: Callable[[], None] | None = None) -> dict[str, Any]:
    """Relax ``(key, atoms)`` pairs in this process with ``mode`` (engine, batched or serial);
    ``on_result(key, result)`` as each finishes (checkpoint it there), ``on_step(key, atoms,
    step, limit)`` at every step, ``poll()`` about once a second (engine). Returns run stats.
    An exception raised by a callback stops the chunk."""
    stats: dict[str, Any] = {}
    budget = settings.budget
    if mode == "engine":
        from evaluator.mlip.engine import TorchSimMLIP, relax_engine

        if not isinstance(mlip, TorchSimMLIP):
            raise ValueError(f"relax mode 'engine' needs a torch-sim model, which {settings.mlip} does not give")
        relax_engine(mlip, items, settings.fmax, settings.steps, max_atoms=settings.max_atoms,
                     on_result=on_result, stats=stats, poll=poll, poll_s=POOL_POLL_S, budget=budget,
                     on_step=on_step)
    elif mode == "batched":
        relax_batched(mlip, items, settings.fmax, settings.steps, max_atoms=settings.max_atoms,
                      on_result=on_result, budget=budget, on_step=on_step)
    else:
        relax_serial(mlip, items, settings.fmax, settings.steps, on_result=on_result, budget=budget,
                     on_step=on_step)
    return stats


def relax_all(structures: Mapping[R, Structure], settings: RelaxSettings, checkpoint_dir: Path | None = None,
              progress: Progress | None = None, mlip: MLIP | None = None,
              execution: ExecutionSettings | None = None) -> tuple[dict[R, RelaxResult], dict[str, Any]]:
    """Relax ``{row: Structure}``; returns ({row: result}, run info).

    Structures already in the checkpoint are not recomputed (nor are duplicates
    within the submission: identical structures share one relaxation). Every finished
    structure is checkpointed at once; ``progress`` gets the structures done and, if it
    takes them (``StepReporter``), the running cells' steps (``step_progress`` module).
    ``execution``: where they run (default: here; ``ray``: ``executors.ray_executor``,
    whose actors run :func:`relax_chunk` on chunks of structures).
    """
    spec = describe_mlip(settings.mlip, settings.model, settings.energy_scale)
    device = resolve_device(settings.device)
    ck = Checkpoint(checkpoint_dir, settings.checkpoint_settings(spec))
    keys = {row: structure_key(s) for row, s in structures.items()}
    todo: dict[str, Structure] = {}
    for row, s in structures.items():
        if keys[row] not in ck and keys[row] not in todo:
            todo[keys[row]] = s
    n_total, n_cached = len(set(keys.values())), len(set(keys.values())) - len(todo)
    mode, workers = resolve_mode(settings, device, len(todo))
    budget = settings.budget
    costs = cost_model(settings.mlip, device)
    info: dict[str, Any] = {"mode": mode, "workers": workers, "device": device, "n_relaxed_now": len(todo),
                            "n_from_checkpoint": n_cached, "checkpoint": str(ck.path) if ck.path else None,
                            "settings": asdict(settings), "execution": {"executor": "local"},
                            "predicted_s": round(costs.total_seconds((len(s) for s in todo.values()), budget), 1)}
    board = StepBoard(RELAX_STAGE, {k: (len(s), costs.atom_steps(len(s), budget)) for k, s in todo.items()},
                      progress, n_cached, n_total)

    def record(key: str, result: RelaxResult, persist: bool = True) -> None:
        if persist:
            ck.add(key, result)
        else:  # transient (worker crash): report it, but retry on the next run
            ck.results[key] = result
        board.finish(key, result)
        board.raise_error()

    if progress:
        progress(RELAX_STAGE, n_cached, n_total)
    order = cost_order(todo, settings, device)
    if todo and execution is not None and execution.executor == "ray":
        def poll() -> None:  # while chunks run on the cluster: progress may raise to stop the run
            if progress:
                progress(RELAX_STAGE, board.done, board.total)
            board.raise_error()

        info.update(relax_on_ray(order, todo, settings, execution,
                                 LocalFunctions(resolve_mode, relax_chunk, _to_atoms), record, poll))
        mode, device = info["mode"], info["device"]
    elif todo and mode == "pool" and workers > 1:
        _run_pool(order, todo, settings, device, workers, record, board)
    elif todo:
        if mlip is None:
            mlip = load_mlip(settings.mlip, settings.model, device, settings.dtype, settings.energy_scale)
        items: list[tuple[str, Atoms]] = []
        for k in order:
            try:
                items.append((k, _to_atoms(todo[k])))
            except Exception as exc:  # noqa: BLE001 - a structure ASE cannot represent fails alone
                record(k, RelaxResult.failed(f"cannot convert to ASE Atoms: {exc}"))
        stats = relax_chunk(mlip, items, settings, mode, record, board.step, board.report)
        if mode == "engine":
            info["engine"] = stats
    info["step_reports"] = board.reports
    info["mlip"] = {"name": spec.name, "model_id": spec.model_id, "checkpoint_sha256": spec.checkpoint_sha256,
                    "energy_scale": spec.energy_scale, "device": device, "dtype": settings.dtype,
                    "engine": ENGINE_NAMES.get(mode, mode)}
    return {row: ck.results.get(keys[row], RelaxResult.failed("not relaxed")) for row in structures}, info


class _Record(Protocol):
    def __call__(self, key: str, result: RelaxResult, persist: bool = True) -> None: ...


def _run_pool(order: list[str], todo: Mapping[str, Structure], settings: RelaxSettings, device: str, workers: int,
              record: _Record, board: StepBoard) -> None:
    """Relax ``todo`` in a bounded process pool, calling ``record`` as each finishes.

    The workers publish their steps through a shared-memory side channel
    (``step_progress.PoolSteps``) that a thread reads into ``board``. If ``record``
    raises, the pool's processes are killed at once (no waiting for running
    relaxations) before the exception propagates. A pool process that dies costs its
    structure nothing unless the structure kills a process again, alone (then it fails,
    not checkpointed, so the next run retries it); processes that cannot start (e.g. the
    model fails to load) or keep dying raise ``PoolFailure`` (infrastructure: the job is
    retried, no row fails for it).
    """
    import multiprocessing as mp

    items = [(i, todo[k].to_json(), settings.fmax, settings.budget) for i, k in enumerate(order)]
    with PoolSteps(mp.get_context("forkserver"), workers, order, board) as channel:
        with run_bounded(_relax_item, items, workers=workers, start_method="forkserver",
                         initializer=_init_worker,
                         initargs=(settings.mlip, settings.model, device, settings.dtype,
                                   settings.energy_scale, *channel.initargs)) as outcomes:
            for out in outcomes:
                k = order[out.index]
                if out.ok:
                    record(k, out.value)
                else:  # this structure alone, reproducibly, crashed or timed out its worker
                    record(k, RelaxResult.failed(f"worker error: {out.error}"), persist=False)
