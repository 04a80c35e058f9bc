"""The contract between the pipeline and a metric family.

A family is a module with ``run(ctx: EvalContext) -> FamilyResult``. It reads the
per-structure table (and ``ctx.structures``) and returns new columns for the rows
it evaluated plus summary values. It never removes rows: the pipeline marks rows a
family did not return as skipped, with the reason (parse failed / invalid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class FamilyResult:
    """Output of one family.

    columns: indexed like ``ctx.table`` (a subset of rows is fine); names are
        prefixed with the family name, e.g. ``validity_valid``. A row a family
        evaluated but failed on has ``<family>_status = "failed"`` and a
        ``<family>_reason``; successful rows have status "ok".
    metrics: ``metrics.<family>.<name>`` values (JSON-serialisable). A value
        that could not be computed is ``None`` with a reason in ``missing``.
    missing: {metric name: why it is absent}.
    provenance: family-specific provenance (model, thresholds, reference...).
    groups: further metric groups this family publishes as ``metrics.<group>``
        (e.g. stability also reports ``stability_unrelaxed``).
    """

    columns: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)

    def absent(self, name: str, reason: str) -> None:
        """Record a metric that was not computed, and why."""
        self.metrics[name] = None
        self.missing[name] = reason


def counted(name: str, count: int, n_submitted: int, n_valid: int) -> dict:
    """A count with its two fractions (METRICS.md section 0).

    ``counted("valid", 3, 10, 5)`` -> ``{"valid_count": 3,
    "valid_frac_submitted": 0.3, "valid_frac_valid": 0.6}``. A fraction whose
    denominator is zero is ``None``.
    """
    count = int(count)
    return {
        f"{name}_count": count,
        f"{name}_frac_submitted": count / n_submitted if n_submitted else None,
        f"{name}_frac_valid": count / n_valid if n_valid else None,
    }


def finite_or_none(x) -> float | None:
    """JSON-safe float: NaN/inf become None (callers record why in ``missing``)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
