"""The leaderboard table: measures from the metric catalogue, ranking, filters, views,
colours, cache, and reading stored results (schema versions, older summaries).

Inputs are small hand-written results tables in the store's column layout (the
numbers are arbitrary test inputs, not scores anyone reports).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluator import catalogue as C
from evaluator.summary import UnsupportedSchema, check_schema
from leaderboard.publishing.results import for_display
from leaderboard.table.results_cache import CachedResults
from leaderboard.table.measures import measures_of
from leaderboard.table.metadata import provenance_label, reference_note
from leaderboard.table.ranking import choices
from leaderboard.table.styling import FAMILY_COLOURS, cell_alpha, style
from leaderboard.table.view import build_view
from leaderboard.table.ties import TIED_HEADER
from leaderboard.table.download import RANK_COLUMN, ranked_table
from leaderboard.table.protocols import ID_COLUMN
from leaderboard.ui.downloads import whole_table


def stored() -> pd.DataFrame:
    """A results table as an older evaluator stored it: SUN and MSUN, no SUN + MSUN."""
    def counted(name, counts, n_sub, n_val):
        return {f"{name}_count": counts,
                f"{name}_frac_submitted": [c / s for c, s in zip(counts, n_sub)],
                f"{name}_frac_valid": [c / v for c, v in zip(counts, n_val)]}

    n_sub, n_val = [100, 50, 10, 40], [80, 50, 5, 40]
    cols = {
        "submission_id": ["a", "b", "c", "d"],
        "model_name": ["Alpha", "Beta", "Gamma", "Delta"],
        "model_version": ["1", "2", "", "x"],
        "training_set": ["MP-20", "Alex-MP-20", "MP-20", "other"],
        "task": ["unconditional", "unconditional", "conditional", "unconditional"],
        "relaxed_before_submission": [True, False, None, False],
        "provenance": ["leaderboard worker"] * 4,
        "n_submitted": n_sub, "n_valid": n_val,
        "families": ["validity,sun"] * 4,  # text: never a metric
    }
    for fam, name, counts in (("validity", "valid", n_val), ("sun", "sun", [5, 5, 0, 2]),
                              ("sun", "msun", [10, 1, 2, 2])):
        cols.update({f"{fam}.{k}": v for k, v in counted(name, counts, n_sub, n_val).items()})
    cols["stability.mean_e_above_hull"] = [0.10, 0.05, np.nan, 0.20]
    cols["distribution.jsd"] = [0.2, 0.1, 0.3, 0.25]
    cols["diversity.element_count"] = [40, 30, 5, 20]  # a lone count: a plain value
    cols["stability_unrelaxed.stable_count"] = [1, 2, 3, 4]
    cols["stability_unrelaxed.stable_frac_submitted"] = [0.01, 0.04, 0.3, 0.1]
    cols["mystery.widget_score"] = [1.0, 2.0, 3.0, 4.0]  # unknown family: still shown
    return pd.DataFrame(cols)


def results() -> pd.DataFrame:
    """``stored()`` as the leaderboard reads it (rows of older summaries upgraded)."""
    return for_display(stored())


def test_catalogue_folds_counts_and_keeps_unknown_metrics():
    ms = {m.key: m for m in measures_of(results())}
    assert ms["sun.sun"].columns == {"count": "sun.sun_count", "frac_submitted": "sun.sun_frac_submitted",
                                     "frac_valid": "sun.sun_frac_valid"}
    assert not ms["diversity.element_count"].counted
    assert "families" not in str(ms)  # text columns are not metrics
    assert ms["mystery.widget_score"].header() == "Widget score (mystery)"
    unrel = ms["stability_unrelaxed.stable"]
    assert unrel.base_family == "stability" and unrel.header() == "Stable (unrelaxed) ↑ [%]"
    # directions, labels and units come from the families' declarations
    assert ms["stability.mean_e_above_hull"].direction == -1 and ms["sun.msun"].direction == 1
    assert ms["stability.mean_e_above_hull"].header() == "Mean E_hull ↓ [eV/atom]"
    assert ms["distribution.jsd"].direction == -1 and ms["mystery.widget_score"].direction == 0
    # SUN + MSUN is upgraded into rows of older summaries, as a real column
    assert ms["sun.sun_plus_msun"].columns["frac_submitted"] == "sun.sun_plus_msun_frac_submitted"


def test_measures_are_the_catalogue_declarations():
    """Every measure of a declared key carries exactly its family's declaration."""
    ms = {m.key: m for m in measures_of(results())}
    for key, m in ms.items():
        block, name = key.split(".", 1)
        declared = C.metric_for(block, name)
        if declared is None:
            continue
        assert (m.label, m.direction, m.unit, m.description) == (
            declared.label, declared.direction, declared.unit, declared.description), key
        assert m.headline == (declared.headline and block == C.family_of(block)), key


def test_undeclared_metrics_have_no_direction_and_a_humanised_label():
    """Nothing is guessed from a name: an undeclared column, even one that looks like a
    known kind of metric, has direction 0 ("no preference") and its name as label."""
    df = results().assign(**{"stability.mean_e_above_hull_rmse": [0.1, 0.2, 0.3, 0.4],
                             "novelty.novel_fraction_custom": [0.5, 0.6, 0.7, 0.8],
                             "hhi.n_failed_count": [1, 2, 3, 4]})
    ms = {m.key: m for m in measures_of(df)}
    for key, label in (("stability.mean_e_above_hull_rmse", "Mean e above hull rmse"),
                       ("novelty.novel_fraction_custom", "Novel fraction custom"),
                       ("hhi.n_failed_count", "N failed count")):
        assert ms[key].direction == 0 and ms[key].label == label and ms[key].arrow == ""
    # a view ranked by an undirected measure still renders (ascending = no preference flips nothing)
    assert build_view(df, rank_by="stability.mean_e_above_hull_rmse").frame["#"].notna().any()


def test_default_rank_is_sun_plus_msun_per_submitted_structure():
    v = build_view(results())
    col = "SUN + MSUN ↑ [%]"
    expected = {"Alpha (1)": 15.0, "Beta (2)": 12.0, "Gamma": 20.0, "Delta (x)": 10.0}
    got = dict(zip(v.frame["Model"], v.frame[col]))
    assert got == pytest.approx(expected)
    assert list(v.frame["Model"]) == ["Gamma", "Alpha (1)", "Beta (2)", "Delta (x)"]
    assert list(v.frame["#"]) == [1, 2, 3, 4]
    assert v.submission_ids == ["c", "a", "b", "d"]


def test_rank_respects_direction_and_puts_missing_last():
    v = build_view(results(), rank_by="stability.mean_e_above_hull", view="full")
    assert v.submission_ids == ["b", "a", "d", "c"]  # lower is better; NaN last
    assert pd.isna(v.frame["#"].iloc[-1])
    v = build_view(results(), rank_by="validity.valid", view="full")  # b and d: 100 %
    assert list(v.frame["#"]) == [1, 1, 3, 4]  # ties share the better rank


def test_counts_vs_percentages():
    pct = build_view(results(), view="full", show="% of valid")
    row = pct.frame.set_index("Model").loc["Alpha (1)"]
    assert row["SUN ↑ [%]"] == pytest.approx(100 * 5 / 80)
    cnt = build_view(results(), view="full", show="counts")
    row = cnt.frame.set_index("Model").loc["Alpha (1)"]
    assert row["SUN ↑ [n]"] == 5 and row["MSUN ↑ [n]"] == 10
    # with counts shown, ranking still uses per-submitted fractions (counts are not comparable)
    assert cnt.submission_ids == build_view(results()).submission_ids == ["c", "a", "b", "d"]
    # per valid structure the order differs: Gamma (4 of 5 valid) leads by more
    assert pct.submission_ids[0] == "c"


def test_filters_and_search():
    df = results()
    assert build_view(df, training_set="MP-20").submission_ids == ["c", "a"]
    assert build_view(df, task="conditional").submission_ids == ["c"]
    assert sorted(build_view(df, relaxed="no").submission_ids) == ["b", "d"]
    assert build_view(df, relaxed="yes").submission_ids == ["a"]
    assert build_view(df, search="bet").submission_ids == ["b"]
    assert build_view(df, search="zzz").frame.empty
    assert choices(df, "training_set") == ["All", "Alex-MP-20", "MP-20", "other"]


def test_compact_full_and_family_picker():
    df = results()
    compact = build_view(df)
    full = build_view(df, view="full")
    assert set(compact.metric_headers) < set(full.metric_headers)
    # The full view shows directed metrics by default; the column picker adds any other one.
    assert "Widget score (mystery)" not in full.metric_headers
    picked = build_view(df, view="full", columns=["mystery.widget_score", "distribution.jsd"])
    assert [h for h in picked.metric_headers] == ["SUN + MSUN ↑ [%]", "JSD ↓", "Widget score (mystery)"]
    assert "Widget score (mystery)" not in compact.metric_headers
    only_sun = build_view(df, view="full", families=["sun"])
    assert only_sun.metric_headers and all(m.base_family == "sun" for m in only_sun.measures)
    assert {"Model", "Training set", "N structures", "Pre-relaxed"} <= set(compact.frame.columns)
    assert list(compact.frame["Pre-relaxed"]) == ["—", "yes", "no", "no"]
    # One name for the evaluator everywhere, with its version ("Evaluated by"); the compact view
    # says it once when every row shares it, the full view in every row.
    assert "Evaluated by" not in compact.frame.columns
    assert compact.common == {"Evaluated by": "leaderboard evaluator (version not recorded)"}
    assert set(full.frame["Evaluated by"]) == {"leaderboard evaluator (version not recorded)"}
    versioned = build_view(df.assign(evaluator_version="0.4.1"))
    assert versioned.common == {"Evaluated by": "leaderboard evaluator 0.4.1"}
    mixed = build_view(df.assign(evaluator_version=["0.4.1", "0.4.1", "0.5.0", "0.5.0"]))
    assert set(mixed.frame["Evaluated by"]) == {"leaderboard evaluator 0.4.1", "leaderboard evaluator 0.5.0"}
    assert mixed.common == {}
    # Ranked by a measure the compact view does not list: it is shown all the same, first.
    other = next(m for m in measures_of(df) if m.direction and m.header(compact.show) not in compact.metric_headers)
    ranked = build_view(df, rank_by=other.key)
    assert ranked.metric_headers[0] == other.header(compact.show)


def test_cell_colouring_follows_direction():
    a = cell_alpha(pd.Series([0.0, 0.5, 1.0, np.nan]), +1)
    assert a[0] < a[1] < a[2] and math.isnan(a[3])
    b = cell_alpha(pd.Series([0.0, 0.5, 1.0]), -1)
    assert b[0] > b[1] > b[2]
    flat = cell_alpha(pd.Series([2.0, 2.0]), +1)
    assert flat[0] == flat[1]


def test_styler_renders_through_gradio_with_family_colours_and_dashes():
    import gradio as gr

    v = build_view(results(), view="full")
    payload = gr.Dataframe(interactive=False).postprocess(style(v))
    headers = payload.headers
    styles = payload.metadata["styling"]
    shown = payload.metadata["display_value"]
    i = headers.index("Mean E_hull ↓ [eV/atom]")
    rgb = "rgba({}, {}, {}".format(*FAMILY_COLOURS["stability"])
    gamma = v.submission_ids.index("c")
    assert shown[gamma][i] == "—" and styles[gamma][i] == ""  # missing: dash, no colour
    assert all(rgb in styles[r][i] for r in range(len(styles)) if r != gamma)
    j = headers.index("Model")
    assert styles[0][j] == ""  # metadata is not coloured
    # the underlying values stay numeric, so sorting in the browser is numeric
    assert isinstance(payload.data[0][headers.index("SUN ↑ [%]")], float)


def test_a_page_is_styled_against_the_whole_column():
    import gradio as gr

    v = build_view(results(), view="full")
    whole = gr.Dataframe(interactive=False).postprocess(style(v))
    page = gr.Dataframe(interactive=False).postprocess(style(v, slice(1, 3)))
    assert page.data == whole.data[1:3]  # only the page's rows are sent
    assert page.metadata["styling"] == whole.metadata["styling"][1:3]  # tints of the whole column
    assert page.metadata["display_value"] == whole.metadata["display_value"][1:3]


def test_empty_results_table():
    v = build_view(pd.DataFrame({"submission_id": pd.Series([], dtype=object)}))
    assert v.frame.empty and list(v.frame.columns) == ["#"]
    style(v)  # renders


def test_cached_results_ttl_and_fingerprint():
    calls, token = [], ["v1"]

    def load():
        calls.append(1)
        return pd.DataFrame({"x": [len(calls)]})

    cache = CachedResults(load, ttl=0.0, fingerprint=lambda: token[0])
    first = cache.get()
    assert cache.get() is first and len(calls) == 1  # expired TTL but same fingerprint: no reload
    token[0] = "v2"
    assert cache.get() is not first and len(calls) == 2
    cache.get(force=True)
    assert len(calls) == 3
    long = CachedResults(load, ttl=3600.0, fingerprint=lambda: token[0])
    long.get()
    token[0] = "v3"
    long.get()
    assert long.loads == 1  # within the TTL the store is not even asked


def with_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Intervals as summary_row flattens summary.json's "uncertainty" block (d has none)."""
    df = df.copy()
    f = df["sun.sun_frac_submitted"] + df["sun.msun_frac_submitted"]
    df["sun.sun_plus_msun_frac_submitted"] = f
    df["sun.sun_plus_msun_count"] = df["sun.sun_count"] + df["sun.msun_count"]
    df["sun.sun_plus_msun_frac_valid"] = df["sun.sun_plus_msun_count"] / df["n_valid"]
    half = [0.04, 0.07, 0.001, np.nan]
    df["uncertainty.sun.sun_plus_msun_frac_submitted.lo"] = f - half
    df["uncertainty.sun.sun_plus_msun_frac_submitted.hi"] = f + half
    df["uncertainty.validity.valid_frac_submitted.lo"] = df["validity.valid_frac_submitted"] - 0.1
    df["uncertainty.validity.valid_frac_submitted.hi"] = df["validity.valid_frac_submitted"]
    df["uncertainty_level"] = 0.95
    return df


def test_intervals_are_shown_and_overlaps_named():
    df = with_intervals(results())
    assert not any(m.key.startswith("uncertainty") for m in measures_of(df))  # never a metric
    v = build_view(df)
    rows = {r["Model"].split(" (")[0]: r for r in v.frame.to_dict("records")}
    # SUN + MSUN: a 15 % ± 4, b 12 % ± 7, c 20 % ± 0.1, d no interval.
    assert rows["Alpha"]["SUN + MSUN 95 % CI [%]"] == "11.0–19.0"
    assert rows["Delta"]["SUN + MSUN 95 % CI [%]"] == "—"
    # Statistically tied: how many others, and the ranks spanned (not a list of names).
    assert rows["Gamma"][TIED_HEADER] == "0"  # 19.9–20.1 % overlaps neither
    assert rows["Alpha"][TIED_HEADER] == "1 (#2–#3)"
    assert rows["Beta"][TIED_HEADER] == "1 (#2–#3)"
    assert rows["Delta"][TIED_HEADER] == "—"
    assert "Valid 95 % CI [%]" not in v.frame.columns  # compact: the rank metric's interval only
    full = build_view(df, view="full")
    assert full.frame["Valid 95 % CI [%]"].tolist()[0] == "40.0–50.0"  # Gamma ranks first: 5/10 valid
    # The rank metric without intervals (old results): no overlap claims.
    bare = build_view(results())
    assert set(bare.frame[TIED_HEADER]) == {"—"}


def test_fractions_energies_and_reference_note():
    df = results()
    df["validity.valid_frac_parsed"] = [0.96666666, 1.0, 0.5, 1.0]
    ms = {m.key: m for m in measures_of(df)}
    assert ms["validity.valid_frac_parsed"].header() == "Valid (of parsed) ↑ [%]"
    v = build_view(df, view="full", columns=["validity.valid_frac_parsed", "stability.mean_e_above_hull"])
    assert v.frame["Valid (of parsed) ↑ [%]"].tolist()[1] == pytest.approx(96.666666)  # ×100 like the rates
    assert v.formats["Valid (of parsed) ↑ [%]"] == "{:.1f}" and v.formats["Mean E_hull ↓ [eV/atom]"] == "{:.3f}"
    html = style(v).to_html()
    assert "96.7" in html and "0.100" in html and "0.10000000" not in html
    assert reference_note(df).count("coverage was not recorded") == 1
    df["reference"] = "mp20"
    df["reference_coverage"] = "MP-20 holds cells of ≤ 20 atoms"
    df["reference_n_structures"], df["reference_max_sites"] = 45229, 20
    note = reference_note(df)
    assert "mp20 (45,229 structures, ≤ 20 sites per cell): MP-20 holds cells of ≤ 20 atoms" in note


def test_summary_row_carries_intervals_and_coverage():
    from leaderboard.jobs.queue import Job
    from leaderboard.publishing.results import summary_row

    summary = {"metrics": {"sun": {"sun_frac_submitted": 0.2}},
               "uncertainty": {"sun": {"sun_frac_submitted": {"lo": 0.1, "hi": 0.3}}},
               "provenance": {"evaluator_version": "1.2", "uncertainty": {"level": 0.95, "n_resamples": 1000,
                                                                          "seed": 0, "method": "bootstrap"},
                              "reference": {"id": "mp20", "coverage": {"description": "d", "n_structures": 5,
                                                                       "max_sites": 20}}}}
    row = summary_row(Job(id="x"), {}, summary)
    assert row["uncertainty.sun.sun_frac_submitted.lo"] == 0.1 and row["uncertainty.sun.sun_frac_submitted.hi"] == 0.3
    assert (row["reference_coverage"], row["reference_max_sites"], row["uncertainty_level"]) == ("d", 20, 0.95)
    assert provenance_label(row["provenance"], row["evaluator_version"]) == "leaderboard evaluator 1.2"


# ---------------------------------------------------------------- stored results and schema versions
def _publish(store, tmp_path, model: str, sun: int, msun: int, *, with_sum: bool = True,
             schema_version: int | None = None) -> str:
    """Submit, claim and publish one submission of 10 structures with hand-written metrics."""
    from store_helpers import write_unique_files

    from leaderboard.jobs.queue import claim
    from leaderboard.publishing.results import publish
    from leaderboard.intake.submissions import SubmissionPolicy, submit

    meta = {"model_name": model, "model_version": "1", "training_set": "MP-20", "task": "unconditional",
            "relaxed_before_submission": False}
    job = submit(store, meta, write_unique_files(tmp_path / model, 1), f"user-{model}",
                 SubmissionPolicy(max_per_window=0))
    claimed = claim(store, "w", 600)
    assert claimed is not None and claimed.id == job.id
    sun_block = {"sun_count": sun, "sun_frac_submitted": sun / 10, "sun_frac_valid": sun / 10,
                 "msun_count": msun, "msun_frac_submitted": msun / 10, "msun_frac_valid": msun / 10}
    if with_sum:
        sun_block.update({"sun_plus_msun_count": sun + msun, "sun_plus_msun_frac_submitted": (sun + msun) / 10,
                          "sun_plus_msun_frac_valid": (sun + msun) / 10})
    summary = {"n_submitted": 10, "n_parsed": 10, "n_valid": 10, "n_evaluated": 10,
               "metrics": {"sun": sun_block}, "provenance": {"evaluator_version": "t"}}
    if schema_version is not None:
        summary["schema_version"] = schema_version
    publish(store, claimed, summary, b"", "w")
    return job.id


def test_an_old_summary_without_sun_plus_msun_still_ranks_by_it(tmp_path):
    from store_helpers import local_store

    from leaderboard.publishing.results import load_results_table

    store = local_store(tmp_path)
    _publish(store, tmp_path, "Old", 1, 4, with_sum=False)  # 50 %, written before SUN + MSUN existed
    _publish(store, tmp_path, "New", 3, 0, schema_version=1)  # 30 %
    table = load_results_table(store)
    v = build_view(table)
    assert v.frame["Model"].tolist() == ["Old (1)", "New (1)"]
    assert v.frame["SUN + MSUN ↑ [%]"].tolist() == pytest.approx([50.0, 30.0])
    counts = build_view(table, show="counts")
    assert counts.frame["SUN + MSUN ↑ [n]"].tolist() == [5, 3]


def test_schema_version_is_checked_with_a_clear_message():
    assert check_schema({}) == 1  # summaries older than the field
    assert check_schema({"schema_version": 1}) == 1
    with pytest.raises(UnsupportedSchema) as err:
        check_schema({"schema_version": 7})
    assert str(err.value) == ("summary schema_version 7 is not supported by this leaderboard (knows 1, 2); "
                              "upgrade the leaderboard")
    with pytest.raises(UnsupportedSchema, match="not a version number"):
        check_schema({"schema_version": "1"})


def test_unknown_schema_versions_are_left_out_and_the_others_load(tmp_path, caplog):
    """A newer evaluator's results (a stored row, or a summary whose row must be rebuilt) are
    refused with the reason, never stop the others loading, and are never deleted."""
    from store_helpers import local_store

    from leaderboard.publishing.results import (LEADERBOARD_PATH, frame_to_parquet, load_results_table, summary_path,
                                     sync_leaderboard)
    from leaderboard.store import dumps

    store = local_store(tmp_path)
    a = _publish(store, tmp_path, "Alpha", 2, 2)
    b = _publish(store, tmp_path, "Beta", 1, 1)
    c = _publish(store, tmp_path, "Gamma", 3, 3)
    # b's row as a newer worker would have stored it; c's summary too, with its row lost
    table = load_results_table(store)
    table.loc[table["submission_id"] == b, "schema_version"] = 7
    store.write_bytes(LEADERBOARD_PATH, frame_to_parquet(table[table["submission_id"] != c]))
    summary, _ = store.read_json(summary_path(c))
    store.write_bytes(summary_path(c), dumps({**summary, "schema_version": 8}))
    with caplog.at_level("WARNING", logger="leaderboard.publishing.results"):
        shown = load_results_table(store)
    assert shown["submission_id"].tolist() == [a]
    assert set(shown.attrs["refused"]) == {b, c}
    assert "schema_version 7 is not supported" in shown.attrs["refused"][b]
    assert "schema_version 8 is not supported" in shown.attrs["refused"][c]
    assert f"results of {b} left out of the leaderboard" in caplog.text
    assert load_results_table(store, reconcile=False)["submission_id"].tolist() == [a]
    # writing the table back keeps the newer row for the leaderboard that can read it
    synced = sync_leaderboard(store)
    assert sorted(synced["submission_id"]) == sorted([a, b])
    # publishing a summary of an unknown version fails (the worker reports why on the job)
    with pytest.raises(UnsupportedSchema, match="schema_version 9"):
        _publish(store, tmp_path, "Delta", 1, 1, schema_version=9)
    assert load_results_table(store)["submission_id"].tolist() == [a]


# ---------------------------------------------------------------- download (issue 26 item 6)

def test_download_carries_the_on_screen_rank_and_order():
    res = results()
    table = ranked_table(res)
    v = build_view(res)
    assert list(table.columns[:2]) == [RANK_COLUMN, "ranked_by"]
    assert list(table["submission_id"]) == v.submission_ids == ["c", "a", "b", "d"]
    assert list(table[RANK_COLUMN]) == list(v.frame["#"]) == [1, 2, 3, 4]
    assert set(table.columns[2:]) == set(res.columns)  # every stored column kept


def test_download_ranks_each_protocol_separately_pinned_first_unknown_unranked():
    res = results()
    res[ID_COLUMN] = ["p1", "p2", "p2", None]  # d: protocol unknown
    table = ranked_table(res, pinned="p2")
    assert list(table["submission_id"]) == ["c", "b", "a", "d"]  # p2 (pinned) ranked first, then p1, unknown last
    assert list(table[RANK_COLUMN][:3]) == [1, 2, 1]
    assert pd.isna(table[RANK_COLUMN].iloc[3]) and pd.isna(table["ranked_by"].iloc[3])
    assert len(ranked_table(res.iloc[0:0])) == 0


def test_csv_and_parquet_files_keep_rank_and_order(tmp_path):
    table = ranked_table(results())
    csv = pd.read_csv(whole_table(table, "csv", tmp_path))
    pq = pd.read_parquet(whole_table(table, "parquet", tmp_path))
    for got in (csv, pq):
        assert got.columns[0] == RANK_COLUMN
        assert list(got["submission_id"]) == ["c", "a", "b", "d"]
        assert list(got[RANK_COLUMN]) == [1, 2, 3, 4]


# ---------------------------------------------------------------- number formats, formulas (issue 26 item 4)
def test_one_number_format_per_column_with_trailing_zeros():
    from leaderboard.table.formats import column_format, sig_text

    df = results()
    df["distribution.jsd"] = [0.48, 0.359, 0.3, np.nan]  # was "0.48" beside "0.359" ({:.3g})
    df["mystery.widget_score"] = [12.0, 17.7, 7.67, 100.5]
    v = build_view(df, view="full", columns=["distribution.jsd", "mystery.widget_score"])
    jsd = next(h for h in v.formats if h.startswith("JSD") or "JSD" in h)
    widget = next(h for h in v.formats if "idget" in h)
    assert v.formats[jsd] == "{:.3f}" and v.formats[widget] == "{:.0f}"
    html = style(v).to_html()
    assert all(t in html for t in ("0.480", "0.359", "0.300")) and ">0.48<" not in html
    assert column_format([12, 17.7, 7.67]) == "{:.1f}"  # "12.0", "17.7", "7.7"
    assert [sig_text(x) for x in (0.48, 12, 7.67, 0.001234)] == ["0.480", "12.0", "7.67", "0.00123"]


def test_formulas_as_chemists_write_them_and_yes_no():
    from leaderboard.table.formats import chem_formula, yes_no
    from leaderboard.ui.structures_view import candidates
    from leaderboard.ui.summary_view import _num, meta_markdown

    assert [chem_formula(f) for f in ("Al1I7", "Al1 I7", "V1Br5", "Na10Cl10", "Fe1.5O1", None)] == \
        ["AlI7", "AlI7", "VBr5", "Na10Cl10", "Fe1.5O", ""]
    assert (yes_no(True), yes_no(False), yes_no("x")) == ("yes", "no", "x")
    assert _num(True) == "yes" and _num(0.48) == "0.480" and _num(12.0, count=True) == "12" and _num(1234) == "1,234"
    text = meta_markdown("j1", {"model_name": "M", "relaxed_before_submission": True}, {})
    assert "**Relaxed before submission:** yes" in text and "True" not in text
    per = pd.DataFrame({"index": [0, 1], "formula": ["Al1I7", "V1Br5"], "reduced_formula": ["AlI7", "VBr5"],
                        "sun_sun": [True, False], "sun_msun": [False, True],
                        "stability_e_above_hull": [0.0, 0.05]})
    table, _ = candidates(per)
    assert list(table["formula"]) == ["AlI7", "VBr5"]
