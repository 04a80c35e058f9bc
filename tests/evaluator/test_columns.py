"""The per-structure columns as declared (``evaluator.columns``, each family's
``metrics.py``): counted metrics name declared flag columns of the right type, the
bootstrap intervals count from those declarations, old rows are upgraded from them, and
the README's ``structures.parquet`` table is the one they generate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from repo_paths import REPO

from evaluator import catalogue as C
from evaluator import columns_doc
from evaluator import uncertainty as U
from evaluator.columns import BASE_COLUMNS, Column, Flag, equals, finite, flag_values, nonempty, true_in
from evaluator.declarations import Metric, MetricSet
from evaluator.summary import upgrade_row

# Counted metrics that count a derived condition of a non-bool column (adding a bool column
# for each would change the published table); every other counted metric counts a bool column.
DERIVED = {("stability", "evaluated"), ("stability", "hull_scored"), ("stability", "budget_stopped"),
           ("stability", "wall_time_stopped"), ("stability_unrelaxed", "evaluated"),
           ("stability_unrelaxed", "hull_scored"), ("hhi", "missing_data")}


def counted_metrics():
    return [(s, block, m) for s in C.CATALOGUE for block in s.blocks() for m in s.block_metrics(block)
            if m.counted]


def test_every_counted_metric_counts_declared_bool_columns():
    seen = set()
    for s, block, m in counted_metrics():
        assert m.flag is not None, f"{block}.{m.name} names no flag"
        cols = s.flag_columns(block, m)
        assert [c.name for c in cols] == list(m.flag.names(block))
        assert all(c in s.declared_columns() for c in cols)
        if (block, m.name) in DERIVED:
            assert m.flag.test != "true" and len(cols) == 1
        else:
            assert m.flag.test == "true" and {c.dtype for c in cols} == {"bool"}, (block, m.name, cols)
        seen.add((block, m.name))
    assert DERIVED <= seen
    assert ("sun", "sun_plus_msun") in seen and ("uniqueness", "unique") in seen


def test_a_flag_on_an_undeclared_or_mistyped_column_is_refused():
    valid = Column("toy_valid", "bool", "valid")
    energy = Column("toy_energy", "float", "energy")
    MetricSet("toy", "Toy", (Metric("valid", "V", 1, counted=True, flag=true_in("valid")),), columns=(valid,))
    with pytest.raises(ValueError, match="counts the column 'toy_stable', which the toy family does not declare"):
        MetricSet("toy", "Toy", (Metric("stable", "S", 1, counted=True, flag=true_in("stable")),), columns=(valid,))
    with pytest.raises(ValueError, match="counts 'toy_energy' as bool but it is declared float"):
        MetricSet("toy", "Toy", (Metric("e", "E", 1, counted=True, flag=true_in("energy")),), columns=(energy,))
    with pytest.raises(ValueError, match="names no flag"):
        Metric("valid", "V", 1, counted=True)
    with pytest.raises(ValueError, match="declared twice"):
        MetricSet("toy", "Toy", (), columns=(valid, valid))
    with pytest.raises(ValueError, match="not one of"):
        Column("toy_x", "boolean", "x")  # type: ignore[arg-type]


def test_every_column_is_declared_once_with_a_type_and_a_meaning():
    names = [c.name for c in BASE_COLUMNS] + [c.name for s in C.CATALOGUE for c in s.declared_columns()]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    for s in C.CATALOGUE:
        for c in s.columns:
            assert c.description, c.name
            # prefixed with the family's name; the sun family also writes stability_sparse_chemsys
            assert c.name.startswith(f"{s.family}_") or (s.family, c.name) == ("sun", "stability_sparse_chemsys")


def test_flag_values_read_each_test():
    t = pd.DataFrame({"b_x": pd.array([True, None, False, True], dtype="boolean"),
                      "b_y": [False, True, False, np.nan],
                      "b_e": [0.1, np.nan, np.inf, -2.0],
                      "b_s": ["budget", None, "converged", "budget"],
                      "b_j": ['["Xe"]', "[]", None, "not json"]})
    assert flag_values(t, true_in("x"), "b").tolist() == [True, False, False, True]
    assert flag_values(t, true_in("x", "y"), "b").tolist() == [True, True, False, True]
    assert flag_values(t, finite("e"), "b").tolist() == [True, False, False, True]
    assert flag_values(t, equals("s", "budget"), "b").tolist() == [True, False, False, True]
    assert flag_values(t, nonempty("j"), "b").tolist() == [True, False, False, False]
    assert flag_values(t, true_in("missing"), "b") is None
    with pytest.raises(ValueError):
        Flag(("e", "x"), "finite")


def _table(n: int = 60, seed: int = 3) -> tuple[pd.DataFrame, dict[str, str]]:
    """A table holding every column an interval rate counts, each with its own number of true
    rows, and {"block.rate": the column the family counts}, written out here independently
    of the declarations."""
    expected = {"validity.valid": "validity_valid", "uniqueness.unique": "uniqueness_is_first",
                "novelty.novel": "novelty_novel", "novelty.novel_as_submitted": "novelty_novel_as_submitted",
                "stability.stable": "stability_stable", "stability.metastable": "stability_metastable",
                "stability_unrelaxed.stable": "stability_unrelaxed_stable",
                "stability_unrelaxed.metastable": "stability_unrelaxed_metastable",
                "sun.sun": "sun_sun", "sun.msun": "sun_msun",
                "sun_unrelaxed.sun": "sun_unrelaxed_sun", "sun_unrelaxed.msun": "sun_unrelaxed_msun"}
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"parse_ok": True}, index=range(n))
    for k, col in enumerate(dict.fromkeys(expected.values())):
        flag = np.zeros(n, bool)
        flag[rng.choice(n, size=k + 1 if col != "validity_valid" else n - 5, replace=False)] = True
        table[col] = pd.array(flag, dtype="boolean")
    for geo in ("", "unrelaxed_"):  # SUN and MSUN rows are disjoint, as the family makes them
        table[f"sun_{geo}msun"] &= ~table[f"sun_{geo}sun"]
    return table, expected


def test_each_interval_rate_is_recounted_from_the_column_its_family_counts():
    """Every column here has its own count, so a declaration pointing at another column
    (SUN at MSUN's, unique at validity's, ...) gives another rate and fails."""
    table, expected = _table()
    n = len(table)
    points = U.point_estimates(table)
    rates = {f"{block}.{name}" for block, name, _, _ in U.interval_rates()}
    assert rates == set(expected) | {"sun.sun_plus_msun", "sun_unrelaxed.sun_plus_msun"}
    for rate, col in expected.items():
        block, name = rate.split(".")
        assert points[block][f"{name}_frac_submitted"] == table[col].sum() / n, rate
    for geo in ("", "_unrelaxed"):
        both = int((table[f"sun{geo}_sun"] | table[f"sun{geo}_msun"]).sum())
        assert points[f"sun{geo}"]["sun_plus_msun_frac_submitted"] == both / n


def test_the_intervals_follow_the_declarations(monkeypatch):
    """Point SUN's declaration at MSUN's column: the recount follows it (no copy of the
    flags is kept in evaluator.uncertainty)."""
    table, _ = _table()
    before = U.point_estimates(table)["sun"]["sun_frac_submitted"]
    sun_set = C.metric_set("sun")
    wrong = tuple(dataclasses.replace(m, flag=true_in("msun")) if m.name == "sun" else m for m in sun_set.metrics)
    patched = tuple(dataclasses.replace(s, metrics=wrong) if s is sun_set else s for s in C.CATALOGUE)
    monkeypatch.setattr(U, "CATALOGUE", patched)
    after = U.point_estimates(table)["sun"]["sun_frac_submitted"]
    assert before == table["sun_sun"].sum() / len(table) != after == table["sun_msun"].sum() / len(table)


def test_old_rows_get_sun_plus_msun_as_the_sum_of_its_declared_parts():
    row = {"sun.sun_count": 2, "sun.msun_count": 3, "sun.sun_frac_submitted": 0.02,
           "sun.msun_frac_submitted": 0.03, "metrics.sun.sun_frac_valid": 0.1, "metrics.sun.msun_frac_valid": 0.2,
           "sun_unrelaxed.sun_count": 1, "sun_unrelaxed.msun_count": 1}
    out = upgrade_row(row)
    assert out["sun.sun_plus_msun_count"] == 5 and isinstance(out["sun.sun_plus_msun_count"], int)
    assert out["sun.sun_plus_msun_frac_submitted"] == 0.02 + 0.03
    assert out["metrics.sun.sun_plus_msun_frac_valid"] == 0.1 + 0.2
    assert "sun.sun_plus_msun_frac_valid" not in out  # a part is missing
    assert "sun_unrelaxed.sun_plus_msun_count" not in out  # groups are left as they were
    assert upgrade_row({**row, "sun.sun_plus_msun_count": 4})["sun.sun_plus_msun_count"] == 4
    assert [p.name for p in C.metric_set("sun").parts(C.metric_set("sun").get("sun_plus_msun"))] == ["sun", "msun"]


def test_readme_structures_table_is_generated_from_the_declarations():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert columns_doc.BEGIN in readme and columns_doc.END in readme
    assert columns_doc.with_section(readme) == readme, (
        "README.md's structures.parquet table differs from the column declarations: "
        "run `python -m evaluator columns --readme README.md`")
    table = columns_doc.markdown()
    for c in [*BASE_COLUMNS, *(c for s in C.CATALOGUE for c in s.declared_columns())]:
        assert f"| `{c.name}` |" in table


def test_the_columns_command_writes_the_readme_section(tmp_path, capsys):
    from evaluator.cli import main

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{columns_doc.BEGIN}\nstale\n{columns_doc.END}\n\nafter\n", encoding="utf-8")
    assert main(["columns", "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "stale" not in text and columns_doc.markdown() in text and text.endswith("after\n")
    assert main(["columns", "--readme", str(readme)]) == 0 and "already up to date" in capsys.readouterr().out
    (tmp_path / "bare.md").write_text("no markers\n", encoding="utf-8")
    assert main(["columns", "--readme", str(tmp_path / "bare.md")]) == 2
    assert "no generated-columns section" in capsys.readouterr().err
