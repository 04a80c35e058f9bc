"""The scorecard of one evaluation: ``summary.json`` (schema documented in README 'summary.json').

``Summary`` is its typed record (a JSON document, so a ``TypedDict``); ``build_summary``
makes one. Readers of stored summaries (the leaderboard) call ``check_schema``, which
refuses a ``schema_version`` they do not know, and ``upgrade_row``, which brings a
flattened row of an older summary up to the current one. At run time this module
imports no science library (the evaluation context is a type only).
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd

import evaluator
from evaluator.catalogue import CATALOGUE
from evaluator.columns import PARSE_OK, PARSE_REASON
from evaluator.families.base import COUNT_KEYS
from evaluator.families.validity.metrics import VALID
from evaluator.uncertainty import BootstrapDescription, Interval, bootstrap_intervals
from evaluator.uncertainty import describe as describe_uncertainty

if TYPE_CHECKING:
    from evaluator.context import EvalContext

SCHEMA_VERSION = 2
"""The version ``build_summary`` writes; bump it when the format changes (2: the ``protocol``
and ``execution`` blocks)."""
SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1, 2})
"""Versions a reader of this code understands (after ``upgrade_row``)."""


class SummaryProvenance(TypedDict):
    """``summary["provenance"]``: how the numbers were obtained."""

    evaluator_version: str
    created_at: str  # ISO 8601, UTC
    families: list[str]
    config: dict[str, Any]  # EvalConfig.to_dict()
    options: dict[str, dict[str, Any]]  # each family's effective options, defaults included
    reference: dict[str, Any] | None  # Reference.describe() when a family loaded one
    data_files: dict[str, str]  # {data-relative path: sha256}
    data_dir: str
    family: dict[str, dict[str, Any]]  # per-family provenance
    uncertainty: BootstrapDescription  # method, n_resamples, seed, level
    python: str
    platform: str


class ProtocolBlock(TypedDict):
    """``summary["protocol"]`` (``evaluator.protocol``): everything the numbers depend on."""

    id: str  # first 12 hex digits of the sha256 of the record's canonical JSON
    label: str  # e.g. "SevenNet-l3i5 · MP-20 hull · FIRE fmax 0.02, 300 steps"
    record: dict[str, Any]


class Summary(TypedDict):
    """``summary.json``. ``metrics`` maps a block (a family, or one of its groups such as
    ``stability_unrelaxed``) to its values, as declared in ``evaluator.catalogue``;
    ``missing`` maps a block (or "summary", "uncertainty") to {key: why it is absent}."""

    schema_version: int
    protocol: ProtocolBlock
    execution: dict[str, Any]  # device, engine, batch size, processes: beside the protocol, not in it
    n_submitted: int
    n_parsed: int
    n_valid: int | None
    n_evaluated: int | None
    metrics: dict[str, dict[str, Any]]
    uncertainty: dict[str, dict[str, Interval]]  # block -> rate key -> {lo, hi}
    missing: dict[str, dict[str, str]]
    failures: dict[str, dict[str, int]]  # "parse" or a family -> {reason: structures}
    provenance: SummaryProvenance
    timings_s: dict[str, float]


class UnsupportedSchema(ValueError):
    """A stored summary whose ``schema_version`` this code does not know."""


def check_schema(summary: Mapping[str, Any]) -> int:
    """The schema version of ``summary`` (1 when absent: summaries older than the field);
    raises ``UnsupportedSchema`` for one this code does not know."""
    version = summary.get("schema_version", 1)
    known = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
    if not isinstance(version, int) or isinstance(version, bool):
        raise UnsupportedSchema(f"summary schema_version {version!r} is not a version number "
                                f"(this leaderboard knows {known})")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnsupportedSchema(f"summary schema_version {version} is not supported by this leaderboard "
                                f"(knows {known}); upgrade the leaderboard")
    return version


def as_number(v: Any) -> float | None:
    """A cell as a number: None for a bool, a null or what ``float`` cannot read."""
    if isinstance(v, bool) or v is None or v is pd.NA:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


@dataclass(frozen=True)
class RowUpgrade:
    """One fill ``upgrade_row`` makes: ``key`` (a counted metric declared as the union of
    others) gets the sum of ``parts`` where it has no number and every part has one;
    ``integer``: the sum is a count."""

    key: str
    parts: tuple[str, ...]
    integer: bool


ROW_UPGRADES = tuple(
    RowUpgrade(f"{prefix}{s.family}.{m.name}_{rep}", tuple(f"{prefix}{s.family}.{p.name}_{rep}" for p in parts),
               rep == "count")
    for prefix in ("", "metrics.") for s in CATALOGUE for m in s.metrics if (parts := s.parts(m))
    for rep in COUNT_KEYS)
"""Every fill of ``upgrade_row``, in the order it makes them (a later one may sum an earlier one)."""


def upgrade_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A flattened summary row (``"<block>.<key>"``, optionally ``"metrics."``-prefixed, as
    ``leaderboard.publishing.results.summary_row`` writes) brought up to the current summary.

    The only upgrade so far: a counted metric declared as the union of others (``Flag`` over
    several disjoint columns, ``MetricSet.parts``: ``sun.sun_plus_msun`` is SUN's rows and
    MSUN's) is missing from summaries older than it; in its family's block it gets the sum
    of its parts (counts and both fractions), where every part is a number and the row has
    no value of its own (``ROW_UPGRADES``; ``as_number`` says what a number is). Everything
    else is returned unchanged (a copy).
    """
    out = dict(row)
    for up in ROW_UPGRADES:
        if as_number(out.get(up.key)) is not None:
            continue
        values = [as_number(out.get(p)) for p in up.parts]
        if all(v is not None for v in values):
            total = sum(v for v in values if v is not None)
            out[up.key] = int(total) if up.integer else total
    return out


def _reason_counts(table: pd.DataFrame, status_col: str, reason_col: str, failed: str) -> dict[str, int]:
    if status_col not in table:
        return {}
    mask = table[status_col] == failed
    return dict(Counter(table.loc[mask, reason_col].fillna("unknown")).most_common())


def build_summary(ctx: EvalContext, families: list[str], results: Mapping[str, Any],
                  protocol: ProtocolBlock, execution: dict[str, Any]) -> Summary:
    """The summary of an evaluation whose families ``families`` ran on ``ctx`` and gave
    ``results`` ({"metrics", "missing", "provenance", "timings"}, see ``pipeline.run_families``),
    under ``protocol`` (``evaluator.protocol``), executed as ``execution`` says."""
    table = ctx.table
    n_parsed = int(table[PARSE_OK.name].sum())
    n_valid = int(table[VALID.name].fillna(False).astype(bool).sum()) if VALID.name in table else None
    evaluated = results["metrics"].get("stability", {}).get("evaluated_count")
    missing = dict(results["missing"])
    top = {}
    if n_valid is None:
        top["n_valid"] = "validity family not run"
    if evaluated is None:
        top["n_evaluated"] = "stability family not run" if "stability" not in families else "stability gave no count"
    if top:
        missing["summary"] = top

    reference = None
    if "reference" in ctx.__dict__:  # loaded by a family (cached_property)
        reference = ctx.reference.describe()

    t0 = time.perf_counter()
    intervals, no_interval = bootstrap_intervals(table, results["metrics"])
    if no_interval:
        missing["uncertainty"] = no_interval
    timings = {**results["timings"], "uncertainty": round(time.perf_counter() - t0, 3)}

    parse_failures = Counter(table.loc[~table[PARSE_OK.name], PARSE_REASON.name].fillna("unknown"))
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": protocol,
        "execution": execution,
        "n_submitted": ctx.n_submitted,
        "n_parsed": n_parsed,
        "n_valid": n_valid,
        "n_evaluated": evaluated,
        "metrics": results["metrics"],
        "uncertainty": intervals,
        "missing": missing,
        "failures": {
            "parse": dict(parse_failures.most_common()),
            **{f: _reason_counts(table, f"{f}_status", f"{f}_reason", "failed") for f in families},
        },
        "provenance": {
            "evaluator_version": evaluator.__version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "families": families,
            "config": ctx.config.to_dict(),
            "options": dict(results.get("options", {})),
            "reference": reference,
            "data_files": ctx.data.provenance(),
            "data_dir": str(ctx.data.root),
            "family": results["provenance"],
            "uncertainty": describe_uncertainty(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "timings_s": timings,
    }
