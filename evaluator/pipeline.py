"""The evaluation pipeline: ingest -> table -> families -> summary.

Each family is a ``Family`` object (``evaluator/families/<name>/family.py``); the
pipeline is the ordered tuple below, so ``--families`` is just a selection
(dependencies are added automatically). A family's columns must be declared
(``MetricSet.columns``): the pipeline refuses an undeclared one (``UndeclaredColumn``).
``check_config`` turns each family's entry of ``EvalConfig.options`` into its typed
options dataclass, refusing unknown families and options, before any work.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evaluator.columns import (BASE_COLUMNS, CHEMSYS, FORMULA, INDEX, NSITES, PARSE_OK, PARSE_REASON,
                               REDUCED_FORMULA, SOURCE, STRUCTURE, check_declared)
from evaluator.config import EvalConfig
from evaluator.context import EvalContext
from evaluator.data import DataDir
from evaluator.families.base import Family
from evaluator.families.validity.metrics import METRICS as VALIDITY_METRICS
from evaluator.families.validity.metrics import VALID
from evaluator.family_registry import FAMILIES
from evaluator.ingest import read_inputs
from evaluator.ingest.checks import shorten
from evaluator.ingest.types import IngestError, Item
from evaluator.progress import Progress, no_progress
from evaluator.protocol import execution_of, protocol_of
from evaluator.reference import Reference
from evaluator.reference.registry import load_reference
from evaluator.summary import Summary, build_summary

if TYPE_CHECKING:
    from pymatgen.core.structure import Structure

__all__ = ["FAMILIES", "Evaluation", "build_table", "check_config", "evaluate", "evaluate_items",
           "families_by_name", "protocol_of", "reference_loader", "refuse_if_nothing_parsed", "resolve_families",
           "run_families"]


def families_by_name() -> dict[str, Family[Any]]:
    """``FAMILIES`` by name, in pipeline order."""
    return {f.name: f for f in FAMILIES}


def resolve_families(selected: list[str] | None) -> list[str]:
    """The families to run, in pipeline order, with their dependencies."""
    by_name = families_by_name()
    if not selected:
        return list(by_name)
    unknown = [f for f in selected if f not in by_name]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(by_name)}")
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name not in wanted:
            wanted.add(name)
            for dep in by_name[name].requires:
                add(dep)

    for f in selected:
        add(f)
    return [f for f in by_name if f in wanted]


def check_config(config: EvalConfig) -> dict[str, Any]:
    """The typed options of every family ``config`` selects (with its dependencies),
    by family name, in pipeline order.

    Raises ValueError for an unknown family (in ``config.families`` or as a key of
    ``config.options``) and for an unknown or ill-typed option of any family named in
    ``config.options``, selected or not: a misspelled option is an error, never a
    silent default.
    """
    names = resolve_families(config.families)
    by_name = families_by_name()
    unknown = sorted(set(config.options) - set(by_name))
    if unknown:
        raise ValueError(f"options given for unknown family(ies) {unknown}; "
                         f"families are {', '.join(by_name)}")
    resolved: dict[str, Any] = {}
    for family in FAMILIES:
        if family.name in config.options or family.name in names:
            try:
                options = family.options_from(config.options.get(family.name))
            except TypeError as exc:  # e.g. a value of the wrong kind for a dataclass field
                raise ValueError(f"family {family.name!r}: {exc}") from None
            if family.name in names:
                resolved[family.name] = options
    return resolved


def reference_loader(config: EvalConfig, data: DataDir) -> Callable[[], Reference]:
    """The usual reference loader of a run: ``config.reference`` from the registry."""
    return lambda: load_reference(config.reference, data)


def build_table(items: list[Item]) -> tuple[pd.DataFrame, list[Structure | None]]:
    """One row per submitted structure with parse status and basic identity."""
    rows: list[dict[str, Any]] = []
    structures: list[Structure | None] = []
    for i, item in enumerate(items):
        s = item.structure
        row: dict[str, Any] = {c.name: None for c in BASE_COLUMNS}
        row.update({INDEX.name: i, SOURCE.name: item.source, PARSE_OK.name: s is not None,
                    PARSE_REASON.name: item.error})
        if s is not None:
            comp = s.composition
            row.update({FORMULA.name: comp.formula.replace(" ", ""), REDUCED_FORMULA.name: comp.reduced_formula,
                        CHEMSYS.name: comp.chemical_system, NSITES.name: len(s), STRUCTURE.name: s.to_json()})
        rows.append(row)
        structures.append(s)
    table = pd.DataFrame(rows, columns=[c.name for c in BASE_COLUMNS])
    table[NSITES.name] = table[NSITES.name].astype("Int64")
    return table.set_index(INDEX.name, drop=False).rename_axis(None), structures


@dataclass
class Evaluation:
    table: pd.DataFrame
    summary: Summary


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
    if family != VALIDITY_METRICS.family and VALID.name in table:
        why = table[PARSE_OK.name].map({False: "parse failed", True: "invalid structure"})
    else:
        why = table[PARSE_OK.name].map({False: "parse failed", True: "not evaluated"})
    table.loc[skipped, reason] = why[skipped]
    table.loc[skipped, status] = "skipped"


def run_families(ctx: EvalContext, families: list[str],
                 options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``families`` in order on ``ctx``; returns per-family metrics/missing/provenance/timings
    and the effective options (defaults included) each family ran with.

    options: the typed options by family (``check_config``); a family without an entry
    gets its options from ``ctx.config``. A context built without a reference loader
    gets the usual one (``reference_loader``).
    """
    if ctx.reference_loader is None:
        ctx.reference_loader = reference_loader(ctx.config, ctx.data)
    options = dict(options or {})
    by_name = families_by_name()
    out: dict[str, dict[str, Any]] = {"metrics": {}, "missing": {}, "provenance": {}, "timings": {},
                                      "options": {}}
    for name in families:
        family = by_name[name]
        family_options = options[name] if name in options else family.options_from(ctx.config.options.get(name))
        t0 = time.perf_counter()
        ctx.progress(name, 0, 0)
        out["options"][name] = dataclasses.asdict(family_options)
        result = family.run(ctx, family_options)
        check_declared(name, result.columns.columns, family.metrics.declared_columns())
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
    """Evaluate already-ingested items (the worker and app call this). Raises ValueError
    for an unknown family or option (``check_config``) before any work."""
    config = config or EvalConfig()
    options = check_config(config)
    data = data or DataDir()
    protocol = protocol_of(config, data)  # before any work: refuses missing weights or reference files
    families = list(options)
    t0 = time.perf_counter()
    table, structures = build_table(items)
    ctx = EvalContext(table, structures, config, data, work_dir, progress,
                      reference_loader=reference_loader(config, data))
    results = run_families(ctx, families, options)
    if ingest_seconds is not None:
        results["timings"] = {"ingest": round(ingest_seconds, 3), **results["timings"]}
    results["timings"]["total"] = round(time.perf_counter() - t0 + (ingest_seconds or 0), 3)
    execution = execution_of(config, results["provenance"].get("stability"))
    return Evaluation(ctx.table, build_summary(ctx, families, results, protocol.block(), execution))


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
    """Ingest ``inputs`` (files or folders) and evaluate them. Raises IngestError, and
    ValueError for an unknown family or option (``check_config``) before reading anything."""
    config = config or EvalConfig()
    check_config(config)
    protocol_of(config, data)  # missing weights or reference files: refused before reading anything
    t0 = time.perf_counter()
    items = read_inputs(inputs, config.limits, progress=progress)
    refuse_if_nothing_parsed(items)
    return evaluate_items(items, config, data, work_dir, progress, time.perf_counter() - t0)
