"""What the novelty family publishes in ``summary.metrics.novelty`` and the
per-structure columns it writes (valid rows). Data only."""

from __future__ import annotations

from evaluator.columns import Column, true_in
from evaluator.declarations import Caveat, Metric, MetricSet

NOVEL_WRT = Caveat(
    "w.r.t. {reference}",
    "Novel means not equivalent to any structure of {reference}; a structure the reference cannot cover "
    "(e.g. a larger cell) may be novel for that reason alone.",
    "uniqueness-and-novelty")
"""Names the reference novelty is measured against (the protocol's, filled in by the reader)."""

NOVEL = Column("novelty_novel", "bool", "Not equivalent to any reference structure (null: undecided)")
MATCH_ID = Column("novelty_match_id", "text",
                  "The matched reference id, or the matched fingerprint where the reference has no ids")
FINGERPRINT = Column("novelty_fingerprint", "text",
                     "BAWL fingerprint, sites as submitted (null where not needed or not computed)")
FINGERPRINT_SORTED = Column("novelty_fingerprint_sorted", "text", "BAWL fingerprint, sites sorted by species")
FINGERPRINT_HIT = Column("novelty_fingerprint_hit", "bool", "Either fingerprint is in the reference")
NOVEL_AS_SUBMITTED = Column("novelty_novel_as_submitted", "bool",
                            "LeMat-GenBench's verdict: the fingerprint (sites as submitted) is not in the reference")
BEYOND_REFERENCE_SIZE = Column("novelty_beyond_reference_size", "bool",
                               "Its primitive cell has more sites than the largest reference cell, so \"novel\" "
                               "may just mean \"not coverable\" (null: unknown)")

METRICS = MetricSet(
    family="novelty",
    label="Novelty",
    metrics=(
        Metric("novel", "Novel", +1, description="not equivalent to any reference structure",
               headline=True, counted=True, flag=true_in("novel"), interval=True,
               caveat=NOVEL_WRT),
        Metric("n_failed", "Novelty failed", -1),
        # LeMat-GenBench's count: BAWL fingerprint (sites as submitted) not in the reference
        Metric("novel_as_submitted", "Novel as submitted", +1, counted=True, flag=true_in("novel_as_submitted"),
               interval=True, caveat=NOVEL_WRT),
        Metric("n_without_fingerprint", "N without fingerprint", 0),
        Metric("n_fingerprint_timed_out", "N fingerprint timed out", -1),
    ),
    columns=(NOVEL, MATCH_ID, FINGERPRINT, FINGERPRINT_SORTED, FINGERPRINT_HIT, NOVEL_AS_SUBMITTED,
             BEYOND_REFERENCE_SIZE),
)
