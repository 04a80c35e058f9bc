"""Append-only, fsync'd JSONL checkpoint of per-structure relaxation results.

One line per finished structure: ``{"key": <structure hash>, "result": {...}}``, the
result in ``RelaxResult.to_dict`` form (the keys of the plain dicts older runs wrote,
so their checkpoints still load). The file name carries a hash of everything a result
depends on (model, checkpoint hash, dtype, fmax, step cap), so a run with other
settings never reuses it. A line cut short by a crash, or one that is not a
relaxation result, is ignored on reading (that structure is relaxed again).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluator.mlip.relax_result import RelaxResult

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure


def structure_key(structure: Structure) -> str:
    """sha256 of lattice, species and fractional coordinates (rounded to 1e-8)."""
    h = hashlib.sha256()
    h.update(np.round(structure.lattice.matrix, 8).tobytes())
    h.update(",".join(str(s.specie) for s in structure).encode())
    h.update(np.round(structure.frac_coords, 8).tobytes())
    return h.hexdigest()[:32]


def settings_key(settings: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_record(line: str) -> tuple[str, RelaxResult] | None:
    """(structure key, result) of one checkpoint line; None for a line cut short or not a record."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or not isinstance(rec.get("result"), dict):
        return None
    try:
        return rec["key"], RelaxResult.from_dict(rec["result"])
    except ValueError:
        return None


class Checkpoint:
    """Results by structure key, persisted to ``directory/relax-<settings hash>.jsonl``."""

    def __init__(self, directory: Path | None, settings: Mapping[str, object]):
        self.path = Path(directory) / f"relax-{settings_key(settings)}.jsonl" if directory else None
        self.results: dict[str, RelaxResult] = {}
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
                    rec = read_record(line)
                    if rec is not None:
                        self.results[rec[0]] = rec[1]

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def add(self, key: str, result: RelaxResult) -> None:
        self.results[key] = result
        if self.path is None:
            return
        line = json.dumps({"key": key, "result": result.to_dict()}, allow_nan=True) + "\n"
        with open(self.path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
