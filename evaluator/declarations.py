"""What a family publishes, as data: its metrics (``Metric``) and per-structure columns
(``evaluator.columns.Column``), collected in one ``MetricSet`` per family
(``evaluator/families/<name>/metrics.py``).

Pure data: importing it loads no science library and nothing of the evaluation (the
context, the pipeline), so the leaderboard and the context itself can read the
declarations. ``evaluator.families.base`` re-exports ``Metric`` and ``MetricSet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evaluator.columns import Column, Flag, reason_column, status_column
from evaluator.counts import COUNT_KEYS

__all__ = ["Caveat", "Direction", "Metric", "MetricSet"]

Direction = Literal[1, -1, 0]  # +1 higher is better, -1 lower is better, 0 no preference


@dataclass(frozen=True)
class Caveat:
    """What a reader must know next to a metric's number, as data the UI shows beside it.

    short: a few words for a column header or a label ("upper bound"); ``{reference}``
        stands for the novelty reference the protocol used (filled in by the reader, e.g.
        ``evaluator.protocol.reference_label``), never a hard-coded name.
    why: one sentence saying why (legend, model page); may use ``{reference}`` too.
    readme: the README section that explains it (its heading's anchor).
    """

    short: str
    why: str
    readme: str = ""

    @property
    def names_reference(self) -> bool:
        """Whether it says what the number is relative to (then it belongs in the label)."""
        return "{reference}" in self.short

    def text(self, reference: str | None = None) -> tuple[str, str]:
        """(short, why) with ``{reference}`` filled in ("the reference" when unknown)."""
        ref = reference or "the reference"
        return self.short.replace("{reference}", ref), self.why.replace("{reference}", ref)


@dataclass(frozen=True)
class Metric:
    """One metric a family publishes in ``summary.metrics.<family>``, as data.

    name: the key in the family's metrics block. A ``counted`` metric is published
        as three keys (``<name>_count``, ``<name>_frac_submitted``,
        ``<name>_frac_valid``, see ``counted``); any other metric as ``<name>``.
    label: short human name ("Valid", "Mean E_hull").
    direction: +1 higher is better, -1 lower is better, 0 no preference (bookkeeping).
    unit: physical unit of a plain value ("eV/atom", "Å"); "" for none.
    description: one line saying what it measures (legend, model page).
    headline: shown in the compact leaderboard view.
    counted: published as a count with its two fractions.
    flag: a counted metric's rows, as a ``Flag`` over its family's declared columns (the
        count is the number of rows it flags); required for a counted metric.
    interval: its two fractions get a bootstrap confidence interval (``evaluator.uncertainty``,
        which recounts it from ``flag`` on resampled rows); counted metrics only.
    caveat: what qualifies the number (an upper bound, the reference it is relative to),
        shown next to it; None when nothing does.
    """

    name: str
    label: str
    direction: Direction
    unit: str = ""
    description: str = ""
    headline: bool = False
    counted: bool = False
    flag: Flag | None = None
    interval: bool = False
    caveat: Caveat | None = None

    def __post_init__(self) -> None:
        if self.counted and self.flag is None:
            raise ValueError(f"counted metric {self.name!r} names no flag (the rows it counts)")
        if not self.counted and (self.flag is not None or self.interval):
            raise ValueError(f"metric {self.name!r}: a flag and an interval go with counted metrics only")

    def keys(self) -> tuple[str, ...]:
        """The summary keys this metric writes in its family's block."""
        if self.counted:
            return tuple(f"{self.name}_{k}" for k in COUNT_KEYS)
        return (self.name,)

    @property
    def arrow(self) -> str:
        return {1: "↑", -1: "↓"}.get(self.direction, "")


@dataclass(frozen=True)
class MetricSet:
    """Everything one family publishes: its metrics block and further blocks
    (``groups``) that publish the same metrics under another name, e.g.
    ``stability_unrelaxed`` (E_hull of the unrelaxed structures)."""

    family: str
    label: str  # the family's display name ("SUN / MSUN")
    metrics: tuple[Metric, ...]
    groups: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    """The per-structure columns the family writes (besides ``<family>_status`` and
    ``<family>_reason``, which every family has), in the order it writes them."""
    group_omits: tuple[str, ...] = ()
    """Metrics of the family's block that its groups do not publish (relaxation metrics
    have no ``stability_unrelaxed`` value)."""

    def __post_init__(self) -> None:
        names = [m.name for m in self.metrics]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{self.family}: metric(s) declared twice: {dup}")
        cols = [c.name for c in self.declared_columns()]
        dup = sorted({n for n in cols if cols.count(n) > 1})
        if dup:
            raise ValueError(f"{self.family}: column(s) declared twice: {dup}")
        unknown = sorted(set(self.group_omits) - set(names))
        if unknown:
            raise ValueError(f"{self.family}: group_omits names undeclared metric(s) {unknown}")
        for block in self.blocks():
            for m in self.block_metrics(block):
                if m.flag is not None:
                    self.flag_columns(block, m)  # declared, of the type the flag reads

    def get(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def status(self) -> Column:
        """``<family>_status``: ok, failed or skipped."""
        return status_column(self.family)

    @property
    def reason(self) -> Column:
        """``<family>_reason``: why a row failed or was skipped."""
        return reason_column(self.family)

    def declared_columns(self) -> tuple[Column, ...]:
        """Every column the family may write: its declared ``columns``, then status and reason."""
        return (*self.columns, self.status, self.reason)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.declared_columns() if c.name == name), None)

    def blocks(self) -> tuple[str, ...]:
        """The summary blocks this set declares: the family's, then its groups."""
        return (self.family, *self.groups)

    def block_metrics(self, block: str) -> tuple[Metric, ...]:
        """The metrics ``block`` (the family's, or one of its groups) publishes."""
        if block == self.family:
            return self.metrics
        return tuple(m for m in self.metrics if m.name not in self.group_omits)

    def flag_columns(self, block: str, metric: Metric) -> tuple[Column, ...]:
        """The declared columns ``metric``'s flag reads in ``block`` (one of ``blocks()``).
        ValueError when a column is not declared or not of the type the flag reads."""
        if metric.flag is None:
            raise ValueError(f"{block}.{metric.name} is not a counted metric")
        out = []
        for name in metric.flag.names(block):
            col = self.column(name)
            if col is None:
                raise ValueError(f"{block}.{metric.name} counts the column {name!r}, which the "
                                 f"{self.family} family does not declare")
            if col.dtype != metric.flag.dtype:
                raise ValueError(f"{block}.{metric.name} counts {name!r} as {metric.flag.dtype} "
                                 f"but it is declared {col.dtype}")
            out.append(col)
        return tuple(out)

    def parts(self, metric: Metric) -> tuple[Metric, ...]:
        """The counted metrics whose flags make up ``metric``'s (a flag over several
        columns: SUN + MSUN is SUN's rows and MSUN's); () for a metric of one column."""
        if metric.flag is None or len(metric.flag.columns) < 2:
            return ()
        by_column = {m.flag.columns: m for m in self.metrics
                     if m.flag is not None and m.flag.test == "true" and len(m.flag.columns) == 1}
        return tuple(by_column[(c,)] for c in metric.flag.columns if (c,) in by_column)

    def keys(self) -> tuple[str, ...]:
        """Every summary key of the family's block, in declaration order."""
        return tuple(k for m in self.metrics for k in m.keys())
