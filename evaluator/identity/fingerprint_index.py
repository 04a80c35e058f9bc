"""A compact, constant-time-ish set of BAWL fingerprints (novelty by fingerprint equality).

Each fingerprint is stored as a 64-bit BLAKE2b digest in a sorted numpy array (8 bytes
per entry; ~40 MB for 5 M entries) with an optional aligned array of reference ids.
A lookup is a vectorised binary search (log2(5 M) ≈ 22 comparisons), so its cost is
practically independent of the reference size. Two different fingerprints share a
64-bit digest with probability ~ n / 2^64 per query (< 1e-12 for 5 M entries).
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Digests = npt.NDArray[np.uint64]


def digest64(fingerprint: str) -> int:
    """Unsigned 64-bit BLAKE2b digest of a fingerprint string."""
    return int.from_bytes(hashlib.blake2b(fingerprint.encode(), digest_size=8).digest(), "little")


def digests(fingerprints: Iterable[str]) -> Digests:
    return np.fromiter((digest64(f) for f in fingerprints), dtype=np.uint64)


def cell_formula_of(fingerprint: str) -> str:
    """The cell-formula field of ``<WL hash>_<space group>_<cell formula>``."""
    return fingerprint.rsplit("_", 1)[-1]


class FingerprintIndex:
    """Novelty reference made of fingerprints only (e.g. the embedded MP-20).

    ``ids``: reference id per fingerprint, or None when the source has none (then a hit
    reports the fingerprint itself as the matched id).
    """

    kind = "fingerprints"
    equivalence = "BAWL fingerprint equality (sites as submitted, or sorted by species)"

    def __init__(self, fingerprints: Sequence[str], ids: Sequence[str] | None = None, name: str = "") -> None:
        fingerprints = list(fingerprints)  # read twice below
        keys = digests(fingerprints)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.ids = None if ids is None else np.asarray(ids, dtype=object)[order]
        self.name = name
        self.n_entries = len(self.keys)
        self.n_unique = int(len(np.unique(self.keys))) if len(self.keys) else 0
        # cell formulas present (the fingerprint's last field): a query whose cell formula
        # is absent cannot have its fingerprint here, so it needs none (cheap first)
        self.formula_keys = np.unique(digests(cell_formula_of(f) for f in fingerprints))

    def __len__(self) -> int:
        return self.n_entries

    def __contains__(self, fingerprint: str) -> bool:
        return bool(self.positions([fingerprint])[0] >= 0)

    def positions(self, fingerprints: Sequence[str | None]) -> npt.NDArray[np.int64]:
        """Position of each fingerprint in the index, -1 when absent (or None)."""
        q = digests(f or "" for f in fingerprints)
        pos = np.searchsorted(self.keys, q)
        found = (pos < len(self.keys)) & (self.keys[np.minimum(pos, len(self.keys) - 1)] == q)
        found &= np.array([f is not None for f in fingerprints], dtype=bool)
        return np.where(found, pos, -1)

    def has_cell_formula(self, formulas: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Per cell formula (e.g. ``Ti1H1``), whether some fingerprint here ends with it."""
        q = digests(formulas)
        pos = np.searchsorted(self.formula_keys, q)
        return (pos < len(self.formula_keys)) & \
            (self.formula_keys[np.minimum(pos, max(len(self.formula_keys) - 1, 0))] == q) \
            if len(self.formula_keys) else np.zeros(len(q), dtype=bool)

    def lookup(self, fingerprints: Sequence[str | None]) -> list[str | None]:
        """Matched reference id (or the fingerprint itself when ids are unknown), None if absent."""
        out: list[str | None] = []
        for f, p in zip(fingerprints, self.positions(fingerprints)):
            if p < 0:
                out.append(None)
            else:
                out.append(str(self.ids[p]) if self.ids is not None else f)
        return out

    def nbytes(self) -> int:
        """Memory of the index arrays (ids excluded when absent), bytes."""
        n = self.keys.nbytes
        if self.ids is not None:
            n += self.ids.nbytes + sum(len(str(i)) + 49 for i in self.ids)
        return int(n)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "equivalence": self.equivalence, "name": self.name,
                "n_fingerprints": self.n_entries, "n_unique_fingerprints": self.n_unique}


def read_fingerprint_lines(path: str | Path) -> list[str]:
    """One fingerprint per line (gzip if the name ends in .gz); blank lines skipped."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [line.strip() for line in fh if line.strip()]


def load_fingerprint_file(path: str | Path) -> FingerprintIndex:
    """FingerprintIndex of a text file ``<WL hash>_<space group>_<cell formula>`` per line."""
    return FingerprintIndex(read_fingerprint_lines(path), name=Path(path).name)
