"""Helpers for the leaderboard back-end tests (store, queue, worker, lifecycle, schema) and bench/queue_overhead.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from repo_paths import REPO

META = {
    "model_name": "TestGen",
    "model_version": "0.1",
    "organisation": "Test Lab",
    "training_set": "MP-20",
    "task": "unconditional",
    "relaxed_before_submission": False,
    "paper_url": "https://example.org/paper",
    "notes": "test submission",
}


def local_store(tmp_path: Path):
    from leaderboard.store import open_store

    return open_store(str(tmp_path / "state"))


def VirtualClock(start=None):  # noqa: N802 - the tests' name for the fake Hub's simulation clock
    """Epoch seconds that pass only when someone sleeps (``leaderboard.store.hubfake.SimClock``)."""
    from leaderboard.store.hubfake import SimClock

    return SimClock(start)


def hub_store(api=None, repo="test-org/leaderboard-state", clock=None, **kwargs):
    """A HubStore on an in-memory FakeHfApi, never sleeping for real: its sleeps advance a
    virtual clock (shared with a FakeHfApi made here)."""
    from leaderboard.store.hub import HubStore
    from leaderboard.store.hubfake import FakeHfApi

    from leaderboard.store.hubfake import SimClock

    clock = clock or (api.clock if isinstance(getattr(api, "clock", None), SimClock) else VirtualClock())
    if api is None:
        api = FakeHfApi(clock=clock)
    elif not isinstance(api.clock, SimClock):
        api.clock = clock
    store = HubStore(repo, api=api, sleep=clock.sleep, clock=clock, **kwargs)
    store.sleeps = clock.sleeps
    return store


def write_cifs(folder: Path, n: int = 3, name: str = "gen") -> Path:
    """One CIF file holding ``n`` (<= 3) small valid crystals (2-atom cells), one data block each."""
    from pymatgen.core import Lattice, Structure

    structures = [
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ][:n]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.cif"
    blocks = []
    for i, s in enumerate(structures):
        text = s.to(fmt="cif")
        blocks.append(text.replace("data_", f"data_{i}_", 1))
    out.write_text("\n".join(blocks))
    return out


def write_unique_files(folder: Path, n: int) -> list[Path]:
    """``n`` one-structure CIFs with different bytes (distinct hashes for dedup)."""
    from pymatgen.core import Lattice, Structure

    out = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = Structure(Lattice.cubic(5.60 + 0.01 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        p = folder / f"nacl_{i}.cif"
        s.to(filename=str(p))
        out.append(p)
    return out


def worker_cmd(store_root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "leaderboard.worker", "--store", str(store_root), *args]


def start_worker(store_root: Path, *args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1", **(env or {})}
    fh = open(log, "wb")
    return subprocess.Popen(worker_cmd(store_root, *args), cwd=REPO, env=full_env, stdout=fh,
                            stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate()`` until truthy (returned) or raise AssertionError after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
