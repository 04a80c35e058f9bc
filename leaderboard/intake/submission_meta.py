"""Where a submission's metadata lives in the store, and reading it back.

A leaf module (it imports only the store and its layout), so the queue, the results
table and the submissions module can all read a submission's ``meta.json`` without
importing each other.
"""

from __future__ import annotations

from leaderboard.store import Store
from leaderboard.store.layout import meta_path


def load_meta(store: Store, job_id: str) -> dict | None:
    """The stored metadata of a submission, or None."""
    return store.read_json(meta_path(job_id))[0]
