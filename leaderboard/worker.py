"""The evaluation worker: ``python -m leaderboard.worker [--once] [--store URI] ...``

Loop: claim the oldest runnable job (compare-and-swap), evaluate its upload
with the configured evaluator, heartbeat while running (a thread, woken by the
evaluator's progress callback), publish the results, repeat. Several workers
(one per GPU) may share a store.

* A worker that dies stops heartbeating; once its lease expires another worker
  reclaims the job and resumes from the evaluator's per-structure checkpoints
  in ``<work-dir>/<id>/eval`` (same machine / shared disk).
* ``IngestError`` (unusable upload) fails the job for good with the message as
  reason; any other error is an infrastructure failure, retried (after
  ``--retry-delay``) until the job's ``max_attempts``.
* SIGTERM/SIGINT: release the running job's lease at the next progress call
  (the next worker resumes it from the checkpoints) and exit 0; with
  ``--drain`` finish it first. The relaxation pool re-calls progress about
  every second and, when asked to stop, cancels queued structures and
  terminates its processes, so a stop takes seconds, not the rest of the pool.

Evaluator settings come from flags or the environment: GENBENCH_FAMILIES,
GENBENCH_RELAX_STEPS, GENBENCH_MLIP, GENBENCH_MLIP_MODEL, GENBENCH_DEVICE,
GENBENCH_DTYPE, GENBENCH_REFERENCE, GENBENCH_OPTIONS (JSON), GENBENCH_DATA_DIR,
GENBENCH_WORK_DIR.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from leaderboard.queue import (INFRASTRUCTURE, USER_ERROR, Job, LeaseLost, claim, fail, get_job,
                               heartbeat, release)
from leaderboard.store import Store, open_store
from leaderboard.submissions import file_paths

log = logging.getLogger("leaderboard.worker")
DEFAULT_WORK_DIR = "state/work"
MAX_REASON = 500


class Abort(BaseException):
    """Stops an evaluation from inside the progress callback (lease lost or shutdown).

    A BaseException so that families catching ``Exception`` per structure do not swallow it.
    """


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def parse_options(pairs: list[str] | None) -> dict:
    """["hull=mace", "relax_workers=1"] -> {"hull": "mace", "relax_workers": 1} (JSON values when they parse)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def eval_config_from(families: str | None = None, relax_steps: int | None = None, mlip: str | None = None,
                     mlip_model: str | None = None, device: str | None = None, dtype: str | None = None,
                     reference: str | None = None, options: dict | None = None):
    """An EvalConfig from explicit values, falling back to GENBENCH_* variables, then defaults.

    GENBENCH_OPTIONS is a JSON object of family options (``EvalConfig.options``);
    ``options`` entries override it.
    """
    from evaluator.config import EvalConfig
    from evaluator.mlip import default_mlip

    env = os.environ
    cfg = EvalConfig()
    cfg.options = {**json.loads(env.get("GENBENCH_OPTIONS") or "{}"), **(options or {})}
    families = families or env.get("GENBENCH_FAMILIES")
    if families:
        cfg.families = [f.strip() for f in families.split(",") if f.strip()]
    steps = relax_steps if relax_steps is not None else env.get("GENBENCH_RELAX_STEPS")
    if steps is not None:
        cfg.relax_steps = int(steps)
    cfg.device = device or env.get("GENBENCH_DEVICE") or cfg.device
    cfg.mlip = mlip or env.get("GENBENCH_MLIP") or default_mlip(cfg.device)  # SevenNet-l3i5 on a GPU
    cfg.mlip_model = mlip_model or env.get("GENBENCH_MLIP_MODEL") or cfg.mlip_model
    cfg.dtype = dtype or env.get("GENBENCH_DTYPE") or cfg.dtype
    cfg.reference = reference or env.get("GENBENCH_REFERENCE") or cfg.reference
    return cfg


class _Running:
    """State shared by the evaluation, its progress callback and the heartbeat thread."""

    def __init__(self, job: Job):
        self.job = job
        self.progress = {"done": 0, "total": 0, "stage": "starting"}
        self.lost = False
        self.done = threading.Event()
        self.wake = threading.Event()


class Worker:
    """Claims and evaluates jobs from ``store``.

    lease_s / heartbeat_s: lease length and heartbeat period in seconds (default:
    the store's advice, e.g. 60/5 locally, 900/240 on the Hub);
    progress_interval_s: minimum seconds between progress writes.
    evaluate: the evaluation function (default ``evaluator.pipeline.evaluate``).
    """

    def __init__(self, store: Store, config=None, *, worker_id: str | None = None,
                 work_root: str | Path | None = None, data_dir: str | Path | None = None,
                 lease_s: float | None = None, heartbeat_s: float | None = None,
                 progress_interval_s: float | None = None, retry_delay_s: float = 30.0,
                 max_attempts: int | None = None, drain: bool = False, keep_work: bool = False,
                 evaluate=None):
        self.store = store
        self.config = config if config is not None else eval_config_from()
        self.worker_id = worker_id or default_worker_id()
        self.work_root = Path(work_root or os.environ.get("GENBENCH_WORK_DIR") or DEFAULT_WORK_DIR)
        self.data_dir = data_dir
        self.lease_s = float(lease_s or store.lease_s)
        self.heartbeat_s = float(heartbeat_s or min(store.heartbeat_interval_s, self.lease_s / 3))
        default_progress = 1.0 if store.heartbeat_interval_s < 60 else self.heartbeat_s
        self.progress_interval_s = float(progress_interval_s or default_progress)
        self.retry_delay_s = retry_delay_s
        self.max_attempts = max_attempts
        self.drain = drain
        self.keep_work = keep_work
        self._evaluate = evaluate
        self.stopping = threading.Event()

    # -- control -------------------------------------------------------------
    def stop(self, *_args) -> None:
        """Ask the worker to stop (signal handler): release or (drain) finish the current job."""
        log.info("%s: stop requested", self.worker_id)
        self.stopping.set()

    def run(self, once: bool = False, poll_s: float = 5.0, max_jobs: int | None = None) -> int:
        """Process jobs until stopped (``once``: at most one, return when the queue is empty)."""
        n = 0
        while not self.stopping.is_set():
            try:
                job = self.run_one()
            except Exception:  # noqa: BLE001 - store trouble (network, Hub): a long-lived worker waits and retries
                log.exception("%s: store error; retrying in %g s", self.worker_id, poll_s)
                self.stopping.wait(poll_s)
                continue
            if job is not None:
                n += 1
                if once or (max_jobs is not None and n >= max_jobs):
                    break
                continue
            if once:
                break
            self.stopping.wait(poll_s)
        return n

    def run_one(self) -> Job | None:
        """Claim one job and process it; returns its final document or None if idle."""
        job = claim(self.store, self.worker_id, self.lease_s, self.max_attempts)
        if job is None:
            return None
        log.info("%s: claimed %s (attempt %d)", self.worker_id, job.id, job.attempts)
        return self.process(job)

    # -- one job -------------------------------------------------------------
    def _inputs(self, job: Job, work: Path) -> list[Path]:
        inputs = []
        for path in file_paths(job):
            local = self.store.local_path(path)
            if local is None:
                raise FileNotFoundError(f"uploaded file {path} is missing from the store")
            if local.name != Path(path).name:  # keep the uploaded name (format detection)
                dest = work / "input" / Path(path).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dest)
                local = dest
            inputs.append(local)
        return inputs

    def _beat(self, run: _Running) -> None:
        last = time.monotonic()
        while not run.done.is_set():
            run.wake.wait(self.heartbeat_s)
            run.wake.clear()
            wait = self.progress_interval_s - (time.monotonic() - last)
            if wait > 0 and run.done.wait(wait):
                break
            if run.done.is_set():
                break
            try:
                run.job = heartbeat(self.store, run.job.id, self.worker_id, self.lease_s, dict(run.progress))
                last = time.monotonic()
            except LeaseLost as exc:
                log.warning("%s: lost %s: %s", self.worker_id, run.job.id, exc)
                run.lost = True
                return
            except Exception:  # noqa: BLE001 - transient store trouble: try again next beat
                log.exception("%s: heartbeat for %s failed", self.worker_id, run.job.id)

    def _progress(self, run: _Running):
        def callback(stage: str, done: int, total: int) -> None:
            # also re-called with unchanged counts while waiting (a chance to stop): only
            # a change wakes the heartbeat thread to write progress
            new = {"done": int(done), "total": int(total), "stage": stage}
            if new != run.progress:
                run.progress = new
                run.wake.set()
            if run.lost:
                raise Abort("lease lost")
            if self.stopping.is_set() and not self.drain:
                raise Abort("shutting down")

        return callback

    def evaluate(self, inputs, work: Path, progress):
        from evaluator.data import DataDir

        fn = self._evaluate
        if fn is None:
            from evaluator.pipeline import evaluate as fn
        return fn(inputs, self.config, DataDir(self.data_dir), work_dir=work, progress=progress)

    def process(self, job: Job) -> Job:
        """Evaluate a claimed job and publish, fail, retry or release it."""
        from evaluator.ingest.types import IngestError

        work = self.work_root / job.id
        work.mkdir(parents=True, exist_ok=True)
        run = _Running(job)
        beat = threading.Thread(target=self._beat, args=(run,), name=f"heartbeat-{job.id}", daemon=True)
        beat.start()
        outcome = None
        try:
            try:
                inputs = self._inputs(job, work)
                evaluation = self.evaluate(inputs, work / "eval", self._progress(run))
            finally:
                run.done.set()
                run.wake.set()
                beat.join()
            if run.lost:
                raise Abort("lease lost")
            outcome = self._publish(run.job, evaluation, work, run.progress)
        except Abort as exc:
            if run.lost:
                log.warning("%s: abandoned %s (%s)", self.worker_id, job.id, exc)
            else:
                log.info("%s: releasing %s (%s)", self.worker_id, job.id, exc)
                outcome = self._safely(release, job.id, self.worker_id, "worker shut down")
        except IngestError as exc:
            outcome = self._safely(fail, job.id, self.worker_id, _short(str(exc)), USER_ERROR)
        except Exception as exc:  # noqa: BLE001 - anything else is ours, not the user's
            log.error("%s: %s failed:\n%s", self.worker_id, job.id, traceback.format_exc())
            reason = _short(f"evaluation error ({type(exc).__name__}): {exc}")
            outcome = self._safely(fail, job.id, self.worker_id, reason, INFRASTRUCTURE, self.retry_delay_s)
        final = outcome or get_job(self.store, job.id) or job
        if final.status in ("FINISHED", "FAILED") and not self.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        log.info("%s: %s -> %s", self.worker_id, job.id, final.status)
        return final

    def _safely(self, fn, *args):
        try:
            return fn(self.store, *args)
        except LeaseLost as exc:
            log.warning("%s: %s", self.worker_id, exc)
            return None

    def _publish(self, job: Job, evaluation, work: Path, progress: dict) -> Job | None:
        from evaluator.results import write_evaluation

        from leaderboard.results import publish

        summary_file, table_file = write_evaluation(evaluation, work / "out")
        summary = json.loads(Path(summary_file).read_text())
        return self._safely(lambda store: publish(store, job, summary, Path(table_file).read_bytes(),
                                                  self.worker_id, progress=progress))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leaderboard.worker", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="store URI (default $GENBENCH_STORE or ./state; hf://datasets/ORG/NAME)")
    p.add_argument("--once", action="store_true", help="process at most one job, then exit")
    p.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between polls of an empty queue")
    p.add_argument("--worker-id", help="name in lease documents (default host-pid)")
    p.add_argument("--work-dir", help="local per-job work/checkpoint folder (default $GENBENCH_WORK_DIR "
                                      f"or {DEFAULT_WORK_DIR})")
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
    g = p.add_argument_group("evaluator (defaults from GENBENCH_* variables)")
    g.add_argument("--families", help="comma-separated families (default: all)")
    g.add_argument("--relax-steps", type=int, help="FIRE step cap of the MLIP relaxation")
    g.add_argument("--mlip", help="MLIP backend (chgnet, mace)")
    g.add_argument("--mlip-model", help="MLIP checkpoint path or foundation-model name")
    g.add_argument("--device", help="auto, cpu or cuda")
    g.add_argument("--dtype", choices=["float32", "float64"])
    g.add_argument("--reference", help="reference id or path")
    g.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="family option (EvalConfig.options), e.g. relax_mode=serial; repeatable")
    g.add_argument("--data-dir", help="data directory (default $GENBENCH_DATA_DIR or ../shared/data)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = eval_config_from(args.families, args.relax_steps, args.mlip, args.mlip_model, args.device,
                              args.dtype, args.reference, parse_options(args.option))
    store = open_store(args.store)
    worker = Worker(store, config, worker_id=args.worker_id, work_root=args.work_dir,
                    data_dir=args.data_dir, lease_s=args.lease, heartbeat_s=args.heartbeat,
                    progress_interval_s=args.progress_interval,
                    retry_delay_s=args.retry_delay, max_attempts=args.max_attempts, drain=args.drain,
                    keep_work=args.keep_work)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    log.info("%s: serving %s (families=%s, mlip=%s, device=%s)", worker.worker_id, store.uri,
             ",".join(config.families or ["all"]), config.mlip, config.device)
    n = worker.run(once=args.once, poll_s=args.poll, max_jobs=args.max_jobs)
    log.info("%s: processed %d job(s), exiting", worker.worker_id, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
