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

Cancellation: ``progress`` may raise to stop the run; in pool mode that kills
the pool's processes at once (no waiting for running relaxations).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, get_args

from evaluator.families.stability.checkpoint import Checkpoint, structure_key
from evaluator.mlip.relax_result import RelaxResult
from evaluator.progress import Progress

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core.structure import Structure

    from evaluator.mlip import MLIP, MLIPSpec

R = TypeVar("R", bound=Hashable)  # the caller's row key
POOL_POLL_S = 1.0  # seconds between progress re-calls while waiting on the pool
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

    def checkpoint_settings(self, spec: MLIPSpec) -> dict[str, object]:
        """What a result depends on (device and parallelism do not change it)."""
        return {"mlip": spec.name, "model_id": spec.model_id, "checkpoint_sha256": spec.checkpoint_sha256,
                "dtype": self.dtype, "fmax": self.fmax, "steps": self.steps, "optimizer": "FIRE",
                "filter": "FrechetCellFilter"}


def _to_atoms(structure: Structure) -> Atoms:
    from pymatgen.io.ase import AseAtomsAdaptor

    s = structure.copy()
    s.remove_oxidation_states()
    if "magmom" in s.site_properties:
        s.remove_site_property("magmom")
    return AseAtomsAdaptor.get_atoms(s)


# ---- pool workers ---------------------------------------------------------------------------
_WORKER_MLIP: MLIP | None = None


def _init_worker(name: str, model: str | None, device: str, dtype: str, energy_scale: str | None) -> None:
    global _WORKER_MLIP
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from evaluator.mlip import load_mlip

    _WORKER_MLIP = load_mlip(name, model, device, dtype, energy_scale)


def _worker_relax(key: str, structure_json: str, fmax: float, steps: int) -> tuple[str, RelaxResult]:
    from pymatgen.core.structure import Structure

    from evaluator.mlip.relax import relax_one

    if _WORKER_MLIP is None:
        raise RuntimeError("the relaxation worker was started without its model (_init_worker)")
    return key, relax_one(_WORKER_MLIP, _to_atoms(Structure.from_str(structure_json, fmt="json")), fmax, steps)


def resolve_mode(settings: RelaxSettings, device: str, n: int) -> tuple[str, int]:
    """(relax mode, pool workers) for ``n`` structures on ``device`` (``auto`` resolved)."""
    from evaluator.mlip import ENGINE_BACKENDS

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


def relax_all(structures: Mapping[R, Structure], settings: RelaxSettings, checkpoint_dir: Path | None = None,
              progress: Progress | None = None,
              mlip: MLIP | None = None) -> tuple[dict[R, RelaxResult], dict[str, Any]]:
    """Relax ``{row: Structure}``; returns ({row: result}, run info).

    Structures already in the checkpoint are not recomputed (nor are duplicates
    within the submission: identical structures share one relaxation).
    """
    from evaluator.mlip import describe_mlip, resolve_device

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
    info: dict[str, Any] = {"mode": mode, "workers": workers, "device": device, "n_relaxed_now": len(todo),
                            "n_from_checkpoint": n_cached, "checkpoint": str(ck.path) if ck.path else None,
                            "settings": asdict(settings)}
    done = [n_cached]

    def record(key: str, result: RelaxResult, persist: bool = True) -> None:
        if persist:
            ck.add(key, result)
        else:  # transient (worker crash): report it, but retry on the next run
            ck.results[key] = result
        done[0] += 1
        if progress:
            progress("stability: relax", done[0], n_total)

    def poll() -> None:
        if progress:
            progress("stability: relax", done[0], n_total)

    poll()
    # biggest first: better load balance in a pool, fuller batches early
    order = sorted(todo, key=lambda k: -len(todo[k]))
    if todo and mode == "pool" and workers > 1:
        _run_pool(order, todo, settings, device, workers, record)
    elif todo:
        if mlip is None:
            from evaluator.mlip import load_mlip

            mlip = load_mlip(settings.mlip, settings.model, device, settings.dtype, settings.energy_scale)
        items: list[tuple[str, Atoms]] = []
        for k in order:
            try:
                items.append((k, _to_atoms(todo[k])))
            except Exception as exc:  # noqa: BLE001 - a structure ASE cannot represent fails alone
                record(k, RelaxResult.failed(f"cannot convert to ASE Atoms: {exc}"))
        if mode == "engine":
            from evaluator.mlip.engine import TorchSimMLIP, relax_engine

            if not isinstance(mlip, TorchSimMLIP):
                raise ValueError(f"relax mode 'engine' needs a torch-sim model, which {settings.mlip} does not give")
            engine_stats: dict[str, Any] = {}
            relax_engine(mlip, items, settings.fmax, settings.steps, max_atoms=settings.max_atoms,
                         on_result=record, stats=engine_stats, poll=poll, poll_s=POOL_POLL_S)
            info["engine"] = engine_stats
        elif mode == "batched":
            from evaluator.mlip.relax import relax_batched

            relax_batched(mlip, items, settings.fmax, settings.steps, max_atoms=settings.max_atoms,
                          on_result=record)
        else:
            from evaluator.mlip.relax import relax_serial

            relax_serial(mlip, items, settings.fmax, settings.steps, on_result=record)
    info["mlip"] = {"name": spec.name, "model_id": spec.model_id, "checkpoint_sha256": spec.checkpoint_sha256,
                    "energy_scale": spec.energy_scale, "device": device, "dtype": settings.dtype,
                    "engine": ENGINE_NAMES.get(mode, mode)}
    return {row: ck.results.get(keys[row], RelaxResult.failed("not relaxed")) for row in structures}, info


class _Record(Protocol):
    def __call__(self, key: str, result: RelaxResult, persist: bool = True) -> None: ...


def _relax_item(item: tuple[str, str, float, int]) -> tuple[str, RelaxResult]:
    return _worker_relax(*item)


def _run_pool(order: list[str], todo: Mapping[str, Structure], settings: RelaxSettings, device: str, workers: int,
              record: _Record) -> None:
    """Relax ``todo`` in a bounded process pool, calling ``record`` as each finishes.

    If ``record`` raises, the pool's processes are killed at once (no waiting for
    running relaxations) before the exception propagates; a pool process that dies
    (e.g. out of memory) fails only the structure it was relaxing (not checkpointed,
    so the next run retries it).
    """
    from evaluator.procpool import run_bounded

    items = [(k, todo[k].to_json(), settings.fmax, settings.steps) for k in order]
    with run_bounded(_relax_item, items, workers=workers, start_method="forkserver",
                     initializer=_init_worker,
                     initargs=(settings.mlip, settings.model, device, settings.dtype,
                               settings.energy_scale)) as outcomes:
        for out in outcomes:
            k = order[out.index]
            if out.ok:
                record(k, out.value[1])
            else:  # worker crashed (e.g. out of memory, model failed to load)
                record(k, RelaxResult.failed(f"worker error: {out.error}"), persist=False)
