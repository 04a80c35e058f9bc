"""What the distribution family publishes in ``summary.metrics.distribution`` (data only).

``frechet_<mlip>`` is named after the run's MLIP backend (chgnet, mace, sevenn);
``frechet_lemat_<model>`` compares with LeMat-GenBench's own statistics. Each
``*_n`` is the number of structures embedded for it.
"""

from __future__ import annotations

from evaluator.columns import Column
from evaluator.declarations import Metric, MetricSet

CRYSTAL_SYSTEM = Column("distribution_crystal_system", "int",
                        "Crystal system of its space group (1 triclinic ... 7 cubic)")

METRICS = MetricSet(
    family="distribution",
    label="Distribution",
    metrics=(
        Metric("jsd_space_group", "JSD space group", -1),
        Metric("jsd_crystal_system", "JSD crystal system", -1),
        Metric("jsd_element_presence", "JSD element presence", -1),
        Metric("jsd_element_counts", "JSD element counts", -1),
        Metric("mmd_volume", "MMD volume", -1),
        Metric("mmd_density_gcm3", "MMD density (g/cm³)", -1),
        Metric("mmd_density_atoms", "MMD density (atoms/Å³)", -1),
        Metric("frechet_chgnet", "FD (CHGNet embeddings)", -1),
        Metric("frechet_chgnet_n", "FD structures (CHGNet)", 0),
        Metric("frechet_lemat_mace", "FD vs LeMat (MACE)", -1),
        Metric("frechet_lemat_orb", "FD vs LeMat (ORB)", -1),
        Metric("frechet_lemat_uma", "FD vs LeMat (UMA)", -1),
        Metric("jsd", "JSD", -1, description="mean Jensen-Shannon divergence to LeMat-Bulk", headline=True),
        Metric("mmd", "MMD", -1, description="LeMat-GenBench-compatible MMD to LeMat-Bulk", headline=True),
        Metric("mmd_corrected", "MMD (corrected)", -1),
        Metric("n_structures", "Structures used (distribution)", 0),
        Metric("frechet_mace", "FD (MACE embeddings)", -1),
        Metric("frechet_mace_n", "FD structures (MACE)", 0),
        Metric("frechet_sevenn", "FD (SevenNet embeddings)", -1),
        Metric("frechet_sevenn_n", "FD structures (SevenNet)", 0),
        Metric("frechet_lemat_mace_n", "FD vs LeMat structures (MACE)", 0),
        Metric("frechet_lemat_orb_n", "FD vs LeMat structures (ORB)", 0),
        Metric("frechet_lemat_uma_n", "FD vs LeMat structures (UMA)", 0),
    ),
    columns=(CRYSTAL_SYSTEM,),
)
