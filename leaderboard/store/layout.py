"""The store layout: every path the leaderboard reads or writes in a ``Store``.

A leaf module (standard library only, nothing from the project), so the queue,
the submissions, the results and the UI all name a store file the same way
without importing each other::

    submissions/<id>/meta.json          validated metadata (write-once)
    submissions/<id>/files/<name>       uploaded file(s) (write-once)
    queue/<id>.json                     status document (compare-and-swap)
    queue/sequence.txt                  last job sequence number (FIFO order)
    results/<id>/summary.json           evaluator summary (+ "leaderboard" block)
    results/<id>/structures.parquet     per-structure table
    results/leaderboard.parquet         one row per finished, visible submission
    results/published.json              what the results store shows (ids, revision, schema)
    README.md                           the results store's dataset card
    queue/index.json                    queue index: id -> state, seq, lease (compare-and-swap)
    quarantine/<path>.<etag12>.<ext>    copy of a corrupt store file, kept when repaired

Paths are POSIX-style and relative to the store's root. Changing a name here
changes where every reader and writer looks, and existing stores use these
names: keep them.
"""

from __future__ import annotations

SUBMISSIONS_DIR = "submissions"
"""Folder of the submissions: one subfolder per job id."""
META_FILE = "meta.json"
"""A submission's validated metadata, inside its folder."""
UPLOADS_DIR = "files"
"""Folder of a submission's uploaded files, inside its folder."""

QUEUE_DIR = "queue"
"""Folder of the status documents, ``<id>.json`` each."""
JOB_SUFFIX = ".json"
"""File-name ending of a status document."""
SEQUENCE_PATH = f"{QUEUE_DIR}/sequence.txt"
"""The last assigned ``Job.seq`` (decimal text and a newline)."""

RESULTS_DIR = "results"
"""Folder of the published results: one subfolder per job id and the table."""
SUMMARY_FILE = "summary.json"
"""A result's summary, inside its folder (the name of the download too)."""
TABLE_FILE = "structures.parquet"
"""A result's per-structure table, inside its folder (the name of the download too)."""
LEADERBOARD_PATH = f"{RESULTS_DIR}/leaderboard.parquet"
"""The leaderboard table: one row per finished, visible submission."""

PUBLISHED_PATH = f"{RESULTS_DIR}/published.json"
"""The results store's record of what it shows: published submission ids (with protocol),
a revision bumped by every change, and the per-structure tables' common schema."""
CARD_PATH = "README.md"
"""The results store's dataset card (YAML ``configs:`` + column documentation)."""
QUEUE_INDEX_PATH = f"{QUEUE_DIR}/index.json"
"""The queue index: every job's id, state, sequence number and lease, in one document."""

QUARANTINE_DIR = "quarantine"
"""Folder of the copies of corrupt files, mirroring their store paths."""
QUARANTINE_TAG_CHARS = 12
"""Characters of the etag that tell apart the copies of one file."""


def submission_dir(job_id: str) -> str:
    """Folder of one submission: ``submissions/<id>``."""
    return f"{SUBMISSIONS_DIR}/{job_id}"


def meta_path(job_id: str) -> str:
    """A submission's metadata: ``submissions/<id>/meta.json``."""
    return f"{submission_dir(job_id)}/{META_FILE}"


def upload_path(job_id: str, name: str) -> str:
    """One uploaded file (``name`` already store-safe): ``submissions/<id>/files/<name>``."""
    return f"{submission_dir(job_id)}/{UPLOADS_DIR}/{name}"


def job_path(job_id: str) -> str:
    """A job's status document: ``queue/<id>.json``."""
    return f"{QUEUE_DIR}/{job_id}{JOB_SUFFIX}"


def job_id_of(path: str) -> str | None:
    """The job id a listed ``queue/`` path names (inverse of :func:`job_path`), or None
    for another file there (``queue/sequence.txt``, ``queue/index.json``). The id is not validated."""
    prefix = QUEUE_DIR + "/"
    if path == QUEUE_INDEX_PATH or not (path.startswith(prefix) and path.endswith(JOB_SUFFIX)):
        return None
    return path[len(prefix):-len(JOB_SUFFIX)]


def result_dir(job_id: str) -> str:
    """Folder of one submission's published results: ``results/<id>``."""
    return f"{RESULTS_DIR}/{job_id}"


def summary_path(job_id: str) -> str:
    """A published summary: ``results/<id>/summary.json``."""
    return f"{result_dir(job_id)}/{SUMMARY_FILE}"


def table_path(job_id: str) -> str:
    """A published per-structure table: ``results/<id>/structures.parquet``."""
    return f"{result_dir(job_id)}/{TABLE_FILE}"


def quarantine_path(path: str, etag: str) -> str:
    """Where the copy of the corrupt file at ``path`` with content ``etag`` is kept:
    ``quarantine/<path stem>.<first 12 of etag>.<ext>`` (one copy per distinct content)."""
    stem, dot, ext = path.rpartition(".")
    return f"{QUARANTINE_DIR}/{stem}.{etag[:QUARANTINE_TAG_CHARS]}{dot}{ext}"


__all__ = [
    "CARD_PATH", "JOB_SUFFIX", "LEADERBOARD_PATH", "PUBLISHED_PATH", "QUEUE_INDEX_PATH",
    "META_FILE", "QUARANTINE_DIR", "QUARANTINE_TAG_CHARS",
    "QUEUE_DIR", "RESULTS_DIR", "SEQUENCE_PATH", "SUBMISSIONS_DIR", "SUMMARY_FILE", "TABLE_FILE",
    "UPLOADS_DIR", "job_id_of", "job_path", "meta_path", "quarantine_path", "result_dir",
    "submission_dir", "summary_path", "table_path", "upload_path",
]
