"""What the validity family publishes in ``summary.metrics.validity`` (data only)."""

from __future__ import annotations

from evaluator.families.base import Metric, MetricSet

METRICS = MetricSet(
    family="validity",
    label="Validity",
    metrics=(
        Metric("valid", "Valid", +1, description="charge-neutral, distance-valid and plausible",
               headline=True, counted=True),
        Metric("charge_neutral", "Charge neutral", +1, counted=True),
        Metric("distance_valid", "Distance valid", +1, counted=True),
        Metric("plausible", "Plausible", +1, counted=True),
        Metric("evaluated_count", "Validity evaluated", 0),
        Metric("failed_count", "Validity failed", -1),
        Metric("min_distance_ratio_median", "Median min-distance ratio", 0),
        # The four checks' pass counts over parsed structures (a ``_frac_<of>`` fraction).
        Metric("valid_frac_parsed", "Valid", +1),
        Metric("charge_neutral_frac_parsed", "Charge neutral", +1),
        Metric("distance_valid_frac_parsed", "Distance valid", +1),
        Metric("plausible_frac_parsed", "Plausible", +1),
        # {cascade step: structures it decided}, see validity/charge.py
        Metric("charge_step_counts", "Charge step counts", 0),
    ),
)
