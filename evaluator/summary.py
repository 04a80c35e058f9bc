"""The scorecard of one evaluation (schema documented in README 'summary.json')."""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections import Counter

import evaluator
from evaluator.context import EvalContext
from evaluator.uncertainty import bootstrap_intervals
from evaluator.uncertainty import describe as describe_uncertainty

SCHEMA_VERSION = 1


def _reason_counts(table, status_col: str, reason_col: str, failed: str) -> dict[str, int]:
    if status_col not in table:
        return {}
    mask = table[status_col] == failed
    return dict(Counter(table.loc[mask, reason_col].fillna("unknown")).most_common())


def build_summary(ctx: EvalContext, families: list[str], results: dict) -> dict:
    table = ctx.table
    n_parsed = int(table["parse_ok"].sum())
    n_valid = int(table["validity_valid"].fillna(False).astype(bool).sum()) if "validity_valid" in table else None
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

    parse_failures = Counter(table.loc[~table["parse_ok"], "parse_reason"].fillna("unknown"))
    return {
        "schema_version": SCHEMA_VERSION,
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
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "families": families,
            "config": ctx.config.to_dict(),
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
