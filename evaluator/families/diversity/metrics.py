"""What the diversity family publishes in ``summary.metrics.diversity`` and the
per-structure columns it writes (valid rows). Data only."""

from __future__ import annotations

from evaluator.columns import Column
from evaluator.declarations import Metric, MetricSet

SPACEGROUP = Column("diversity_spacegroup", "int",
                    "Space-group number it counts (validity_spacegroup where known, else spglib)")
PACKING_FRACTION = Column("diversity_packing_fraction", "float",
                          "Packing fraction (covalent-radius spheres over cell volume)")

METRICS = MetricSet(
    family="diversity",
    label="Diversity",
    metrics=(
        Metric("element_coverage", "Element coverage", +1, description="distinct elements / 118", headline=True),
        Metric("element_count", "Distinct elements", +1),
        Metric("space_group_coverage", "Space-group coverage", +1, description="distinct space groups / 230"),
        Metric("space_group_count", "Distinct space groups", +1),
        Metric("site_number_diversity", "Site-number diversity", +1),
        Metric("physical_size_diversity", "Physical-size diversity", +1),
        Metric("vendi_element", "Vendi (elements)", +1, description="Vendi score of element fractions",
               headline=True),
        Metric("n_structures", "Structures used (diversity)", 0),
        # the five normalised entropies physical_size_diversity averages
        Metric("physical_size_entropy_a", "Physical size entropy a", +1),
        Metric("physical_size_entropy_b", "Physical size entropy b", +1),
        Metric("physical_size_entropy_c", "Physical size entropy c", +1),
        Metric("physical_size_entropy_density", "Physical size entropy density", +1),
        Metric("physical_size_entropy_packing_fraction", "Physical size entropy packing fraction", +1),
    ),
    columns=(SPACEGROUP, PACKING_FRACTION),
)
