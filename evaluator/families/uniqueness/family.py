"""Uniqueness family: StructureMatcher equivalence classes among valid structures.

Columns: ``uniqueness_class`` (table index of the class representative = its first
occurrence), ``uniqueness_is_first``, ``uniqueness_class_size``. Metrics: ``unique_*``
(number of classes, with fractions of submitted and valid structures),
``n_duplicate_groups``, ``duplicate_groups`` (table indices of each class with more than
one member). A structure whose reduction fails is "failed" and belongs to no class.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult, NoOptions
from evaluator.families.uniqueness.metrics import METRICS
from evaluator.identity import matcher as M

if TYPE_CHECKING:
    pass


def classes_for(ctx: EvalContext, rows: list[int],
                stage: str = "uniqueness") -> tuple[dict[int, int], dict[int, str], dict[str, int]]:
    """Equivalence classes of table rows ``rows``: ({row: representative row},
    {row: failure reason}, stats); see ``matcher.row_classes``."""
    return M.row_classes(rows, lambda row: ctx.structures[row],
                         lambda rs: ctx.track(rs, f"{stage}: reduce"))


def run(ctx: EvalContext, options: NoOptions) -> FamilyResult:
    """Class columns for every valid row and ``metrics.uniqueness.*``."""
    t0 = time.perf_counter()
    result = FamilyResult()
    rows = ctx.valid_index
    rep, failed, stats = classes_for(ctx, rows)
    sizes = pd.Series(list(rep.values())).value_counts().to_dict() if rep else {}
    records: list[dict[str, Any]] = []
    for row in rows:
        if row in failed:
            records.append({"uniqueness_class": pd.NA, "uniqueness_is_first": pd.NA,
                            "uniqueness_class_size": pd.NA, "uniqueness_status": "failed",
                            "uniqueness_reason": failed[row]})
        else:
            r = rep[row]
            records.append({"uniqueness_class": r, "uniqueness_is_first": r == row,
                            "uniqueness_class_size": sizes[r], "uniqueness_status": "ok",
                            "uniqueness_reason": None})
    cols = pd.DataFrame(records, index=pd.Index(rows), columns=[
        "uniqueness_class", "uniqueness_is_first", "uniqueness_class_size",
        "uniqueness_status", "uniqueness_reason"])
    cols["uniqueness_class"] = cols["uniqueness_class"].astype("Int64")
    cols["uniqueness_class_size"] = cols["uniqueness_class_size"].astype("Int64")
    cols["uniqueness_is_first"] = cols["uniqueness_is_first"].astype("boolean")
    result.columns = cols

    groups: dict[int, list[int]] = {}
    for row, r in rep.items():
        groups.setdefault(r, []).append(row)
    dup = [sorted(g) for r, g in sorted(groups.items()) if len(g) > 1]
    n_classes = len(groups)
    result.metrics.update(ctx.counted("unique", n_classes))
    result.metrics.update({
        "n_classes": n_classes,
        "n_duplicate_groups": len(dup),
        "n_duplicates": sum(len(g) - 1 for g in dup),
        "n_failed": len(failed),
        "duplicate_groups": dup,
    })
    result.provenance = {
        **M.describe(),
        "population": "valid structures",
        "matcher_fits": stats.get("fits", 0),
        "reductions": len(rep) + len(failed),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return result


FAMILY = Family(name="uniqueness", requires=("validity",), options=NoOptions, metrics=METRICS, run=run,
                description="StructureMatcher classes")
