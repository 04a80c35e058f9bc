"""The contract between the pipeline and a metric family.

A family is a ``Family`` object (``evaluator/families/<name>/family.py``): a name, the
families it requires, a typed options dataclass, the metrics it publishes (a
``MetricSet`` declared as data in ``evaluator/families/<name>/metrics.py``) and
``run(ctx, options) -> FamilyResult``. A family reads the per-structure table (and
``ctx.structures``) and returns new columns for the rows it evaluated plus summary
values. It never removes rows: the pipeline marks rows a family did not return as
skipped, with the reason (parse failed / invalid).

This module imports no science library. The metric and column declarations
(``Metric``/``MetricSet``, ``evaluator.declarations``; ``Column``/``Flag``,
``evaluator.columns``) are re-exported here; the leaderboard reads them through
``evaluator.catalogue``.
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

from evaluator.columns import Column, Flag
from evaluator.counts import COUNT_KEYS, counted
from evaluator.declarations import Caveat, Direction, Metric, MetricSet

if TYPE_CHECKING:
    from evaluator.context import EvalContext

__all__ = ["COUNT_KEYS", "Caveat", "Column", "Direction", "Family", "FamilyResult", "Flag", "Metric", "MetricSet",
           "NoOptions", "counted", "finite_or_none"]

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
