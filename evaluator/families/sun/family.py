"""Family "sun": SUN and MSUN (stable / metastable, unique, novel).

- SUN: E_hull <= stable threshold (0 eV/atom), unique within that stable set,
  novel. MSUN: stable threshold < E_hull <= metastable threshold (0.1, stable
  ones excluded), unique within that set, novel (LeMat-GenBench definitions).
- "Unique within the set": StructureMatcher equivalence classes (the identity
  matcher, as the uniqueness family uses) of the submitted structures in the set;
  each class counts once, through its first occurrence (upload order). Novelty is
  the novelty family's ``novelty_novel`` of that representative (computed on the
  submitted structure, against the reference).
- Headline uses relaxed E_hull (``stability_e_above_hull``); the same counts
  from the submitted geometry (``stability_unrelaxed_e_above_hull``,
  LeMat-GenBench compatible) are published as ``metrics.sun_unrelaxed``.

A row without E_hull or without a novelty verdict, or whose uniqueness in its set
is undecidable (the matcher cannot reduce it), is never a success but stays in
every denominator. Columns: ``sun_sun``, ``sun_msun`` (and
``sun_unrelaxed_sun``, ``sun_unrelaxed_msun``): True on counted representatives;
``stability_sparse_chemsys``: the row's chemical system has few reference hull entries
(rule in ``provenance.sun.sparse_chemsys``), set here because it qualifies SUN;
``sun_candidate``: a JSON candidate page for the headline SUN/MSUN rows (lowest E_hull
first, capped; ``evaluator.candidates``, ``provenance.sun.candidates``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evaluator.candidates import candidate_pages
from evaluator.context import EvalContext
from evaluator.families.base import Family, FamilyResult, NoOptions
from evaluator.families.novelty.metrics import NOVEL
from evaluator.families.stability import metrics as S
from evaluator.families.stability.family import EHULL_TOL, reference_hull
from evaluator.families.sun.metrics import (CANDIDATE, METRICS, MSUN, SPARSE_CHEMSYS, SUN, UNRELAXED, UNRELAXED_MSUN,
                                            UNRELAXED_SUN)
from evaluator.identity import matcher as M
from evaluator.reference.coverage import SPARSE_RULE, sparse_chemsys

if TYPE_CHECKING:

    from evaluator.reference.hull import HullReference


def _novel_flags(table: pd.DataFrame, rows: list[int]) -> dict[int, bool | None]:
    if NOVEL.name not in table:
        return dict.fromkeys(rows)
    values = table.loc[rows, NOVEL.name].tolist()
    return {i: (None if pd.isna(v) else bool(v)) for i, v in zip(rows, values)}


def _representatives(ctx: EvalContext, members: list[int], stats: dict[str, int],
                     failed: dict[int, str]) -> list[int]:
    """First occurrence of each StructureMatcher class among ``members`` (upload order).

    A member the matcher cannot reduce belongs to no class (as in the uniqueness
    family): it is left out and its reason added to ``failed``.
    """
    if len(members) < 2:
        return list(members)
    rep, why, st = M.row_classes(members, lambda row: ctx.structures[row],
                                 lambda rows: ctx.track(rows, "sun: reduce"))
    failed.update(why)
    for k, v in st.items():
        stats[k] = stats.get(k, 0) + v
    return [row for row in members if rep.get(row) == row]


def count_sun(ctx: EvalContext, e_hull: pd.Series, novel: dict[int, bool | None], stats: dict[str, int],
              failed: dict[int, str] | None = None) -> tuple[list[int], list[int], dict[str, int]]:
    """(SUN rows, MSUN rows, set sizes) for one E_hull column; ``failed`` collects
    rows whose uniqueness could not be decided."""
    failed = {} if failed is None else failed
    cfg = ctx.config
    e = e_hull.astype(float)
    finite = e[np.isfinite(e)]
    stable = sorted(finite.index[finite <= cfg.stable_threshold + EHULL_TOL])
    meta = sorted(finite.index[(finite > cfg.stable_threshold + EHULL_TOL)
                               & (finite <= cfg.metastable_threshold + EHULL_TOL)])
    stable_rep = _representatives(ctx, stable, stats, failed)
    meta_rep = _representatives(ctx, meta, stats, failed)
    sun = [i for i in stable_rep if novel.get(i) is True]
    msun = [i for i in meta_rep if novel.get(i) is True]
    sizes = {"stable_unique_count": len(stable_rep), "metastable_only_unique_count": len(meta_rep)}
    return sun, msun, sizes


def run(ctx: EvalContext, options: NoOptions) -> FamilyResult:
    """SUN/MSUN columns and ``metrics.sun`` / ``metrics.sun_unrelaxed``."""
    result = FamilyResult()
    table = ctx.table
    rows = [i for i in ctx.valid_index if ctx.structures[i] is not None]
    novel = _novel_flags(table, rows)
    if S.E_ABOVE_HULL.name not in table:
        not_run = "stability family did not run"
        result.columns = pd.DataFrame({METRICS.status.name: "failed", METRICS.reason.name: not_run}, index=rows)
        for name in ("sun_count", "msun_count", "sun_plus_msun_count"):
            result.absent(name, not_run)
        return result

    stats = {"fits": 0, "reductions": 0}
    status: dict[int, str] = {}
    reason: dict[int, str | None] = {}
    no_e_hull = table[S.E_ABOVE_HULL.name].isna()
    stability_reason = S.METRICS.reason.name
    for i in rows:
        why: list[str] = []
        if no_e_hull.at[i]:
            why.append("no relaxed E_hull: " + str(table.at[i, stability_reason] if stability_reason in table
                                                 else "stability failed"))
        if novel.get(i) is None:
            why.append("no novelty verdict")
        status[i] = "failed" if why else "ok"
        reason[i] = "; ".join(why) if why else None

    cols = pd.DataFrame(index=pd.Index(rows))
    cols[METRICS.status.name] = pd.Series(status)
    cols[METRICS.reason.name] = pd.Series(reason, dtype=object)
    groups: dict[str, dict[str, Any]] = {}
    failed: dict[int, str] = {}
    headline: tuple[list[int], list[int]] = ([], [])
    for group, e_column, sun_column, msun_column in (
            (None, S.E_ABOVE_HULL, SUN, MSUN), (UNRELAXED, S.UNRELAXED_E_ABOVE_HULL, UNRELAXED_SUN, UNRELAXED_MSUN)):
        column = e_column.name
        e_hull = table.loc[rows, column] if column in table else pd.Series(np.nan, index=rows)
        sun, msun, sizes = count_sun(ctx, e_hull, novel, stats, failed)
        cols[sun_column.name] = cols.index.isin(sun)
        cols[msun_column.name] = cols.index.isin(msun)
        m: dict[str, Any] = {}
        m.update(ctx.counted("sun", len(sun)))
        m.update(ctx.counted("msun", len(msun)))
        m.update(ctx.counted("sun_plus_msun", len(sun) + len(msun)))
        m.update(sizes)
        m["novelty_unknown_count"] = int(sum(v is None for v in novel.values()))
        if group is not None:
            groups[group] = m
        else:
            result.metrics = m
            headline = (sun, msun)
    for i, failure in failed.items():  # not counted in either set: say why
        cols.at[i, METRICS.status.name] = "failed"
        earlier = cols.at[i, METRICS.reason.name]
        cols.at[i, METRICS.reason.name] = "; ".join(str(x) for x in (earlier, failure) if x)
    hull, hull_error = _hull(ctx)
    sparse_rule = _add_sparse_flag(ctx, cols, hull, hull_error)
    candidates = _add_candidates(table, cols, headline, hull, hull_error)
    result.columns = cols
    result.groups = groups
    result.provenance = {
        "stable_threshold_eV_per_atom": ctx.config.stable_threshold,
        "metastable_threshold_eV_per_atom": ctx.config.metastable_threshold,
        "uniqueness": "StructureMatcher classes within each set (submitted structures), first occurrence counts",
        "novelty": "novelty_novel of the representative (novelty family)",
        "e_above_hull": {"headline": "relaxed", "sun_unrelaxed": "submitted geometry"},
        "matcher_stats": stats,
        "sparse_chemsys": sparse_rule,
        "candidates": candidates,
    }
    return result


def _hull(ctx: EvalContext) -> tuple[HullReference | None, str | None]:
    """(the run's reference hull, None) or (None, why it is unavailable): the hull the
    stability family scores against (``reference_hull`` with the run's stability options)."""
    try:
        return reference_hull(ctx), None
    except Exception as exc:  # noqa: BLE001 - no hull: the flag and candidate pages say why
        return None, f"{type(exc).__name__}: {exc}"[:300]


def _add_sparse_flag(ctx: EvalContext, cols: pd.DataFrame, hull: HullReference | None,
                     hull_error: str | None) -> dict[str, Any]:
    """``stability_sparse_chemsys`` (see ``evaluator.reference.coverage.SPARSE_RULE``): a caveat
    on every stable/SUN claim, so it is set where SUN is counted; returns its provenance."""
    if hull is None:  # no hull: the flag is unknown, not a guess
        cols[SPARSE_CHEMSYS.name] = pd.Series(pd.NA, index=cols.index, dtype="boolean")
        return {**SPARSE_RULE, "unavailable": hull_error}
    cols[SPARSE_CHEMSYS.name] = sparse_chemsys(ctx.structures, list(cols.index), hull)
    return {**SPARSE_RULE, "hull": hull.name}


def _add_candidates(table: pd.DataFrame, cols: pd.DataFrame, headline: tuple[list[int], list[int]],
                    hull: HullReference | None, hull_error: str | None) -> dict[str, Any]:
    """``sun_candidate`` (``evaluator.candidates``) for the headline SUN/MSUN rows."""
    cols[CANDIDATE.name] = pd.Series([None] * len(cols), index=cols.index, dtype=object)
    if hull is None:
        return {"unavailable": f"no reference hull: {hull_error}"}
    pages, provenance = candidate_pages(table, *headline, hull)
    for i, page in pages.items():
        cols.at[i, CANDIDATE.name] = page
    return provenance


FAMILY = Family(name="sun", requires=("stability", "novelty"), options=NoOptions, metrics=METRICS, run=run,
                description="SUN / MSUN")
