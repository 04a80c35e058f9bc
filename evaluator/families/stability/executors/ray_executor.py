"""The Ray executor: a submission's relaxations spread over the actors of a Ray cluster.

``relax_on_ray`` is called by the runner (``relax_all``) in place of its local modes:

- **Cluster.** With ``ray`` already initialised in this process (a caller's own cluster)
  it is used as it is. Otherwise ``ray.init`` joins ``ExecutionSettings.ray_address``, else
  ``$RAY_ADDRESS``, else starts a local cluster (``address="local"``: never a stray
  cluster found on the machine); what it started it stops (``ray.shutdown``) however the
  run ends, and the driver's SIGTERM handler is put back.
- **Actors.** One actor per GPU of the cluster (``num_gpus=1``, device ``cuda``), or, when
  the cluster has no GPU or the run asks for ``cpu``, one per CPU slot (``num_cpus=1``,
  torch threads = 1), at most ``ray_actors`` and at most one per chunk, spread over the
  nodes. Each loads the MLIP once (``ray_actor.RelaxActor``) and runs the local executor's
  own ``relax_chunk`` (same per-structure budget) on a chunk at a time.
- **Chunks** are balanced by atom count (``chunks``); the heaviest go first. Results come
  back as each chunk finishes and the driver hands every structure to ``record`` (the
  runner's: checkpoint line, progress), so a killed job resumes from the checkpoint.
- **Failures.** An actor that dies (out of memory, its node lost) fails only its running
  chunk: the chunk goes to another actor, at most ``ray_chunk_retries`` times, then its
  structures are tried one by one, and a structure whose actor still dies gets a failed
  row with the reason (not checkpointed: the next run tries it again, as with a dead pool
  process). Ray restarts a dead actor up to ``ray_actor_restarts`` times (on another node
  if its node is gone); it gets work again once it has loaded its model. When no actor is
  left, or none has been ready for ``ACTOR_WAIT_S``, the run stops with
  :class:`ClusterLost`: a failure of the machine, never recorded against a structure.
- **Stopping.** ``progress`` is called about every ``POLL_S`` while chunks run (the stall
  watchdog, job budget, withdraw and SIGTERM act through it or through the process, as
  with the local executor); whatever ends the run, every actor is killed (``ray.kill``)
  and a cluster started here is shut down. A driver killed outright takes its actors with
  it (Ray kills a dead driver's actors) and a local cluster with it (the cluster's
  processes die with their parent and are in the caller's process group).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from evaluator.execution import ExecutionSettings
from evaluator.families.stability.executors.chunks import balanced_chunks, n_chunks
from evaluator.families.stability.executors.ray_actor import ActorSpec, ChunkResult, RelaxActor
from evaluator.mlip.relax_result import RelaxResult

if TYPE_CHECKING:
    from ase import Atoms
    from pymatgen.core.structure import Structure

POLL_S = 1.0  # seconds between progress calls while waiting on the cluster
ACTOR_WAIT_S = 600.0  # longest time with no actor able to take work before the run stops
CPU_CHUNK_ATOMS = 256  # about 25 small cells: ~1 min of CHGNet on one core
GPU_CHUNK_BATCHES = 4  # a GPU chunk holds this many batch budgets (relax_max_atoms)


class ClusterLost(RuntimeError):
    """The cluster cannot run the work (no actor left, or none ready in time): an
    infrastructure failure, so the job is retried, never its structures failed."""


class Record(Protocol):
    def __call__(self, key: str, result: RelaxResult, persist: bool = True) -> None: ...


class RelaxSettingsLike(Protocol):
    """The runner's ``RelaxSettings`` fields the executor reads."""

    mlip: str
    model: str | None
    device: str
    dtype: str
    fmax: float
    steps: int
    max_atoms: int
    energy_scale: str | None


@dataclass(frozen=True)
class LocalFunctions:
    """The local executor's functions the actors run (module-level functions of the runner)."""

    resolve_mode: Callable[[Any, str, int], tuple[str, int]]  # (settings, device, n) -> (mode, workers)
    relax_chunk: Callable[..., Any]  # (mlip, items, settings, mode, on_result) -> stats
    to_atoms: Callable[[Structure], Atoms]


@dataclass
class _Chunk:
    keys: list[str]
    attempts: int = 0  # times the actor running it died


@dataclass
class _Stats:
    actors_ready: int = 0
    actor_deaths: int = 0
    chunk_retries: int = 0
    structures_alone: int = 0
    busy_s: float = 0.0  # actor seconds spent in relax_chunk (utilisation = busy / (actors x wall))
    nodes_used: set[str] = field(default_factory=set)
    last_error: str | None = None


@dataclass(frozen=True)
class Connection:
    """How this run reached its cluster: ``cluster`` says which (recorded in provenance);
    ``owned``: this run connected (and must disconnect); ``sigterm``: the handler
    ``ray.init`` replaced."""

    cluster: str
    owned: bool
    sigterm: Any = None


def connect(execution: ExecutionSettings) -> Connection:
    """Initialise ray unless it already is (see the module doc for which cluster)."""
    import ray

    if ray.is_initialized():
        return Connection("the caller's (already connected)", owned=False)
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    address = execution.ray_address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        kwargs["include_dashboard"] = False
    ray.init(address=address, **kwargs)
    return Connection("local (started for this run)" if address == "local" else "joined", True, previous)


def disconnect(connection: Connection) -> None:
    """Leave (and, if started here, stop) a cluster ``connect`` reached; put SIGTERM back."""
    import ray

    if not connection.owned:
        return
    ray.shutdown()
    if connection.sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, connection.sigterm)


def cluster_description() -> dict[str, Any]:
    """Live nodes, CPUs and GPUs of the connected cluster."""
    import ray

    resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    return {"nodes": len(alive), "cpus": float(resources.get("CPU", 0.0)),
            "gpus": float(resources.get("GPU", 0.0))}


def relax_on_ray(order: list[str], todo: Mapping[str, Structure], settings: RelaxSettingsLike,
                 execution: ExecutionSettings, functions: LocalFunctions, record: Record,
                 poll: Callable[[], None]) -> dict[str, Any]:
    """Relax ``todo`` ({structure key: Structure}, ``order`` = keys in the runner's order) on
    the cluster, handing each result to ``record``. Returns the run info the runner merges
    into its own: ``mode``, ``workers`` (actors), ``device`` (the actors') and ``execution``."""
    # Ray's C++ crash handler would catch SIGTERM and abort the driver, skipping the cleanup
    # below; without it ray.init's handler raises SystemExit and the finally block runs.
    # (Read when ray is first imported; a caller that imported ray already keeps its choice.)
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    import ray

    connection = connect(execution)
    actors: list[Any] = []
    try:
        cluster = cluster_description()
        use_gpu = not settings.device.startswith("cpu") and cluster["gpus"] >= 1
        if settings.device.startswith("cuda") and not use_gpu:
            raise ClusterLost(f"device {settings.device} was asked for, but the Ray cluster has no GPU "
                              f"({cluster['nodes']} nodes, {cluster['cpus']:g} CPUs)")
        device = "cuda" if use_gpu else "cpu"
        slots = int(cluster["gpus"] if use_gpu else cluster["cpus"])
        if slots < 1:
            raise ClusterLost(f"the Ray cluster has no {'GPU' if use_gpu else 'CPU'} to run an actor on")
        mode, _ = functions.resolve_mode(settings, device, len(todo))
        chunk_atoms = execution.ray_chunk_atoms or (GPU_CHUNK_BATCHES * settings.max_atoms if use_gpu
                                                    else CPU_CHUNK_ATOMS)
        sizes = {k: len(todo[k]) for k in order}
        count = n_chunks(sum(sizes.values()), len(sizes), min(slots, execution.ray_actors or slots), chunk_atoms)
        pending = deque(_Chunk(keys) for keys in balanced_chunks(sizes, count))
        n_actors = max(1, min(slots, execution.ray_actors or slots, len(pending)))
        spec = ActorSpec(mode=mode, load_args=(settings.mlip, settings.model, device, settings.dtype,
                                               settings.energy_scale),
                         settings=settings, relax_chunk=functions.relax_chunk, to_atoms=functions.to_atoms)
        actor_class = ray.remote(RelaxActor).options(
            num_cpus=1, num_gpus=1 if use_gpu else 0, max_restarts=execution.ray_actor_restarts,
            max_task_retries=0, scheduling_strategy="SPREAD")
        actors = [actor_class.remote(spec) for _ in range(n_actors)]
        stats = _Stats()
        _drive(actors, pending, todo, execution, record, poll, stats)
        return {"mode": mode, "workers": n_actors, "device": device,
                "execution": {"executor": "ray",
                              "cluster": connection.cluster,
                              "cluster_nodes": cluster["nodes"], "cluster_cpus": cluster["cpus"],
                              "cluster_gpus": cluster["gpus"], "actors": n_actors, "actor_device": device,
                              "actors_ready": stats.actors_ready, "actor_deaths": stats.actor_deaths,
                              "nodes_used": len(stats.nodes_used), "chunks": count, "chunk_atoms": chunk_atoms,
                              "chunk_retries": stats.chunk_retries,
                              "structures_retried_alone": stats.structures_alone,
                              "actor_busy_s": round(stats.busy_s, 3)}}
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already dead, or the cluster is gone: nothing left to stop
                pass
        disconnect(connection)


def _lost_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the actor (or its node, or its result) is gone, not that the work failed."""
    from ray import exceptions as rx

    return (rx.RayActorError, rx.OutOfMemoryError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError)


def _drive(actors: list[Any], pending: deque[_Chunk], todo: Mapping[str, Structure], execution: ExecutionSettings,
           record: Record, poll: Callable[[], None], stats: _Stats) -> None:
    """The driver loop: chunks to ready actors, results to ``record``, lost chunks retried."""
    import ray

    lost = _lost_errors()
    idle: list[int] = []
    running: dict[Any, tuple[_Chunk, int]] = {}  # chunk result ref -> (chunk, actor)
    waking: dict[Any, int] = {}  # ready() ref of a starting or restarted actor -> actor
    for i, actor in enumerate(actors):
        waking[actor.ready.remote()] = i
    ever_ready: set[int] = set()
    last_available = time.monotonic()

    def chunk_lost(chunk: _Chunk, error: str) -> None:
        chunk.attempts += 1
        stats.last_error = error
        if chunk.attempts <= execution.ray_chunk_retries:
            stats.chunk_retries += 1
            pending.appendleft(chunk)
        elif len(chunk.keys) > 1:  # a structure that kills its actor must not take the others with it
            stats.structures_alone += len(chunk.keys)
            pending.extend(_Chunk([k]) for k in chunk.keys)
        else:
            record(chunk.keys[0], RelaxResult.failed(
                f"worker error: the Ray actor relaxing it died {chunk.attempts} times ({error})"), persist=False)

    while pending or running:
        while pending and idle:
            chunk, i = pending.popleft(), idle.pop()
            items = [(k, todo[k].to_json()) for k in chunk.keys]
            running[actors[i].relax_chunk.remote(items)] = (chunk, i)
        if not running and not waking:
            raise ClusterLost(f"every Ray actor died ({len(actors)} started, {stats.actor_deaths} deaths); "
                              f"last error: {stats.last_error}")
        if running or idle:
            last_available = time.monotonic()
        elif time.monotonic() - last_available > ACTOR_WAIT_S:
            raise ClusterLost(f"no Ray actor could take work for {ACTOR_WAIT_S:g} s (the cluster lacks the "
                              f"resources to start or restart one); last error: {stats.last_error}")
        ready = _wait([*running, *waking])
        if not ready:
            poll()
            continue
        for ref in ready:
            if ref in waking:
                i = waking.pop(ref)
                try:
                    ray.get(ref)
                except lost as exc:  # could not start (model failed to load) or restarts exhausted
                    stats.last_error = _short(exc)
                    continue
                if i not in ever_ready:
                    ever_ready.add(i)
                    stats.actors_ready += 1
                idle.append(i)
                continue
            chunk, i = running.pop(ref)
            try:
                done: ChunkResult = ray.get(ref)
            except lost as exc:
                stats.actor_deaths += 1
                waking[actors[i].ready.remote()] = i  # back once Ray has restarted it, if it can
                chunk_lost(chunk, _short(exc))
                continue
            idle.append(i)
            stats.nodes_used.add(done.node_id)
            stats.busy_s += done.wall_s
            for key, result in done.results:
                record(key, result)


def _wait(refs: list[Any]) -> list[Any]:
    """``ray.wait`` for the first of ``refs`` (at most ``POLL_S``). A signal handler that raises
    while Ray's C++ waits (ray.init's SIGTERM handler: SystemExit; Ctrl-C; a caller's alarm)
    surfaces as a SystemError around that exception: the exception itself is raised instead."""
    import ray

    try:
        ready, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
    except SystemError as exc:
        cause = exc.__context__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause from None
        raise
    return ready


def _short(exc: BaseException) -> str:
    """The first line of an error, at most 300 characters (Ray's messages carry tracebacks)."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}"
    return line if len(line) <= 300 else line[:297] + "..."

