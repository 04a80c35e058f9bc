"""Local-folder store: atomic writes (temp file + rename) and compare-and-swap
under an exclusive ``fcntl.flock`` on ``<root>/.store.lock`` (safe across
processes on one machine; not across NFS clients)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from leaderboard.store.base import ABSENT, PreconditionFailed, Store, StoreError, check_path, etag_of

LOCK_FILE = ".store.lock"


class LocalStore(Store):
    """Files under ``root`` (created on first write)."""

    heartbeat_interval_s = 5.0
    lease_s = 60.0

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _file(self, path: str) -> Path:
        return self.root / check_path(path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def read(self, path: str) -> tuple[bytes | None, str | None]:
        try:
            data = self._file(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None, None
        return data, etag_of(data)

    def commit(self, writes: Mapping[str, bytes | None], *, if_match: Mapping[str, str] | None = None,
               message: str = "") -> None:
        files = {check_path(p): v for p, v in writes.items()}
        with self._locked():
            for path, expected in (if_match or {}).items():
                _, current = self.read(path)
                if (current or ABSENT) != expected:
                    raise PreconditionFailed(f"{path} changed since it was read")
            for path, data in files.items():
                target = self.root / path
                if data is None:
                    target.unlink(missing_ok=True)
                else:
                    _atomic_write(target, data)

    def list(self, prefix: str = "") -> list[str]:
        prefix = prefix.replace("\\", "/").lstrip("/")
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue  # lock and temp files
                rel = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    out.append(rel)
        return sorted(out)

    def local_path(self, path: str) -> Path | None:
        p = self._file(path)
        return p if p.is_file() else None


def _atomic_write(target: Path, data: bytes) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise StoreError(f"cannot write {target}: {exc}") from exc
