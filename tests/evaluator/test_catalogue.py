"""The metric catalogue (``evaluator.catalogue``) against what a real evaluation writes.

Every key a family writes into ``summary.metrics`` must be declared in its
``metrics.py``, and every declared key must be written or absent with a reason in
``summary.missing``: adding a metric without declaring it (or declaring one nobody
writes) fails here. The evaluation runs every family on a few real MP structures,
one of them twice (so uniqueness has a duplicate group), with a short relaxation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from evaluator import catalogue as C
from evaluator.families.base import Metric, MetricSet
from evaluator.mlip import BACKENDS

N_FILES = 4  # real structures (from mp_sample), plus one duplicate


@pytest.fixture(scope="module")
def evaluation(mp_sample, data, tmp_path_factory):
    from evaluator.config import EvalConfig
    from evaluator.pipeline import evaluate

    folder = tmp_path_factory.mktemp("catalogue")
    files = sorted(Path(mp_sample).glob("*.cif"))[:N_FILES]
    for f in files:
        shutil.copy(f, folder / f.name)
    shutil.copy(files[0], folder / f"dup_{files[0].name}")
    config = EvalConfig(mlip="chgnet", device="cpu", relax_steps=3, options={"distribution": {"fd": False}})
    return evaluate([folder], config, data)


@pytest.fixture(scope="module")
def summary(evaluation):
    return evaluation.summary


def written(summary: dict) -> dict[str, set[str]]:
    """{block: keys} of ``summary.metrics``."""
    return {block: set(values) for block, values in summary["metrics"].items()}


def test_every_family_ran(summary):
    assert set(summary["provenance"]["families"]) == set(C.FAMILIES)
    assert set(summary["metrics"]) == {b for s in C.CATALOGUE for b in (s.family, *s.groups)}


def test_every_written_key_is_declared(summary):
    undeclared = sorted(f"{block}.{key}" for block, keys in written(summary).items() for key in keys
                        if C.resolve(block, key) is None)
    assert undeclared == [], (f"metrics written but not declared in evaluator/families/<name>/metrics.py: "
                              f"{undeclared}")


def _expected_absent(s: MetricSet, key: str, missing: dict[str, str], mlip: str) -> bool:
    """A declared key a run may legitimately not write: the Fréchet distance of another MLIP
    than the run's, and the structure count (``<metric>_n``) of a distance not computed."""
    if s.family != "distribution":
        return False
    others = {f"frechet_{b}" for b in BACKENDS if b != mlip}
    if key in others or key.removesuffix("_n") in others:
        return True
    return key.endswith("_n") and key.removesuffix("_n") in missing


def test_every_declared_key_is_written_or_absent_with_a_reason(summary):
    mlip = summary["provenance"]["config"]["mlip"]
    unexplained = []
    for s in C.CATALOGUE:
        keys = written(summary)[s.family]
        missing = summary["missing"].get(s.family, {})
        for key in s.keys():
            if key not in keys and key not in missing and not _expected_absent(s, key, missing, mlip):
                unexplained.append(f"{s.family}.{key}")
            if key in missing:
                assert isinstance(missing[key], str) and missing[key], f"{s.family}.{key}: empty reason"
    assert unexplained == [], f"declared metrics neither written nor in summary.missing: {unexplained}"


def test_values_match_their_declaration(summary):
    """Counted metrics are counts with fractions in [0, 1]; a breakdown is a dict or list;
    any other value is a number (or None with a reason)."""
    for block, values in summary["metrics"].items():
        for key, value in values.items():
            found = C.resolve(block, key)
            assert found is not None
            metric, rep = found
            if value is None:
                continue
            if rep == "count":
                assert isinstance(value, int) and value >= 0, (block, key, value)
            elif rep is not None:
                assert 0.0 <= value <= 1.0, (block, key, value)
            elif not isinstance(value, (dict, list)):
                assert isinstance(value, (int, float)) and not isinstance(value, bool), (block, key, value)


def test_every_column_written_is_declared_with_its_type(evaluation):
    """The real table holds the declared columns only (the pipeline refuses others), each
    holding values of its declared type."""
    from evaluator.columns import BASE_COLUMNS

    declared = {c.name: c for c in BASE_COLUMNS} | {c.name: c for s in C.CATALOGUE for c in s.declared_columns()}
    table = evaluation.table
    assert sorted(set(table.columns) - set(declared)) == []
    assert sorted(set(declared) - set(table.columns)) == []  # every family ran
    kinds = {"bool": (bool,), "int": (int,), "float": (float, int), "text": (str,), "json": (str,)}
    for name in table.columns:
        values = [v.item() if hasattr(v, "item") else v for v in table[name] if v is not None and not pd.isna(v)]
        bad = [v for v in values if not isinstance(v, kinds[declared[name].dtype])
               or (declared[name].dtype in ("int", "float") and isinstance(v, bool))]
        assert bad == [], (name, declared[name].dtype, bad[:3])


def test_structures_parquet_has_the_declared_types(evaluation, tmp_path):
    """The arrow type of each column of the written structures.parquet is its declared type
    (text and JSON as either string type; a column null in every row has arrow's null type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from evaluator.columns import BASE_COLUMNS
    from evaluator.outputs import write_evaluation

    declared = {c.name: c for c in BASE_COLUMNS} | {c.name: c for s in C.CATALOGUE for c in s.declared_columns()}
    accepted = {"bool": pa.types.is_boolean, "int": pa.types.is_int64, "float": pa.types.is_float64,
                "text": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)}
    accepted["json"] = accepted["text"]
    write_evaluation(evaluation, tmp_path)
    schema = pq.read_schema(tmp_path / "structures.parquet")
    bad = [(f.name, str(f.type), declared[f.name].dtype) for f in schema
           if not (pa.types.is_null(f.type) or accepted[declared[f.name].dtype](f.type))]
    assert bad == []


def test_every_count_is_the_number_of_rows_its_declared_flag_counts(evaluation):
    """Each counted metric's ``flag``, read on the real table, gives the count the family
    published (in every block that publishes it); flags made of several columns are disjoint."""
    from evaluator.columns import flag_values

    table, metrics = evaluation.table, evaluation.summary["metrics"]
    checked = 0
    for s in C.CATALOGUE:
        for block in s.blocks():
            for m in s.block_metrics(block):
                if not m.counted or metrics[block].get(f"{m.name}_count") is None:
                    continue
                assert m.flag is not None
                rows = flag_values(table, m.flag, block)
                assert rows is not None and int(rows.sum()) == metrics[block][f"{m.name}_count"], (block, m.name)
                parts = [flag_values(table, p.flag, block) for p in s.parts(m) if p.flag is not None]
                if parts:
                    assert int(sum(p.sum() for p in parts)) == int(rows.sum()), (block, m.name)
                checked += 1
    assert checked >= 20
    assert metrics["uniqueness"]["unique_count"] < metrics["validity"]["valid_count"]  # the duplicate


def test_lookups_fold_counted_keys_groups_and_breakdowns():
    """What ``resolve`` answers for each kind of key, and None for an undeclared one."""
    assert C.resolve("validity", "valid_frac_valid") == (C.VALIDITY.get("valid"), "frac_valid")
    assert C.metric_for("validity", "valid") is None  # a counted metric is published as its three keys
    assert C.resolve("stability_unrelaxed", "stable_count")[0].label == "Stable"
    assert C.resolve("validity", "charge_step_counts.bv_sum")[0].name == "charge_step_counts"
    assert C.resolve("sun", "sun_plus_msun_frac_parsed") is None  # no such representation
    assert C.resolve("validity", "brand_new_metric") is None
    assert C.resolve("mystery", "valid") is None


def test_catalogue_is_in_pipeline_order_with_one_label_each():
    assert C.FAMILIES == ("validity", "uniqueness", "novelty", "stability", "sun", "diversity",
                          "distribution", "hhi")
    assert C.family_label("sun") == "SUN / MSUN" and C.family_label("sun_unrelaxed") is None
    assert C.family_of("stability_unrelaxed") == "stability"
    for s in C.CATALOGUE:
        assert s.label and all(isinstance(m, Metric) and m.label for m in s.metrics)
        assert [m for m in s.metrics if m.headline], f"{s.family}: no headline metric"


def test_duplicate_declarations_are_refused():
    with pytest.raises(ValueError, match="declared twice"):
        MetricSet("x", "X", (Metric("a", "A", 1), Metric("a", "A again", 1)))


def test_summary_columns_are_the_declared_keys_as_typed_records():
    """Every key a block's declarations allow is one column record, looked up by its name;
    only rates (fractions of a counted metric) have interval columns."""
    for s in C.CATALOGUE:
        for block in (s.family, *s.groups):
            names = {c.name for c in C.SUMMARY_COLUMNS if c.block == block}
            assert names == {f"{block}.{k}" for k in s.keys()}, block
    sun = C.summary_column("sun_unrelaxed.sun_frac_valid")
    assert sun is not None
    assert (sun.family, sun.group, sun.rep, sun.dtype) == ("sun", "unrelaxed", "frac_valid", "float")
    base = "uncertainty.sun_unrelaxed.sun_frac_valid"
    assert sun.interval == (f"{base}.lo", f"{base}.hi")
    assert C.interval_column(sun.interval[1]) == (sun, "hi")
    count = C.summary_column("validity.valid_count")
    assert count is not None and count.dtype == "int" and count.interval is None and count.headline
    parsed = C.summary_column("validity.valid_frac_parsed")
    assert parsed is not None and parsed.rep == "value" and parsed.fraction_of == "parsed"
    assert C.breakdown_of("validity.charge_step_counts.bv_sum") == C.summary_column("validity.charge_step_counts")
    assert C.summary_column("validity.valid") is None and C.breakdown_of("validity.valid_count.x") is None
