"""What the validity family publishes in ``summary.metrics.validity`` and the
per-structure columns it writes (rows that parsed). Data only."""

from __future__ import annotations

from evaluator.columns import Column, true_in
from evaluator.declarations import Metric, MetricSet

VALID = Column("validity_valid", "bool", "Charge-neutral, distance-valid and plausible")
CHARGE_NEUTRAL = Column("validity_charge_neutral", "bool", "Passes the charge-neutrality cascade")
CHARGE_STEP = Column("validity_charge_step", "text", "The charge-cascade step that decided it")
CHARGE_DETAIL = Column("validity_charge_detail", "text", "What that step found, in words (at most 500 characters)")
DISTANCE_VALID = Column("validity_distance_valid", "bool", "No pair of atoms closer than the distance rule allows")
MIN_DISTANCE_RATIO = Column("validity_min_distance_ratio", "float",
                            "Worst pair distance over its threshold (below 1 is too close)")
PLAUSIBLE = Column("validity_plausible", "bool", "Density, volume, lattice lengths and angles in plausible ranges")
SPACEGROUP = Column("validity_spacegroup", "int",
                    "spglib space-group number (symprec 0.01 Å, angle tolerance 5°, the plausibility check's); "
                    "null where spglib failed")
SPACEGROUP_LOOSE = Column("validity_spacegroup_loose", "int",
                          "The reported space group: spglib number at a tolerance suited to relaxed structures "
                          "(options validity.spacegroup_symprec, default 0.1 Å, and spacegroup_angle_tolerance, "
                          "default 5°); null where spglib failed")

METRICS = MetricSet(
    family="validity",
    label="Validity",
    metrics=(
        Metric("valid", "Valid", +1, description="charge-neutral, distance-valid and plausible",
               headline=True, counted=True, flag=true_in("valid"), interval=True),
        Metric("charge_neutral", "Charge neutral", +1, counted=True, flag=true_in("charge_neutral")),
        Metric("distance_valid", "Distance valid", +1, counted=True, flag=true_in("distance_valid")),
        Metric("plausible", "Plausible", +1, counted=True, flag=true_in("plausible")),
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
    columns=(VALID, CHARGE_NEUTRAL, CHARGE_STEP, CHARGE_DETAIL, DISTANCE_VALID, MIN_DISTANCE_RATIO, PLAUSIBLE,
             SPACEGROUP, SPACEGROUP_LOOSE),
)
