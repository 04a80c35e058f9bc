"""The metrics of a results table as the user sees them (*measures*), from the catalogue.

A results table has metadata columns plus metric columns, one per
``summary.metrics.<block>.<key>``. The catalogue the families declare
(``evaluator.catalogue``) lists every such column as a typed record
(``SummaryColumn``): a measure is made from the records whose columns the table has
(label, direction, unit, description, headline flag, interval columns come from
there). A counted metric's three columns (count, fraction of submitted, of valid) fold
into one measure, shown as a count or as a percentage of submitted / of valid
structures; the entries of a breakdown (a dict-valued metric, columns
``<column>.<entry>``) are one measure each.

A metric column no family declares (a self-reported submission, an older or newer
evaluator) is still shown: humanised label, direction 0 ("no preference"), no unit.
Nothing is guessed from its name beyond its block (the text before the first dot).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from evaluator import catalogue as C
from evaluator.catalogue import SummaryColumn
from evaluator.families.base import Caveat, Direction, MetricSet

COUNT_SUFFIXES = ("_count", "_frac_submitted", "_frac_valid")  # an undeclared count's columns
UNCERTAINTY_PREFIX = C.INTERVAL_PREFIX
SHOW_MODES = {  # UI label -> representation of counted measures
    "% of submitted": "frac_submitted",
    "% of valid": "frac_valid",
    "counts": "count",
}
DEFAULT_SHOW = "frac_submitted"
DEFAULT_RANK = "sun.sun_plus_msun"  # SUN + MSUN per submitted structure (METRICS.md §4)
_NOT_METRICS = ("meta", "summary", "provenance", UNCERTAINTY_PREFIX[:-1], "reference")
_LEGACY_PREFIX = "metrics."  # results tables of early versions prefixed metric columns


@dataclass(frozen=True)
class Measure:
    """One metric as the user sees it (a counted metric folds three columns)."""

    key: str  # "<block>.<name>", e.g. "sun.msun"
    family: str  # the block, e.g. "stability_unrelaxed"
    name: str
    label: str
    direction: Direction
    columns: dict[str, str]  # representation ("count"/"frac_submitted"/"frac_valid"/"value") -> column
    unit: str = ""
    description: str = ""
    headline: bool = False  # shown in the compact view (a family's own headline metrics)
    fraction_of: str | None = None  # a plain value that is a fraction (of "parsed"): shown as a percentage
    intervals: dict[str, tuple[str, str]] = field(default_factory=dict)  # representation -> (lo, hi) columns
    base_family: str = ""  # the family publishing the block ("stability_unrelaxed" -> "stability")
    group: str | None = None  # the block's group within its family ("unrelaxed"), None for its own
    position: int = 0  # place among its family's declarations (undeclared: after them)
    caveat: Caveat | None = None  # what qualifies the number (declared on the metric)

    @property
    def counted(self) -> bool:
        return "count" in self.columns or any(k.startswith("frac_") for k in self.columns)

    @property
    def fraction(self) -> bool:
        """A plain value that is a fraction (``*_frac_parsed``): shown as a percentage."""
        return not self.counted and self.fraction_of is not None

    @property
    def arrow(self) -> str:
        return {1: "↑", -1: "↓"}.get(self.direction, "")

    def column(self, show: str = DEFAULT_SHOW) -> str:
        """The results column holding this measure in representation ``show``."""
        if not self.counted:
            return self.columns["value"]
        return (self.columns.get(show) or self.columns.get("frac_submitted") or self.columns.get("count")
                or next(iter(self.columns.values())))

    def is_percent(self, show: str = DEFAULT_SHOW) -> bool:
        return (self.counted and show != "count") or self.fraction

    def ci_columns(self, show: str = DEFAULT_SHOW) -> tuple[str, str] | None:
        """(lo, hi) results columns of this rate's confidence interval in representation
        ``show`` (``uncertainty.<block>.<name>_<rep>.lo``/``.hi``); None for non-rates."""
        if not self.counted or show == "count":
            return None
        return self.intervals.get(show)

    def header(self, show: str = DEFAULT_SHOW, reference: str | None = None) -> str:
        """Column header: label, block qualifier, what it is relative to (a caveat naming
        the novelty ``reference``, e.g. "w.r.t. MP-20 (≤ 20 atoms)"), direction arrow and unit."""
        qual = ""
        if self.group is not None:
            qual = f" ({self.group.replace('_', ' ')})"
        elif self.base_family not in C.FAMILIES:
            qual = f" ({self.base_family.replace('_', ' ')})"
        unit = "%" if self.is_percent(show) else ("n" if self.counted else self.unit)
        if self.fraction:
            qual += f" (of {self.fraction_of})"
        if self.caveat is not None and self.caveat.names_reference:
            qual += " " + self.caveat.text(reference)[0]
        unit = f" [{unit}]" if unit else ""
        return f"{self.label}{qual} {self.arrow}{unit}".replace("  ", " ").strip()


def metric_key(column: str) -> str | None:
    """'metrics.sun.sun_count' or 'sun.sun_count' -> 'sun.sun_count'; None for metadata."""
    col = column.removeprefix(_LEGACY_PREFIX)
    if "." not in col or col.split(".", 1)[0] in _NOT_METRICS:
        return None
    return col


def humanise(name: str) -> str:
    text = name.replace(".", " · ").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def family_label(family: str) -> str:
    """A family's display name from the catalogue ("SUN / MSUN"); humanised when undeclared."""
    return C.family_label(family) or humanise(family)


def numeric_columns(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` that hold numbers (text/JSON columns are not metrics)."""
    out = []
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out.append(col)
        elif s.isna().all():
            out.append(col)  # a metric absent everywhere still shows (as —)
        elif pd.api.types.infer_dtype(s, skipna=True) in ("integer", "floating", "mixed-integer-float"):
            # (text columns are ruled out at once; a column of numbers as objects checked value by value)
            vals = s.dropna()
            if vals.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
                out.append(col)
    return out


def _declared(records: Sequence[SummaryColumn], columns: dict[str, str], entry: str | None = None) -> Measure:
    """The measure of one declared metric in one block from its records (``columns``:
    representation -> results column); ``entry``: one entry of a breakdown."""
    r = records[0]
    metric = r.metric
    name, label = metric.name, metric.label
    if entry is not None:
        name, label = f"{name}.{entry}", f"{label} · {entry.replace('.', ' · ').replace('_', ' ')}"
    intervals: dict[str, tuple[str, str]] = {rec.rep: rec.interval for rec in records if rec.interval is not None}
    return Measure(f"{r.block}.{name}", r.block, name, label, metric.direction, columns, metric.unit,
                   metric.description, r.headline and entry is None,
                   r.fraction_of if r.rep == "value" and entry is None else None, intervals,
                   r.family, r.group, r.position, metric.caveat if entry is None else None)


def _undeclared(block: str, name: str, columns: dict[str, str], suffix: str = "") -> Measure:
    """A metric no family declares: its name as label, no direction, no unit."""
    s = C.metric_set(block)
    head, sep, of = name.rpartition("_frac_")  # a lone fraction (e.g. valid_frac_parsed): a percentage
    fraction = of if sep and head and "value" in columns and of.isascii() and of.isalpha() and of.islower() else None
    base = f"{UNCERTAINTY_PREFIX}{block}.{name}"
    intervals: dict[str, tuple[str, str]] = {rep: (f"{base}_{rep}.lo", f"{base}_{rep}.hi")
                                             for rep in ("frac_submitted", "frac_valid") if rep in columns}
    family = C.family_of(block) or block
    return Measure(f"{block}.{name}", block, name, humanise(name) + suffix, 0, columns,
                   fraction_of=fraction,
                   intervals=intervals, base_family=family,
                   group=block.removeprefix(family + "_") if block != family else None,
                   position=_position(s, name.partition(".")[0]))


def _position(s: MetricSet | None, name: str) -> int:
    """The place of metric ``name`` among the declarations of ``s`` (after them when undeclared)."""
    names = [m.name for m in s.metrics] if s is not None else []
    return names.index(name) if name in names else len(names)


def catalogue(columns: Iterable[str] | pd.DataFrame) -> list[Measure]:
    """Every measure present in ``columns`` (results-table columns, or a results
    DataFrame whose numeric columns are used), in pipeline and declaration order."""
    names = numeric_columns(columns) if isinstance(columns, pd.DataFrame) else [str(c) for c in columns]
    by_name = {n.removeprefix(_LEGACY_PREFIX): n for n in names}  # column of each record name
    claimed: set[str] = set()
    measures: list[Measure] = []
    counted: dict[tuple[str, str], list[SummaryColumn]] = {}
    for rec in C.SUMMARY_COLUMNS:
        if rec.rep != "value":
            counted.setdefault((rec.block, rec.metric.name), []).append(rec)
            continue
        col = by_name.get(rec.name)
        if col is not None:
            measures.append(_declared([rec], {"value": col}))
            claimed.add(col)
        for n, col in by_name.items():  # the entries of a breakdown (a dict-valued metric)
            if n.startswith(rec.name + "."):
                measures.append(_declared([rec], {"value": col}, n.removeprefix(rec.name + ".")))
                claimed.add(col)
    declared_counts: set[str] = set()
    for (block, metric), recs in counted.items():
        cols: dict[str, str] = {rec.rep: by_name[rec.name] for rec in recs if rec.name in by_name}
        if cols:
            measures.append(_declared(recs, cols))
            claimed.update(cols.values())
            declared_counts.add(f"{block}.{metric}")
    measures += _undeclared_measures([n for n in names if n not in claimed], declared_counts)
    measures.sort(key=lambda m: (C.block_order(m.family), m.family, m.position, m.name))
    return measures


def _undeclared_measures(names: list[str], declared_counts: set[str]) -> list[Measure]:
    """Measures of metric columns no record describes: ``<block>.<name>``, the three columns
    of a count folded the way the results table lays them out."""
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    for col in names:
        key = metric_key(col)
        if key is None:
            continue
        block, name = key.split(".", 1)
        rep, base = "value", name
        for suffix in COUNT_SUFFIXES:
            if name.endswith(suffix):
                rep, base = suffix[1:], name[: -len(suffix)]
                break
        grouped.setdefault((block, base), {})[rep] = col
    out: list[Measure] = []
    for (block, base), cols in grouped.items():
        counts = {k: v for k, v in cols.items() if k != "value"}
        if "count" in counts and len(counts) == 1:  # a lone "<name>_count" without fractions: a value
            out.append(_undeclared(block, f"{base}_count", {"value": counts.pop("count")}))
        if counts:
            out.append(_undeclared(block, base, counts))
        if "value" in cols:
            out.append(_undeclared(block, base, {"value": cols["value"]},
                                   " value" if counts or f"{block}.{base}" in declared_counts else ""))
    return out


def measures_of(results: pd.DataFrame) -> list[Measure]:
    """The measures of a results table (its numeric metric columns)."""
    if not len(results.columns):
        return []
    return catalogue(results)


def families_present(measures: Iterable[Measure]) -> list[str]:
    """Families with at least one measure, in pipeline order."""
    seen: list[str] = []
    for m in measures:
        if m.base_family not in seen:
            seen.append(m.base_family)
    return sorted(seen, key=C.block_order)
