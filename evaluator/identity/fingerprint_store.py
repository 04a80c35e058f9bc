"""On-disk format of a built reference: a folder of columnar parquet parts + a manifest.

Layout::

    REF/manifest.json            id, description, source, settings, parts, progress
    REF/parts/part-00000.parquet one row per reference structure (schema below)

Row schema (``SCHEMA``): ``id`` (str), ``reduced_formula`` (the matcher's group key),
``formula`` (cell formula), ``fingerprint`` (BAWL, nullable), ``nsites`` (int),
``prim_nsites`` (sites of the matcher's reduced primitive cell, nullable: unknown
when the builder did not reduce), ``lattice`` (9 floats, Å, row vectors),
``species`` (element symbols), ``frac_coords`` (3·nsites floats, fractional).

Parts are written whole and the manifest is rewritten after each (atomically), so an
interrupted build resumes from the last recorded part with its ``progress`` state.

pyarrow and pymatgen are imported inside the functions that need them: reading a
manifest (reference registry, ``reference info``) stays cheap.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt

from evaluator.data import sha256_file

if TYPE_CHECKING:
    import pyarrow as pa
    from pymatgen.core.structure import Structure

FORMAT = "genbench-reference/1"
PART_ROW_GROUP = 2048  # rows per parquet row group: unit of random access
# manifest.json as a JSON object: the keys of the module doc, plus what a builder adds
# at the end (``skipped``, ``rows_read``, ``row_failures``...).
Manifest = dict[str, Any]


class ReferenceRow(TypedDict):
    """One reference structure as stored in a part (``SCHEMA``, see the module doc)."""

    id: str
    reduced_formula: str
    formula: str
    fingerprint: str | None
    nsites: int
    prim_nsites: int | None
    lattice: list[float]
    species: list[str]
    frac_coords: list[float]


def schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        ("id", pa.string()), ("reduced_formula", pa.string()), ("formula", pa.string()),
        ("fingerprint", pa.string()), ("nsites", pa.int32()), ("prim_nsites", pa.int32()),
        ("lattice", pa.list_(pa.float64())), ("species", pa.list_(pa.string())),
        ("frac_coords", pa.list_(pa.float64())),
    ])


def structure_row(structure: Structure, ref_id: str, fingerprint: str | None,
                  prim_nsites: int | None, reduced_formula: str | None = None) -> ReferenceRow:
    """One reference row from a pymatgen Structure (ordered, element species)."""
    comp = structure.composition
    return {
        "id": str(ref_id),
        "reduced_formula": reduced_formula or comp.reduced_formula,
        "formula": comp.formula.replace(" ", ""),
        "fingerprint": fingerprint,
        "nsites": len(structure),
        "prim_nsites": prim_nsites,
        "lattice": structure.lattice.matrix.reshape(-1).tolist(),
        "species": [site.specie.symbol for site in structure],
        "frac_coords": structure.frac_coords.reshape(-1).tolist(),
    }


def row_structure(lattice: Sequence[float] | npt.NDArray[np.float64], species: Sequence[str],
                  frac_coords: Sequence[float] | npt.NDArray[np.float64]) -> Structure:
    """Inverse of ``structure_row`` (the stored cell)."""
    from pymatgen.core.lattice import Lattice
    from pymatgen.core.structure import Structure

    return Structure(Lattice(np.asarray(lattice, dtype=float).reshape(3, 3)), list(species),
                     np.asarray(frac_coords, dtype=float).reshape(-1, 3))


def read_manifest(ref_dir: str | Path) -> Manifest:
    path = Path(ref_dir) / "manifest.json"
    if not path.exists():
        raise ValueError(f"{ref_dir} is not a built reference (no manifest.json); "
                         "make one with 'python -m evaluator reference build'")
    manifest: Manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown reference format {manifest.get('format')!r}")
    return manifest


class ReferenceWriter:
    """Appends rows to a reference folder part by part; resumable.

    ``resume=True`` re-opens an unfinished folder (its ``progress`` is returned by
    ``progress``); otherwise the folder must be empty or absent.
    """

    def __init__(self, out_dir: str | Path, ref_id: str, description: str, source: dict[str, Any],
                 settings: dict[str, Any], part_rows: int = 50_000, resume: bool = False) -> None:
        self.dir = Path(out_dir)
        self.part_rows = part_rows
        self.buffer: list[ReferenceRow] = []
        self.manifest: Manifest
        manifest_path = self.dir / "manifest.json"
        if manifest_path.exists():
            if not resume:
                raise ValueError(f"{self.dir} already holds a reference; remove it or resume")
            self.manifest = read_manifest(self.dir)
            if self.manifest.get("complete"):
                raise ValueError(f"{self.dir} is already complete")
            self._drop_unrecorded_parts()
        else:
            if self.dir.exists() and any(self.dir.iterdir()):
                raise ValueError(f"{self.dir} exists and is not empty")
            (self.dir / "parts").mkdir(parents=True, exist_ok=True)
            self.manifest = {"format": FORMAT, "id": ref_id, "description": description,
                             "source": source, "settings": settings, "parts": [], "n_rows": 0,
                             "complete": False, "progress": None, "created": _now(),
                             "updated": _now()}
            self._write_manifest()

    @property
    def progress(self) -> Any:
        """The resume state recorded with the last part (JSON, as the builder gave it)."""
        return self.manifest.get("progress")

    @property
    def n_rows(self) -> int:
        return int(self.manifest["n_rows"]) + len(self.buffer)

    def _drop_unrecorded_parts(self) -> None:
        recorded = {p["file"] for p in self.manifest["parts"]}
        for f in (self.dir / "parts").glob("*.parquet"):
            if f"parts/{f.name}" not in recorded:
                f.unlink()  # written after the last manifest update: redone on resume

    def add(self, row: ReferenceRow, progress: object = None) -> None:
        """Buffer a row; ``progress`` (JSON) is the resume state *after* this row."""
        self.buffer.append(row)
        if len(self.buffer) >= self.part_rows:
            self.flush(progress)

    def flush(self, progress: object = None) -> None:
        """Write buffered rows as a new part and record ``progress`` in the manifest."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.buffer:
            name = f"parts/part-{len(self.manifest['parts']):05d}.parquet"
            table = pa.Table.from_pylist(self.buffer, schema=schema())
            tmp = self.dir / (name + ".tmp")
            pq.write_table(table, tmp, row_group_size=PART_ROW_GROUP, compression="zstd")
            os.replace(tmp, self.dir / name)
            self.manifest["parts"].append({"file": name, "rows": len(self.buffer),
                                           "sha256": sha256_file(self.dir / name)})
            self.manifest["n_rows"] += len(self.buffer)
            self.buffer = []
        if progress is not None:
            self.manifest["progress"] = progress
        self._write_manifest()

    def finish(self, extra: dict[str, Any] | None = None) -> Manifest:
        self.flush()
        self.manifest["complete"] = True
        if extra:
            self.manifest.update(extra)
        self._write_manifest()
        return self.manifest

    def _write_manifest(self) -> None:
        self.manifest["updated"] = _now()
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=1))
        os.replace(tmp, self.dir / "manifest.json")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
