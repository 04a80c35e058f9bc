"""Bootstrap confidence intervals on the rates of one evaluation, from the per-structure table.

Percentile bootstrap over structures: the rows of the per-structure table (every
submitted structure, parse failures included) are resampled with replacement
``n_resamples`` times (seeded), and each rate is recomputed on every resample exactly
as its family defines it. The rates are the counted metrics declared with
``interval=True`` (``evaluator/families/<name>/metrics.py``), and each is recounted from
its declared ``flag`` (``evaluator.columns``), never from a copy kept here:

- valid, novel, stable, metastable: a count of flagged rows (``validity_valid``,
  ``novelty_novel``, ``stability_stable``, ``stability_metastable`` and their
  ``stability_unrelaxed_*`` twins);
- unique, SUN, MSUN: the family counts each StructureMatcher class once, through its
  first occurrence in upload order. Each row's role is taken from the table
  (``uniqueness_is_first``; ``sun_sun`` / ``sun_msun``: the row is the counted first
  occurrence of a class of the stable / metastable-only set whose representative is
  novel) and every drawn copy of such a row counts. The matcher is not re-run.
  SUN + MSUN counts the rows of either.

  Why not count the distinct classes present in each resample: resampling with
  replacement draws about 37 % of rows twice or more, and those copies are duplicates
  the model never generated. Distinct-class counts on resamples are biased low: on a
  400-row table (``tests/evaluator/test_uncertainty.py::synthetic``) with unique_frac_submitted =
  0.405 that recount gave the interval [0.333, 0.368], which misses the point estimate.
  The first-occurrence flags are the family's own per-structure decomposition of the
  count (the sum of the flags is the count), so their bootstrap is centred on it.

A resample has the upload's size, so ``*_frac_submitted`` divides by ``n_submitted``;
``*_frac_valid`` divides by the resample's own valid count (a resample without valid
structures gives no value for that rate and is left out of its percentiles). The
interval is [(1 − level)/2, (1 + level)/2] percentiles (numpy's linear interpolation).
A rate that is null in the summary gets no interval; a rate this module cannot recount
from the table to the family's exact value gets none either, with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from evaluator.catalogue import CATALOGUE
from evaluator.columns import PARSE_OK, flag_values
from evaluator.families.sun.metrics import MSUN, SUN
from evaluator.families.uniqueness.metrics import IS_FIRST
from evaluator.families.validity.metrics import VALID

if TYPE_CHECKING:
    from evaluator.declarations import Metric, MetricSet

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
METHOD = ("percentile bootstrap over structures (rows of the per-structure table resampled with "
          "replacement, upload size); each count recomputed per resample from the table's per-row "
          f"flags; unique/SUN/MSUN from the class first-occurrence flags ({IS_FIRST.name}, "
          f"{SUN.name}, {MSUN.name}), no matcher re-run")
SUFFIXES = ("_frac_submitted", "_frac_valid")
_CELLS_PER_CHUNK = 2_000_000  # resample-matrix cells held at once (memory bound for large uploads)

Flags = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Counter = Callable[[Ints], Ints]  # weights (B, n) -> counts (B,)
# The summary's "metrics": {family: {metric key: value}} (JSON values).
Metrics = Mapping[str, Mapping[str, Any]]


class Interval(TypedDict):
    """A rate's confidence interval."""

    lo: float
    hi: float


class BootstrapDescription(TypedDict):
    """How the intervals were computed (the summary's ``provenance.uncertainty``)."""

    method: str
    n_resamples: int
    seed: int
    level: float


def _flag_counter(flag: Flags) -> Counter:
    f = flag.astype(np.int64)
    return lambda w: w @ f


def interval_rates() -> list[tuple[str, str, Metric, MetricSet]]:
    """(block, rate name, metric, its set) of every rate that gets an interval: the counted
    metrics declared with ``interval=True``, the family blocks in pipeline order, then
    their groups; within a block in declaration order, a rate made of others (SUN + MSUN)
    after its parts."""
    blocks = [(s, s.family) for s in CATALOGUE] + [(s, g) for s in CATALOGUE for g in s.groups]
    out = []
    for s, block in blocks:
        rates = [m for m in s.block_metrics(block) if m.interval and m.flag is not None]
        rates.sort(key=lambda m: bool(s.parts(m)))
        out += [(block, m.name, m, s) for m in rates]
    return out


def counters(table: pd.DataFrame) -> dict[str, dict[str, Counter]]:
    """{metric group: {rate name: counter}} for every rate the table lets us recount
    (those whose declared flag columns it holds)."""
    out: dict[str, dict[str, Counter]] = {}
    for block, name, metric, _ in interval_rates():
        assert metric.flag is not None  # interval_rates keeps flagged metrics only
        flag = flag_values(table, metric.flag, block)
        if flag is not None:
            out.setdefault(block, {})[name] = _flag_counter(flag)
    return out


def _denominator_flag(table: pd.DataFrame) -> Flags:
    """Rows in the ``_frac_valid`` denominator (as ``EvalContext.valid_index``)."""
    col = VALID.name if VALID.name in table else PARSE_OK.name
    if col not in table:
        raise KeyError(f"the per-structure table has neither {VALID.name} nor {PARSE_OK.name}")
    return np.asarray(table[col].astype("boolean").fillna(False).to_numpy(bool), dtype=np.bool_)


def resample_weights(n: int, n_resamples: int, seed: int) -> Iterator[Ints]:
    """Chunks of bootstrap weights: row b of a chunk = how often each of the n rows is drawn."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS_PER_CHUNK // max(n, 1))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        done += b


def _rates(counts: Ints, n_submitted: int, n_valid: Ints) -> dict[str, Floats]:
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_valid = np.where(n_valid > 0, counts / np.maximum(n_valid, 1), np.nan)
    return {"_frac_submitted": counts / n_submitted, "_frac_valid": frac_valid}


def point_estimates(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Every recountable rate on the table itself (all weights 1): must equal the summary's."""
    n = len(table)
    if n == 0:
        return {}
    w = np.ones((1, n), dtype=np.int64)
    n_valid = w @ _denominator_flag(table).astype(np.int64)
    out: dict[str, dict[str, float | None]] = {}
    for group, named in counters(table).items():
        for name, count in named.items():
            for suffix, value in _rates(count(w), n, n_valid).items():
                v = float(value[0])
                out.setdefault(group, {})[name + suffix] = v if np.isfinite(v) else None
    return out


def bootstrap_intervals(table: pd.DataFrame, metrics: Metrics, n_resamples: int = N_RESAMPLES,
                        seed: int = SEED, level: float = LEVEL
                        ) -> tuple[dict[str, dict[str, Interval]], dict[str, str]]:
    """({group: {rate key: {"lo", "hi"}}}, {"group.key": why no interval}).

    Only rates present and non-null in ``metrics`` (the summary's ``metrics``) get an
    interval; one whose recount from the table differs from the family's value gets a
    reason instead.
    """
    n = len(table)
    wanted: dict[tuple[str, str], tuple[Counter, str]] = {}
    missing: dict[str, str] = {}
    if n == 0:
        return {}, {}
    points = point_estimates(table)
    for group, named in counters(table).items():
        reported = metrics.get(group) or {}
        for name, count in named.items():
            for suffix in SUFFIXES:
                key = name + suffix
                value = reported.get(key)
                if value is None:
                    continue  # null (reason in `missing`) or not reported: no interval
                recount = points[group][key]
                if recount is None or abs(recount - float(value)) > 1e-12:
                    missing[f"{group}.{key}"] = (f"the per-structure table gives {recount}, the family "
                                                 f"reported {value}: no interval")
                    continue
                wanted[(group, key)] = (count, suffix)
    if not wanted:
        return {}, missing
    valid = _denominator_flag(table).astype(np.int64)
    samples: dict[tuple[str, str], list[Floats]] = {k: [] for k in wanted}
    for w in resample_weights(n, n_resamples, seed):
        n_valid = w @ valid
        cache: dict[int, dict[str, Floats]] = {}
        for k, (count, suffix) in wanted.items():
            if id(count) not in cache:
                cache[id(count)] = _rates(count(w), n, n_valid)
            samples[k].append(cache[id(count)][suffix])
    q = [50 * (1 - level), 50 * (1 + level)]
    out: dict[str, dict[str, Interval]] = {}
    for (group, key), parts in samples.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        if values.size == 0:
            missing[f"{group}.{key}"] = "no resample has a denominator for this rate"
            continue
        lo, hi = np.percentile(values, q)
        out.setdefault(group, {})[key] = {"lo": float(lo), "hi": float(hi)}
    return out, missing


def describe(n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> BootstrapDescription:
    return {"method": METHOD, "n_resamples": n_resamples, "seed": seed, "level": level}
