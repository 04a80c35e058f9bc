"""Key/value file store with compare-and-swap, behind one small interface.

``open_store(uri)`` picks the back end:

* ``None``: ``$GENBENCH_STORE`` if set, else the local folder ``./state``;
* a path or ``file://PATH``: :class:`~leaderboard.store.local.LocalStore`;
* ``hf://datasets/ORG/NAME``: :class:`~leaderboard.store.hub.HubStore`.

Paths are POSIX-style and relative (``queue/<id>.json``); the layout, every
path the leaderboard uses, is :mod:`leaderboard.store.layout`. An *etag* is the
sha256 hex digest of a file's bytes; ``write_bytes(..., if_match=etag)`` only
succeeds if the file still has that content (``if_match=ABSENT``: only if the
file does not exist) and otherwise raises :class:`PreconditionFailed`.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path

ENV_VAR = "GENBENCH_STORE"
DEFAULT_LOCAL = "state"
ABSENT = ""  # if_match value meaning "the file must not exist yet"


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

    # -- primitives ---------------------------------------------------------
    @abstractmethod
    def read(self, path: str) -> tuple[bytes | None, str | None]:
        """(bytes, etag) of ``path``, or (None, None) if absent."""

    @abstractmethod
    def commit(self, writes: dict[str, bytes | None], *, if_match: dict[str, str] | None = None,
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

    def read_json(self, path: str) -> tuple[dict | None, str | None]:
        """(parsed JSON, etag) of ``path`` or (None, None)."""
        data, tag = self.read(path)
        return (None, None) if data is None else (json.loads(data), tag)

    def write_json(self, path: str, obj, *, if_match: str | None = None, message: str = "") -> str:
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


def dumps(obj) -> bytes:
    """Canonical JSON bytes for store documents."""
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode()


def open_store(uri: str | os.PathLike | None = None) -> Store:
    """Open the store named by ``uri`` (see module docstring)."""
    if uri is None:
        uri = os.environ.get(ENV_VAR) or DEFAULT_LOCAL
    uri = str(uri)
    if uri.startswith("hf://"):
        from leaderboard.store.hub import HubStore

        return HubStore.from_uri(uri)
    from leaderboard.store.local import LocalStore

    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return LocalStore(uri)


__all__ = ["ABSENT", "ENV_VAR", "PreconditionFailed", "Store", "StoreError", "check_path",
           "dumps", "etag_of", "open_store"]
