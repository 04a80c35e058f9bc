"""Novelty family: is each valid structure absent from the reference?

- Reference with fingerprints only (embedded ``mp20``): known iff its BAWL fingerprint
  is in the reference set. The fingerprint (as LeMat-GenBench computes it) depends on
  the order in which sites are listed, so a structure counts as known if its fingerprint
  with sites as submitted *or* sorted by species (the order MP structures use) is in the
  set. ``novel_as_submitted_*`` is LeMat-GenBench's number (sites as submitted only).
  ``novelty_match_id`` is the matched reference id, or the matched fingerprint when the
  reference has no ids (MP-20's file has none).
- Reference with structures (``reference build`` / ``reference lemat``): known iff a
  reference structure of the same reduced formula matches under the identity
  StructureMatcher (fingerprint hits tried first). ``novel_as_submitted_*`` again gives
  the fingerprint-only (LeMat-GenBench) count.

Columns: ``novelty_novel``, ``novelty_match_id``, ``novelty_fingerprint`` (sites as
submitted), ``novelty_fingerprint_sorted``, ``novelty_fingerprint_hit`` (either
fingerprint in the reference), ``novelty_novel_as_submitted``.

Cheap first (option ``cheap_first``, default on): a structure whose verdict is
known without its fingerprint gets none (fingerprint columns null, the reason says why):
against fingerprints, one whose cell formula ends no reference fingerprint; against
structures, one whose reduced formula has no reference structure. Both are novel, as
submitted too, exactly as the full path decides (a fingerprint contains the cell formula).
One difference: where the fingerprint itself would fail (e.g. a site with no neighbour
within EconNN's cutoff), the full path leaves the row undecided; cheap first decides it.

Bounded: each fingerprint runs in a child process (``evaluator.procpool``) for at most
``fingerprint_timeout_s`` seconds (default 30). Over it the row's reason is "fingerprint
timed out": against fingerprints its novelty is null (undecided); against structures the
matcher still decides and only ``novelty_novel_as_submitted`` is null.

Options (``NoveltyOptions``, ``EvalConfig.options["novelty"]``): ``cheap_first``,
``fingerprint_timeout_s`` (null or 0: unbounded), ``identity_processes`` (workers,
default 1), ``fingerprint_graph`` (``"vectorised"``, or ``"pymatgen"`` for the
reference path).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult
from evaluator.families.novelty.metrics import METRICS
from evaluator.identity import fingerprint as F
from evaluator.identity import matcher as M
from evaluator.identity.fingerprint_cache import cached_fingerprints
from evaluator.identity.fingerprint_index import FingerprintIndex
from evaluator.reference.coverage import beyond_reference_size

if TYPE_CHECKING:
    from evaluator.identity.structure_index import StructureIndex

COLUMNS = ["novelty_novel", "novelty_match_id", "novelty_fingerprint", "novelty_fingerprint_sorted",
           "novelty_fingerprint_hit", "novelty_novel_as_submitted", "novelty_status", "novelty_reason"]
NA = pd.NA


DEFAULT_TIMEOUT_S = 30.0
DEFAULT_PROCESSES = 1  # see the README: a second worker does not pay off once vectorised
SKIPPED_BY_FORMULA = "fingerprint not needed: no reference fingerprint has this cell formula"
SKIPPED_BY_REDUCED_FORMULA = "fingerprint not needed: no reference structure has this reduced formula"


@dataclass(frozen=True)
class NoveltyOptions:
    """cheap_first: decide without a fingerprint where the formula already does;
    fingerprint_timeout_s: bound per fingerprint in seconds (None or 0: unbounded);
    identity_processes: fingerprinting processes; fingerprint_graph: how the bonding
    graph is built ("vectorised" or "pymatgen")."""

    cheap_first: bool = True
    fingerprint_timeout_s: float | None = DEFAULT_TIMEOUT_S
    identity_processes: int = DEFAULT_PROCESSES
    fingerprint_graph: Literal["vectorised", "pymatgen"] = "vectorised"

    def __post_init__(self) -> None:
        t = self.fingerprint_timeout_s
        if t is not None and not t >= 0:
            raise ValueError(f"novelty.fingerprint_timeout_s must be >= 0 s (null or 0: unbounded), got {t!r}")
        if self.identity_processes < 1:
            raise ValueError(f"novelty.identity_processes must be >= 1, got {self.identity_processes!r}")


def fingerprint_settings(options: NoveltyOptions) -> dict[str, Any]:
    """Processes, per-structure bound (None: unbounded) and graph from the run's options."""
    timeout = options.fingerprint_timeout_s
    return {"processes": options.identity_processes,
            "timeout_s": float(timeout) if timeout else None,
            "graph": options.fingerprint_graph}


Fingerprints = F.FingerprintResult  # (as given, species-sorted, error)
Record = list[Any]  # one row of COLUMNS


def compute_fingerprints(ctx: EvalContext, rows: list[int],
                         options: NoveltyOptions) -> tuple[list[Fingerprints], int]:
    """Cached (as given, species-sorted, error) per row, bounded per structure."""
    ckpt = ctx.checkpoint_dir("novelty")
    ctx.progress("novelty: fingerprints", 0, len(rows))
    return cached_fingerprints(
        [ctx.structure(r) for r in rows], cache_file=ckpt / "bawl.jsonl" if ckpt else None,
        progress=lambda i, n: ctx.progress("novelty: fingerprints", i, n), **fingerprint_settings(options))


def verdict_known_without_fingerprint(ctx: EvalContext, index: FingerprintIndex | StructureIndex,
                                      rows: list[int]) -> dict[int, str]:
    """Rows whose novelty is decided without a fingerprint -> why (they are novel)."""
    if isinstance(index, FingerprintIndex):
        formulas = [F.cell_formula(ctx.structure(r)) for r in rows]
        present: Sequence[bool] = index.has_cell_formula(formulas).tolist() if rows else []
        return {r: SKIPPED_BY_FORMULA for r, p in zip(rows, present) if not p}
    out = {}
    for r in rows:
        try:
            if not len(index.formula_rows(M.group_key(ctx.structure(r)))):
                out[r] = SKIPPED_BY_REDUCED_FORMULA
        except Exception:  # noqa: BLE001 - undecided here: the full path reports it
            continue
    return out


def _skipped_record(reason: str) -> Record:
    # novel; no reference fingerprint can equal its fingerprint either (same formula needed)
    return [True, None, None, None, False, True, "ok", reason]


def _by_fingerprint(index: FingerprintIndex, fps: list[Fingerprints]) -> list[Record]:
    given = index.lookup([fp for fp, _, _ in fps])
    sorted_ = index.lookup([fs for _, fs, _ in fps])
    records: list[Record] = []
    for (fp, fs, err), m_given, m_sorted in zip(fps, given, sorted_):
        if fp is None:
            records.append([NA, None, None, None, NA, NA, "failed", err])
            continue
        match = m_given if m_given is not None else m_sorted
        records.append([match is None, match, fp, fs, match is not None, m_given is None, "ok", None])
    return records


def _by_structure(ctx: EvalContext, index: StructureIndex, rows: list[int], fps: list[Fingerprints],
                  extra: dict[str, int]) -> list[Record]:
    records: list[Record] = []
    for row, (fp, fs, err) in zip(ctx.track(rows, "novelty: match"), fps):
        try:
            m = index.match(ctx.structure(row), [fp, fs])
        except Exception as exc:  # noqa: BLE001 - recorded per structure, never fatal
            records.append([NA, None, fp, fs, NA, NA, "failed",
                            f"matching failed: {type(exc).__name__}: {exc}"[:300]])
            continue
        extra["matcher_fits"] += m.n_fits
        extra["fingerprint_hits"] += m.fingerprint_hit
        extra["fingerprint_hits_confirmed"] += bool(m.fingerprint_hit_confirmed)
        extra["fingerprint_hits_rejected"] += m.fingerprint_hit and m.match_id is None
        extra["matched_without_fingerprint_hit"] += (not m.fingerprint_hit) and m.match_id is not None
        as_submitted = NA if fp is None else len(index.fingerprint_rows(fp)) == 0
        reason = None if fp is not None else f"matcher only ({err})"
        records.append([m.match_id is None, m.match_id, fp, fs,
                        m.fingerprint_hit if fp is not None else NA, as_submitted, "ok", reason])
    return records


def run(ctx: EvalContext, options: NoveltyOptions) -> FamilyResult:
    """Novelty columns for every valid row and ``metrics.novelty.*``."""
    t0 = time.perf_counter()
    result = FamilyResult()
    reference = ctx.reference
    index = reference.novelty
    rows = ctx.valid_index
    skipped = verdict_known_without_fingerprint(ctx, index, rows) if options.cheap_first else {}
    need = [r for r in rows if r not in skipped]
    fps, n_computed = compute_fingerprints(ctx, need, options)
    t_fp = time.perf_counter() - t0
    if isinstance(index, FingerprintIndex):
        computed = dict(zip(need, _by_fingerprint(index, fps)))
    else:
        extra = dict.fromkeys(["fingerprint_hits", "fingerprint_hits_confirmed",
                               "fingerprint_hits_rejected", "matched_without_fingerprint_hit",
                               "matcher_fits"], 0)
        computed = dict(zip(need, _by_structure(ctx, index, need, fps, extra)))
        result.provenance["matching"] = extra
    records = [computed[r] if r in computed else _skipped_record(skipped[r]) for r in rows]
    n_timed_out = sum(err == F.TIMED_OUT for _, _, err in fps)
    cols = pd.DataFrame(records, index=pd.Index(rows), columns=COLUMNS)
    cols["novelty_beyond_reference_size"] = beyond_reference_size(ctx.structures, rows, reference)
    for c in ("novelty_novel", "novelty_fingerprint_hit", "novelty_novel_as_submitted"):
        cols[c] = cols[c].astype("boolean")
    result.columns = cols

    ok = cols["novelty_status"] == "ok"
    result.metrics.update(ctx.counted("novel", int(cols.loc[ok, "novelty_novel"].fillna(False).sum())))
    result.metrics.update(ctx.counted(
        "novel_as_submitted", int(cols.loc[ok, "novelty_novel_as_submitted"].fillna(False).sum())))
    result.metrics["n_failed"] = int((~ok).sum())
    result.metrics["n_without_fingerprint"] = int(cols["novelty_fingerprint"].isna().sum())
    result.metrics["n_fingerprint_timed_out"] = int(n_timed_out)
    if not rows:
        result.absent("novel_frac_valid", "no valid structures")
    result.provenance.update({
        "reference": reference.describe(),
        "equivalence": index.equivalence,
        "as_submitted": "LeMat-GenBench: BAWL fingerprint (sites as submitted) not in the reference",
        "index": index.describe(),
        "fingerprint": F.BAWL_SETTINGS,
        "population": "valid structures",
        "fingerprints_computed": n_computed,
        "fingerprints_cached": len(need) - n_computed,
        "fingerprints_not_needed": len(skipped),
        "fingerprint_run": fingerprint_settings(options),
        "seconds_fingerprints": round(t_fp, 3),
        "seconds": round(time.perf_counter() - t0, 3),
    })
    return result


FAMILY = Family(name="novelty", requires=("validity",), options=NoveltyOptions, metrics=METRICS, run=run,
                description="vs the reference set")
