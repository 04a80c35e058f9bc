"""Queue/store overhead of the worker: N one-structure jobs through the worker (local
store, validity family) vs the same N bare ``evaluator.pipeline.evaluate`` calls.

    .venv/bin/python bench/queue_overhead.py [N]

Prints per-job times and the ratio (worker / bare) measured in the same run, plus the
Hub back end's commits per job (against the in-memory FakeHfApi).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))


def main(n: int = 10) -> None:
    from store_helpers import META, hub_store, write_unique_files
    from evaluator.config import EvalConfig
    from evaluator.data import DataDir
    from evaluator.pipeline import evaluate
    from leaderboard.store import open_store
    from leaderboard.intake.submissions import SubmissionPolicy, submit
    from leaderboard.worker import Worker

    tmp = Path(tempfile.mkdtemp(prefix="queue-bench-"))
    files = write_unique_files(tmp / "up", n)
    cfg = EvalConfig(families=["validity"])
    evaluate([files[0]], cfg, DataDir())  # warm caches (imports, data files)

    t0 = time.perf_counter()
    for f in files:
        evaluate([f], cfg, DataDir(), work_dir=tmp / "bare" / f.stem)
    bare = (time.perf_counter() - t0) / n

    store = open_store(str(tmp / "state"))
    policy = SubmissionPolicy(max_per_window=0)
    t0 = time.perf_counter()
    for f in files:
        submit(store, META, [f], "bench", policy)
    submit_s = (time.perf_counter() - t0) / n
    worker = Worker(store, cfg, worker_id="bench", work_root=tmp / "work")
    t0 = time.perf_counter()
    done = worker.run(once=False, poll_s=0, max_jobs=n)
    worked = (time.perf_counter() - t0) / n
    assert done == n

    hub = hub_store()
    for f in files[:3]:
        submit(hub, META, [f], "bench", policy)
    before = hub.api.n_commits
    Worker(hub, cfg, worker_id="bench-hub", work_root=tmp / "work-hub").run(max_jobs=3, poll_s=0)
    per_job_commits = (hub.api.n_commits - before) / 3

    print(f"jobs: {n} one-structure CIFs, families=validity, local store")
    print(f"bare evaluate:          {bare * 1000:8.1f} ms/job")
    print(f"submit (store+enqueue): {submit_s * 1000:8.1f} ms/job")
    print(f"worker claim->publish:  {worked * 1000:8.1f} ms/job  (ratio to bare: {worked / bare:.2f})")
    print(f"Hub back end: {per_job_commits:.1f} commits per short job (claim + publish); "
          f"{1 + per_job_commits:.1f} with the submission")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
