"""The metric catalogue: what every family publishes, as data, in pipeline order.

Each family declares its metrics next to the code computing them
(``evaluator/families/<name>/metrics.py``); this module only collects those
declarations and answers the questions a reader of a summary asks ("what is
``metrics.stability_unrelaxed.stable_frac_valid``?"). Pure data: importing it loads
no science library, so the leaderboard renders from it.

A summary's metrics become columns of a published leaderboard row: ``summary.metrics.<block>.<key>``
is the column ``<block>.<key>``, and a rate's confidence interval ``summary.uncertainty.<block>.<key>``
the columns ``uncertainty.<block>.<key>.lo``/``.hi``. ``SUMMARY_COLUMNS`` lists every such column
the declarations allow as a typed record (``SummaryColumn``: name, block, key, metric, representation,
type, interval columns); publishing and the leaderboard table look columns up there
(``summary_column``) instead of reading meaning out of a column's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evaluator.declarations import Direction, Metric, MetricSet
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

Representation = Literal["count", "frac_submitted", "frac_valid", "value"]
"""How a column holds its metric: a counted metric's count or one of its two fractions, or
the value of any other metric."""
ColumnType = Literal["int", "float", "number"]
"""The type of a column's values: a count is a whole number, a fraction a float; a plain
value is a number (whole or not, as the family computes it), or a breakdown (a dict, whose
entries are columns ``<name>.<entry>``) or a list (published as JSON text)."""
INTERVAL_PREFIX = "uncertainty."
_OF = {"frac_submitted": "submitted", "frac_valid": "valid"}


@dataclass(frozen=True)
class SummaryColumn:
    """One metric column of a published leaderboard row: ``summary.metrics.<block>.<key>``
    as the column ``<block>.<key>``, with the declaration behind it."""

    block: str  # a family, or one of its groups ("stability_unrelaxed")
    key: str  # the key in the block: "sun_count", "mean_e_above_hull"
    family: str  # the family publishing the block
    metric: Metric
    rep: Representation
    position: int  # the metric's place in its family's declarations

    @property
    def name(self) -> str:
        """The column's name in a leaderboard row ("sun_unrelaxed.sun_frac_valid")."""
        return f"{self.block}.{self.key}"

    @property
    def dtype(self) -> ColumnType:
        return "int" if self.rep == "count" else "float" if self.rep in _OF else "number"

    @property
    def group(self) -> str | None:
        """The group a block other than the family's own names ("unrelaxed"), else None."""
        return self.block.removeprefix(self.family + "_") if self.block != self.family else None

    @property
    def fraction_of(self) -> str | None:
        """What a fraction is a fraction of ("submitted", "valid"; "parsed" for a plain
        ``<name>_frac_parsed`` metric); None for a count or any other value."""
        if self.rep != "value":
            return _OF.get(self.rep)
        head, sep, of = self.metric.name.rpartition("_frac_")
        return of if sep and head else None

    @property
    def headline(self) -> bool:
        """Shown in the compact view: a headline metric of the family's own block."""
        return self.metric.headline and self.block == self.family

    @property
    def direction(self) -> Direction:
        return self.metric.direction

    @property
    def label(self) -> str:
        return self.metric.label

    @property
    def interval(self) -> tuple[str, str] | None:
        """The (lower, upper) bound columns of a rate's confidence interval; None for
        anything else (counts and plain values have no interval)."""
        if self.rep not in _OF:
            return None
        base = INTERVAL_PREFIX + self.name
        return f"{base}.lo", f"{base}.hi"


_COUNTED: tuple[Representation, ...] = ("count", "frac_submitted", "frac_valid")  # as Metric.keys() writes them


def _columns_of(s: MetricSet) -> list[SummaryColumn]:
    out: list[SummaryColumn] = []
    for block in (s.family, *s.groups):
        for i, m in enumerate(s.metrics):
            if m.counted:
                out += [SummaryColumn(block, f"{m.name}_{rep}", s.family, m, rep, i) for rep in _COUNTED]
            else:
                out.append(SummaryColumn(block, m.name, s.family, m, "value", i))
    return out


SUMMARY_COLUMNS: tuple[SummaryColumn, ...] = tuple(c for s in CATALOGUE for c in _columns_of(s))
"""Every metric column the declarations allow, in pipeline and declaration order."""
_BY_NAME: dict[str, SummaryColumn] = {c.name: c for c in SUMMARY_COLUMNS}
_BY_INTERVAL: dict[str, tuple[SummaryColumn, Literal["lo", "hi"]]] = {}
for _c in SUMMARY_COLUMNS:
    if _c.interval is not None:
        _BY_INTERVAL[_c.interval[0]], _BY_INTERVAL[_c.interval[1]] = (_c, "lo"), (_c, "hi")
_PLAIN: tuple[SummaryColumn, ...] = tuple(c for c in SUMMARY_COLUMNS if c.rep == "value")


def summary_column(name: str) -> SummaryColumn | None:
    """The record of the leaderboard column ``name`` ("sun.sun_count"); None when no family
    declares it."""
    return _BY_NAME.get(name)


def interval_column(name: str) -> tuple[SummaryColumn, Literal["lo", "hi"]] | None:
    """(the rate, which bound) of a confidence-interval column; None for any other column."""
    return _BY_INTERVAL.get(name)


def breakdown_of(name: str) -> SummaryColumn | None:
    """The declared plain metric whose breakdown (a dict) holds the column ``name``, an
    entry ``<column>.<entry>`` of it; None when ``name`` is no such entry."""
    return next((c for c in _PLAIN if name.startswith(c.name + ".")), None)


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
    name = f"{block}.{key}"
    found = summary_column(name)
    if found is not None:
        return found.metric, None if found.rep == "value" else found.rep
    part = breakdown_of(name)
    return (part.metric, None) if part is not None else None


def declared_keys(block: str) -> tuple[str, ...]:
    """Every summary key the declarations of ``block`` allow (counted metrics give three)."""
    s = _BY_BLOCK.get(block)
    return s.keys() if s is not None else ()
