"""What the hhi family publishes in ``summary.metrics.hhi`` and the per-structure
columns it writes (valid rows). Data only."""

from __future__ import annotations

from evaluator.columns import Column, nonempty
from evaluator.declarations import Metric, MetricSet

PRODUCTION = Column("hhi_production", "float", "Production HHI of its composition (/1000, 0-10)")
RESERVE = Column("hhi_reserve", "float", "Reserve HHI of its composition (/1000, 0-10)")
COMBINED = Column("hhi_combined", "float", "0.25 production + 0.75 reserve HHI")
MISSING_ELEMENTS = Column("hhi_missing_elements", "json",
                          "Its elements without HHI data (a JSON list; each counted as the maximum, 10)")

METRICS = MetricSet(
    family="hhi",
    label="Supply risk (HHI)",
    metrics=(
        Metric("combined_median", "HHI combined median", -1),
        Metric("production_median", "HHI production median", -1),
        Metric("reserve_median", "HHI reserve median", -1),
        Metric("combined_mean", "HHI combined", -1, description="supply risk, 0.25 production + 0.75 reserve",
               headline=True),
        Metric("production_mean", "HHI production", -1),
        Metric("reserve_mean", "HHI reserve", -1),
        Metric("n_structures", "Structures used (hhi)", 0),
        # structures with an element that has no HHI data (counted as the maximum, 10)
        Metric("missing_data", "Elements without HHI data", -1, counted=True, flag=nonempty("missing_elements")),
    ),
    columns=(PRODUCTION, RESERVE, COMBINED, MISSING_ELEMENTS),
)
