"""The metrics of a results table as the user sees them (*measures*), from the catalogue.

A results table has metadata columns plus flattened metric columns named
``<block>.<key>`` (a leading ``metrics.`` is accepted), ``<block>`` a family or one
of its groups (``stability_unrelaxed``). Each column is looked up in the metric
catalogue that the families declare (``evaluator.catalogue``): label, direction,
unit, description and headline flag come from there. A counted metric's three
columns (``<name>_count``, ``<name>_frac_submitted``, ``<name>_frac_valid``) fold
into one measure, shown as a count or as a percentage of submitted / of valid
structures.

A metric column no family declares (a self-reported submission, an older or newer
evaluator) is still shown: humanised label, direction 0 ("no preference"), no unit.
Nothing is guessed from its name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from evaluator import catalogue as C
from evaluator.families.base import Direction, Metric

COUNT_SUFFIXES = ("_count", "_frac_submitted", "_frac_valid")
_FRACTION = re.compile(r"_frac_[a-z]+$")  # a lone fraction (e.g. valid_frac_parsed): a percentage
# Confidence intervals of rates: results columns "uncertainty.<block>.<name>_<rep>.lo"/".hi"
# (from summary.json's top-level "uncertainty" block, computed once by the evaluator).
UNCERTAINTY_PREFIX = "uncertainty."
SHOW_MODES = {  # UI label -> representation of counted measures
    "% of submitted": "frac_submitted",
    "% of valid": "frac_valid",
    "counts": "count",
}
DEFAULT_SHOW = "frac_submitted"
DEFAULT_RANK = "sun.sun_plus_msun"  # SUN + MSUN per submitted structure (METRICS.md §4)
_NOT_METRICS = ("meta", "summary", "provenance", UNCERTAINTY_PREFIX[:-1], "reference")


@dataclass(frozen=True)
class Measure:
    """One metric as the user sees it (a counted metric folds three columns)."""

    key: str  # "<block>.<name>", e.g. "sun.msun"
    family: str  # the block (column prefix), e.g. "stability_unrelaxed"
    name: str
    label: str
    direction: Direction
    columns: dict[str, str]  # representation ("count"/"frac_submitted"/"frac_valid"/"value") -> column
    unit: str = ""
    description: str = ""
    headline: bool = False  # shown in the compact view (a family's own headline metrics)

    @property
    def counted(self) -> bool:
        return "count" in self.columns or any(k.startswith("frac_") for k in self.columns)

    @property
    def fraction(self) -> bool:
        """A plain value that is a fraction (``*_frac_parsed``): shown as a percentage."""
        return not self.counted and bool(_FRACTION.search(self.name))

    @property
    def base_family(self) -> str:
        """The family publishing this measure's block ("stability_unrelaxed" -> "stability");
        an undeclared block is its own family."""
        return C.family_of(self.family) or self.family

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
        base = f"{UNCERTAINTY_PREFIX}{self.family}.{self.name}_{show}"
        return f"{base}.lo", f"{base}.hi"

    def header(self, show: str = DEFAULT_SHOW) -> str:
        """Column header: label, block qualifier, direction arrow and unit."""
        qual = ""
        base = self.base_family
        if self.family != base:
            group = self.family[len(base) + 1:] if self.family.startswith(base + "_") else self.family
            qual = f" ({group.replace('_', ' ')})"
        elif base not in C.FAMILIES:
            qual = f" ({base.replace('_', ' ')})"
        unit = "%" if self.is_percent(show) else ("n" if self.counted else self.unit)
        if self.fraction:
            qual += f" (of {self.name.rsplit('_frac_', 1)[1]})"
        unit = f" [{unit}]" if unit else ""
        return f"{self.label}{qual} {self.arrow}{unit}".replace("  ", " ").strip()


def metric_key(column: str) -> str | None:
    """'metrics.sun.sun_count' or 'sun.sun_count' -> 'sun.sun_count'; None for metadata."""
    col = column[len("metrics."):] if column.startswith("metrics.") else column
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
        else:
            vals = s.dropna()
            if vals.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
                out.append(col)
    return out


def _declared_position(block: str, name: str) -> int:
    s = C.metric_set(block)
    names = [m.name for m in s.metrics] if s is not None else []
    head = name.split(".", 1)[0]
    return names.index(head) if head in names else len(names)


def catalogue(columns: Iterable[str] | pd.DataFrame) -> list[Measure]:
    """Every measure present in ``columns`` (results-table columns, or a results
    DataFrame whose numeric columns are used), in pipeline and declaration order."""
    if isinstance(columns, pd.DataFrame):
        columns = numeric_columns(columns)
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    declared: dict[tuple[str, str], Metric] = {}
    for col in columns:
        key = metric_key(col)
        if key is None:
            continue
        block, name = key.split(".", 1)
        found = C.resolve(block, name)
        if found is not None:
            metric, rep = found
            base = name if rep is None else metric.name
            grouped.setdefault((block, base), {})["value" if rep is None else rep] = col
            declared[(block, base)] = metric
            continue
        # Undeclared: fold the three columns of a count the way the results table lays them out.
        rep, base = "value", name
        for suffix in COUNT_SUFFIXES:
            if name.endswith(suffix):
                rep, base = suffix[1:], name[: -len(suffix)]
                break
        grouped.setdefault((block, base), {})[rep] = col
    # An undeclared lone "<name>_count" without fractions is a plain value.
    for (block, base), cols in list(grouped.items()):
        if (block, base) not in declared and "count" in cols and not any(k.startswith("frac_") for k in cols):
            col = cols.pop("count")
            grouped.setdefault((block, f"{base}_count"), {})["value"] = col
            if not cols:
                del grouped[(block, base)]
    measures: list[Measure] = []
    for (block, base), cols in grouped.items():
        metric = declared.get((block, base))
        counted = {k: v for k, v in cols.items() if k != "value"}
        if counted:
            measures.append(_measure(block, base, counted, metric))
        if "value" in cols:
            plain = metric if metric is not None and not metric.counted else None
            measures.append(_measure(block, base, {"value": cols["value"]}, plain,
                                     suffix=" value" if counted else ""))
    measures.sort(key=lambda m: (C.block_order(m.family), m.family, _declared_position(m.family, m.name), m.name))
    return measures


def _measure(block: str, name: str, columns: dict[str, str], metric: Metric | None, suffix: str = "") -> Measure:
    """The measure of ``block.name`` from its declaration (``metric``), or an undeclared one."""
    if metric is None:
        return Measure(f"{block}.{name}", block, name, humanise(name) + suffix, 0, columns)
    label = metric.label
    if name != metric.name and name.startswith(metric.name + "."):  # one entry of a breakdown
        label += " · " + name[len(metric.name) + 1:].replace(".", " · ").replace("_", " ")
    headline = metric.headline and C.family_of(block) == block and name == metric.name
    return Measure(f"{block}.{name}", block, name, label + suffix, metric.direction, columns,
                   metric.unit, metric.description, headline)


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
