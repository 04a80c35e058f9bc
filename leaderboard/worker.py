"""The evaluation worker: ``python -m leaderboard.worker [--once] [--store URI] ...``

Loop: claim the oldest runnable job (compare-and-swap), evaluate its upload in a
child process (``leaderboard.jobs.evalproc``), relay the child's progress to the job
document (which renews the lease), publish the results, repeat. Several workers
(one per GPU) may share a store.

* The worker never runs evaluator code itself, so it can always stop an
  evaluation: it kills the child's whole process group (pools included), even
  when a stage is stuck in C code or in a child that ignores SIGTERM. While more
  jobs may follow, a spare evaluation process imports the evaluator in advance.
* Stage watchdog: the lease is renewed only while progress moves (a finished item, or a
  step inside one: a relaxation reports its FIRE steps about once a second). No progress for
  ``--stall-timeout`` s (default 600): the evaluation is killed and the job retried
  as an infrastructure failure "stalled at <stage>". An attempt past
  ``--job-budget`` s of wall clock (default 86400) fails for good. Both limits are
  recorded in the summary's ``provenance["lifecycle"]``.
* A worker that dies stops heartbeating (its evaluation dies with it); once its
  lease expires another worker reclaims the job and resumes from the evaluator's
  per-structure checkpoints in ``<work-dir>/<id>/eval`` (same machine / shared disk).
* ``IngestError`` (unusable upload) fails the job for good with the message as
  reason; any other error is an infrastructure failure, retried (after
  ``--retry-delay``) until the job's ``max_attempts``.
* Store outages (``leaderboard.store.outage``) are waited out, never a failure of the
  job: a write or read the store does not answer (claiming, reading the upload,
  publishing, recording a result) is retried with backoff (up to ``OUTAGE_RETRY_MAX_S``
  apart) until it answers or the worker is stopped; while results wait to be published
  the job's stage says "publishing: store unavailable, retrying". A repeated error is
  logged once, then counted (``RepeatedErrorLog``).
* SIGTERM/SIGINT: kill the evaluation, release the job (back to PENDING, attempt not
  counted) and exit 0, in every stage; with ``--drain`` finish it first.
  ``GENBENCH_WORKER_PARENT_PID`` (set by ``leaderboard.serve``): the worker
  stops like this when that process ends, however it ends.

* ``--concurrent-jobs K`` (with ``--executor ray``, a cluster address and ``--ray-actors``):
  up to K claimed jobs at once, side by side, each supervised as above, their leases renewed
  in one store commit (``leaderboard.jobs.slots``).

* The evaluation process sends the evaluation itself (summary and table bytes) over
  its pipe; the worker publishes that, nothing is written to disk and read back.

Evaluator settings come from flags or the environment, through
``evaluator.config.build_config`` (the CLI's builder): GENBENCH_FAMILIES,
GENBENCH_RELAX_STEPS, GENBENCH_MLIP, GENBENCH_MLIP_MODEL, GENBENCH_DEVICE,
GENBENCH_DTYPE, GENBENCH_REFERENCE, GENBENCH_OPTIONS (a JSON object
``{family: {name: value}}``; ``--option FAMILY.NAME=VALUE`` overrides it key by
key), GENBENCH_EXECUTOR (local or ray: the Ray executor joins $RAY_ADDRESS, else starts a
local cluster per job) and GENBENCH_RAY_ACTORS; also GENBENCH_DATA_DIR and GENBENCH_WORK_DIR.
The configuration is checked (``evaluator.pipeline.check_config``) before the worker
claims anything: an unknown family or option stops it with ``error: ...`` and exit status 2.

Protocol (``evaluator.protocol``): at start the worker computes the protocol its
configuration produces (hashing the MLIP checkpoint and the reference files). It refuses
to start (exit status 2, a message naming both) when that fails (missing weights or
data) or differs from the protocol the service pins (``--expect-protocol ID|NAME``, else
``$GENBENCH_EXPECT_PROTOCOL``; ``leaderboard.serve`` passes its own). It claims only jobs
queued under its protocol (or under none).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Callable

from evaluator.execution import add_executor_arguments
from evaluator.config import build_config
from evaluator.procpool import die_with_parent
from leaderboard import settings
from leaderboard.jobs.slots import JobSlots
from leaderboard.jobs.supervisor import Worker
from leaderboard.jobs.worker_config import check_concurrency, check_config, check_protocol, ray_address
from leaderboard.store import open_store

log = logging.getLogger("leaderboard.worker")
CONFIG_ERROR = 2  # exit status of a worker that refused its configuration (leaderboard.serve does not restart it)
# the worker's own settings, checked at start
WORKER_VARIABLES = (settings.WORK_DIR, settings.STALL_TIMEOUT, settings.START_TIMEOUT, settings.JOB_BUDGET,
                    settings.EXPECT_PROTOCOL, settings.WORKER_PARENT_PID)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leaderboard.worker", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="requests store URI (default $GENBENCH_STORE or ./state/requests; "
                                   "hf://datasets/ORG/NAME)")
    p.add_argument("--results-store", help="public results store URI (default $GENBENCH_RESULTS_STORE, or "
                                           "./state/results beside the default requests store; see README, Stores)")
    p.add_argument("--once", action="store_true", help="process at most one job, then exit")
    p.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    p.add_argument("--concurrent-jobs", type=int, default=1, metavar="K",
                   help="hold up to K claimed jobs at once, side by side, their leases renewed in one store "
                        "commit (default 1; K > 1 needs --executor ray, a cluster address and --ray-actors, "
                        "the actors of each job; --once: at most one job per slot)")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between polls of an empty queue")
    p.add_argument("--worker-id", help="name in lease documents (default host-pid)")
    p.add_argument("--work-dir", help="local per-job work/checkpoint folder (default $GENBENCH_WORK_DIR "
                                      f"or {settings.WORK_DIR.default})")
    p.add_argument("--lease", type=float, help="lease seconds (default: store's, 60 local / 900 Hub)")
    p.add_argument("--heartbeat", type=float, help="heartbeat seconds (default: store's, 5 local / 240 Hub)")
    p.add_argument("--progress-interval", type=float,
                   help="minimum seconds between progress writes (default 1 local, = heartbeat on the Hub)")
    p.add_argument("--retry-delay", type=float, default=30.0, help="seconds before retrying an "
                                                                   "infrastructure failure")
    p.add_argument("--max-attempts", type=int, help="override the jobs' attempt limit")
    p.add_argument("--drain", action="store_true", help="on SIGTERM finish the running job instead of "
                                                        "releasing it")
    p.add_argument("--keep-work", action="store_true", help="keep work folders of finished jobs")
    p.add_argument("--stall-timeout", type=float, help="seconds without progress before a job is stopped "
                                                       "and retried (default $GENBENCH_STALL_TIMEOUT or "
                                                       f"{settings.STALL_TIMEOUT.default:g})")
    p.add_argument("--job-budget", type=float, help="wall-clock seconds one attempt may take before the job fails "
                                                    f"(default $GENBENCH_JOB_BUDGET or "
                                                    f"{settings.JOB_BUDGET.default:g})")
    g = p.add_argument_group("evaluator (defaults from GENBENCH_* variables)")
    g.add_argument("--families", help="comma-separated families (default: all)")
    g.add_argument("--relax-steps", type=int, help="FIRE step cap of the MLIP relaxation")
    g.add_argument("--expect-protocol", metavar="ID|NAME",
                   help="the protocol the service pins (an id, or default/chgnet); the worker refuses to start "
                        f"when its configuration does not produce it (default ${settings.EXPECT_PROTOCOL.name})")
    g.add_argument("--protocol", help="named protocol the MLIP comes from (default $GENBENCH_PROTOCOL or "
                                      "default: SevenNet-l3i5; chgnet: CHGNet 0.3.0)")
    g.add_argument("--mlip", help="MLIP backend (chgnet, sevenn, mace; default: the named protocol's, sevenn)")
    g.add_argument("--mlip-model", help="MLIP checkpoint path or foundation-model name")
    g.add_argument("--device", help="auto, cpu or cuda")
    g.add_argument("--dtype", choices=["float32", "float64"])
    g.add_argument("--reference", help="reference id or path")
    g.add_argument("--option", action="append", metavar="FAMILY.NAME=VALUE",
                   help="family option, e.g. stability.relax_mode=serial (repeatable; overrides "
                        "$GENBENCH_OPTIONS key by key)")
    g.add_argument("--data-dir", help="data directory (default $GENBENCH_DATA_DIR or ../shared/data)")
    add_executor_arguments(g)  # --executor local|ray, --ray-address, --ray-actors (README "Scaling out")
    g.add_argument("--evaluate", metavar="MODULE:FUNCTION",
                   help="evaluation function with the signature of evaluator.pipeline.evaluate "
                        "(default that one; tests and custom pipelines)")
    return p


def load_function(spec: str | None) -> Callable[..., object] | None:
    """"package.module:function" -> the function (None -> None)."""
    if not spec:
        return None
    module, sep, name = spec.partition(":")
    if not sep:
        raise ValueError(f"--evaluate expects MODULE:FUNCTION, got {spec!r}")
    fn: object = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise ValueError(f"--evaluate {spec}: {name} is not a function")
    return fn


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # before the store is opened or a job claimed: a misspelled option is the operator's to fix
        config = build_config(families=args.families, relax_steps=args.relax_steps, mlip=args.mlip,
                              mlip_model=args.mlip_model, device=args.device, dtype=args.dtype,
                              reference=args.reference, options=args.option or (), protocol=args.protocol,
                              executor=args.executor, ray_address=args.ray_address, ray_actors=args.ray_actors)
        check_config(config)
        check_concurrency(args.concurrent_jobs, config)
        for variable in WORKER_VARIABLES:  # a bad value stops the worker here, not at its first job
            variable.read()
        check_protocol(config, args.expect_protocol or settings.EXPECT_PROTOCOL.read(), args.data_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    store = open_store(args.store, args.results_store)
    worker = Worker(store, config, worker_id=args.worker_id, work_root=args.work_dir,
                    expect_protocol=args.expect_protocol, data_dir=args.data_dir, lease_s=args.lease,
                    heartbeat_s=args.heartbeat, progress_interval_s=args.progress_interval,
                    retry_delay_s=args.retry_delay, max_attempts=args.max_attempts, drain=args.drain,
                    keep_work=args.keep_work, stall_timeout_s=args.stall_timeout, job_budget_s=args.job_budget,
                    evaluate=load_function(args.evaluate))
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    parent = settings.WORKER_PARENT_PID.read()
    if parent:  # started by leaderboard.serve: stop (release the job) when it ends, however it ends
        die_with_parent(parent, signal.SIGTERM)
    log.info("%s: serving %s (protocol %s, families=%s, device=%s)", worker.worker_id, store.uri,
             worker.protocol.describe(), ",".join(config.families or ["all"]), config.device)
    if args.concurrent_jobs > 1:
        log.info("%s: %d job slots on the Ray cluster %s, %d actors each", worker.worker_id, args.concurrent_jobs,
                 config.execution.ray_address or ray_address(), config.execution.ray_actors)
        n = JobSlots(worker, args.concurrent_jobs).run(once=args.once, poll_s=args.poll, max_jobs=args.max_jobs)
    else:
        n = worker.run(once=args.once, poll_s=args.poll, max_jobs=args.max_jobs)
    log.info("%s: processed %d job(s), exiting", worker.worker_id, n)
    return 0


__all__ = ["CONFIG_ERROR", "WORKER_VARIABLES", "Worker", "build_parser", "load_function", "main"]


if __name__ == "__main__":
    sys.exit(main())
