"""What the uniqueness family publishes in ``summary.metrics.uniqueness`` (data only)."""

from __future__ import annotations

from evaluator.families.base import Metric, MetricSet

METRICS = MetricSet(
    family="uniqueness",
    label="Uniqueness",
    metrics=(
        Metric("unique", "Unique", +1, description="StructureMatcher equivalence classes among valid",
               headline=True, counted=True),
        Metric("n_classes", "Classes", +1),
        Metric("n_duplicate_groups", "Duplicate groups", -1),
        Metric("n_duplicates", "Duplicates", -1),
        Metric("n_failed", "Uniqueness failed", -1),
        # [[table index, ...], ...]: the members of each class with more than one member
        Metric("duplicate_groups", "Duplicate group members", 0),
    ),
)
