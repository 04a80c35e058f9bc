"""What the stability family publishes in ``summary.metrics.stability`` (relaxed
geometry) and ``summary.metrics.stability_unrelaxed`` (submitted geometry; the same
metrics less ``converged``, ``mean_rmsd`` and ``mean_steps``). Data only."""

from __future__ import annotations

from evaluator.families.base import Metric, MetricSet

METRICS = MetricSet(
    family="stability",
    label="Stability",
    metrics=(
        Metric("stable", "Stable", +1, description="E_hull ≤ 0 eV/atom after MLIP relaxation",
               headline=True, counted=True),
        Metric("metastable", "Metastable", +1, description="E_hull ≤ 0.1 eV/atom after relaxation",
               headline=True, counted=True),
        Metric("mean_e_above_hull", "Mean E_hull", -1, "eV/atom", "mean energy above hull", headline=True),
        Metric("median_e_above_hull", "Median E_hull", -1, "eV/atom"),
        Metric("evaluated", "Got an energy", +1, counted=True),
        Metric("hull_scored", "Hull scored", +1, counted=True),
        Metric("converged", "Relax converged", +1, counted=True),
        Metric("budget_stopped", "Stopped at budget", 0, counted=True,
               description="relaxations stopped by the per-structure atom-step budget before converging "
                           "(scored from their last state; flagged per structure)"),
        Metric("wall_time_stopped", "Stopped at wall time", 0, counted=True,
               description="relaxations stopped by the wall-time safety net (machine dependent)"),
        Metric("mean_formation_energy_per_atom", "Mean E_form", -1, "eV/atom"),
        Metric("mean_rmsd", "Mean relax RMSD", -1, "Å"),
        Metric("mean_steps", "Mean relax steps", 0),
    ),
    groups=("stability_unrelaxed",),
)
