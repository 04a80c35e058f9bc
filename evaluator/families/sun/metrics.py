"""What the sun family publishes in ``summary.metrics.sun`` (relaxed E_hull) and
``summary.metrics.sun_unrelaxed`` (E_hull of the submitted geometry), and the
per-structure columns it writes (valid rows). Data only."""

from __future__ import annotations

from evaluator.columns import Column, true_in
from evaluator.declarations import Metric, MetricSet
from evaluator.families.stability.metrics import UPPER_BOUND

UNRELAXED = "sun_unrelaxed"  # the group (and column prefix) scored from the submitted geometry
SUN = Column("sun_sun", "bool", "A counted SUN representative: stable, first of its class in the stable set, novel")
MSUN = Column("sun_msun", "bool",
              "A counted MSUN representative: metastable only (0 < E_hull ≤ 0.1 eV/atom), first of its class "
              "in that set, novel")
UNRELAXED_SUN = Column(f"{UNRELAXED}_sun", "bool", "sun_sun from the E_hull of the submitted geometry")
UNRELAXED_MSUN = Column(f"{UNRELAXED}_msun", "bool", "sun_msun from the E_hull of the submitted geometry")
SPARSE_CHEMSYS = Column("stability_sparse_chemsys", "bool",
                        "The reference hull holds fewer distinct compositions in its chemical system than "
                        "elements + 1, so a negative formation energy may look stable "
                        "(rule in provenance.family.sun.sparse_chemsys; null: unknown)")
CANDIDATE = Column("sun_candidate", "json",
                   "Candidate page of a counted SUN/MSUN representative (relaxed structure, phase diagram, "
                   "energies, nearest reference), lowest E_hull first, at most 100 per submission")

METRICS = MetricSet(
    family="sun",
    label="SUN / MSUN",
    metrics=(
        Metric("sun_plus_msun", "SUN + MSUN", +1,
               description="stable or metastable, unique and novel (default rank)", headline=True, counted=True,
               flag=true_in("sun", "msun"), interval=True, caveat=UPPER_BOUND),
        Metric("sun", "SUN", +1, description="stable, unique, novel", headline=True, counted=True,
               flag=true_in("sun"), interval=True, caveat=UPPER_BOUND),
        Metric("msun", "MSUN", +1, description="metastable (0 < E_hull ≤ 0.1), unique, novel",
               headline=True, counted=True, flag=true_in("msun"), interval=True, caveat=UPPER_BOUND),
        Metric("stable_unique_count", "Stable & unique", +1),
        Metric("metastable_only_unique_count", "Metastable-only & unique", +1),
        Metric("novelty_unknown_count", "Novelty unknown", -1),
    ),
    groups=(UNRELAXED,),
    columns=(SUN, MSUN, UNRELAXED_SUN, UNRELAXED_MSUN, SPARSE_CHEMSYS, CANDIDATE),
)
