"""The contract between the pipeline and a metric family.

A family is a ``Family`` object (``evaluator/families/<name>/family.py``): a name, the
families it requires, a typed options dataclass, the metrics it publishes (a
``MetricSet`` declared as data in ``evaluator/families/<name>/metrics.py``) and
``run(ctx, options) -> FamilyResult``. A family reads the per-structure table (and
``ctx.structures``) and returns new columns for the rows it evaluated plus summary
values. It never removes rows: the pipeline marks rows a family did not return as
skipped, with the reason (parse failed / invalid).

This module imports no science library: the leaderboard reads the metric
declarations (``Metric``/``MetricSet``) through ``evaluator.catalogue``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import pandas as pd

from evaluator.columns import Column, Flag, reason_column, status_column
from evaluator.counts import COUNT_KEYS, counted

if TYPE_CHECKING:
    from evaluator.context import EvalContext

__all__ = ["COUNT_KEYS", "Column", "Family", "FamilyResult", "Flag", "Metric", "MetricSet", "NoOptions",
           "counted", "finite_or_none"]

Direction = Literal[1, -1, 0]  # +1 higher is better, -1 lower is better, 0 no preference


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

    def declared_columns(self) -> tuple[Column, ...]:
        """Every column the family may write: its declared ``columns``, then status and reason."""
        return (*self.columns, status_column(self.family), reason_column(self.family))

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


@dataclass(frozen=True)
class NoOptions:
    """Options of a family that has none."""


OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class Family(Generic[OptionsT]):
    """One metric family, as the pipeline sees it.

    options: a (frozen) dataclass type; ``options_from`` builds it from a mapping and
        refuses unknown keys, so a misspelled option is an error, not a silent default.
    run: computes the family on ``ctx`` with options of type ``options``.
    """

    name: str
    requires: tuple[str, ...]
    options: type[OptionsT]
    metrics: MetricSet
    run: Callable[[EvalContext, OptionsT], FamilyResult]
    description: str = ""

    def options_from(self, values: Mapping[str, Any] | None = None) -> OptionsT:
        """The options dataclass from ``values``. ValueError for an unknown key or for a
        value that does not match its field's annotation (``bool``, ``int`` — a bool is
        not a whole number —, ``float``, ``str``, ``Path``, ``None``, ``Literal[...]``
        and unions of them); the dataclass's ``__post_init__`` then checks ranges."""
        values = dict(values or {})
        hints = typing.get_type_hints(self.options)
        known = {f.name for f in dataclasses.fields(self.options)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for family {self.name!r}; "
                             f"its options are {sorted(known) or 'none'}")
        for name, value in values.items():
            if not _matches(value, hints[name]):
                raise ValueError(f"{self.name}.{name} must be {_describe(hints[name])}, got {value!r}")
        return self.options(**values)


def _matches(value: object, hint: Any) -> bool:
    """Whether an option value (JSON-like) has the annotated type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation this check does not know: the dataclass checks it


def _describe(hint: Any) -> str:
    """An annotation in words, for the error message."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a text",
             Path: "a path", type(None): "null"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


@dataclass
class FamilyResult:
    """Output of one family.

    columns: indexed like ``ctx.table`` (a subset of rows is fine); names are
        prefixed with the family name, e.g. ``validity_valid``. A row a family
        evaluated but failed on has ``<family>_status = "failed"`` and a
        ``<family>_reason``; successful rows have status "ok".
    metrics: ``metrics.<family>.<name>`` values (JSON-serialisable). A value
        that could not be computed is ``None`` with a reason in ``missing``.
    missing: {metric name: why it is absent}.
    provenance: family-specific provenance (model, thresholds, reference...).
    groups: further metric groups this family publishes as ``metrics.<group>``
        (e.g. stability also reports ``stability_unrelaxed``).
    """

    columns: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def absent(self, name: str, reason: str) -> None:
        """Record a metric that was not computed, and why."""
        self.metrics[name] = None
        self.missing[name] = reason


def finite_or_none(x: Any) -> float | None:
    """JSON-safe float: NaN/inf become None (callers record why in ``missing``)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
