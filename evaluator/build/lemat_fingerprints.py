"""Stream LeMat-Bulk (or any parquet with its schema) into a built reference folder.

Source rows need ``immutable_id``, ``species_at_sites``, ``cartesian_site_positions``
(Å), ``lattice_vectors`` (Å, rows) and optionally ``entalpic_fingerprint`` (LeMat-Bulk's
own BAWL fingerprint, the one LeMat-GenBench compares against). Rows are read with
``datasets`` in streaming mode, from the Hub (``LeMaterial/LeMat-Bulk``, config
``compatible_pbe``, 5,335,299 rows) or from local parquet files (``data_files``).

Resumable: after each part is written the manifest records the iterator's
``state_dict()`` (shard index + offset in the shard) and the rows consumed; rerunning the
same command continues from there. Structures are stored as given (not reduced; the
matcher reduces candidates when a query needs them), so ``prim_nsites`` is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.identity import fingerprint as F
from evaluator.identity import matcher as M
from evaluator.identity.fingerprint_store import ReferenceRow, ReferenceWriter, read_manifest, row_structure

LEMAT_DATASET = "LeMaterial/LeMat-Bulk"
LEMAT_CONFIG = "compatible_pbe"
LEMAT_ROWS = 5_335_299  # compatible_pbe train split
COLUMNS = ["immutable_id", "species_at_sites", "cartesian_site_positions", "lattice_vectors",
           "entalpic_fingerprint"]


def lemat_row(row: Mapping[str, Any], compute_fingerprint: bool = False) -> ReferenceRow:
    """One reference row from one LeMat-Bulk row (fractional coordinates, pymatgen formula)."""
    from pymatgen.core.composition import Composition

    lattice = np.asarray(row["lattice_vectors"], dtype=float).reshape(3, 3)
    cart = np.asarray(row["cartesian_site_positions"], dtype=float).reshape(-1, 3)
    species = [str(s) for s in row["species_at_sites"]]
    frac = np.linalg.solve(lattice.T, cart.T).T
    comp = Composition({}) if not species else Composition(
        {el: species.count(el) for el in dict.fromkeys(species)})
    fp = row.get("entalpic_fingerprint") or None
    if compute_fingerprint and fp is None:
        try:
            fp = F.bawl_fingerprint(row_structure(lattice.reshape(-1), species, frac.reshape(-1)))
        except Exception:  # noqa: BLE001 - a row whose fingerprint fails is stored without one
            fp = None
    return {"id": str(row["immutable_id"]), "reduced_formula": str(comp.reduced_formula),
            "formula": comp.formula.replace(" ", ""), "fingerprint": fp, "nsites": len(species),
            "prim_nsites": None, "lattice": lattice.reshape(-1).tolist(), "species": species,
            "frac_coords": frac.reshape(-1).tolist()}


def open_stream(dataset: str, config: str | None, data_files: Sequence[str] | None,
                split: str = "train") -> Any:
    """A streaming ``datasets.IterableDataset`` of the source rows (only needed columns)."""
    from datasets import load_dataset

    if data_files:
        ds = load_dataset("parquet", data_files=[str(f) for f in data_files], split=split, streaming=True)
    else:
        ds = load_dataset(dataset, config, split=split, streaming=True)
    cols = [c for c in COLUMNS if c in (ds.column_names or COLUMNS)]
    return ds.select_columns(cols)


def load_lemat(out: str | Path, dataset: str = LEMAT_DATASET, config: str | None = LEMAT_CONFIG,
               data_files: Sequence[str] | None = None, limit: int | None = None,
               part_rows: int = 50_000, compute_missing_fingerprints: bool = False,
               ref_id: str | None = None,
               progress: Callable[[int, int | None], None] | None = None,
               progress_every: int = 1000) -> dict[str, Any]:
    """Stream rows into reference folder ``out`` (resuming it if unfinished); returns the manifest.

    ``limit`` caps the total number of rows (the build is then complete at that size).
    """
    out = Path(out)
    source = {"kind": "lemat-bulk", "dataset": None if data_files else dataset,
              "config": None if data_files else config,
              "data_files": [str(f) for f in data_files] if data_files else None, "limit": limit}
    resume = (out / "manifest.json").exists()
    if resume and read_manifest(out).get("source") != source:
        raise ValueError(f"{out} was built from another source {read_manifest(out).get('source')}; "
                         "use a new folder")
    writer = ReferenceWriter(
        out, ref_id or ("lemat-bulk" if not data_files else out.name),
        "LeMat-Bulk compatible_pbe structures (matcher-confirmed novelty)" if not data_files
        else f"LeMat-Bulk-schema parquet {', '.join(map(str, data_files))}",
        source=source, settings={"fingerprint": "entalpic_fingerprint column (BAWL)"
                                 + (", computed where missing" if compute_missing_fingerprints else ""),
                                 "matcher": M.describe()},
        part_rows=part_rows, resume=resume)
    ds = open_stream(dataset, config, data_files)
    state = writer.progress
    done = 0
    if state:
        ds.load_state_dict(state["iterator"])
        done = int(state["rows"])
    total = limit if limit else (None if data_files else LEMAT_ROWS)
    if progress:
        progress(done, total)
    failures = writer.manifest.get("row_failures", 0)
    if not limit or done < limit:
        for row in ds:
            done += 1
            try:
                rec = lemat_row(row, compute_missing_fingerprints)
            except Exception:  # noqa: BLE001 - an unreadable row is counted, the stream goes on
                failures += 1
                rec = None
            writer.manifest["row_failures"] = failures
            at_end = bool(limit and done >= limit)
            if rec is not None:
                flushing = len(writer.buffer) + 1 >= writer.part_rows
                writer.add(rec, progress={"iterator": ds.state_dict(), "rows": done} if flushing else None)
            if progress and (done % progress_every == 0 or at_end):
                progress(done, total)
            if at_end:
                break
    manifest = writer.finish({"rows_read": done, "row_failures": failures})
    if progress:
        progress(done, total)
    return manifest
