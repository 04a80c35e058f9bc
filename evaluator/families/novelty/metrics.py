"""What the novelty family publishes in ``summary.metrics.novelty`` (data only)."""

from __future__ import annotations

from evaluator.families.base import Metric, MetricSet

METRICS = MetricSet(
    family="novelty",
    label="Novelty",
    metrics=(
        Metric("novel", "Novel", +1, description="not equivalent to any reference structure",
               headline=True, counted=True),
        Metric("n_failed", "Novelty failed", -1),
        # LeMat-GenBench's count: BAWL fingerprint (sites as submitted) not in the reference
        Metric("novel_as_submitted", "Novel as submitted", +1, counted=True),
        Metric("n_without_fingerprint", "N without fingerprint", 0),
        Metric("n_fingerprint_timed_out", "N fingerprint timed out", -1),
    ),
)
