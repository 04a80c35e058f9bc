"""The store interface every back end implements (:class:`Store`: key/value files with
compare-and-swap), its errors, and the helpers the back ends share (etags, path checks,
canonical JSON, urgent commits). A leaf of ``leaderboard.store``: the back ends
(``local``, ``hub``) import it, and the package re-exports it."""

from __future__ import annotations

import contextvars
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
