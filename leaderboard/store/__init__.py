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

import contextvars
import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from leaderboard import settings

DEFAULT_LOCAL = "state/requests"
DEFAULT_RESULTS_LOCAL = "state/results"
LEGACY_LOCAL = "state"  # the single store of earlier versions
log = logging.getLogger("leaderboard.store")
ABSENT = ""  # if_match value meaning "the file must not exist yet"


_URGENT = contextvars.ContextVar("genbench_urgent_commits", default=False)


@contextmanager
def urgent_commits() -> Iterator[None]:
    """Commits made inside are urgent (lease renewals): they may use the part of a budgeted
    repo's hourly commits kept in reserve (see ``HubStore``), so submissions, claims and
    results filling the hour never starve the leases of running jobs."""
    token = _URGENT.set(True)
    try:
        yield
    finally:
        _URGENT.reset(token)


def commits_are_urgent() -> bool:
    """Whether the current commit is made inside :func:`urgent_commits`."""
    return _URGENT.get()


class StoreError(RuntimeError):
    """The store could not perform an operation (I/O, network, bad path)."""


class PreconditionFailed(StoreError):
    """A compare-and-swap write lost: the file changed since it was read."""


def etag_of(data: bytes) -> str:
    """The etag of ``data``: its sha256 hex digest."""
    return hashlib.sha256(data).hexdigest()


def check_path(path: str) -> str:
    """Normalise and validate a store path (relative, no '..', no empty parts)."""
    p = str(path).replace("\\", "/").strip("/")
    parts = p.split("/")
    if not p or any(part in ("", ".", "..") for part in parts):
        raise StoreError(f"invalid store path {path!r}")
    return p


class Store(ABC):
    """A tree of files addressed by relative paths.

    Single-file writes are atomic; ``commit`` writes several files at once,
    checking all their preconditions first (all-or-nothing on the Hub, under
    one lock locally). ``heartbeat_interval_s`` is the back end's advice for
    how often a worker may write progress (the Hub limits commits per hour).
    """

    uri: str
    heartbeat_interval_s: float = 10.0
    lease_s: float = 120.0
    results: Store | None = None  # the paired public results store (None: this store holds both)
    max_commits_per_hour: int | None = None  # the repo's commit budget (None: unlimited)

    @property
    def results_store(self) -> Store:
        """Where the public results of this (requests) store go: the paired results
        store, or this store itself in the single-store layout."""
        return self.results if self.results is not None else self

    # -- primitives ---------------------------------------------------------
    @abstractmethod
    def read(self, path: str) -> tuple[bytes | None, str | None]:
        """(bytes, etag) of ``path``, or (None, None) if absent."""

    @abstractmethod
    def commit(self, writes: Mapping[str, bytes | None], *, if_match: Mapping[str, str] | None = None,
               message: str = "") -> None:
        """Write (bytes) or delete (None) several files in one step.

        ``if_match`` maps paths to the etag they must still have (``ABSENT``:
        must not exist); raises PreconditionFailed and writes nothing otherwise.
        """

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted paths of all files under ``prefix`` (a folder or path prefix)."""

    # -- conveniences built on the primitives ------------------------------
    def read_bytes(self, path: str) -> bytes | None:
        """Contents of ``path`` or None if absent."""
        return self.read(path)[0]

    def exists(self, path: str) -> bool:
        return self.read_bytes(path) is not None

    def etag(self, path: str) -> str | None:
        return self.read(path)[1]

    def write_bytes(self, path: str, data: bytes, *, if_match: str | None = None,
                    message: str = "") -> str:
        """Write ``data`` to ``path`` (atomically); returns the new etag.

        ``if_match=None`` writes unconditionally, ``ABSENT`` only creates,
        an etag only replaces that exact content (else PreconditionFailed).
        """
        cond = None if if_match is None else {path: if_match}
        self.commit({path: data}, if_match=cond, message=message or f"write {path}")
        return etag_of(data)

    def delete(self, path: str, *, if_match: str | None = None, message: str = "") -> None:
        cond = None if if_match is None else {path: if_match}
        self.commit({path: None}, if_match=cond, message=message or f"delete {path}")

    def read_json(self, path: str) -> tuple[dict[str, Any] | None, str | None]:
        """(parsed JSON object, etag) of ``path`` or (None, None); StoreError if it holds
        JSON that is not an object (store documents are objects; values are JSON's)."""
        data, tag = self.read(path)
        if data is None:
            return None, None
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise StoreError(f"{path} holds a JSON {type(doc).__name__}, not an object")
        return doc, tag

    def write_json(self, path: str, obj: object, *, if_match: str | None = None, message: str = "") -> str:
        return self.write_bytes(path, dumps(obj), if_match=if_match, message=message)

    def local_path(self, path: str) -> Path | None:
        """A local file holding ``path``'s bytes (downloaded if remote), or None."""
        data = self.read_bytes(path)
        if data is None:
            return None
        import tempfile

        d = Path(tempfile.mkdtemp(prefix="genbench-store-"))
        out = d / Path(path).name
        out.write_bytes(data)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


def dumps(obj: object) -> bytes:
    """Canonical JSON bytes for store documents."""
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode()


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
        from leaderboard.store.hub import HubStore

        return HubStore.from_uri(uri, private=not public)
    from leaderboard.store.local import LocalStore

    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return LocalStore(uri)


__all__ = ["ABSENT", "PreconditionFailed", "Store", "StoreError",
           "check_path", "commits_are_urgent", "dumps", "etag_of", "open_one", "open_store", "resolve_uris",
           "urgent_commits"]
