"""The metric catalogue: what every family publishes, as data, in pipeline order.

Each family declares its metrics next to the code computing them
(``evaluator/families/<name>/metrics.py``); this module only collects those
declarations and answers the questions a reader of a summary asks ("what is
``metrics.stability_unrelaxed.stable_frac_valid``?"). Pure data: importing it loads
no science library, so the leaderboard renders from it.
"""

from __future__ import annotations

from evaluator.counts import COUNT_KEYS
from evaluator.declarations import Metric, MetricSet
from evaluator.families.distribution.metrics import METRICS as DISTRIBUTION
from evaluator.families.diversity.metrics import METRICS as DIVERSITY
from evaluator.families.hhi.metrics import METRICS as HHI
from evaluator.families.novelty.metrics import METRICS as NOVELTY
from evaluator.families.stability.metrics import METRICS as STABILITY
from evaluator.families.sun.metrics import METRICS as SUN
from evaluator.families.uniqueness.metrics import METRICS as UNIQUENESS
from evaluator.families.validity.metrics import METRICS as VALIDITY

CATALOGUE: tuple[MetricSet, ...] = (VALIDITY, UNIQUENESS, NOVELTY, STABILITY, SUN, DIVERSITY,
                                    DISTRIBUTION, HHI)
"""Every family's declarations, in pipeline order."""
FAMILIES: tuple[str, ...] = tuple(s.family for s in CATALOGUE)

_BY_BLOCK: dict[str, MetricSet] = {b: s for s in CATALOGUE for b in (s.family, *s.groups)}


def metric_set(block: str) -> MetricSet | None:
    """The declarations behind ``summary.metrics.<block>``: a family, or a family's group
    (``stability_unrelaxed`` -> stability's); None for a block no family declares."""
    return _BY_BLOCK.get(block)


def family_of(block: str) -> str | None:
    """The family publishing ``block`` ("sun_unrelaxed" -> "sun"); None when unknown."""
    s = _BY_BLOCK.get(block)
    return s.family if s is not None else None


def family_label(family: str) -> str | None:
    """A family's display name ("SUN / MSUN"); None for an unknown family."""
    s = _BY_BLOCK.get(family)
    return s.label if s is not None and s.family == family else None


def block_order(block: str) -> int:
    """Pipeline position of the family publishing ``block``; unknown blocks come last."""
    fam = family_of(block)
    return FAMILIES.index(fam) if fam is not None else len(FAMILIES)


def metric_for(block: str, key: str) -> Metric | None:
    """The declared metric behind ``summary.metrics.<block>.<key>``, or None.

    ``key`` is a plain metric's name, one of a counted metric's three keys
    (``<name>_count``, ``<name>_frac_submitted``, ``<name>_frac_valid``), or a
    flattened entry ``<name>.<part>`` of a metric whose value is a dict.
    """
    found = resolve(block, key)
    return found[0] if found is not None else None


def resolve(block: str, key: str) -> tuple[Metric, str | None] | None:
    """``(metric, rep)`` for ``summary.metrics.<block>.<key>``: ``rep`` is the counted
    metric's representation ("count", "frac_submitted", "frac_valid"), None for a plain
    value or a part of a breakdown; None when no family declares the key."""
    s = _BY_BLOCK.get(block)
    if s is None:
        return None
    plain = s.get(key)
    if plain is not None and not plain.counted:
        return plain, None
    for rep in COUNT_KEYS:
        if key.endswith("_" + rep):
            m = s.get(key[: -len(rep) - 1])
            if m is not None and m.counted:
                return m, rep
    if "." in key:
        m = s.get(key.split(".", 1)[0])
        if m is not None and not m.counted:
            return m, None
    return None


def declared_keys(block: str) -> tuple[str, ...]:
    """Every summary key the declarations of ``block`` allow (counted metrics give three)."""
    s = _BY_BLOCK.get(block)
    return s.keys() if s is not None else ()
