"""The leaderboard table: metric catalogue, ranking, filters, views and colouring.

Input is the results table of the store (one row per finished, visible
submission): metadata columns plus flattened metric columns named
``<family>.<name>`` (a leading ``metrics.`` is accepted). Count metrics come as
three columns (METRICS.md section 0): ``<name>_count``, ``<name>_frac_submitted``
and ``<name>_frac_valid``; the catalogue folds them into one *measure* shown
as a count or as a percentage of submitted / of valid structures.

The catalogue is data driven: every metric column present in the results is
shown, with a label, family colour and direction; the known metrics below only
refine labels, directions and which ones the compact view shows.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# ---------------------------------------------------------------- families
# Pipeline order; each has a colour (RGB) used to tint its cells and headers.
FAMILY_COLOURS: dict[str, tuple[int, int, int]] = {
    "validity": (46, 134, 193),
    "uniqueness": (142, 68, 173),
    "novelty": (211, 84, 0),
    "stability": (39, 174, 96),
    "sun": (192, 57, 43),
    "diversity": (22, 160, 133),
    "distribution": (127, 140, 141),
    "hhi": (183, 149, 11),
}
FAMILY_LABELS = {
    "validity": "Validity", "uniqueness": "Uniqueness", "novelty": "Novelty",
    "stability": "Stability", "sun": "SUN / MSUN", "diversity": "Diversity",
    "distribution": "Distribution", "hhi": "Supply risk (HHI)",
}
OTHER_COLOUR = (90, 90, 90)

COUNT_SUFFIXES = ("_count", "_frac_submitted", "_frac_valid")
_FRACTION = re.compile(r"_frac_[a-z]+$")  # a lone fraction (e.g. valid_frac_parsed): a percentage
# Confidence intervals of rates: results columns "uncertainty.<family>.<name>_<rep>.lo"/".hi"
# (from summary.json's top-level "uncertainty" block, computed once by the evaluator).
UNCERTAINTY_PREFIX = "uncertainty."
SHOW_MODES = {  # UI label -> representation of counted measures
    "% of submitted": "frac_submitted",
    "% of valid": "frac_valid",
    "counts": "count",
}
DEFAULT_SHOW = "frac_submitted"
DEFAULT_RANK = "sun.sun_plus_msun"  # SUN + MSUN per submitted structure (METRICS.md §4)


@dataclass(frozen=True)
class Known:
    """What we know about a metric beyond its column name."""

    label: str
    direction: int  # +1 higher is better, -1 lower is better, 0 no preference
    unit: str = ""
    description: str = ""
    compact: bool = False  # shown in the compact view


# (family, name) -> Known. ``name`` is the base name (without count suffixes).
KNOWN: dict[tuple[str, str], Known] = {
    ("validity", "valid"): Known("Valid", +1, "", "charge-neutral, distance-valid and plausible", True),
    ("validity", "charge_neutral"): Known("Charge neutral", +1),
    ("validity", "distance_valid"): Known("Distance valid", +1),
    ("validity", "plausible"): Known("Plausible", +1),
    ("validity", "evaluated"): Known("Validity evaluated", 0),
    ("validity", "failed"): Known("Validity failed", -1),
    ("validity", "min_distance_ratio_median"): Known("Median min-distance ratio", 0),
    ("uniqueness", "unique"): Known("Unique", +1, "", "StructureMatcher equivalence classes among valid", True),
    ("uniqueness", "n_classes"): Known("Classes", +1),
    ("uniqueness", "n_duplicate_groups"): Known("Duplicate groups", -1),
    ("uniqueness", "n_duplicates"): Known("Duplicates", -1),
    ("uniqueness", "n_failed"): Known("Uniqueness failed", -1),
    ("novelty", "novel"): Known("Novel", +1, "", "not equivalent to any reference structure", True),
    ("novelty", "n_failed"): Known("Novelty failed", -1),
    ("stability", "stable"): Known("Stable", +1, "", "E_hull ≤ 0 eV/atom after MLIP relaxation", True),
    ("stability", "metastable"): Known("Metastable", +1, "", "E_hull ≤ 0.1 eV/atom after relaxation", True),
    ("stability", "mean_e_above_hull"): Known("Mean E_hull", -1, "eV/atom", "mean energy above hull", True),
    ("stability", "median_e_above_hull"): Known("Median E_hull", -1, "eV/atom"),
    ("stability", "evaluated"): Known("Got an energy", +1),
    ("stability", "hull_scored"): Known("Hull scored", +1),
    ("stability", "converged"): Known("Relax converged", +1),
    ("stability", "mean_formation_energy_per_atom"): Known("Mean E_form", -1, "eV/atom"),
    ("stability", "mean_formation_energy"): Known("Mean E_form", -1, "eV/atom"),
    ("stability", "mean_rmsd"): Known("Mean relax RMSD", -1, "Å"),
    ("stability", "mean_steps"): Known("Mean relax steps", 0),
    ("sun", "sun_plus_msun"): Known("SUN + MSUN", +1, "", "stable or metastable, unique and novel (default rank)", True),
    ("sun", "sun"): Known("SUN", +1, "", "stable, unique, novel", True),
    ("sun", "msun"): Known("MSUN", +1, "", "metastable (0 < E_hull ≤ 0.1), unique, novel", True),
    ("sun", "stable_unique"): Known("Stable & unique", +1),
    ("sun", "metastable_only_unique"): Known("Metastable-only & unique", +1),
    ("sun", "novelty_unknown"): Known("Novelty unknown", -1),
    ("diversity", "element_coverage"): Known("Element coverage", +1, "", "distinct elements / 118", True),
    ("diversity", "element_count"): Known("Distinct elements", +1),
    ("validity", "evaluated_count"): Known("Validity evaluated", 0),
    ("validity", "failed_count"): Known("Validity failed", -1),
    ("distribution", "jsd_space_group"): Known("JSD space group", -1),
    ("distribution", "jsd_crystal_system"): Known("JSD crystal system", -1),
    ("distribution", "jsd_element_presence"): Known("JSD element presence", -1),
    ("distribution", "jsd_element_counts"): Known("JSD element counts", -1),
    ("distribution", "mmd_volume"): Known("MMD volume", -1),
    ("distribution", "mmd_density_gcm3"): Known("MMD density (g/cm³)", -1),
    ("distribution", "mmd_density_atoms"): Known("MMD density (atoms/Å³)", -1),
    ("distribution", "frechet_chgnet"): Known("FD (CHGNet embeddings)", -1),
    ("distribution", "frechet_chgnet_n"): Known("FD structures (CHGNet)", 0),
    ("distribution", "frechet_lemat_mace"): Known("FD vs LeMat (MACE)", -1),
    ("distribution", "frechet_lemat_orb"): Known("FD vs LeMat (ORB)", -1),
    ("distribution", "frechet_lemat_uma"): Known("FD vs LeMat (UMA)", -1),
    ("hhi", "combined_median"): Known("HHI combined median", -1),
    ("hhi", "production_median"): Known("HHI production median", -1),
    ("hhi", "reserve_median"): Known("HHI reserve median", -1),
    ("diversity", "space_group_coverage"): Known("Space-group coverage", +1, "", "distinct space groups / 230"),
    ("diversity", "space_group_count"): Known("Distinct space groups", +1),
    ("diversity", "site_number_diversity"): Known("Site-number diversity", +1),
    ("diversity", "physical_size_diversity"): Known("Physical-size diversity", +1),
    ("diversity", "vendi_element"): Known("Vendi (elements)", +1, "", "Vendi score of element fractions", True),
    ("diversity", "vendi"): Known("Vendi score", +1, "", "Vendi score of element fractions", True),
    ("diversity", "n_structures"): Known("Structures used (diversity)", 0),
    ("distribution", "jsd"): Known("JSD", -1, "", "mean Jensen-Shannon divergence to LeMat-Bulk", True),
    ("distribution", "mmd"): Known("MMD", -1, "", "LeMat-GenBench-compatible MMD to LeMat-Bulk", True),
    ("distribution", "mmd_corrected"): Known("MMD (corrected)", -1),
    ("distribution", "n_structures"): Known("Structures used (distribution)", 0),
    ("distribution", "fd"): Known("Fréchet distance", -1),
    ("hhi", "combined_mean"): Known("HHI combined", -1, "", "supply risk, 0.25 production + 0.75 reserve", True),
    ("hhi", "production_mean"): Known("HHI production", -1),
    ("hhi", "reserve_mean"): Known("HHI reserve", -1),
    ("hhi", "n_structures"): Known("Structures used (hhi)", 0),
    ("hhi", "missing_data"): Known("Elements without HHI data", -1),
}

# Name fragments that fix the direction of metrics we do not know by name.
_LOWER_BETTER = re.compile(r"e_above_hull|ehull|jsd|mmd|frechet|(^|_)fd($|_)|hhi|rmsd|"
                           r"distance(?!_valid)|fail|error|invalid|duplicate|time|_s$|seconds")
_HIGHER_BETTER = re.compile(r"valid|unique|novel|stable|sun|coverage|diversity|vendi|entropy|"
                            r"converged|neutral|plausible|_count$|_frac_")

# ---------------------------------------------------------------- metadata
# Canonical metadata columns and the names the store may use for them.
META_ALIASES: dict[str, tuple[str, ...]] = {
    "submission_id": ("submission_id", "id", "job_id"),
    "model": ("model", "model_name", "meta.model"),
    "model_version": ("model_version",),
    "training_set": ("training_set", "train_set", "training_data", "meta.training_set"),
    "task": ("task", "meta.task"),
    "n_structures": ("n_submitted", "n_structures", "summary.n_submitted"),
    "n_valid": ("n_valid", "summary.n_valid"),
    "provenance": ("provenance", "evaluated_by", "source"),
    "relaxed": ("relaxed_before_submission", "relaxed", "pre_relaxed", "meta.relaxed"),
    "submitter": ("submitter", "user"),
    "finished_at": ("finished_at", "finished", "date"),
    "organisation": ("organisation", "organization"),
    "mlip": ("mlip",),
    "reference": ("reference",),
    "evaluator_version": ("evaluator_version",),
}
META_LABELS = {
    "model": "Model", "training_set": "Training set", "task": "Task",
    "n_structures": "N structures", "n_valid": "N valid", "provenance": "Evaluated by",
    "relaxed": "Pre-relaxed", "submitter": "Submitter", "finished_at": "Finished",
    "submission_id": "Submission", "organisation": "Organisation", "mlip": "MLIP", "reference": "Reference",
}
COMPACT_META = ("model", "training_set", "n_structures", "provenance", "relaxed")
FULL_META = ("model", "organisation", "training_set", "task", "n_structures", "n_valid", "provenance",
             "relaxed", "mlip", "reference", "submitter", "finished_at", "submission_id")


@dataclass(frozen=True)
class Measure:
    """One metric as the user sees it (a counted metric folds three columns)."""

    key: str  # "<family>.<name>", e.g. "sun.msun"
    family: str  # the column prefix, e.g. "stability_unrelaxed"
    name: str
    label: str
    direction: int
    columns: dict[str, str]  # representation ("count"/"frac_submitted"/"frac_valid"/"value") -> column
    unit: str = ""
    description: str = ""
    compact: bool = False

    @property
    def counted(self) -> bool:
        return "count" in self.columns

    @property
    def fraction(self) -> bool:
        """A plain value that is a fraction (``*_frac_parsed``): shown as a percentage."""
        return not self.counted and bool(_FRACTION.search(self.name))

    @property
    def colour_family(self) -> str:
        """Family whose colour this measure takes ("stability_unrelaxed" -> "stability")."""
        for fam in FAMILY_COLOURS:
            if self.family == fam or self.family.startswith(fam + "_"):
                return fam
        return self.family

    @property
    def arrow(self) -> str:
        return {1: "↑", -1: "↓"}.get(self.direction, "")

    def column(self, show: str = DEFAULT_SHOW) -> str:
        """The results column holding this measure in representation ``show``."""
        if not self.counted:
            return self.columns["value"]
        return self.columns.get(show) or self.columns.get("frac_submitted") or self.columns["count"]

    def is_percent(self, show: str = DEFAULT_SHOW) -> bool:
        return (self.counted and show != "count") or self.fraction

    def ci_columns(self, show: str = DEFAULT_SHOW) -> tuple[str, str] | None:
        """(lo, hi) results columns of this rate's confidence interval in representation
        ``show`` (``uncertainty.<family>.<name>_<rep>.lo``/``.hi``); None for non-rates."""
        if not self.counted or show == "count":
            return None
        base = f"{UNCERTAINTY_PREFIX}{self.family}.{self.name}_{show}"
        return f"{base}.lo", f"{base}.hi"

    def header(self, show: str = DEFAULT_SHOW) -> str:
        """Column header: label, family qualifier, direction arrow and unit."""
        qual = ""
        base = self.colour_family
        if self.family != base:
            qual = f" ({self.family[len(base) + 1:].replace('_', ' ')})"
        elif base not in FAMILY_COLOURS:
            qual = f" ({base.replace('_', ' ')})"
        unit = "%" if self.is_percent(show) else ("n" if self.counted else self.unit)
        if self.fraction:
            qual += f" (of {self.name.rsplit('_frac_', 1)[1]})"
        unit = f" [{unit}]" if unit else ""
        return f"{self.label}{qual} {self.arrow}{unit}".replace("  ", " ").strip()


def _metric_key(column: str) -> str | None:
    """'metrics.sun.sun_count' or 'sun.sun_count' -> 'sun.sun_count'; None for metadata."""
    col = column[len("metrics."):] if column.startswith("metrics.") else column
    if "." not in col:
        return None
    family = col.split(".", 1)[0]
    if family in ("meta", "summary", "provenance", "__derived__", UNCERTAINTY_PREFIX[:-1], "reference"):
        return None
    return col


def _guess_direction(name: str) -> int:
    """+1/-1/0 from the name ("<family>.<name>"); nested breakdowns are informational (0)."""
    if name.count(".") > 1:
        return 0
    if re.search(r"(^|\.)n_structures$|_n$|_n_count$", name):
        return 0  # bookkeeping counts: no better or worse
    if _LOWER_BETTER.search(name):
        return -1
    if _HIGHER_BETTER.search(name):
        return +1
    return 0


def _humanise(name: str) -> str:
    text = name.replace(".", " · ").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _known(family: str, name: str) -> Known | None:
    names = [name] + ([name[: -len("_count")]] if name.endswith("_count") else [])
    for n in names:
        if (family, n) in KNOWN:
            return KNOWN[(family, n)]
        for fam in FAMILY_COLOURS:  # "stability_unrelaxed" reuses stability's knowledge
            if family.startswith(fam + "_") and (fam, n) in KNOWN:
                return KNOWN[(fam, n)]
    return None


def _family_rank(family: str) -> int:
    order = list(FAMILY_COLOURS)
    for i, fam in enumerate(order):
        if family == fam or family.startswith(fam + "_"):
            return i
    return len(order)


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


def catalogue(columns: Iterable[str] | pd.DataFrame) -> list[Measure]:
    """Every measure present in ``columns`` (results-table columns, or a results
    DataFrame whose numeric columns are used), in family order.

    Adds ``sun.sun_plus_msun`` (derived) when SUN and MSUN are present without it.
    """
    if isinstance(columns, pd.DataFrame):
        columns = numeric_columns(columns)
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    for col in columns:
        key = _metric_key(col)
        if key is None:
            continue
        family, name = key.split(".", 1)
        rep, base = "value", name
        for suffix in COUNT_SUFFIXES:
            if name.endswith(suffix):
                rep, base = suffix[1:], name[: -len(suffix)]
                break
        grouped.setdefault((family, base), {})[rep] = col
    # A lone "_frac_*"/"_count" without siblings is still a counted measure;
    # a base that has both a value and counts keeps both as separate measures.
    # A lone "<name>_count" without fractions is a plain value (e.g. diversity.element_count).
    for (family, base), cols in list(grouped.items()):
        if "count" in cols and not any(k.startswith("frac_") for k in cols):
            col = cols.pop("count")
            grouped.setdefault((family, f"{base}_count"), {})["value"] = col
            if not cols:
                del grouped[(family, base)]
    measures: list[Measure] = []
    for (family, base), cols in grouped.items():
        counted = {k: v for k, v in cols.items() if k != "value"}
        if counted:
            measures.append(_make_measure(family, base, counted))
        if "value" in cols:
            name = base
            measures.append(_make_measure(family, name, {"value": cols["value"]},
                                          suffix=" value" if counted else ""))
    have = {(m.family, m.name) for m in measures if m.counted}
    if ("sun", "sun") in have and ("sun", "msun") in have and ("sun", "sun_plus_msun") not in have:
        k = KNOWN[("sun", "sun_plus_msun")]  # older summaries: derive SUN + MSUN from its parts
        measures.append(Measure("sun.sun_plus_msun", "sun", "sun_plus_msun", k.label, k.direction,
                                {r: f"__derived__.sun_plus_msun_{r}" for r in ("count", "frac_submitted",
                                                                               "frac_valid")},
                                k.unit, k.description, k.compact))
    order = {name: i for i, (_, name) in enumerate(KNOWN)}
    measures.sort(key=lambda m: (_family_rank(m.family), m.family, m.name != "sun_plus_msun",
                                 order.get(m.name, len(order)), m.name))
    return measures


def _make_measure(family: str, name: str, columns: dict[str, str], suffix: str = "") -> Measure:
    known = _known(family, name)
    if known is None and _FRACTION.search(name):  # "valid_frac_parsed": the label of "valid"
        base = _known(family, name.rsplit("_frac_", 1)[0])
        if base is not None:
            return Measure(f"{family}.{name}", family, name, base.label + suffix, base.direction, columns)
    if known is not None:
        return Measure(f"{family}.{name}", family, name, known.label + suffix, known.direction,
                       columns, known.unit, known.description, known.compact)
    return Measure(f"{family}.{name}", family, name, _humanise(name) + suffix,
                   _guess_direction(f"{family}.{name}" + ("_count" if "count" in columns else "")), columns)


def measures_of(results: pd.DataFrame) -> list[Measure]:
    """The catalogue of a results table (numeric metric columns plus derived ones)."""
    if not len(results.columns):
        return []
    return catalogue(_derive(results))


def _derive(df: pd.DataFrame) -> pd.DataFrame:
    """Add SUN + MSUN columns (sum of counts and of fractions) when the summary lacks them."""
    df = df.copy()
    for rep in ("count", "frac_submitted", "frac_valid"):
        a, b = _find(df, f"sun.sun_{rep}"), _find(df, f"sun.msun_{rep}")
        if a is not None and b is not None and _find(df, f"sun.sun_plus_msun_{rep}") is None:
            df[f"__derived__.sun_plus_msun_{rep}"] = pd.to_numeric(df[a], errors="coerce") + pd.to_numeric(df[b], errors="coerce")
    return df


def _find(df: pd.DataFrame, key: str) -> str | None:
    for col in (key, f"metrics.{key}"):
        if col in df.columns:
            return col
    return None


def meta_column(df: pd.DataFrame, canonical: str) -> str | None:
    """The column of ``df`` holding metadata field ``canonical`` (see META_ALIASES)."""
    for alias in META_ALIASES.get(canonical, (canonical,)):
        if alias in df.columns:
            return alias
    return None


EVALUATOR_NAME = "leaderboard evaluator"


def provenance_label(value, version=None) -> str:
    """Who evaluated a submission, named the same way in every view ("Evaluated by"):
    "leaderboard evaluator <version>" for results of the leaderboard's worker,
    "self-reported" for submitted metrics."""
    v = str(value or "").lower()
    if "worker" in v or v in ("evaluated", "us", "leaderboard") or v.startswith(EVALUATOR_NAME):
        ver = str(version).strip() if version is not None and not _isnan(version) else ""
        return f"{EVALUATOR_NAME} {ver}".strip() if ver else f"{EVALUATOR_NAME} (version not recorded)"
    if "self" in v:
        return "self-reported"
    return str(value) if value is not None else "—"


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def evaluated_by(df: pd.DataFrame) -> pd.Series:
    """The "Evaluated by" label of every row of a results table (see provenance_label)."""
    col, ver = meta_column(df, "provenance"), meta_column(df, "evaluator_version")
    if col is None:
        return pd.Series("—", index=df.index)
    versions = df[ver] if ver else pd.Series(None, index=df.index)
    return pd.Series([provenance_label(p, v) for p, v in zip(df[col], versions)], index=df.index)


def families_present(measures: Iterable[Measure]) -> list[str]:
    """Colour families with at least one measure, in pipeline order."""
    seen: list[str] = []
    for m in measures:
        if m.colour_family not in seen:
            seen.append(m.colour_family)
    return sorted(seen, key=_family_rank)


# ---------------------------------------------------------------- filtering and ranking
def _norm_bool(value) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "yes", "1", "y"):
            return True
        if v in ("false", "no", "0", "n", ""):
            return False
        return None
    return bool(value)


def filter_rows(df: pd.DataFrame, search: str = "", training_set: str | None = None,
                task: str | None = None, relaxed: str | None = None) -> pd.DataFrame:
    """Rows matching a free-text search (any text column) and the filters.

    ``training_set``/``task``: exact value or None/"All"; ``relaxed``: "yes", "no" or None/"All".
    """
    mask = pd.Series(True, index=df.index)
    if search and search.strip():
        needle = search.strip().lower()
        text_cols = [c for c in df.columns if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])]
        hit = pd.Series(False, index=df.index)
        for c in text_cols:
            hit |= df[c].astype(str).str.lower().str.contains(needle, regex=False, na=False)
        mask &= hit
    for canonical, wanted in (("training_set", training_set), ("task", task)):
        col = meta_column(df, canonical)
        if wanted and wanted != "All" and col is not None:
            mask &= df[col].astype(str) == str(wanted)
    col = meta_column(df, "relaxed")
    if relaxed and relaxed != "All" and col is not None:
        want = relaxed.lower() in ("yes", "true", "relaxed")
        mask &= df[col].map(_norm_bool) == want
    return df[mask]


def choices(df: pd.DataFrame, canonical: str) -> list[str]:
    """Distinct values of a metadata field, for filter dropdowns ("All" first)."""
    col = meta_column(df, canonical)
    if col is None or df.empty:
        return ["All"]
    vals = sorted({str(v) for v in df[col].dropna()})
    return ["All", *vals]


def rank(df: pd.DataFrame, measures: list[Measure], rank_by: str = DEFAULT_RANK,
         show: str = DEFAULT_SHOW, ascending: bool | None = None) -> pd.DataFrame:
    """Sort ``df`` by measure ``rank_by`` (best first per its direction; NaN last).

    Falls back to the first directed measure when ``rank_by`` is absent. Adds a
    1-based ``__rank__`` column (ties share the better rank).
    """
    df = df.copy()
    by = {m.key: m for m in measures}
    m = by.get(rank_by) or next((x for x in measures if x.direction), None)
    if m is None or df.empty:
        df["__rank__"] = range(1, len(df) + 1)
        return df
    # Counts are not comparable across submissions of different sizes: rank by
    # the fraction of submitted structures when counts are displayed.
    col = m.column("frac_submitted" if show == "count" else show)
    values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)
    asc = (m.direction < 0) if ascending is None else ascending
    order = values.sort_values(ascending=asc, na_position="last", kind="mergesort").index
    df = df.loc[order]
    ranked = values.loc[order].rank(ascending=asc, method="min")
    df["__rank__"] = ranked.astype("Int64")
    return df


# ---------------------------------------------------------------- views
@dataclass
class View:
    """A table ready for display: numbers (percentages already ×100) and headers."""

    frame: pd.DataFrame  # display headers as columns
    measures: list[Measure]  # one per metric column of ``frame``, same order
    metric_headers: list[str]
    formats: dict[str, str] = field(default_factory=dict)  # header -> format spec
    show: str = DEFAULT_SHOW
    submission_ids: list[str] = field(default_factory=list)

    def styler(self):
        return style(self)


def select_measures(measures: list[Measure], view: str = "compact",
                    families: Iterable[str] | None = None) -> list[Measure]:
    """Measures shown in ``view`` ("compact"/"full"), restricted to colour ``families``."""
    fams = set(families) if families else None
    out = []
    for m in measures:
        if fams is not None and m.colour_family not in fams:
            continue
        if view == "compact" and not (m.compact and m.family in FAMILY_COLOURS):
            continue
        out.append(m)
    if view == "compact" and not out and fams:  # a family without compact measures: show all of it
        out = [m for m in measures if m.colour_family in fams]
    return out


def _fmt_for(m: Measure, show: str) -> str:
    """One convention per view: rates as % with one decimal, counts as integers, energies
    (eV/atom) with 3 decimals (meV resolution), anything else with 3 significant digits."""
    if m.is_percent(show):
        return "{:.1f}"
    if m.counted or m.name.endswith("_count"):
        return "{:.0f}"
    if m.unit == "eV/atom":
        return "{:.3f}"
    return "{:.3g}"


# The full view's default columns (the picker adds any other measure): per family its
# headline metrics and the ones a reader compares, relaxed and unrelaxed.
FULL_DEFAULT = (
    "validity.valid", "validity.charge_neutral", "validity.distance_valid", "validity.plausible",
    "uniqueness.unique", "novelty.novel",
    "stability.stable", "stability.metastable", "stability.mean_e_above_hull", "stability.median_e_above_hull",
    "stability.mean_rmsd", "stability_unrelaxed.stable", "stability_unrelaxed.metastable",
    "stability_unrelaxed.mean_e_above_hull",
    "sun.sun_plus_msun", "sun.sun", "sun.msun", "sun_unrelaxed.sun_plus_msun",
    "diversity.element_coverage", "diversity.space_group_coverage", "diversity.vendi_element", "diversity.vendi",
    "distribution.jsd", "distribution.mmd", "distribution.frechet_chgnet", "hhi.combined_mean",
)


def default_full_columns(measures: list[Measure]) -> list[str]:
    """Measure keys the full view shows before the user picks columns: FULL_DEFAULT, plus every
    directed top-level metric of a family not known here (bookkeeping counts, fractions of parsed,
    failure counters and nested breakdowns stay in the picker)."""
    return [m.key for m in measures if m.key in FULL_DEFAULT
            or (m.direction and "." not in m.name and m.colour_family not in FAMILY_COLOURS)]


def column_choices(measures: list[Measure]) -> list[tuple[str, str]]:
    """(label, key) for the column picker, grouped by family (catalogue order)."""
    return [(f"{FAMILY_LABELS.get(m.colour_family, _humanise(m.colour_family))} · {m.header()}", m.key)
            for m in measures]


def ci_level(df: pd.DataFrame) -> str:
    """The confidence level of the intervals in ``df`` as text ("95 %")."""
    col = "uncertainty_level"
    if col in df.columns:
        lv = pd.to_numeric(df[col], errors="coerce").dropna()
        if len(lv):
            return f"{100 * float(lv.iloc[0]):.0f} %"
    return "95 %"


def ci_text(lo, hi, percent: bool) -> str:
    """'12.3–15.0' (percent: ×100, one decimal); '—' when either end is missing."""
    a, b = pd.to_numeric(pd.Series([lo, hi]), errors="coerce")
    if not (np.isfinite(a) and np.isfinite(b)):
        return "—"
    k = 100.0 if percent else 1.0
    return f"{k * a:.1f}–{k * b:.1f}"


def indistinguishable(df: pd.DataFrame, m: Measure, show: str, ranks: pd.Series,
                      names: pd.Series) -> list[str]:
    """Per row: the rows whose confidence interval on ``m`` overlaps its own ("#2 Beta; #4 Delta"),
    "—" when the row has no interval (see ``why_no_ci``), "" when it overlaps none."""
    cols = m.ci_columns("frac_submitted" if show == "count" else show)
    if cols is None or not all(c in df.columns for c in cols):
        return ["—"] * len(df)
    lo = pd.to_numeric(df[cols[0]], errors="coerce").to_numpy(float)
    hi = pd.to_numeric(df[cols[1]], errors="coerce").to_numpy(float)
    out = []
    for i in range(len(df)):
        if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
            out.append("—")
            continue
        same = [f"#{ranks.iloc[j]} {names.iloc[j]}" for j in range(len(df)) if j != i
                and np.isfinite(lo[j]) and np.isfinite(hi[j]) and lo[i] <= hi[j] and lo[j] <= hi[i]]
        out.append("; ".join(same))
    return out


WHY_NO_CI = ("— in a CI column: no interval stored (results evaluated before the evaluator computed "
             "bootstrap intervals, or the rate itself was not computed)")


def build_view(results: pd.DataFrame, *, view: str = "compact", families: Iterable[str] | None = None,
               show: str = DEFAULT_SHOW, search: str = "", training_set: str | None = None,
               task: str | None = None, relaxed: str | None = None, rank_by: str = DEFAULT_RANK,
               ascending: bool | None = None, columns: Iterable[str] | None = None) -> View:
    """The ranked, filtered leaderboard in ``view`` mode, as a display-ready frame.

    ``columns``: measure keys the full view shows (the column picker; None/empty = the
    default_full_columns of the chosen families). The full view adds a confidence-interval
    column after every rate that has one; both views add "CI overlaps (rank metric)" naming
    the submissions whose interval on the rank metric overlaps the row's: their order is
    not distinguishable at that level.
    """
    show = SHOW_MODES.get(show, show)
    df = _derive(results) if not results.empty else results.copy()
    measures = catalogue(df)
    df = filter_rows(df, search, training_set, task, relaxed)
    df = rank(df, measures, rank_by, show, ascending)
    shown = select_measures(measures, view, families)
    if view != "compact":
        keep = set(columns or []) or set(default_full_columns(measures))
        shown = [m for m in shown if m.key in keep or m.key == rank_by]
    # The measure the table is ranked by comes first, right after the metadata.
    lead = [m for m in shown if m.key == rank_by]
    shown = lead + [m for m in shown if m.key != rank_by]

    out = pd.DataFrame(index=df.index)
    out["#"] = df["__rank__"] if "__rank__" in df else pd.Series(dtype="Int64")
    for canonical in (COMPACT_META if view == "compact" else FULL_META):
        col = meta_column(df, canonical)
        if col is None:
            continue
        values = df[col]
        if canonical == "model":
            ver = meta_column(df, "model_version")
            if ver is not None and ver != col:
                values = [f"{m} ({v})" if isinstance(v, str) and v else str(m) for m, v in zip(df[col], df[ver])]
        if canonical == "provenance":
            values = evaluated_by(df)
        if canonical == "relaxed":
            values = values.map(lambda v: {True: "yes", False: "no"}.get(_norm_bool(v), "—"))
        out[META_LABELS[canonical]] = values
    headers, formats = [], {}
    for m in shown:
        col = m.column(show)
        values = pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)
        if m.is_percent(show):
            values = values * 100.0
        h = m.header(show)
        while h in out.columns:  # never two columns with one header
            h += " "
        out[h] = values.astype(float)
        headers.append(h)
        formats[h] = _fmt_for(m, show)
        ci = m.ci_columns("frac_submitted" if show == "count" else show)
        if ci is not None and (m.key == rank_by or (view != "compact" and m.compact)):
            lo, hi = (df[c] if c in df else pd.Series(np.nan, index=df.index) for c in ci)
            out[f"{m.label} {ci_level(df)} CI [%]"] = [ci_text(a, b, True) for a, b in zip(lo, hi)]
    rank_m = next((m for m in measures if m.key == rank_by), None)
    if rank_m is not None and rank_m.counted and not df.empty:
        names = out[META_LABELS["model"]] if META_LABELS["model"] in out else pd.Series("", index=df.index)
        out["CI overlaps (rank metric)"] = indistinguishable(df, rank_m, show, out["#"], names)
    sid = meta_column(df, "submission_id")
    ids = [str(x) for x in df[sid]] if sid else []
    return View(out.reset_index(drop=True), shown, headers, formats, show, ids)


# ---------------------------------------------------------------- reference limits
NOVELTY_KEYS = ("novelty.novel", "sun.sun", "sun.msun", "sun.sun_plus_msun")


def coverage_sentence(reference: str | None, description: str | None, n_structures=None,
                      max_sites=None) -> str:
    """What "novel" means against one reference, from provenance.reference.coverage."""
    ref = str(reference) if reference not in (None, "") and not _isnan(reference) else "the reference"
    if not isinstance(description, str) or not description.strip():
        return (f"novel = not matched in {ref}; its coverage was not recorded by the evaluator that "
                "produced these results, so a larger-than-reference structure cannot be told apart")
    extra = []
    if n_structures is not None and not _isnan(n_structures):
        extra.append(f"{int(n_structures):,} structures")
    if max_sites is not None and not _isnan(max_sites):
        extra.append(f"≤ {int(max_sites)} sites per cell")
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"novel = not matched in {ref}{tail}: {description.strip()}"


def reference_note(results: pd.DataFrame) -> str:
    """Markdown stating the reference(s) behind Novel, SUN and MSUN for the rows of ``results``."""
    if results.empty:
        return ""
    ref = meta_column(results, "reference")
    seen: list[str] = []
    for _, row in results.iterrows():
        text = coverage_sentence(row.get(ref) if ref else None, row.get("reference_coverage"),
                                 row.get("reference_n_structures"), row.get("reference_max_sites"))
        if text not in seen:
            seen.append(text)
    return ("**Novel, SUN and MSUN depend on the reference.** " + " · ".join(seen)
            + ". The model page flags structures larger than any reference cell and chemical systems "
              "with few reference entries.")


# ---------------------------------------------------------------- colouring
def _rgba(rgb: tuple[int, int, int], alpha: float) -> str:
    return f"background-color: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {alpha:.2f})"


def cell_alpha(values: pd.Series, direction: int) -> pd.Series:
    """Tint strength per cell in [0.06, 0.55]: stronger = better (per direction).

    Columns without a direction or without spread get a flat light tint; NaN cells none.
    """
    v = pd.to_numeric(values, errors="coerce").astype(float)
    out = pd.Series(np.nan, index=v.index)
    finite = v[np.isfinite(v)]
    if finite.empty:
        return out
    lo, hi = finite.min(), finite.max()
    if direction == 0 or hi == lo:
        out[finite.index] = 0.15
        return out
    goodness = (finite - lo) / (hi - lo)
    if direction < 0:
        goodness = 1.0 - goodness
    out[finite.index] = 0.06 + 0.49 * goodness
    return out


def style(view: View):
    """A pandas Styler: family-tinted cells (darker = better), formatted numbers, '—' for missing."""
    frame = view.frame
    styler = frame.style
    by_header = dict(zip(view.metric_headers, view.measures))

    def colour(col: pd.Series) -> list[str]:
        m = by_header.get(col.name)
        if m is None:
            return [""] * len(col)
        rgb = FAMILY_COLOURS.get(m.colour_family, OTHER_COLOUR)
        alpha = cell_alpha(col, m.direction)
        return ["" if not np.isfinite(a) else _rgba(rgb, a) for a in alpha]

    if not frame.empty:
        styler = styler.apply(colour, axis=0)
    for h, spec in view.formats.items():
        styler = styler.format(spec, subset=[h], na_rep="—")
    styler = styler.format(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v),
                           subset=[c for c in frame.columns if c not in view.formats])
    return styler.hide(axis="index")


def legend_markdown(measures: list[Measure]) -> str:
    """A short legend: family colours, arrows and what the headline metrics mean."""
    lines = ["**↑** higher is better · **↓** lower is better · cells are tinted by metric family, "
             "darker = better within the column · **—** = not computed (see the model page for why)."]
    for fam in families_present(measures):
        rgb = FAMILY_COLOURS.get(fam, OTHER_COLOUR)
        descs = [f"{m.label} {m.arrow}: {m.description}" for m in measures
                 if m.colour_family == fam and m.description and m.family == fam]
        swatch = f"<span style='background: rgb{rgb}; padding: 0 0.6em; border-radius: 3px'>&nbsp;</span>"
        lines.append(f"- {swatch} **{FAMILY_LABELS.get(fam, _humanise(fam))}**"
                     + (": " + "; ".join(descs) if descs else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------- cached loader
class CachedResults:
    """TTL cache of ``loader()`` (the store's results table), never restarted to refresh.

    Within ``ttl`` seconds ``get()`` returns the cached table. After that it asks
    ``fingerprint()`` (a cheap token of the store's results state, e.g. the
    etag of ``results/leaderboard.parquet``) and reloads only if it changed
    (without a fingerprint it reloads every ``ttl``). ``get(force=True)`` always
    reloads (the Refresh button).
    """

    def __init__(self, loader: Callable[[], pd.DataFrame], ttl: float = 30.0,
                 fingerprint: Callable[[], object] | None = None):
        self.loader, self.ttl, self.fingerprint = loader, ttl, fingerprint
        self._lock = threading.Lock()
        self._value: pd.DataFrame | None = None
        self._at = -math.inf
        self._key: object = None
        self.loads = 0

    def _fingerprint(self) -> object:
        if self.fingerprint is None:
            return object()  # never equal: reload on every expiry
        try:
            return self.fingerprint()
        except Exception:  # noqa: BLE001 - unknown state: reload
            return object()

    def get(self, force: bool = False) -> pd.DataFrame:
        with self._lock:
            now = time.monotonic()
            if self._value is not None and not force:
                if now - self._at < self.ttl:
                    return self._value
                key = self._fingerprint()
                if key == self._key:
                    self._at = now
                    return self._value
            key = self._fingerprint()
            self._value = self.loader()
            self._key, self._at = key, now
            self.loads += 1
            return self._value

    def invalidate(self) -> None:
        """Make the next ``get()`` reload."""
        with self._lock:
            self._value = None
