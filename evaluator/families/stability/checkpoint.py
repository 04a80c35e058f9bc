"""Append-only, fsync'd JSONL checkpoint of per-structure relaxation results.

One line per finished structure: ``{"key": <structure hash>, "result": {...}}``.
The file name carries a hash of everything a result depends on (model,
checkpoint hash, dtype, fmax, step cap), so a run with other settings never
reuses it. A line cut short by a crash is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np


def structure_key(structure) -> str:
    """sha256 of lattice, species and fractional coordinates (rounded to 1e-8)."""
    h = hashlib.sha256()
    h.update(np.round(structure.lattice.matrix, 8).tobytes())
    h.update(",".join(str(s.specie) for s in structure).encode())
    h.update(np.round(structure.frac_coords, 8).tobytes())
    return h.hexdigest()[:32]


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpoint:
    """Results by structure key, persisted to ``directory/relax-<settings hash>.jsonl``."""

    def __init__(self, directory: Path | None, settings: dict):
        self.path = Path(directory) / f"relax-{settings_key(settings)}.jsonl" if directory else None
        self.results: dict[str, dict] = {}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            meta = self.path.with_suffix(".settings.json")
            if not meta.exists():
                meta.write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))
            if self.path.exists():
                text = self.path.read_text()
                if text and not text.endswith("\n"):  # end a line cut short, so the next record is whole
                    with open(self.path, "a") as fh:
                        fh.write("\n")
                for line in text.splitlines():
                    try:
                        rec = json.loads(line)
                        self.results[rec["key"]] = rec["result"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a line cut short by an interrupted run

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def add(self, key: str, result: dict) -> None:
        self.results[key] = result
        if self.path is None:
            return
        line = json.dumps({"key": key, "result": result}, allow_nan=True) + "\n"
        with open(self.path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
