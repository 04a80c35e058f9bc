"""What the sun family publishes in ``summary.metrics.sun`` (relaxed E_hull) and
``summary.metrics.sun_unrelaxed`` (E_hull of the submitted geometry). Data only."""

from __future__ import annotations

from evaluator.families.base import Metric, MetricSet

METRICS = MetricSet(
    family="sun",
    label="SUN / MSUN",
    metrics=(
        Metric("sun_plus_msun", "SUN + MSUN", +1,
               description="stable or metastable, unique and novel (default rank)", headline=True, counted=True),
        Metric("sun", "SUN", +1, description="stable, unique, novel", headline=True, counted=True),
        Metric("msun", "MSUN", +1, description="metastable (0 < E_hull ≤ 0.1), unique, novel",
               headline=True, counted=True),
        Metric("stable_unique_count", "Stable & unique", +1),
        Metric("metastable_only_unique_count", "Metastable-only & unique", +1),
        Metric("novelty_unknown_count", "Novelty unknown", -1),
    ),
    groups=("sun_unrelaxed",),
)
