"""How many concurrent workers one Hub repo sustains: the queue against the fake Hub API
(128 commits/hour per repo, refused with 429 like the Hub), on simulated time.

    .venv/bin/python bench/hub_queue_capacity.py [--job-minutes 10,60] [--workers 2,4,...]
                                                  [--hours 3] [--quick]

For each job duration D (minutes of wall clock per 2,500-structure job, each job drawn
from D +- 20 %; an assumption, nothing is evaluated: the worker's evaluation is replaced
by that much simulated time with a progress report every 240 s, the Hub's heartbeat advice) and each number of
workers N, the app (one process) keeps N jobs waiting (one submission commit each) and N
workers (one process each, own HubStore) claim, report progress (heartbeats) and publish,
all with the real queue, store and publishing code on one discrete-event clock
(``leaderboard.store.hubfake.SimClock``). After a warm-up hour it measures ``--hours`` of:

* commits per hour per running worker in the requests repo (claims, lease renewals,
  results), and all commits per hour there (the app's submissions included);
* jobs finished per hour against the ideal N * 60 / D, and the workers' utilisation (the
  share of worker time spent evaluating, not waiting for the repo to take a claim or a
  result);
* 429 refusals and lost leases (jobs reclaimed from a live worker).

N is *sustained* when utilisation >= 95 % with no refusal and no lost lease; the sweep
over N (ascending) stops at the first N that is not.

Two modes, measured in the same run:
* ``before``: the behaviour this issue replaced: one store for requests and results, a
  per-process budget of 100 commits/hour (so the processes together exceed the repo's
  128 and are refused), a lease renewal every 240 s by every worker, and a poll that
  lists the repo and reads every status document (no queue index);
* ``after``: requests and results in two repos, the budget counted from each repo's own
  commits (120/hour shared by all processes, 30 % kept for lease renewals), renewals
  stretched with the number of running jobs (within 25 % of the budget), the queue index.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import io
import json
import random
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEARTBEAT_S = 240.0  # the Hub store's advice: progress reports / renewal attempts
LEASE_S = 900.0  # the Hub store's lease
POLL_S = 5.0  # an idle worker's poll
APP_TOPUP_S = 60.0  # the app checks the queue and submits this often
WARMUP_H = 1.0
JITTER = 0.2  # each job takes D * uniform(0.8, 1.2): jobs do not all end at once


def _table() -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"index": [0, 1], "parse_ok": [True, True]}).to_parquet(buf)
    return buf.getvalue()


SUMMARY = {"n_submitted": 2500, "n_parsed": 2500, "n_valid": 2400,
           "metrics": {"validity": {"valid_count": 2400}}, "provenance": {"families": ["validity"]}}


def simulate(mode: str, n_workers: int, job_min: float, hours: float) -> dict:
    from leaderboard.jobs import queue as q
    from leaderboard.jobs import queue_index
    from leaderboard.publishing.dataset import publish
    from leaderboard.store import ABSENT
    from leaderboard.store.hub import HubStore
    from leaderboard.store.hubfake import FakeHfApi, SimClock
    from leaderboard.store.layout import upload_path

    clock = SimClock(start=1.8e9)
    api = FakeHfApi(clock=clock)
    job_s = job_min * 60.0
    end = clock() + (WARMUP_H + hours) * 3600
    start_measure = clock() + WARMUP_H * 3600
    table = _table()

    class PerProcessBudget(HubStore):
        """The pacing this issue replaced: each process counts only its own commits."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self._mine: collections.deque[float] = collections.deque()

        def _pace(self) -> None:
            now = self._clock()
            while self._mine and now - self._mine[0] > 3600:
                self._mine.popleft()
            if len(self._mine) >= 100:
                self._sleep(max(0.0, 3600 - (now - self._mine[0])))
            self._mine.append(self._clock())

    def open_process():
        if mode == "before":
            return PerProcessBudget("org/state", api=api, sleep=clock.sleep, clock=clock)
        s = HubStore("org/requests", api=api, sleep=clock.sleep, clock=clock, max_commits_per_hour=120)
        s.results = HubStore("org/results", api=api, sleep=clock.sleep, clock=clock, max_commits_per_hour=120)
        return s

    finished: list[float] = []
    busy: list[tuple[float, float]] = []  # (start, end) of every evaluation
    lost: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def app() -> None:
        store = open_process()
        k = 0
        while clock() < end:
            pending = len(q.list_jobs(store, (q.PENDING,)))
            for _ in range(max(0, n_workers - pending)):
                k += 1
                job = q.Job(id=f"{int(clock())}-{k:06d}", submitter=f"user{k % 7}", model_name="Gen",
                            model_version="1")
                q.create_job(store, job, {upload_path(job.id, "gens.cif"): f"data_{k}\n".encode()})
            clock.sleep(APP_TOPUP_S)
        stop.set()

    def worker(i: int) -> None:
        rng = random.Random(i)
        store = open_process()
        wid = f"w{i}"
        while not stop.is_set() and clock() < end:
            job = q.claim(store, wid, LEASE_S)
            if job is None:
                clock.sleep(POLL_S)
                continue
            done_s = 0.0
            this_s = job_s * rng.uniform(1 - JITTER, 1 + JITTER)
            began = clock()
            try:
                while done_s < this_s:
                    step = min(HEARTBEAT_S, this_s - done_s)
                    clock.sleep(step)
                    done_s += step
                    if done_s < this_s:
                        q.heartbeat(store, job.id, wid, LEASE_S, {"done": int(2500 * done_s / this_s),
                                                                  "total": 2500, "stage": "stability"})
                busy.append((began, clock()))
                publish(store, job, SUMMARY, table, wid)
                finished.append(clock())
            except q.LeaseLost:
                lost.append(job.id)

    def run(fn, *args):
        with clock.participant():
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)
                stop.set()

    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(q, "now", lambda: dt.datetime.fromtimestamp(clock(), dt.UTC)))
        if mode == "before":  # no queue index, a renewal at every report
            patches.enter_context(mock.patch.object(queue_index, "read", lambda store: (None, ABSENT)))
            patches.enter_context(mock.patch.object(q, "_index_commit", lambda store, jobs: ({}, {})))
            patches.enter_context(mock.patch.object(q, "lease_plan",
                                                    lambda store, running, lease_s: q.LeasePlan(0.0, lease_s)))
        threads = [threading.Thread(target=run, args=(app,), daemon=True)]
        threads += [threading.Thread(target=run, args=(worker, i), daemon=True) for i in range(n_workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    repo = "org/state" if mode == "before" else "org/requests"
    commits = [c for c in api.repos[repo].commits[1:] if start_measure <= c.created_at < end]
    worker_commits = [c for c in commits if not c.title.startswith("submit")]
    jobs_done = sum(1 for t in finished if start_measure <= t < end)
    ideal = n_workers * hours * 3600 / job_s
    refused = api.refused
    window = (start_measure, end)
    evaluating = sum(max(0.0, min(b, window[1]) - max(a, window[0])) for a, b in busy)
    utilisation = evaluating / (n_workers * (window[1] - window[0]))
    return {
        "mode": mode, "job_minutes": job_min, "workers": n_workers,
        "commits_per_hour_per_worker": round(len(worker_commits) / hours / n_workers, 2),
        "commits_per_hour_repo": round(len(commits) / hours, 1),
        "jobs_per_hour": round(jobs_done / hours, 2), "ideal_jobs_per_hour": round(ideal / hours, 2),
        "utilisation": round(utilisation, 3), "refused_429": refused, "lost_leases": len(lost),
        "sustained": utilisation >= 0.95 and refused == 0 and not lost,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--job-minutes", default="10,60", help="assumed durations of a 2,500-structure job")
    ap.add_argument("--workers", default="2,4,6,8,12,16,24,32")
    ap.add_argument("--hours", type=float, default=3.0, help="measured simulated hours (after 1 h warm-up)")
    ap.add_argument("--quick", action="store_true", help="one short run per mode (a smoke test)")
    args = ap.parse_args(argv)
    durations = [float(x) for x in args.job_minutes.split(",")]
    workers = [int(x) for x in args.workers.split(",")]
    if args.quick:
        durations, workers, args.hours = durations[:1], workers[:1], 1.0
    rows = []
    for job_min in durations:
        for mode in ("before", "after"):
            for n in workers:  # ascending; stops at the first N the repo does not sustain
                t0 = time.perf_counter()
                row = simulate(mode, n, job_min, args.hours)
                row["wall_s"] = round(time.perf_counter() - t0, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if not row["sustained"]:
                    break
    print("\nsustained workers per repo (the largest N tried below the first that is not):")
    for job_min in durations:
        for mode in ("before", "after"):
            ok = 0
            for r in (r for r in rows if r["job_minutes"] == job_min and r["mode"] == mode):
                if not r["sustained"]:
                    break
                ok = r["workers"]
            one = next(r for r in rows if r["job_minutes"] == job_min and r["mode"] == mode)
            print(f"  {job_min:g}-min jobs, {mode:6s}: {ok:3d} workers "
                  f"({one['commits_per_hour_per_worker']} commits/hour per running worker at N={one['workers']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
