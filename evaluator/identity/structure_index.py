"""Novelty against a reference that has structures: matcher-confirmed, indexed by formula.

In memory: per row only the group key (reduced formula, as integer codes), the BAWL
fingerprint digest and the primitive-cell size; structures stay on disk and are read
by parquet row group when a query needs them (reduced cells are cached).

A query is novel unless some reference structure of its reduced formula matches it:
``fit(reference_reduced, query_reduced)`` with the identity matcher settings. Rows whose
fingerprint equals the query's are tried first (and are the only ones LeMat-GenBench
looks at); then every other row of the formula group (skipping rows whose known
primitive size differs — they can never match). So the answer is the matcher's, and
the fingerprint only decides the order and is reported alongside.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evaluator.identity import matcher as M
from evaluator.identity.fingerprint_index import digests
from evaluator.identity.fingerprint_store import read_manifest, row_structure

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

Rows = npt.NDArray[np.int64]


@dataclass
class NoveltyMatch:
    """Outcome of one query. ``match_id`` is None when novel."""

    match_id: str | None
    fingerprint_hit: bool  # the query's fingerprint is in the reference
    fingerprint_hit_confirmed: bool | None  # a fingerprint-hit row matched (None: no hit)
    n_candidates: int  # reference rows of the same reduced formula
    n_fits: int


class StructureIndex:
    """Reference structures of a built reference folder (see ``evaluator.identity.fingerprint_store``)."""

    kind = "structures"
    equivalence = ("pymatgen StructureMatcher against every reference structure of the same "
                   "reduced formula (BAWL fingerprint hits tried first)")

    def __init__(self, ref_dir: str | Path, cache_size: int = 20_000) -> None:
        self.dir = Path(ref_dir)
        self.manifest = read_manifest(self.dir)
        if not self.manifest.get("complete"):
            raise ValueError(f"reference {self.dir} is incomplete ({self.manifest['n_rows']} rows "
                             "so far): finish or resume its build first")
        cols = ["id", "reduced_formula", "fingerprint", "prim_nsites"]
        ids: list[pa.ChunkedArray] = []
        formulas: list[str] = []
        fps: list[str | None] = []
        prim: list[npt.NDArray[np.float64]] = []
        self.part_files: list[Path] = []
        self.part_offsets = [0]
        for part in self.manifest["parts"]:
            t = pq.read_table(self.dir / part["file"], columns=cols)
            ids.append(t["id"])
            formulas.extend(t["reduced_formula"].to_pylist())
            fps.extend(t["fingerprint"].to_pylist())
            prim.append(t["prim_nsites"].to_numpy(zero_copy_only=False))
            self.part_files.append(self.dir / part["file"])
            self.part_offsets.append(self.part_offsets[-1] + t.num_rows)
        self.ids = pa.chunked_array([c for a in ids for c in a.chunks], type=pa.string()) \
            if ids else pa.chunked_array([], type=pa.string())
        self.n = len(formulas)
        # formula -> rows: codes sorted once, slices by code
        codes, uniques = pd.factorize(pd.Series(formulas, dtype=object))
        self.formula_code = {f: c for c, f in enumerate(uniques)}
        self.by_formula = np.argsort(codes, kind="stable")
        self.formula_start = np.searchsorted(codes[self.by_formula], np.arange(len(uniques) + 1))
        del formulas
        prim_all = np.concatenate(prim) if prim else np.zeros(0)
        self.prim_nsites = np.where(np.isnan(prim_all.astype(float)), -1, prim_all).astype(np.int32) \
            if len(prim_all) else np.zeros(0, dtype=np.int32)
        has_fp = np.array([f is not None for f in fps], dtype=bool)
        keys = digests(f or "" for f in fps)
        rows = np.nonzero(has_fp)[0]
        order = np.argsort(keys[rows], kind="stable")
        self.fp_keys = keys[rows][order]
        self.fp_rows = rows[order]
        self.n_fingerprints = int(len(rows))
        self._reduced: OrderedDict[int, Structure] = OrderedDict()
        self._cache_size = cache_size
        self._matcher = M.make_matcher()
        self._files: dict[int, pq.ParquetFile] = {}
        self._groups: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()

    def __len__(self) -> int:
        return self.n

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "equivalence": self.equivalence, "n_structures": self.n,
                "n_fingerprints": self.n_fingerprints, "matcher": M.describe(),
                "source": self.manifest.get("source")}

    # ---- lookups -------------------------------------------------------------------
    def formula_rows(self, reduced_formula: str) -> Rows:
        code = self.formula_code.get(reduced_formula)
        if code is None:
            return np.zeros(0, dtype=np.int64)
        return self.by_formula[self.formula_start[code]:self.formula_start[code + 1]]

    def fingerprint_rows(self, fingerprint: str | None) -> Rows:
        if not fingerprint:
            return np.zeros(0, dtype=np.int64)
        key = digests([fingerprint])[0]
        lo = np.searchsorted(self.fp_keys, key, side="left")
        hi = np.searchsorted(self.fp_keys, key, side="right")
        return self.fp_rows[lo:hi]

    def row_id(self, row: int) -> str:
        return str(self.ids[int(row)].as_py())

    def structure(self, row: int) -> Structure:
        """The stored cell of reference row ``row``."""
        part = int(np.searchsorted(self.part_offsets, row, side="right") - 1)
        local = int(row - self.part_offsets[part])
        if part not in self._files:
            self._files[part] = pq.ParquetFile(self.part_files[part])
        pf = self._files[part]
        rg, within = divmod(local, pf.metadata.row_group(0).num_rows)
        if (part, rg) in self._groups:
            self._groups.move_to_end((part, rg))
        else:
            self._groups[(part, rg)] = pf.read_row_group(rg, columns=["lattice", "species", "frac_coords"])
            if len(self._groups) > 16:
                self._groups.popitem(last=False)
        t = self._groups[(part, rg)]
        return row_structure(t["lattice"][within].as_py(), t["species"][within].as_py(),
                             t["frac_coords"][within].as_py())

    def reduced(self, row: int) -> Structure:
        """Matcher-reduced cell of reference row ``row`` (LRU-cached)."""
        row = int(row)
        if row in self._reduced:
            self._reduced.move_to_end(row)
            return self._reduced[row]
        red = M.reduce_structure(self.structure(row), self._matcher)
        self._reduced[row] = red
        if len(self._reduced) > self._cache_size:
            self._reduced.popitem(last=False)
        return red

    def match(self, structure: Structure, fingerprints: str | Sequence[str | None] | None = None,
              reduced: Structure | None = None) -> NoveltyMatch:
        """First reference structure equivalent to ``structure`` (see module doc).

        ``fingerprints``: the query's fingerprint(s) (e.g. as given and species-sorted).
        """
        key = M.group_key(structure)
        candidates = self.formula_rows(key)
        if fingerprints is None or isinstance(fingerprints, str):
            fingerprints = [fingerprints]
        fp_rows = np.unique(np.concatenate([self.fingerprint_rows(f) for f in set(fingerprints)]
                                           + [np.zeros(0, dtype=np.int64)]).astype(np.int64))
        fp_rows = fp_rows[np.isin(fp_rows, candidates)] if len(fp_rows) else fp_rows
        hit = bool(len(fp_rows))
        if not len(candidates):
            return NoveltyMatch(None, hit, None if not hit else False, 0, 0)
        q = reduced if reduced is not None else M.reduce_structure(structure, self._matcher)
        rest = candidates[~np.isin(candidates, fp_rows)]
        n_fits = 0
        confirmed = None if not hit else False
        for rows, from_fp in ((fp_rows, True), (rest, False)):
            for row in rows:
                prim = self.prim_nsites[row]
                if prim >= 0 and prim != len(q):
                    continue
                n_fits += 1
                if M.fit_reduced(self.reduced(row), q, self._matcher):
                    if from_fp:
                        confirmed = True
                    return NoveltyMatch(self.row_id(row), hit, confirmed, len(candidates), n_fits)
        return NoveltyMatch(None, hit, confirmed, len(candidates), n_fits)
