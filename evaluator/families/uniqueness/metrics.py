"""What the uniqueness family publishes in ``summary.metrics.uniqueness`` and the
per-structure columns it writes (valid rows). Data only."""

from __future__ import annotations

from evaluator.columns import Column, true_in
from evaluator.declarations import Metric, MetricSet

CLASS = Column("uniqueness_class", "int",
               "Table index of its StructureMatcher class's representative (the first occurrence)")
IS_FIRST = Column("uniqueness_is_first", "bool", "It is the first occurrence of its class (counted as unique)")
CLASS_SIZE = Column("uniqueness_class_size", "int", "Members of its class")

METRICS = MetricSet(
    family="uniqueness",
    label="Uniqueness",
    metrics=(
        Metric("unique", "Unique", +1, description="StructureMatcher equivalence classes among valid",
               headline=True, counted=True, flag=true_in("is_first"), interval=True),
        Metric("n_classes", "Classes", +1),
        Metric("n_duplicate_groups", "Duplicate groups", -1),
        Metric("n_duplicates", "Duplicates", -1),
        Metric("n_failed", "Uniqueness failed", -1),
        # [[table index, ...], ...]: the members of each class with more than one member
        Metric("duplicate_groups", "Duplicate group members", 0),
    ),
    columns=(CLASS, IS_FIRST, CLASS_SIZE),
)
