"""The Ray executor of the stability stage (``evaluator.families.stability.executors``).

Chunking and the executor setting need no cluster. The rest runs on one module-scoped
``ray.cluster_utils.Cluster`` of 2 simulated nodes with 1 CPU each (so 2 CHGNet actors, one
per node): the same energies as the local executor, a withdrawn job that leaves no actor
holding the cluster, and a node killed mid-job after which every structure still has
exactly one result. The last tests run the executor in a child process and check that
stopping it (SIGTERM; SIGKILL to its process group, as the worker does) leaves no Ray process
or actor behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mlip_helpers import SMALL_MP20, mp_sample_cifs
from repo_paths import REPO

from evaluator.execution import ExecutionSettings
from evaluator.families.stability.executors.chunks import CHUNKS_PER_ACTOR, balanced_chunks, n_chunks

STEPS = 60


# ---- no cluster needed --------------------------------------------------------------------------

def test_chunks_are_balanced_by_atoms_and_hold_every_structure_once():
    rng = random.Random(0)
    sizes = {f"s{i}": rng.randint(1, 40) for i in range(200)}
    count = n_chunks(sum(sizes.values()), len(sizes), n_actors=3, chunk_atoms=256)
    assert count == max(-(-sum(sizes.values()) // 256), CHUNKS_PER_ACTOR * 3)
    chunks = balanced_chunks(sizes, count)
    assert len(chunks) == count and all(chunks)
    keys = [k for c in chunks for k in c]
    assert sorted(keys) == sorted(sizes)  # each exactly once
    atoms = [sum(sizes[k] for k in c) for c in chunks]
    assert atoms == sorted(atoms, reverse=True)  # heaviest first
    assert max(atoms) - min(atoms) <= max(sizes.values())  # LPT: within one structure of each other
    # few structures: one per chunk at most; none: no chunk
    assert n_chunks(30, 3, n_actors=2, chunk_atoms=256) == 3
    assert balanced_chunks({"a": 5, "b": 1}, 8) == [["a"], ["b"]]
    assert n_chunks(0, 0, 2, 256) == 0 and balanced_chunks({}, 4) == []


def test_executor_setting_from_flags_and_environment():
    from evaluator.config import build_config

    assert build_config(env={}).execution == ExecutionSettings()  # local by default
    cfg = build_config(env={"GENBENCH_EXECUTOR": "ray", "GENBENCH_RAY_ACTORS": "3"})
    assert cfg.execution.executor == "ray" and cfg.execution.ray_actors == 3
    cfg = build_config(executor="local", ray_address="10.0.0.1:6379", env={"GENBENCH_EXECUTOR": "ray"})
    assert cfg.execution.executor == "local" and cfg.execution.ray_address == "10.0.0.1:6379"
    assert cfg.to_dict()["execution"]["executor"] == "local"  # recorded in provenance.config
    # execution only: the executor is not part of the evaluation protocol
    from evaluator.protocol import execution_of, protocol_of

    local, ray = build_config(env={}, mlip="chgnet"), build_config(env={}, mlip="chgnet", executor="ray")
    assert protocol_of(ray).id == protocol_of(local).id
    assert execution_of(ray)["executor"] == "ray" and execution_of(local)["executor"] == "local"
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        build_config(executor="dask", env={})
    with pytest.raises(ValueError, match="ray_actors must be a whole number >= 1"):
        build_config(executor="ray", ray_actors=0, env={})
    with pytest.raises(ValueError, match="whole number"):
        build_config(env={"GENBENCH_RAY_ACTORS": "many"})


def test_score_cli_refuses_an_unknown_executor(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "evaluator", "score", str(tmp_path), "--out", str(tmp_path / "o"),
                           "--executor", "dask"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'dask'" in proc.stderr


# ---- a 2-node simulated cluster -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    """2 nodes of 1 CPU each (head + worker), this process connected as the driver."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    c.connect()
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def strained(data):
    """8 small MP-20 crystals, cells expanded 5 % by volume (a few dozen FIRE steps each)."""
    from pymatgen.core import Structure

    out = {}
    for i, p in enumerate(mp_sample_cifs(data, SMALL_MP20)):
        s = Structure.from_file(p)
        s.scale_lattice(s.volume * 1.05)
        out[i] = s
    return out


def _settings():
    from evaluator.families.stability.runner import RelaxSettings

    return RelaxSettings(steps=STEPS, workers=2)  # CPU: the pool of 2 locally, 2 actors on Ray


def _checkpoint_keys(folder: Path) -> list[str]:
    import json

    [ck] = folder.glob("relax-*.jsonl")
    return [json.loads(line)["key"] for line in ck.read_text().splitlines()]


def _wait_for_free_cpus(ray, n: float, timeout_s: float = 120.0) -> None:
    """Actors hold a CPU each: all ``n`` free again means none is left (a hang limit, not a timing)."""
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < n:
        assert time.monotonic() < deadline, f"actors still hold CPUs: {ray.available_resources()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_ray_gives_the_local_executors_energies(cluster, strained, tmp_path):
    import ray

    from evaluator.families.stability.runner import relax_all

    local, local_info = relax_all(strained, _settings(), tmp_path / "local")
    remote, info = relax_all(strained, _settings(), tmp_path / "ray", execution=ExecutionSettings(executor="ray"))
    assert local_info["execution"] == {"executor": "local"} and local_info["mode"] == "pool"
    ex = info["execution"]
    assert ex["executor"] == "ray" and ex["cluster_nodes"] == 2 and ex["cluster_cpus"] == 2
    assert ex["actors"] == ex["actors_ready"] == 2 and ex["actor_device"] == "cpu" and ex["actor_deaths"] == 0
    assert ex["nodes_used"] == 2 and ex["chunks"] == 8  # one actor per node; 4 chunks per actor
    assert info["workers"] == 2 and info["device"] == "cpu"
    for i, s in strained.items():
        a, b = local[i], remote[i]
        assert a.status == b.status == "ok", (a.reason, b.reason)
        n = len(s)
        assert abs(a.energy / n - b.energy / n) <= 1e-6, i
        assert abs(a.energy_unrelaxed / n - b.energy_unrelaxed / n) <= 1e-6, i
        assert (a.steps, a.converged) == (b.steps, b.converged)
    # the driver wrote one checkpoint line per structure, as the local executor does
    assert sorted(_checkpoint_keys(tmp_path / "ray")) == sorted(_checkpoint_keys(tmp_path / "local"))
    _wait_for_free_cpus(ray, 2)


@pytest.mark.slow
def test_withdraw_stops_the_job_and_leaves_no_actor(cluster, strained, tmp_path):
    import ray

    from evaluator.families.stability.runner import relax_all

    class Withdrawn(Exception):
        pass

    def progress(stage, done, total):
        if done >= 1:
            raise Withdrawn

    with pytest.raises(Withdrawn):
        relax_all(strained, _settings(), tmp_path, progress, execution=ExecutionSettings(executor="ray"))
    _wait_for_free_cpus(ray, 2)  # both actors killed: their CPUs are free
    assert ray.is_initialized()  # the caller's cluster is left as it was
    # the results that came back are checkpointed (a rerun starts from them, as locally)
    assert 1 <= len(_checkpoint_keys(tmp_path)) < len(strained)


def _titles_on(node) -> list[str]:
    """Process titles of the Ray workers ``node``'s raylet started: ``ray::RelaxActor.__init__``
    while an actor loads its model, ``ray::RelaxActor.relax_chunk`` while it relaxes."""
    import psutil
    from ray._private import ray_constants

    [raylet] = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET]
    titles = []
    try:
        children = psutil.Process(raylet.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:  # the node is gone
        return titles
    for child in children:
        try:
            titles.append(child.name())
        except psutil.NoSuchProcess:  # ended while being listed
            pass
    return titles


@pytest.mark.slow
def test_a_node_killed_mid_job_loses_no_structure(cluster, strained, tmp_path):
    """The worker node dies while its actor relaxes a chunk: the chunk goes to the head node's
    actor, and every structure ends with exactly one result and one checkpoint line.

    Killed on the state, not on a timing: the first result waits until the worker node's actor
    has loaded its model (on a loaded machine the head's actor could otherwise finish the job
    alone), and a watcher removes the node as soon as that actor is in ``relax_chunk``."""
    import ray

    from evaluator.families.stability.runner import relax_all

    [worker] = list(cluster.worker_nodes)
    killed: list[int] = []
    recorded: list[int] = []
    stop = threading.Event()
    deadline = time.monotonic() + 400  # hang limit: a CHGNet load on a loaded machine

    def loaded() -> bool:
        return any(t.startswith("ray::RelaxActor") and not t.endswith("__init__") for t in _titles_on(worker))

    def progress(stage, done, total):
        recorded.append(done)
        while done >= 1 and not killed and not loaded():
            assert time.monotonic() < deadline, f"the worker node's actor never loaded: {_titles_on(worker)}"
            stop.wait(0.1)

    def kill_while_relaxing():
        while not stop.is_set():
            if any(t.startswith("ray::RelaxActor.relax_chunk") for t in _titles_on(worker)):
                killed.append(recorded[-1] if recorded else 0)
                cluster.remove_node(worker, allow_graceful=False)
                return
            stop.wait(0.02)

    watcher = threading.Thread(target=kill_while_relaxing, daemon=True)
    watcher.start()
    try:
        results, info = relax_all(strained, _settings(), tmp_path, progress,
                                  execution=ExecutionSettings(executor="ray"))
        stop.set()
        watcher.join()
        assert killed and killed[0] < len(strained)
        assert set(results) == set(strained) and all(r.status == "ok" for r in results.values())
        keys = _checkpoint_keys(tmp_path)
        assert len(keys) == len(set(keys)) == len(strained)  # one line each, none twice
        ex = info["execution"]
        assert ex["actor_deaths"] >= 1 and ex["chunk_retries"] >= 1, ex
    finally:
        stop.set()
        watcher.join()
        if killed:  # leave the module's cluster as it was, whatever failed above
            _wait_for_free_cpus(ray, 1)  # the head's CPU is free again; the restart left pending was killed
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()


# ---- stopping a job that started its own local cluster --------------------------------------------

CHILD = """
import sys
from pathlib import Path
from pymatgen.core import Structure
from evaluator.execution import ExecutionSettings
from evaluator.families.stability.runner import RelaxSettings, relax_all
structures = {}
for i, p in enumerate(sys.argv[1:]):
    s = Structure.from_file(p)
    s.scale_lattice(s.volume * 1.1)
    structures[i] = s
# a relaxation that does not end on its own: fmax no structure reaches, a high step cap
relax_all(structures, RelaxSettings(steps=100000, fmax=1e-9), None, execution=ExecutionSettings(executor="ray"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["sigterm", "sigkill-joined"])
def test_stopping_a_job_leaves_no_ray_process(data, stop, request):
    """SIGTERM (the CLI stopped) while both actors relax: no process of the local cluster the
    job started survives. SIGKILL to the process group (the worker's stop, withdraw, stall and
    budget kills) of a job that joined a cluster (the module's 2-node cluster, via
    ``RAY_ADDRESS``): no actor is left holding it. (SIGKILL to a job that started its own
    cluster: ``tests/leaderboard/test_worker_ray.py``, through the worker.)"""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("ray")
    joined = stop == "sigkill-joined"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    if joined:
        env["RAY_ADDRESS"] = request.getfixturevalue("cluster").address
    cifs = [str(p) for p in mp_sample_cifs(data, SMALL_MP20[:4])]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *cifs], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 400  # hang limit: ray start + two CHGNet loads on a loaded machine

        def tree():
            try:  # a joined job's actors are children of the cluster's raylets, started by this process
                return psutil.Process(os.getpid() if joined else proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return []

        def actors():
            return [p for p in tree() if p.name().startswith("ray::RelaxActor.relax")]

        while len(actors()) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the actors never started relaxing"
            time.sleep(0.5)
        watched = actors() if joined else tree()
        if not joined:
            names = {p.name() for p in watched}
            assert "raylet" in names and "gcs_server" in names
        if stop == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
        _, alive = psutil.wait_procs(watched, timeout=120)
        assert alive == [], [(p.pid, p.name()) for p in alive]
        if joined:
            import ray

            _wait_for_free_cpus(ray, 2)  # the cluster is whole again, nothing holds it
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
