"""Re-scoring: queue finished submissions again under the current protocol, from their
stored uploads (``python -m leaderboard rescore --protocol ID [--all | JOB ...]``).

A re-scoring job is an ordinary queue job (the status view shows it like any other) with
``source`` = the submission it scores again and ``protocol`` = the protocol it is queued
under; its id is ``<source>-r-<protocol id>``, so running the command twice queues nothing
twice (the second run finds the job and skips it). It reads the source's uploaded files
(``submissions.file_paths``) and carries a copy of its ``meta.json``; nothing is copied of
the upload. The old results stay, under their own protocol: they are another job's.

Skipped, with the reason: a submission that is not FINISHED, one whose own results are
already under the protocol, one already queued (or scored) under it. ``JOB`` may name a
re-scoring job; its source is re-scored.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from evaluator.config import PRESETS, build_config
from evaluator.data import DataDir
from evaluator.protocol import protocol_of, summary_protocol
from leaderboard.jobs.queue import FINISHED, Job, JOB_ID, create_job, get_job, list_jobs
from leaderboard.publishing.results import load_summary
from leaderboard.store import PreconditionFailed, Store, open_store
from leaderboard.store.layout import meta_path

RESCORE_MARK = "-r-"


def rescore_id(source: str, protocol_id: str) -> str:
    """The id of the job that re-scores ``source`` under ``protocol_id`` (deterministic)."""
    job_id = f"{source}{RESCORE_MARK}{protocol_id}"
    if not JOB_ID.fullmatch(job_id):
        raise ValueError(f"cannot make a job id from {source!r} and protocol {protocol_id!r}")
    return job_id


@dataclass
class RescoreReport:
    queued: list[str] = field(default_factory=list)  # new job ids
    skipped: dict[str, str] = field(default_factory=dict)  # submission id -> why

    def text(self) -> str:
        lines = [f"queued {len(self.queued)} re-scoring job(s)"] + [f"  queued {j}" for j in self.queued]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped.items()]
        return "\n".join(lines)


def result_protocol(store: Store, job_id: str) -> str | None:
    """The protocol id of a finished submission's stored results (None: unknown)."""
    summary = load_summary(store, job_id)
    if summary is None:
        return None
    protocol, _ = summary_protocol(summary)
    return protocol.id if protocol else None


def rescore(store: Store, protocol_id: str, job_ids: list[str] | None = None, *, by: str = "admin") -> RescoreReport:
    """Queue re-scoring jobs under ``protocol_id`` for ``job_ids`` (None: every finished,
    visible submission that is not itself a re-scoring). Idempotent."""
    report = RescoreReport()
    if job_ids is None:
        sources = [j for j in list_jobs(store, (FINISHED,)) if not j.source]
    else:
        sources = []
        for jid in job_ids:
            job = get_job(store, jid)
            if job is None:
                report.skipped[jid] = "no such submission"
                continue
            if job.source:  # a re-scoring job: re-score its source
                job = get_job(store, job.source) or job
            sources.append(job)
    seen: set[str] = set()
    for src in sources:
        if src.id in seen:
            continue
        seen.add(src.id)
        if src.status != FINISHED:
            report.skipped[src.id] = f"{src.status.lower()}, not finished"
            continue
        if result_protocol(store, src.id) == protocol_id:
            report.skipped[src.id] = f"its results are already under protocol {protocol_id}"
            continue
        new_id = rescore_id(src.id, protocol_id)
        existing = get_job(store, new_id)
        if existing is not None:
            report.skipped[src.id] = f"already queued under protocol {protocol_id} as {new_id} ({existing.status})"
            continue
        meta = store.read_bytes(meta_path(src.id))
        job = Job(id=new_id, submitter=src.submitter, model_name=src.model_name, model_version=src.model_version,
                  files=list(src.files), file_sha256=src.file_sha256, structures_sha256=src.structures_sha256,
                  max_attempts=src.max_attempts, n_structures=src.n_structures, cell_atoms=list(src.cell_atoms),
                  protocol=protocol_id, source=src.id)
        writes = {meta_path(new_id): meta} if meta is not None else {}
        try:
            create_job(store, job, writes, message=f"re-score {src.id} under protocol {protocol_id} ({by})")
        except PreconditionFailed:  # queued concurrently by another run
            report.skipped[src.id] = f"already queued under protocol {protocol_id} as {new_id}"
            continue
        report.queued.append(new_id)
    return report


def current_protocol(expected: str, data_dir: str | None = None) -> str:
    """The id of the service's current protocol (``GENBENCH_*`` settings), which
    ``expected`` (an id or a named protocol) must name; ValueError naming both otherwise."""
    data = DataDir(data_dir)
    current = protocol_of(build_config(), data)
    if expected in (current.id, current.label):
        return current.id
    if expected in PRESETS and protocol_of(build_config(env={}, protocol=expected), data).id == current.id:
        return current.id
    raise ValueError(f"--protocol {expected} is not the current protocol {current.describe()} of this "
                     "service's settings (GENBENCH_PROTOCOL and the other GENBENCH_* variables); re-scoring "
                     "queues jobs only under the protocol its workers produce")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m leaderboard rescore", description=__doc__.splitlines()[0])
    p.add_argument("--store", help="store URI (default $GENBENCH_STORE or ./state)")
    p.add_argument("--protocol", required=True, help="the current protocol's id (or its name, e.g. default); "
                                                     "checked against this service's settings")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every finished submission")
    which.add_argument("jobs", nargs="*", default=[], metavar="JOB", help="submission ids")
    p.add_argument("--data-dir", help="data directory (default $GENBENCH_DATA_DIR or ../shared/data)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.all and not args.jobs:
        print("error: name submissions (JOB ...) or --all", file=sys.stderr)
        return 2
    try:
        protocol_id = current_protocol(args.protocol, args.data_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = rescore(open_store(args.store), protocol_id, None if args.all else list(args.jobs))
    print(report.text())
    return 0
