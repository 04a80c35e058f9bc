"""Where the reference data lives, and which of its files a run used.

The data directory defaults to ``../shared/data`` beside the repository and is
overridden by the ``GENBENCH_DATA_DIR`` environment variable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV_VAR = "GENBENCH_DATA_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


class MissingDataError(FileNotFoundError):
    """A data file the evaluation needs is not in the data directory."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class DataDir:
    """Resolves data files and records the sha256 of each file used (provenance)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR).resolve()
        self.used: dict[str, str] = {}

    def path(self, relative: str) -> Path:
        """Absolute path of ``relative``; raises MissingDataError naming the file."""
        p = self.root / relative
        if not p.exists():
            raise MissingDataError(
                f"data file '{relative}' not found in data directory {self.root}. "
                f"Set {ENV_VAR} to a directory that contains it (the default is "
                f"../shared/data beside the repository); see README 'Data'."
            )
        if p.is_file() and relative not in self.used:
            self.used[relative] = sha256_file(p)
        return p

    def provenance(self) -> dict[str, str]:
        """{relative path: sha256} of every file resolved so far."""
        return dict(sorted(self.used.items()))
