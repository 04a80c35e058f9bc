"""What the stability family publishes in ``summary.metrics.stability`` (relaxed
geometry) and ``summary.metrics.stability_unrelaxed`` (submitted geometry; the same
metrics less the relaxation's: ``converged``, ``budget_stopped``, ``wall_time_stopped``,
``mean_rmsd`` and ``mean_steps``), and the per-structure columns it writes (valid rows).
Data only."""

from __future__ import annotations

from evaluator.columns import Column, equals, finite, true_in
from evaluator.declarations import Caveat, Metric, MetricSet

UPPER_BOUND = Caveat(
    "upper bound",
    "MLIPs under-predict the energies of high-energy structures (PES softening) and the reference hull lacks "
    "competing phases in sparse chemical systems, so structures look more stable than DFT would say.",
    "known-limitations")
"""Qualifies every stable/metastable count (and SUN/MSUN, which build on them)."""

UNRELAXED = "stability_unrelaxed"  # the group (and column prefix) of the submitted geometry


def _energies(prefix: str, geometry: str) -> tuple[Column, ...]:
    """The energy and flag columns of one geometry (``stability_`` relaxed,
    ``stability_unrelaxed_`` as submitted)."""
    return (
        Column(f"{prefix}energy_per_atom", "float", f"Raw MLIP energy, {geometry} (eV/atom)"),
        Column(f"{prefix}corrected_energy_per_atom", "float",
               f"Energy on the hull's scale (e.g. after MP2020 corrections), {geometry} (eV/atom)"),
        Column(f"{prefix}formation_energy_per_atom", "float", f"Formation energy, {geometry} (eV/atom)"),
        Column(f"{prefix}e_above_hull", "float",
               f"Energy above the reference hull, {geometry} (eV/atom, may be negative)"),
        Column(f"{prefix}stable", "bool", f"E_hull ≤ the stable threshold (0 eV/atom), {geometry}"),
        Column(f"{prefix}metastable", "bool", f"E_hull ≤ the metastable threshold (0.1 eV/atom), {geometry}"),
    )


RELAXED_COLUMNS = _energies("stability_", "after relaxation")
UNRELAXED_COLUMNS = _energies(f"{UNRELAXED}_", "as submitted (also scored when the relaxation failed)")
ENERGY_PER_ATOM, CORRECTED_ENERGY_PER_ATOM, FORMATION_ENERGY_PER_ATOM, E_ABOVE_HULL, STABLE, METASTABLE = \
    RELAXED_COLUMNS
(UNRELAXED_ENERGY_PER_ATOM, UNRELAXED_CORRECTED_ENERGY_PER_ATOM, UNRELAXED_FORMATION_ENERGY_PER_ATOM,
 UNRELAXED_E_ABOVE_HULL, UNRELAXED_STABLE, UNRELAXED_METASTABLE) = UNRELAXED_COLUMNS
N_REF_ENTRIES = Column("stability_n_ref_entries", "int", "Reference hull entries of its chemical system")
STEPS = Column("stability_steps", "int", "FIRE steps the relaxation took")
CONVERGED = Column("stability_converged", "bool", "The relaxation reached fmax")
FMAX_FINAL = Column("stability_fmax_final", "float", "Largest force at the end of the relaxation (eV/Å)")
RMSD = Column("stability_rmsd", "float", "RMSD between the submitted and the relaxed structure (Å)")
VOLUME_RATIO = Column("stability_volume_ratio", "float", "Relaxed over submitted cell volume")
RELAXED_STRUCTURE = Column("stability_relaxed_structure", "json", "The relaxed structure (pymatgen JSON)")
STOPPED_BY = Column("stability_stopped_by", "text",
                    "What ended the relaxation: converged, step_cap, budget or wall_time")
STEP_LIMIT = Column("stability_step_limit", "int", "The most steps the atom-step budget left this cell")
STOP_NOTE = Column("stability_stop_note", "text",
                   "Why a budget- or wall-time-stopped relaxation stopped, in words (null otherwise)")

METRICS = MetricSet(
    family="stability",
    label="Stability",
    metrics=(
        Metric("stable", "Stable", +1, description="E_hull ≤ 0 eV/atom after MLIP relaxation",
               headline=True, counted=True, flag=true_in("stable"), interval=True,
               caveat=UPPER_BOUND),
        Metric("metastable", "Metastable", +1, description="E_hull ≤ 0.1 eV/atom after relaxation",
               headline=True, counted=True, flag=true_in("metastable"), interval=True,
               caveat=UPPER_BOUND),
        Metric("mean_e_above_hull", "Mean E_hull", -1, "eV/atom", "mean energy above hull", headline=True),
        Metric("median_e_above_hull", "Median E_hull", -1, "eV/atom"),
        Metric("evaluated", "Got an energy", +1, counted=True, flag=finite("energy_per_atom")),
        Metric("hull_scored", "Hull scored", +1, counted=True, flag=finite("e_above_hull")),
        Metric("converged", "Relax converged", +1, counted=True, flag=true_in("converged")),
        Metric("budget_stopped", "Stopped at budget", 0, counted=True, flag=equals("stopped_by", "budget"),
               description="relaxations stopped by the per-structure atom-step budget before converging "
                           "(scored from their last state; flagged per structure)"),
        Metric("wall_time_stopped", "Stopped at wall time", 0, counted=True, flag=equals("stopped_by", "wall_time"),
               description="relaxations stopped by the wall-time safety net (machine dependent)"),
        Metric("mean_formation_energy_per_atom", "Mean E_form", -1, "eV/atom"),
        Metric("mean_rmsd", "Mean relax RMSD", -1, "Å"),
        Metric("mean_steps", "Mean relax steps", 0),
    ),
    groups=(UNRELAXED,),
    columns=(*RELAXED_COLUMNS, *UNRELAXED_COLUMNS, N_REF_ENTRIES, STEPS, CONVERGED, FMAX_FINAL, RMSD, VOLUME_RATIO,
             RELAXED_STRUCTURE, STOPPED_BY, STEP_LIMIT, STOP_NOTE),
    group_omits=("converged", "budget_stopped", "wall_time_stopped", "mean_rmsd", "mean_steps"),
)
