"""The evaluation pipeline: ingest -> table -> families -> summary.

Each family is a module with ``run(ctx) -> FamilyResult``; the pipeline is the
ordered list below, so ``--families`` is just a selection (dependencies are
added automatically).
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.progress import Progress, no_progress
from evaluator.data import DataDir
from evaluator.ingest.checks import shorten
from evaluator.ingest.types import IngestError, Item


@dataclass(frozen=True)
class FamilySpec:
    module: str
    requires: tuple[str, ...] = ()
    description: str = ""


# Order matters: a family runs after those it requires.
FAMILIES: dict[str, FamilySpec] = {
    "validity": FamilySpec("evaluator.families.validity.family", (), "charge neutrality, distances, plausibility"),
    "uniqueness": FamilySpec("evaluator.families.uniqueness.family", ("validity",), "StructureMatcher classes"),
    "novelty": FamilySpec("evaluator.families.novelty.family", ("validity",), "vs the reference set"),
    "stability": FamilySpec("evaluator.families.stability.family", ("validity",), "MLIP relaxation + E_hull"),
    "sun": FamilySpec("evaluator.families.sun.family", ("stability", "novelty"), "SUN / MSUN"),
    "diversity": FamilySpec("evaluator.families.diversity.family", ("validity",), "coverage, entropies, Vendi"),
    "distribution": FamilySpec("evaluator.families.distribution.family", ("validity",), "JSD, MMD, FD to LeMat-Bulk"),
    "hhi": FamilySpec("evaluator.families.hhi.family", ("validity",), "supply risk"),
}


def resolve_families(selected: list[str] | None) -> list[str]:
    """The families to run, in pipeline order, with their dependencies."""
    if not selected:
        return list(FAMILIES)
    unknown = [f for f in selected if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in FAMILIES[name].requires:
                add(dep)

    for f in selected:
        add(f)
    return [f for f in FAMILIES if f in wanted]


def build_table(items: list[Item]) -> tuple[pd.DataFrame, list]:
    """One row per submitted structure with parse status and basic identity."""
    rows, structures = [], []
    for i, item in enumerate(items):
        s = item.structure
        row = {"index": i, "source": item.source, "parse_ok": s is not None,
               "parse_reason": item.error, "formula": None, "reduced_formula": None,
               "chemsys": None, "nsites": None, "structure": None}
        if s is not None:
            comp = s.composition
            row.update(formula=comp.formula.replace(" ", ""), reduced_formula=comp.reduced_formula,
                       chemsys=comp.chemical_system, nsites=len(s), structure=s.to_json())
        rows.append(row)
        structures.append(s)
    table = pd.DataFrame(rows, columns=list(rows[0]) if rows else
                         ["index", "source", "parse_ok", "parse_reason", "formula",
                          "reduced_formula", "chemsys", "nsites", "structure"])
    table["nsites"] = table["nsites"].astype("Int64")
    return table.set_index("index", drop=False).rename_axis(None), structures


@dataclass
class Evaluation:
    table: pd.DataFrame
    summary: dict


def _merge(ctx: EvalContext, family: str, columns: pd.DataFrame) -> None:
    """Add a family's columns; rows it did not return are 'skipped' with a reason."""
    table = ctx.table
    for col in columns.columns:
        table[col] = columns[col].reindex(table.index)
    status, reason = f"{family}_status", f"{family}_reason"
    if status not in table:
        table[status] = pd.Series("ok", index=columns.index).reindex(table.index)
    # object dtype: an all-None column from a family arrives as float64 (NaN)
    table[status] = table[status].astype(object)
    table[reason] = table[reason].astype(object) if reason in table else None
    skipped = table[status].isna()
    if family != "validity" and "validity_valid" in table:
        why = table["parse_ok"].map({False: "parse failed", True: "invalid structure"})
    else:
        why = table["parse_ok"].map({False: "parse failed", True: "not evaluated"})
    table.loc[skipped, reason] = why[skipped]
    table.loc[skipped, status] = "skipped"


def run_families(ctx: EvalContext, families: list[str]) -> dict:
    """Run ``families`` in order on ``ctx``; returns per-family metrics/missing/provenance/timings."""
    out = {"metrics": {}, "missing": {}, "provenance": {}, "timings": {}}
    for name in families:
        t0 = time.perf_counter()
        ctx.progress(name, 0, 0)
        result = importlib.import_module(FAMILIES[name].module).run(ctx)
        _merge(ctx, name, result.columns)
        out["metrics"][name] = result.metrics
        out["metrics"].update(result.groups)
        if result.missing:
            out["missing"][name] = result.missing
        if result.provenance:
            out["provenance"][name] = result.provenance
        out["timings"][name] = round(time.perf_counter() - t0, 3)
    return out


def evaluate_items(
    items: list[Item],
    config: EvalConfig | None = None,
    data: DataDir | None = None,
    work_dir: Path | None = None,
    progress: Progress = no_progress,
    ingest_seconds: float | None = None,
) -> Evaluation:
    """Evaluate already-ingested items (the worker and app call this)."""
    from evaluator.summary import build_summary

    config = config or EvalConfig()
    data = data or DataDir()
    families = resolve_families(config.families)
    t0 = time.perf_counter()
    table, structures = build_table(items)
    ctx = EvalContext(table, structures, config, data, work_dir, progress)
    results = run_families(ctx, families)
    if ingest_seconds is not None:
        results["timings"] = {"ingest": round(ingest_seconds, 3), **results["timings"]}
    results["timings"]["total"] = round(time.perf_counter() - t0 + (ingest_seconds or 0), 3)
    return Evaluation(ctx.table, build_summary(ctx, families, results))


def refuse_if_nothing_parsed(items: list[Item], examples: int = 3) -> None:
    """An upload in which no structure could be read is unusable (a user error), not a
    scorecard of zeros: raise IngestError naming the most common reasons."""
    if any(item.error is None for item in items):
        return
    reasons = Counter(item.error for item in items).most_common(examples)
    listed = "; ".join(f"{shorten(str(r), 160)} ({n}×)" for r, n in reasons)
    raise IngestError(f"none of the {len(items):,} structures in the upload could be read: {listed}")


def evaluate(
    inputs: list[str | Path],
    config: EvalConfig | None = None,
    data: DataDir | None = None,
    work_dir: Path | None = None,
    progress: Progress = no_progress,
) -> Evaluation:
    """Ingest ``inputs`` (files or folders) and evaluate them. Raises IngestError."""
    from evaluator.ingest import read_inputs

    config = config or EvalConfig()
    t0 = time.perf_counter()
    items = read_inputs(inputs, config.limits, progress=progress)
    refuse_if_nothing_parsed(items)
    return evaluate_items(items, config, data, work_dir, progress, time.perf_counter() - t0)
