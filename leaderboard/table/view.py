"""The leaderboard as displayed: which measures a view shows, in which order and format,
with confidence intervals, ranked and filtered (``build_view``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evaluator import catalogue as C
from leaderboard.table.formats import column_format
from leaderboard.table.measures import DEFAULT_RANK, DEFAULT_SHOW, SHOW_MODES, Measure, catalogue, family_label
from leaderboard.table.metadata import COMPACT_META, FULL_META, META_LABELS, evaluated_by, meta_column
from leaderboard.table.protocols import ID_COLUMN, UNKNOWN, protocol_keys, reference_of
from leaderboard.table.ranking import filter_rows, norm_bool, rank
from leaderboard.table.ties import TIED_HEADER, tied_text

# The full view's default columns (the picker adds any other measure): per family its
# headline metrics and the ones a reader compares, relaxed and unrelaxed.
FULL_DEFAULT = (
    "validity.valid", "validity.charge_neutral", "validity.distance_valid", "validity.plausible",
    "uniqueness.unique", "novelty.novel",
    "stability.stable", "stability.metastable", "stability.mean_e_above_hull", "stability.median_e_above_hull",
    "stability.mean_rmsd", "stability_unrelaxed.stable", "stability_unrelaxed.metastable",
    "stability_unrelaxed.mean_e_above_hull",
    "sun.sun_plus_msun", "sun.sun", "sun.msun", "sun_unrelaxed.sun_plus_msun",
    "diversity.element_coverage", "diversity.space_group_coverage", "diversity.vendi_element",
    "distribution.jsd", "distribution.mmd", "distribution.frechet_chgnet", "hhi.combined_mean",
)
WHY_NO_CI = ("— in a CI column: no interval stored (results evaluated before the evaluator computed "
             "bootstrap intervals, or the rate itself was not computed)")


@dataclass
class View:
    """A table ready for display: numbers (percentages already ×100) and headers."""

    frame: pd.DataFrame  # display headers as columns
    measures: list[Measure]  # one per metric column of ``frame``, same order
    metric_headers: list[str]
    formats: dict[str, str] = field(default_factory=dict)  # header -> format spec
    show: str = DEFAULT_SHOW
    submission_ids: list[str] = field(default_factory=list)
    # metadata every row shares, shown once instead of in a column (compact view): label -> value
    common: dict[str, str] = field(default_factory=dict)


def select_measures(measures: list[Measure], view: str = "compact",
                    families: Iterable[str] | None = None) -> list[Measure]:
    """Measures shown in ``view`` ("compact"/"full"), restricted to ``families``. The compact
    view (meant to fit a laptop screen) shows each family's first headline measure; the full
    view every measure (the column picker narrows it)."""
    fams = set(families) if families else None
    out = []
    seen: set[str] = set()
    for m in measures:
        if fams is not None and m.base_family not in fams:
            continue
        if view == "compact" and (not m.headline or m.family in seen):
            continue
        seen.add(m.family)
        out.append(m)
    if view == "compact" and not out and fams:  # a family without headline measures: show all of it
        out = [m for m in measures if m.base_family in fams]
    return out


def number_format(m: Measure, show: str, values: Iterable[Any] = ()) -> str:
    """One format per column: rates as % with one decimal, counts as integers, energies
    (eV/atom) with 3 decimals (meV resolution), anything else with 3 significant figures of
    the column's largest value (``values``), the same decimals in every cell, trailing zeros kept."""
    if m.is_percent(show):
        return "{:.1f}"
    if m.counted or m.name.endswith("_count"):
        return "{:.0f}"
    if m.unit == "eV/atom":
        return "{:.3f}"
    return column_format(values)


def default_full_columns(measures: list[Measure]) -> list[str]:
    """Measure keys the full view shows before the user picks columns: FULL_DEFAULT, plus every
    directed top-level metric of a family the catalogue does not declare (bookkeeping counts,
    fractions of parsed, failure counters and nested breakdowns stay in the picker)."""
    return [m.key for m in measures if m.key in FULL_DEFAULT
            or (m.direction and "." not in m.name and m.base_family not in C.FAMILIES)]


def column_choices(measures: list[Measure]) -> list[tuple[str, str]]:
    """(label, key) for the column picker, grouped by family (catalogue order)."""
    return [(f"{family_label(m.base_family)} · {m.header()}", m.key) for m in measures]


def ci_level(df: pd.DataFrame) -> str:
    """The confidence level of the intervals in ``df`` as text ("95 %")."""
    col = "uncertainty_level"
    if col in df.columns:
        lv = pd.to_numeric(df[col], errors="coerce").dropna()
        if len(lv):
            return f"{100 * float(lv.iloc[0]):.0f} %"
    return "95 %"


def ci_text(lo: Any, hi: Any, percent: bool) -> str:
    """'12.3–15.0' (percent: ×100, one decimal); '—' when either end is missing."""
    a, b = pd.to_numeric(pd.Series([lo, hi]), errors="coerce")
    if not (np.isfinite(a) and np.isfinite(b)):
        return "—"
    k = 100.0 if percent else 1.0
    return f"{k * a:.1f}–{k * b:.1f}"


def ci_texts(lo: pd.Series, hi: pd.Series) -> list[str]:
    """``ci_text(lo, hi, True)`` of every row (vectorised: one call per column, not per cell)."""
    a = 100.0 * pd.to_numeric(lo, errors="coerce").to_numpy(float)
    b = 100.0 * pd.to_numeric(hi, errors="coerce").to_numpy(float)
    ok = np.isfinite(a) & np.isfinite(b)
    return [f"{x:.1f}–{y:.1f}" if good else "—" for x, y, good in zip(a, b, ok)]


def _yes_no_dash(value: Any) -> str:
    flag = norm_bool(value)
    return "—" if flag is None else "yes" if flag else "no"


def rankable(df: pd.DataFrame) -> bool:
    """Whether the rows of ``df`` may be ranked together: all of one known protocol (a table
    without a protocol column, e.g. built by hand, counts as one)."""
    if ID_COLUMN not in df.columns or df.empty:
        return True
    keys = set(protocol_keys(df))
    return len(keys) == 1 and UNKNOWN not in keys


def build_view(results: pd.DataFrame, *, view: str = "compact", families: Iterable[str] | None = None,
               show: str = DEFAULT_SHOW, search: str = "", training_set: str | None = None,
               task: str | None = None, relaxed: str | None = None, rank_by: str = DEFAULT_RANK,
               ascending: bool | None = None, columns: Iterable[str] | None = None) -> View:
    """The ranked, filtered leaderboard in ``view`` mode, as a display-ready frame.

    ``results``: the store's results table (``leaderboard.publishing.results.load_results_table``,
    which upgrades rows of older summaries). ``columns``: measure keys the full view shows
    (the column picker; None/empty = the default_full_columns of the chosen families). The
    full view adds a confidence-interval column after every rate that has one; both views
    add ``ties.TIED_HEADER``: how many submissions' intervals on the rank metric overlap the
    row's (their order is not distinguishable at that level) and the ranks they span. The
    measure ranked by is always shown (first, after the metadata). In the compact view a
    metadata text every row shares ("Evaluated by") is left out of the table and returned in
    ``View.common``, to be said once. Rows of several protocols (or of an unknown one) get no
    rank (``rankable``): pass the rows of one protocol (``leaderboard.table.protocols.rows_of``).
    """
    show = SHOW_MODES.get(show, show)
    df = results.copy()
    measures = catalogue(df)
    reference = reference_of(df)  # what novelty is relative to, named in its header
    df = filter_rows(df, search, training_set, task, relaxed)
    df = rank(df, measures, rank_by, show, ascending)
    shown = select_measures(measures, view, families)
    rank_m = next((m for m in measures if m.key == rank_by), None)
    if rank_m is not None and rank_m not in shown:  # the ranked-by measure is always shown
        shown = [rank_m, *shown]
    if view != "compact":
        keep = set(columns or []) or set(default_full_columns(measures))
        shown = [m for m in shown if m.key in keep or m.key == rank_by]
    # The measure the table is ranked by comes first, right after the metadata.
    lead = [m for m in shown if m.key == rank_by]
    shown = lead + [m for m in shown if m.key != rank_by]

    out = pd.DataFrame(index=df.index)
    common: dict[str, str] = {}
    out["#"] = df["__rank__"] if "__rank__" in df else pd.Series(dtype="Int64")
    if not rankable(df):  # rows of several protocols, or of an unknown one: listed, never ranked
        out["#"] = pd.Series(pd.NA, index=df.index, dtype="Int64")
    for canonical in (COMPACT_META if view == "compact" else FULL_META):
        col = meta_column(df, canonical)
        if col is None:
            continue
        values: pd.Series[Any] | list[str] = df[col]
        if canonical == "model":
            ver = meta_column(df, "model_version")
            if ver is not None and ver != col:
                values = [f"{m} ({v})" if isinstance(v, str) and v else str(m) for m, v in zip(df[col], df[ver])]
        if canonical == "provenance":
            values = evaluated_by(df)
            if view == "compact" and len(df) and values.nunique() == 1:  # one text for every row: said once
                common[META_LABELS[canonical]] = str(values.iloc[0])
                continue
        if canonical == "relaxed":
            values = df[col].map(_yes_no_dash)
        out[META_LABELS[canonical]] = values
    headers, formats = [], {}
    for m in shown:
        col = m.column(show)
        values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)
        if m.is_percent(show):
            values = values * 100.0
        h = m.header(show, reference)
        while h in out.columns:  # never two columns with one header
            h += " "
        out[h] = values.astype(float)
        headers.append(h)
        formats[h] = number_format(m, show, out[h])
        ci = m.ci_columns("frac_submitted" if show == "count" else show)
        if ci is not None and (m.key == rank_by or (view != "compact" and m.headline)):
            lo, hi = (df[c] if c in df else pd.Series(np.nan, index=df.index) for c in ci)
            out[f"{m.label} {ci_level(df)} CI [%]"] = ci_texts(lo, hi)
    if rank_m is not None and rank_m.counted and not df.empty:
        cols = rank_m.ci_columns("frac_submitted" if show == "count" else show)
        if cols is None or not all(c in df.columns for c in cols):
            out[TIED_HEADER] = "—"
        else:
            out[TIED_HEADER] = tied_text(pd.to_numeric(df[cols[0]], errors="coerce").to_numpy(float),
                                         pd.to_numeric(df[cols[1]], errors="coerce").to_numpy(float), out["#"])
    sid = meta_column(df, "submission_id")
    ids = [str(x) for x in df[sid]] if sid else []
    return View(out.reset_index(drop=True), shown, headers, formats, show, ids, common)
