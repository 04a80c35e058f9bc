"""Novelty family: is each valid structure absent from the reference?

- Reference with fingerprints only (embedded ``mp20``): novel iff the BAWL fingerprint
  is not in the reference set (LeMat-GenBench's definition). ``novelty_match_id`` is the
  matched reference id, or the matched fingerprint when the reference has no ids.
- Reference with structures (built with ``reference build`` / ``reference lemat``):
  novel iff no reference structure of the same reduced formula matches under the
  identity StructureMatcher (fingerprint hits tried first). Also reported: how many
  would be novel by fingerprint alone (``novel_by_fingerprint_*``).

Columns: ``novelty_novel``, ``novelty_match_id``, ``novelty_fingerprint``,
``novelty_fingerprint_hit``.
"""

from __future__ import annotations

import time

import pandas as pd

from evaluator.context import EvalContext
from evaluator.families import FamilyResult
from evaluator.identity import fingerprint as F
from evaluator.identity.cache import cached_fingerprints

COLUMNS = ["novelty_novel", "novelty_match_id", "novelty_fingerprint", "novelty_fingerprint_hit",
           "novelty_status", "novelty_reason"]


def compute_fingerprints(ctx: EvalContext, rows: list[int]) -> tuple[list, int]:
    """Cached BAWL (fingerprint, error) per row; computed in ``identity_processes`` (2)."""
    ckpt = ctx.checkpoint_dir("novelty")
    processes = int(ctx.config.options.get("identity_processes", 2))
    ctx.progress("novelty: fingerprints", 0, len(rows))
    return cached_fingerprints(
        [ctx.structures[r] for r in rows], cache_file=ckpt / "bawl.jsonl" if ckpt else None,
        processes=processes, progress=lambda i, n: ctx.progress("novelty: fingerprints", i, n))


def run(ctx: EvalContext) -> FamilyResult:
    t0 = time.perf_counter()
    result = FamilyResult()
    reference = ctx.reference
    index = reference.novelty
    rows = ctx.valid_index
    fps, n_computed = compute_fingerprints(ctx, rows)
    t_fp = time.perf_counter() - t0
    records = []
    if index.kind == "fingerprints":
        matched = index.lookup([fp for fp, _ in fps])
        for (fp, err), m in zip(fps, matched):
            if fp is None:
                records.append([pd.NA, None, None, pd.NA, "failed", err])
            else:
                records.append([m is None, m, fp, m is not None, "ok", None])
    else:
        extra = {"fingerprint_hits": 0, "fingerprint_hits_confirmed": 0,
                 "matched_without_fingerprint_hit": 0, "fingerprint_hits_rejected": 0,
                 "matcher_fits": 0}
        for row, (fp, err) in zip(ctx.track(rows, "novelty: match"), fps):
            try:
                m = index.match(ctx.structures[row], fp)
            except Exception as exc:
                records.append([pd.NA, None, fp, pd.NA, "failed",
                                f"matching failed: {type(exc).__name__}: {exc}"[:300]])
                continue
            extra["matcher_fits"] += m.n_fits
            extra["fingerprint_hits"] += m.fingerprint_hit
            extra["fingerprint_hits_confirmed"] += bool(m.fingerprint_hit_confirmed)
            extra["fingerprint_hits_rejected"] += m.fingerprint_hit and m.match_id is None
            extra["matched_without_fingerprint_hit"] += (not m.fingerprint_hit) and m.match_id is not None
            reason = None if fp is not None else f"no fingerprint ({err}); matcher-only"
            records.append([m.match_id is None, m.match_id, fp,
                            m.fingerprint_hit if fp is not None else pd.NA, "ok", reason])
        result.provenance["matching"] = extra
    cols = pd.DataFrame(records, index=pd.Index(rows), columns=COLUMNS)
    for c in ("novelty_novel", "novelty_fingerprint_hit"):
        cols[c] = cols[c].astype("boolean")
    result.columns = cols

    ok = cols["novelty_status"] == "ok"
    n_novel = int(cols.loc[ok, "novelty_novel"].fillna(False).sum())
    result.metrics.update(ctx.counted("novel", n_novel))
    result.metrics["n_failed"] = int((~ok).sum())
    if index.kind == "structures":
        has_fp = ok & cols["novelty_fingerprint"].notna()
        result.metrics.update(ctx.counted(
            "novel_by_fingerprint", int((~cols.loc[has_fp, "novelty_fingerprint_hit"].astype(bool)).sum())))
        result.metrics["n_without_fingerprint"] = int((ok & cols["novelty_fingerprint"].isna()).sum())
    result.provenance.update({
        "reference": reference.describe(),
        "equivalence": index.equivalence,
        "index": index.describe(),
        "fingerprint": F.BAWL_SETTINGS,
        "population": "valid structures",
        "fingerprints_computed": n_computed,
        "fingerprints_cached": len(rows) - n_computed,
        "seconds_fingerprints": round(t_fp, 3),
        "seconds": round(time.perf_counter() - t0, 3),
    })
    return result
