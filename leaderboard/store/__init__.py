"""Key/value file store with compare-and-swap, behind one small interface.

``open_store(uri, results=None)`` picks the back end of each store:

* a path or ``file://PATH``: :class:`~leaderboard.store.local.LocalStore`;
* ``hf://datasets/ORG/NAME``: :class:`~leaderboard.store.hub.HubStore`.

Two stores (:func:`resolve_uris`): the *requests* store (private: uploads, metadata,
the queue; ``uri``, else ``$GENBENCH_STORE``) and the *results* store (public: the
dataset of summaries, per-structure tables and the leaderboard table; ``results``,
else ``$GENBENCH_RESULTS_STORE``). With neither set they are the local folders
``./state/requests`` and ``./state/results`` side by side. A requests store given
without a results store is a *single store* holding both, the layout of earlier
versions (so an existing ``./state`` or ``$GENBENCH_STORE`` keeps working; a
``./state`` with a ``queue/`` folder and no ``requests/`` is opened that way, with a
warning). The returned store is the requests store; ``store.results_store`` is the
results store (the store itself in the single-store layout).

Paths are POSIX-style and relative (``queue/<id>.json``); the layout, every
path the leaderboard uses, is :mod:`leaderboard.store.layout`. An *etag* is the
sha256 hex digest of a file's bytes; ``write_bytes(..., if_match=etag)`` only
succeeds if the file still has that content (``if_match=ABSENT``: only if the
file does not exist) and otherwise raises :class:`PreconditionFailed`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from leaderboard import settings
from leaderboard.store.base import (ABSENT, PreconditionFailed, Store, StoreError, check_path, commits_are_urgent,
                                    dumps, etag_of, urgent_commits)
from leaderboard.store.local import LocalStore

DEFAULT_LOCAL = "state/requests"
DEFAULT_RESULTS_LOCAL = "state/results"
LEGACY_LOCAL = "state"  # the single store of earlier versions
log = logging.getLogger("leaderboard.store")


def resolve_uris(uri: str | os.PathLike[str] | None = None,
                 results: str | os.PathLike[str] | None = None) -> tuple[str, str | None]:
    """(requests store URI, results store URI or None for the single-store layout).

    requests: ``uri``, else ``$GENBENCH_STORE``, else ``state/requests`` (or the
    legacy single store ``./state`` when it holds a queue and no ``requests/``);
    results: ``results``, else ``$GENBENCH_RESULTS_STORE``, else ``state/results``
    when the requests store is the default one, else None (single store).
    """
    res = str(results) if results else settings.RESULTS_STORE.read()
    if uri is not None:
        return str(uri), res
    env = settings.STORE.read()
    if env:
        return env, res
    legacy = Path(LEGACY_LOCAL)
    if (legacy / "queue").is_dir() and not Path(DEFAULT_LOCAL).exists():
        log.warning("./%s holds a single store of an earlier version (queue, uploads and results "
                    "together): using it as is. To publish results separately, move its submissions/, "
                    "queue/ and quarantine/ into %s/ and run python -m leaderboard.publishing.dataset sync "
                    "(see README, Stores)", LEGACY_LOCAL, DEFAULT_LOCAL)
        return LEGACY_LOCAL, res
    return DEFAULT_LOCAL, res or DEFAULT_RESULTS_LOCAL


def open_store(uri: str | os.PathLike[str] | None = None, results: str | os.PathLike[str] | None = None) -> Store:
    """Open the requests store and pair it with its results store (see module docstring)."""
    req, res = resolve_uris(uri, results)
    store = open_one(req)
    if res is not None and res != req:
        store.results = open_one(res, public=True)
    return store


def open_one(uri: str | os.PathLike[str], public: bool = False) -> Store:
    """Open one store (no pairing); ``public``: a Hub repo created for it is public."""
    uri = str(uri)
    if uri.startswith("hf://"):
        from leaderboard.store.hub import HubStore  # deferred: huggingface_hub, needed for Hub stores only

        return HubStore.from_uri(uri, private=not public)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return LocalStore(uri)


__all__ = ["ABSENT", "PreconditionFailed", "Store", "StoreError",
           "check_path", "commits_are_urgent", "dumps", "etag_of", "open_one", "open_store", "resolve_uris",
           "urgent_commits"]
