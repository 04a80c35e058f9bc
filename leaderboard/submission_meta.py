"""Where a submission's metadata lives in the store, and reading it back.

A leaf module (it imports only the store), so the queue, the results table and
the submissions module can all read ``submissions/<id>/meta.json`` without
importing each other.
"""

from __future__ import annotations

from leaderboard.store import Store

SUBMISSIONS_DIR = "submissions"


def meta_path(job_id: str) -> str:
    """Store path of a submission's ``meta.json``."""
    return f"{SUBMISSIONS_DIR}/{job_id}/meta.json"


def load_meta(store: Store, job_id: str) -> dict | None:
    """The stored metadata of a submission, or None."""
    return store.read_json(meta_path(job_id))[0]
