"""Fixtures for the app tests: a pytest plugin registered by tests/conftest.py, used by
tests/leaderboard/ui/ and the hostile-upload endpoint test.

``app_server``: the real Gradio app on 127.0.0.1 (free port) over a fresh local
store, one per test session. ``start_worker``: a real ``python -m
leaderboard.worker`` subprocess on that store (stopped at teardown).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from repo_paths import REPO

SMALL_CIFS = ("mp_mp-1219922.cif", "mp_mp-22924.cif", "mp_mp-2524.cif")  # NiRu, NaBi, NdGa2: 2-3 sites


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(ctx) -> Iterator[tuple[str, object]]:
    """The real Gradio app on ``ctx`` (an ``AppContext``), served on 127.0.0.1 at a free port
    until the block ends: (its URL, the Blocks). Not on a Space, no analytics."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.pop("SPACE_ID", None)
    from leaderboard.ui import build_app, launch_kwargs

    demo = build_app(ctx)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs())
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.close()


@dataclass
class AppServer:
    url: str
    store_dir: Path
    ctx: object
    demo: object


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterator[AppServer]:
    os.environ["GENBENCH_LOCAL_USER"] = "tester"
    os.environ["GENBENCH_RATE_LIMIT"] = "0"
    from leaderboard.ui.shared_state import make_context

    store_dir = tmp_path_factory.mktemp("store")
    ctx = make_context(str(store_dir), ttl_s=0.5, refresh_s=2.0, status_refresh_s=1.0)
    with served_app(ctx) as (url, demo):
        yield AppServer(url, store_dir, ctx, demo)


@pytest.fixture
def start_worker(app_server, tmp_path):
    """Call to start a real worker on the app's store; returns the Popen."""
    procs = []

    def start(*extra: str, env: dict | None = None) -> subprocess.Popen:
        e = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        log = open(tmp_path / f"worker{len(procs)}.log", "w")
        p = subprocess.Popen([sys.executable, "-m", "leaderboard.worker", "--store", str(app_server.store_dir),
                              "--work-dir", str(tmp_path / "work"), "--poll", "0.5", *extra],
                             cwd=REPO, env=e, stdout=log, stderr=subprocess.STDOUT)
        procs.append((p, log))
        return p

    yield start
    for p, log in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


@pytest.fixture(scope="session")
def small_cifs(tmp_path_factory, data) -> list[Path]:
    """Three tiny real MP crystals, copied so upload names are plain."""
    d = tmp_path_factory.mktemp("upload")
    out = []
    for name in SMALL_CIFS:
        p = d / name
        shutil.copy(data.path(f"structures/mp_sample/{name}"), p)
        out.append(p)
    return out


@pytest.fixture
def finished_job(app_server, small_cifs, start_worker) -> str:
    """Id of a FINISHED submission in the app's store: an existing one (the API test's), else
    the three small CIFs evaluated now by a real worker (full default pipeline)."""
    from leaderboard.jobs.queue import FINISHED, get_job, list_jobs
    from leaderboard.intake.submissions import submit

    store = app_server.ctx.store
    done = [j for j in list_jobs(store) if j.status == FINISHED]
    if done:
        return done[0].id
    meta = {"model_name": "TinyTest", "model_version": "browser-1", "training_set": "MP-20",
            "task": "unconditional", "relaxed_before_submission": False}
    job = submit(store, meta, small_cifs, "fixture-user")  # not "tester": the API test uploads the same files
    worker = start_worker("--once")
    worker.wait(420)
    status = get_job(store, job.id).status
    assert status == FINISHED, status
    return job.id


def wait_for(predicate, timeout: float, every: float = 1.0, what: str = "condition"):
    """Poll ``predicate()`` until truthy (returned) or fail after ``timeout`` s (a deadline, not a speed test)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")


@pytest.fixture
def wait():
    """The ``wait_for`` helper as a fixture (test modules load this file as a plugin)."""
    return wait_for
