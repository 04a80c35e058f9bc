"""Where a submission's metadata lives in the store, and reading it back.

A leaf module (it imports only the store and its layout), so the queue, the results
table and the submissions module can all read a submission's ``meta.json`` without
importing each other.
"""

from __future__ import annotations

from typing import Any

from leaderboard.store import Store
from leaderboard.store.layout import meta_path


def load_meta(store: Store, job_id: str) -> dict[str, Any] | None:
    """The stored metadata of a submission, or None (also when it is not a JSON object)."""
    meta = store.read_json(meta_path(job_id))[0]
    return meta if isinstance(meta, dict) else None
