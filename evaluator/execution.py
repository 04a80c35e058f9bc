"""Where the stability stage's relaxations run: this machine (``local``) or a Ray cluster (``ray``).

An execution-only setting: it changes where and how fast structures are relaxed, never a
value (the Ray executor runs the same per-structure relaxation functions as the local one,
with the same model, dtype, fmax and step cap; ``tests/evaluator/families/stability/
test_ray_executor.py`` checks the energies agree to 1e-6 eV/atom). So it is recorded in the
summary's provenance beside the settings that define the scores (``config.execution`` and
``family.stability.execution``), and is no part of an evaluation protocol.

``ray`` is an optional dependency (``pip install .[ray]``); choosing the Ray executor
without it is refused before any work.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from typing import Literal, get_args

Executor = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = get_args(Executor)


@dataclass(frozen=True)
class ExecutionSettings:
    """executor: ``local`` (the runner's modes on this machine) or ``ray``.
    ray_address: the cluster to join (``host:port`` of a ``ray start --head``); None: ``$RAY_ADDRESS``,
        else a local cluster started for the job and stopped with it.
    ray_actors: at most this many actors (None: one per GPU of the cluster, else one per CPU).
    ray_chunk_atoms: atoms per chunk of work sent to an actor (None: 256 on CPU, 4 x the
        batch budget ``stability.relax_max_atoms`` on a GPU); at least 4 chunks per actor.
    ray_chunk_retries: times a chunk is sent to another actor after the actor running it
        died (out of memory, node lost); past that its structures are tried one by one.
    ray_actor_restarts: times Ray restarts a dead actor (``max_restarts``; on another node
        when its node is gone).
    """

    executor: Executor = "local"
    ray_address: str | None = None
    ray_actors: int | None = None
    ray_chunk_atoms: int | None = None
    ray_chunk_retries: int = 2
    ray_actor_restarts: int = 1

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}: use {' or '.join(EXECUTORS)}")
        for name in ("ray_actors", "ray_chunk_atoms"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 (or unset), got {value!r}")
        for name in ("ray_chunk_retries", "ray_actor_restarts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("the Ray executor needs the ray package: pip install '.[ray]' (or ray==2.60.0)")


def add_executor_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--executor``, ``--ray-address``, ``--ray-actors`` (``python -m evaluator score``'s and the worker's)."""
    p.add_argument("--executor", choices=EXECUTORS,
                   help="where the relaxations run: local (this machine) or ray (the actors of a Ray cluster; "
                        "needs pip install '.[ray]'); default $GENBENCH_EXECUTOR or local. Execution only: "
                        "it changes no value")
    p.add_argument("--ray-address", help="Ray cluster to join (host:port of `ray start --head`); default "
                                         "$RAY_ADDRESS, else a local cluster started for the run")
    p.add_argument("--ray-actors", type=int, help="at most this many Ray actors (default $GENBENCH_RAY_ACTORS, "
                                                  "else one per GPU of the cluster, or one per CPU without GPUs)")
