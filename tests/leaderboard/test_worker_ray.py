"""The worker with the Ray executor (``--executor ray``): each job's evaluation process starts a
local Ray cluster (no ``RAY_ADDRESS``), a SIGTERM while the actors relax hands the job back and
leaves no process of that cluster behind, and the next worker finishes the job on Ray, reusing
the checkpointed relaxations, with the executor recorded in the summary's provenance."""

from __future__ import annotations

import json
import signal
import uuid

import pytest
from lifecycle_helpers import TAG_VAR, describe, tagged_processes
from store_helpers import META, local_store, start_worker, wait_for

from leaderboard.jobs import queue as q
from leaderboard.publishing.results import load_summary
from leaderboard.intake.submissions import SubmissionPolicy, submit

pytest.importorskip("ray")


def _rattled_cells(folder, n):
    """``n`` rattled 8-atom rock-salt cells (a few dozen CHGNet steps each), one CIF each."""
    import numpy as np
    from pymatgen.core import Lattice, Structure

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.5 + 0.03 * i), ["Na", "Cl"],
                                      [[0, 0, 0], [0.5, 0.5, 0.5]])
        s.perturb(0.1, min_distance=0.05, seed=int(rng.integers(1 << 30)))
        p = folder / f"nacl_{i}.cif"
        s.to(filename=str(p))
        paths.append(p)
    return paths


def _actor_processes(tag):
    return [line for line in describe(tagged_processes(tag)) if "RelaxActor" in line]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # hang detection only
def test_worker_on_ray_stops_cleanly_and_resumes(tmp_path):
    n = 8
    store = local_store(tmp_path)
    job = submit(store, META, _rattled_cells(tmp_path / "up", n), "alice", SubmissionPolicy(max_per_window=0))
    work = tmp_path / "work"
    common = ("--families", "validity,stability", "--mlip", "chgnet", "--relax-steps", "300", "--executor", "ray",
              "--ray-actors", "2", "--heartbeat", "0.5", "--progress-interval", "0.05", "--lease", "60",
              "--poll", "0.3", "--work-dir", str(work), "--keep-work", "--once")
    env_no_cluster = {"RAY_ADDRESS": ""}  # a local cluster per job
    tag = f"ray-first-{uuid.uuid4().hex[:8]}"
    first = start_worker(store.root, *common, "--worker-id", "first", log=tmp_path / "first.log",
                         env={TAG_VAR: tag, **env_no_cluster})
    try:
        def relaxing():
            j = q.get_job(store, job.id)
            assert j.status in (q.PENDING, q.RUNNING), (tmp_path / "first.log").read_text()[-3000:]
            return j.progress.get("stage") == "stability: relax" and len(_actor_processes(tag)) >= 2

        wait_for(relaxing, 600, 0.2, "the first worker's two Ray actors to relax")
        first.send_signal(signal.SIGTERM)
        code = first.wait(180)  # hang detection only
    finally:
        if first.poll() is None:
            first.kill()
    assert code == 0, (tmp_path / "first.log").read_text()[-3000:]
    wait_for(lambda: not tagged_processes(tag), 120, 0.2, "the Ray cluster's processes to end")
    released = q.get_job(store, job.id)
    assert released.status == q.PENDING and released.lease_owner is None and released.attempts == 0

    tag2 = f"ray-second-{uuid.uuid4().hex[:8]}"
    second = start_worker(store.root, *common, "--worker-id", "second", log=tmp_path / "second.log",
                          env={TAG_VAR: tag2, **env_no_cluster})
    try:
        assert second.wait(1200) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    final = q.get_job(store, job.id)
    assert final.status == q.FINISHED, (tmp_path / "second.log").read_text()[-3000:]
    wait_for(lambda: not tagged_processes(tag2), 120, 0.2, "the second job's Ray processes to end")
    prov = load_summary(store, job.id)["provenance"]
    stability = prov["family"]["stability"]
    ex = stability["execution"]
    assert ex["executor"] == "ray" and ex["cluster"] == "local (started for this run)"
    assert ex["actors"] == ex["actors_ready"] == 2 and ex["actor_deaths"] == 0
    assert prov["config"]["execution"]["executor"] == "ray"
    summary = load_summary(store, job.id)
    assert summary["execution"]["executor"] == "ray" and summary["execution"]["ray"]["actors"] == 2
    relax = stability["relaxation"]
    assert relax["n_from_checkpoint"] + relax["n_relaxed_now"] == n
    (checkpoint,) = (work / job.id / "eval").rglob("relax-*.jsonl")
    keys = [json.loads(line)["key"] for line in checkpoint.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == n  # none relaxed twice
