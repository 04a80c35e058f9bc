"""The Ray actor of the stability stage: loads the MLIP once, then relaxes chunks of structures.

It runs the local executor's own function, handed to it by the runner (:class:`ActorSpec`):
``relax_chunk(mlip, items, settings, mode, on_result)`` of
``evaluator.families.stability.runner``, so a structure is relaxed exactly as on this
machine, with the same per-structure budget:

- CPU actors (one per CPU slot, torch threads = 1, like a pool worker): the ``pool`` and
  ``serial`` modes relax one structure at a time with plain ASE (``relax_serial``);
- GPU actors (one per GPU): ``engine`` / ``batched`` take the whole chunk, with in-flight
  batching within it.

A structure that fails alone is a failed :class:`~evaluator.mlip.relax_result.RelaxResult`
with its reason, as locally; the actor method itself fails only when the process dies (or
the relaxation code raises, as it would locally). This module does not import ray: the
executor wraps the class with ``ray.remote``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluator.mlip import load_mlip
from evaluator.mlip.relax_result import RelaxResult

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core.structure import Structure

    from evaluator.mlip import MLIP

ONE_AT_A_TIME = ("pool", "serial")  # one structure at a time: relax_chunk's serial mode


@dataclass(frozen=True)
class ActorSpec:
    """What an actor runs. The callables are module-level functions of the runner (Ray
    pickles them by reference, so every node imports the same code)."""

    mode: str  # engine | batched | pool | serial (resolved for the actors' device)
    load_args: tuple[str, str | None, str, str, str | None]  # (mlip, model, device, dtype, energy scale)
    settings: Any  # the runner's RelaxSettings (fmax, step cap, budget, batch size)
    relax_chunk: Callable[..., Any]  # runner.relax_chunk(mlip, items, settings, mode, on_result)
    to_atoms: Callable[[Structure], Atoms]


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's results and where it ran."""

    results: list[tuple[str, RelaxResult]]
    node_id: str
    pid: int
    wall_s: float


class RelaxActor:
    """Holds one loaded MLIP; ``relax_chunk`` relaxes a list of ``(key, structure JSON)``."""

    def __init__(self, spec: ActorSpec) -> None:
        self.spec = spec
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        if spec.load_args[2] == "cpu":  # one CPU slot: one torch thread, like a pool worker
            import torch

            torch.set_num_threads(1)

        self.mlip: MLIP = load_mlip(*spec.load_args)

    def ready(self) -> dict[str, Any]:
        """Answers once the model is loaded: where this actor runs."""
        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "pid": os.getpid(), "device": self.spec.load_args[2]}

    def relax_chunk(self, items: list[tuple[str, str]]) -> ChunkResult:
        import ray
        from pymatgen.core.structure import Structure

        t0 = time.perf_counter()
        spec = self.spec
        out: list[tuple[str, RelaxResult]] = []
        atoms: list[tuple[str, Atoms]] = []
        for key, text in items:
            try:
                atoms.append((key, spec.to_atoms(Structure.from_str(text, fmt="json"))))
            except Exception as exc:  # noqa: BLE001 - a structure ASE cannot represent fails alone
                out.append((key, RelaxResult.failed(f"cannot convert to ASE Atoms: {exc}")))

        def collect(key: str, result: RelaxResult) -> None:
            out.append((key, result))

        mode = "serial" if spec.mode in ONE_AT_A_TIME else spec.mode
        spec.relax_chunk(self.mlip, atoms, spec.settings, mode, collect)
        return ChunkResult(out, ray.get_runtime_context().get_node_id(), os.getpid(), time.perf_counter() - t0)
