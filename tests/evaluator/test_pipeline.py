"""The pipeline contract: every submitted structure keeps a row, families add
columns, dependencies resolve, summaries carry counts, fractions and provenance."""

import json
from dataclasses import dataclass

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from evaluator import pipeline
from evaluator.config import EvalConfig
from evaluator.columns import Column, UndeclaredColumn
from evaluator.families.base import Family, FamilyResult, MetricSet, NoOptions, counted
from evaluator.ingest.types import Item
from evaluator.outputs import read_summary, read_table, write_evaluation


def rocksalt(a=5.64):
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def toy_families(monkeypatch):
    """Two small real families in place of the pipeline's: 'validity' marks
    structures with < 10 sites valid; 'toycount' counts sites of valid rows and
    fails (with a reason) on one structure."""

    def run_valid(ctx, options):
        idx = ctx.table.index[ctx.table["parse_ok"]]
        valid = ctx.table.loc[idx, "nsites"] < 10
        cols = pd.DataFrame({"validity_valid": valid.astype(bool)}, index=idx)
        res = FamilyResult(cols)
        res.metrics.update(counted("valid", int(valid.sum()), ctx.n_submitted, int(valid.sum())))
        return res

    def run_count(ctx, options):
        rows, status, reason = {}, {}, {}
        for i in ctx.valid_index:
            if ctx.table.at[i, "source"] == "fail-me":
                rows[i], status[i], reason[i] = float("nan"), "failed", "deliberate failure"
            else:
                rows[i], status[i], reason[i] = float(len(ctx.structures[i])), "ok", None
        cols = pd.DataFrame({"toycount_sites": rows, "toycount_status": status, "toycount_reason": reason})
        res = FamilyResult(cols, metrics=ctx.counted("counted", sum(s == "ok" for s in status.values())))
        res.absent("not_computable", "needs at least 1000 structures")
        return res

    monkeypatch.setattr(pipeline, "FAMILIES", (
        Family("validity", (), NoOptions, MetricSet("validity", "Toy validity", (), columns=(
            Column("validity_valid", "bool", "fewer than 10 sites"),)), run_valid),
        Family("toycount", ("validity",), NoOptions, MetricSet("toycount", "Toy count", (), columns=(
            Column("toycount_sites", "float", "sites of the cell"),)), run_count),
    ))


def items():
    big = rocksalt()
    big.make_supercell([2, 2, 2])  # 64 sites: 'invalid' for the toy validity
    return [Item("a.cif", rocksalt()), Item("bad.cif", error="empty file"),
            Item("big.cif", big), Item("fail-me", rocksalt(5.7))]


def test_resolve_families_adds_dependencies_in_order():
    assert pipeline.resolve_families(["sun"]) == ["validity", "novelty", "stability", "sun"]
    assert pipeline.resolve_families(None) == [f.name for f in pipeline.FAMILIES] == [
        "validity", "uniqueness", "novelty", "stability", "sun", "diversity", "distribution", "hhi"]
    with pytest.raises(ValueError, match="unknown families"):
        pipeline.resolve_families(["nope"])


def test_every_family_runs_after_those_it_requires():
    seen: set[str] = set()
    for family in pipeline.FAMILIES:
        assert set(family.requires) <= seen, family.name
        assert family.metrics.family == family.name
        seen.add(family.name)


def test_check_config_passes_for_the_defaults_of_every_family():
    options = pipeline.check_config(EvalConfig())
    assert list(options) == [f.name for f in pipeline.FAMILIES]
    for family in pipeline.FAMILIES:
        assert options[family.name] == family.options()  # every option has a default
    assert list(pipeline.check_config(EvalConfig(families=["sun"]))) == ["validity", "novelty", "stability", "sun"]


def test_check_config_types_the_given_options():
    options = pipeline.check_config(EvalConfig(families=["novelty", "distribution"], options={
        "novelty": {"cheap_first": False, "fingerprint_timeout_s": 8},
        "distribution": {"fd": False, "fd_min_structures": 3}}))
    novelty, distribution = options["novelty"], options["distribution"]
    assert (novelty.cheap_first, novelty.fingerprint_timeout_s, novelty.identity_processes) == (False, 8, 1)
    assert (distribution.fd, distribution.fd_min_structures, distribution.fd_build_reference) == (False, 3, True)


def test_a_misspelled_option_names_the_family_and_its_options():
    with pytest.raises(ValueError, match="cheap_frist") as err:
        pipeline.check_config(EvalConfig(options={"novelty": {"cheap_frist": False}}))
    message = str(err.value)
    assert "'novelty'" in message and "cheap_first" in message and "fingerprint_timeout_s" in message
    # also for a family the run does not select: the option is wrong either way
    with pytest.raises(ValueError, match="validity.*workers"):
        pipeline.check_config(EvalConfig(families=["validity"], options={"distribution": {"fd": False},
                                                                         "validity": {"worker": 2}}))
    with pytest.raises(ValueError, match="family 'hhi'.*none"):
        pipeline.check_config(EvalConfig(options={"hhi": {"anything": 1}}))


def test_an_unknown_family_in_options_is_an_error():
    with pytest.raises(ValueError, match=r"unknown family.*\['novelt'\].*novelty"):
        pipeline.check_config(EvalConfig(options={"novelt": {"cheap_first": False}}))


@pytest.mark.parametrize("family, options, match", [
    ("novelty", {"cheap_first": "false"}, "novelty.cheap_first"),
    ("novelty", {"fingerprint_timeout_s": -1}, "novelty.fingerprint_timeout_s"),
    ("novelty", {"identity_processes": 0}, "novelty.identity_processes"),
    ("novelty", {"fingerprint_graph": "fast"}, "novelty.fingerprint_graph"),
    ("validity", {"workers": 1.5}, "validity.workers"),
    ("validity", {"workers": True}, "validity.workers must be a whole number or null"),
    ("validity", {"start_method": "fork"}, "validity.start_method"),
    ("distribution", {"fd": 0}, "distribution.fd"),
    ("distribution", {"fd_min_structures": "3"}, "distribution.fd_min_structures"),
])
def test_an_ill_typed_option_is_an_error(family, options, match):
    with pytest.raises(ValueError, match=match):
        pipeline.check_config(EvalConfig(options={family: options}))


def test_evaluation_checks_the_config_before_any_work(monkeypatch):
    def no_ingest(*args, **kwargs):
        raise AssertionError("read the upload before checking the options")

    monkeypatch.setattr(pipeline, "read_inputs", no_ingest)
    with pytest.raises(ValueError, match="cheap_frist"):
        pipeline.evaluate(["nothing.cif"], EvalConfig(options={"novelty": {"cheap_frist": False}}))
    with pytest.raises(ValueError, match="cheap_frist"):
        pipeline.evaluate_items(items(), EvalConfig(options={"novelty": {"cheap_frist": False}}))


def test_each_family_gets_its_typed_options(monkeypatch):
    @dataclass(frozen=True)
    class ToyOptions:
        scale: int = 1

    seen = []

    def run(ctx, options):
        seen.append(options)
        return FamilyResult(metrics={"scaled": options.scale * ctx.n_submitted})

    monkeypatch.setattr(pipeline, "FAMILIES", (
        Family("validity", (), NoOptions, MetricSet("validity", "Toy validity", ()),
               lambda ctx, options: FamilyResult()),
        Family("toy", ("validity",), ToyOptions, MetricSet("toy", "Toy", ()), run),
    ))
    ev = pipeline.evaluate_items(items(), EvalConfig(families=["toy"], options={"toy": {"scale": 3}}))
    assert seen == [ToyOptions(scale=3)] and ev.summary["metrics"]["toy"] == {"scaled": 12}
    assert ev.summary["provenance"]["config"]["options"] == {"toy": {"scale": 3}}


def test_an_undeclared_column_is_refused_naming_it_and_where_to_declare_it(monkeypatch):
    def run(ctx, options):
        idx = ctx.table.index[ctx.table["parse_ok"]]
        return FamilyResult(pd.DataFrame({"validity_valid": True, "validity_extra": 1.0}, index=idx))

    monkeypatch.setattr(pipeline, "FAMILIES", (
        Family("validity", (), NoOptions, MetricSet("validity", "Toy validity", (), columns=(
            Column("validity_valid", "bool", "toy"),)), run),))
    with pytest.raises(UndeclaredColumn, match=r"'validity' wrote column\(s\) \['validity_extra'\] that it "
                                               r"does not declare.*evaluator/families/validity/metrics.py"):
        pipeline.evaluate_items(items(), EvalConfig(families=["validity"]))


def test_a_family_may_not_overwrite_a_pipeline_column(monkeypatch):
    def run(ctx, options):
        return FamilyResult(pd.DataFrame({"formula": "X"}, index=ctx.table.index))

    monkeypatch.setattr(pipeline, "FAMILIES", (
        Family("validity", (), NoOptions, MetricSet("validity", "Toy validity", ()), run),))
    with pytest.raises(UndeclaredColumn, match="formula"):
        pipeline.evaluate_items(items(), EvalConfig(families=["validity"]))


def test_counted_fractions():
    assert counted("x", 3, 10, 5) == {"x_count": 3, "x_frac_submitted": 0.3, "x_frac_valid": 0.6}
    assert counted("x", 0, 0, 0)["x_frac_valid"] is None


def test_every_structure_keeps_a_row_with_reasons(toy_families):
    ev = pipeline.evaluate_items(items(), EvalConfig(families=["toycount"]))
    t = ev.table
    assert list(t["index"]) == [0, 1, 2, 3] and list(t["source"]) == ["a.cif", "bad.cif", "big.cif", "fail-me"]
    assert t.loc[1, "parse_reason"] == "empty file" and not t.loc[1, "parse_ok"]
    assert t.loc[0, "formula"] == "Na4Cl4" and t.loc[0, "reduced_formula"] == "NaCl"
    assert list(t["toycount_status"]) == ["ok", "skipped", "skipped", "failed"]
    assert list(t["toycount_reason"])[1:] == ["parse failed", "invalid structure", "deliberate failure"]
    assert t.loc[1, "validity_reason"] == "parse failed"

    s = ev.summary
    assert (s["n_submitted"], s["n_parsed"], s["n_valid"]) == (4, 3, 2)
    assert s["n_evaluated"] is None and "n_evaluated" in s["missing"]["summary"]
    assert s["metrics"]["toycount"]["counted_count"] == 1
    assert s["metrics"]["toycount"]["counted_frac_submitted"] == 0.25
    assert s["metrics"]["toycount"]["counted_frac_valid"] == 0.5
    assert s["metrics"]["toycount"]["not_computable"] is None
    assert s["missing"]["toycount"]["not_computable"] == "needs at least 1000 structures"
    assert s["failures"]["parse"] == {"empty file": 1}
    assert s["failures"]["toycount"] == {"deliberate failure": 1}
    prov = s["provenance"]
    assert prov["families"] == ["validity", "toycount"] and prov["config"]["relax_steps"] == 300
    assert set(s["timings_s"]) >= {"validity", "toycount", "total"}


def test_results_round_trip(toy_families, tmp_path):
    ev = pipeline.evaluate_items(items(), EvalConfig(families=["toycount"]))
    write_evaluation(ev, tmp_path)
    assert read_summary(tmp_path) == json.loads(json.dumps(ev.summary, default=str))
    table = read_table(tmp_path)
    assert len(table) == 4
    assert Structure.from_str(table.loc[0, "structure"], fmt="json").composition.reduced_formula == "NaCl"
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temp files


def test_empty_upload_has_a_summary(toy_families):
    ev = pipeline.evaluate_items([], EvalConfig(families=["validity"]))
    assert ev.summary["n_submitted"] == 0 and ev.summary["metrics"]["validity"]["valid_frac_submitted"] is None


def test_merge_accepts_all_none_reason_column():
    """A family whose reasons are all None (float64 NaN column) still gets skip reasons."""
    table, structures = pipeline.build_table([Item("a", rocksalt()), Item("b", error="empty file")])
    from evaluator.context import EvalContext
    from evaluator.data import DataDir

    ctx = EvalContext(table, structures, EvalConfig(), DataDir())
    cols = pd.DataFrame({"fam_x": [1.0], "fam_status": ["ok"], "fam_reason": [None]}, index=[0])
    pipeline._merge(ctx, "fam", cols)
    assert list(ctx.table["fam_status"]) == ["ok", "skipped"]
    assert ctx.table.loc[1, "fam_reason"] == "parse failed" and ctx.table.loc[0, "fam_reason"] is None


def test_summary_has_bootstrap_intervals_reproducible_from_the_table(toy_families, tmp_path):
    from evaluator.uncertainty import bootstrap_intervals

    ev = pipeline.evaluate_items(items() * 5, EvalConfig(families=["toycount"]))
    s = ev.summary
    prov = s["provenance"]["uncertainty"]
    assert (prov["n_resamples"], prov["seed"], prov["level"]) == (1000, 0, 0.95) and prov["method"]
    iv = s["uncertainty"]["validity"]["valid_frac_submitted"]
    assert iv["lo"] <= s["metrics"]["validity"]["valid_frac_submitted"] == 0.5 <= iv["hi"]
    assert "toycount" not in s["uncertainty"]  # not one of the bootstrapped rates
    assert "uncertainty" in s["timings_s"]
    write_evaluation(ev, tmp_path)
    again, _ = bootstrap_intervals(read_table(tmp_path), read_summary(tmp_path)["metrics"])
    assert again == read_summary(tmp_path)["uncertainty"]


def test_pipeline_families_are_the_catalogue_in_the_same_order():
    from evaluator import catalogue

    assert tuple(f.name for f in pipeline.FAMILIES) == catalogue.FAMILIES
    assert tuple(f.metrics for f in pipeline.FAMILIES) == catalogue.CATALOGUE


def test_the_reference_comes_from_the_injected_loader():
    from evaluator.context import EvalContext
    from evaluator.data import DataDir

    table, structures = pipeline.build_table([Item("a", rocksalt())])
    bare = EvalContext(table, structures, EvalConfig(), DataDir())
    with pytest.raises(RuntimeError, match="no reference loader"):
        _ = bare.reference
    assert bare.loaded_reference is None
    calls = []
    ctx = EvalContext(table, structures, EvalConfig(), DataDir(),
                      reference_loader=lambda: calls.append(1) or "the reference")
    assert ctx.reference == ctx.reference == "the reference" and calls == [1]  # loaded once
    assert ctx.loaded_reference == "the reference"
    # a context built without a loader, run through the pipeline, gets the usual one
    pipeline.run_families(bare, ["novelty"])
    assert bare.loaded_reference is not None and bare.loaded_reference.id == "mp20"


def test_provenance_records_each_familys_effective_options():
    """Defaults included, so a result says every option it depended on."""
    cfg = EvalConfig(families=["validity"], options={"validity": {"start_method": "spawn"}})
    ev = pipeline.evaluate_items(items()[:1], cfg)
    recorded = ev.summary["provenance"]["options"]
    assert recorded == {"validity": {"workers": None, "start_method": "spawn", "spacegroup_symprec": 0.1,
                                     "spacegroup_angle_tolerance": 5.0}}
    assert json.loads(json.dumps(recorded)) == recorded
