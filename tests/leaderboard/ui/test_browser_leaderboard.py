"""The leaderboard UI in headless Debian chromium (Playwright): downloads, ranking, the
empty model page, the reference's limits, number formatting, confidence intervals, the
candidate page and the comparison view.

The app runs on its own store holding three finished submissions published in the
evaluator's layout (tests/support/leaderboard_fixtures.py): Alpha and Beta with confidence
intervals, reference coverage and candidate records, Gamma evaluated "before" those
existed. Every request to another host is blocked (the page works offline).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from browser_helpers import BROWSER_MARKS, chromium, offline_page

from app_fixtures import served_app, wait_for
from leaderboard_fixtures import COVERAGE, EVALUATOR_VERSION, publish_fixture, ranks_consistent
from repo_paths import ARTIFACTS

pytestmark = BROWSER_MARKS


class Server:
    def __init__(self, url, ctx, ids):
        self.url, self.ctx, self.ids = url, ctx, ids


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from leaderboard.ui.shared_state import make_context

    root = tmp_path_factory.mktemp("lbstore")
    ctx = make_context(str(root / "state"), ttl_s=0.5, refresh_s=2.0, status_refresh_s=1.0)
    ids = {"Alpha": publish_fixture(ctx.store, root, "Alpha", 12, 3, 2, ci_halfwidth=0.12),
           "Beta": publish_fixture(ctx.store, root, "Beta", 10, 2, 1, ci_halfwidth=0.1),
           "Gamma": publish_fixture(ctx.store, root, "Gamma", 8, 0, 1, old_style=True)}
    with served_app(ctx) as (url, _):
        yield Server(url, ctx, ids)


@pytest.fixture(scope="module")
def browser():
    with chromium(webgl=True) as b:
        yield b


@pytest.fixture
def page(browser, server):
    ARTIFACTS.mkdir(exist_ok=True)
    with offline_page(browser, server.url, accept_downloads=True) as pg:
        yield pg


def open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()


def table_rows(page, elem: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of a gr.Dataframe as displayed (its body is a virtual list of role=row divs)."""
    return page.evaluate("""(id) => {
        const root = document.getElementById(id);
        if (!root) return [[], []];
        const heads = [...root.querySelectorAll('thead th[data-heading]')].map(h => h.innerText.trim());
        const rows = [...root.querySelectorAll('div[role=row][data-index]')]
            .sort((a, b) => +a.dataset.index - +b.dataset.index)
            .map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()));
        return [heads, rows];
    }""", elem)


def load_leaderboard(page, server) -> None:
    page.goto(server.url)
    page.wait_for_selector("#leaderboard-table")
    wait_for(lambda: len(table_rows(page, "leaderboard-table")[1]) == 3, 60, 0.3, "three leaderboard rows")


def first_metric(page) -> str:
    """The leaderboard's first metric header (the rank metric comes first, after the metadata)."""
    h = table_rows(page, "leaderboard-table")[0]
    return h[h.index("Pre-relaxed") + 1] if "Pre-relaxed" in h else ""


def column(page, elem: str, header: str) -> list[str]:
    headers, rows = table_rows(page, elem)
    i = headers.index(header)
    return [r[i] for r in rows]


def test_leaderboard_downloads_on_the_first_click(page, server):
    """Each download button yields a real file with every finished submission on ONE click
    (the bug: the file was made by the click itself, so only the second click downloaded)."""
    load_leaderboard(page, server)
    shown = list(zip(column(page, "leaderboard-table", "#"), column(page, "leaderboard-table", "Model")))
    open_tab(page, "Model page & downloads")
    with page.expect_download(timeout=30_000) as info:
        page.locator("#dl-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert sorted(r["submission_id"] for r in rows) == sorted(server.ids.values())
    # the on-screen rank and order (issue 26): "#" and the model names, row by row
    assert [(r["rank"], r["model_name"]) for r in rows] == [(n, m.split(" (")[0]) for n, m in shown]
    with page.expect_download(timeout=30_000) as info:
        page.locator("#dl-parquet").click()
    table = pd.read_parquet(info.value.path())
    assert sorted(table["submission_id"]) == sorted(server.ids.values())
    assert {"model_name", "sun.sun_plus_msun_frac_submitted"} <= set(table.columns)
    # A model page's per-structure download: one click as well, every submitted structure.
    page.goto(f"{server.url}?submission={server.ids['Beta']}")
    page.wait_for_selector("#model-meta h2")
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name="Per-structure results (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert [int(r["index"]) for r in rows] == list(range(10))


def test_rank_by_renumbers_and_no_stale_client_sort(page, server):
    """Ranking is the "Rank by" control's (server side): # always matches the order. The table's
    own column menu, whose sort left # stale, is gone."""
    load_leaderboard(page, server)
    page.locator("#leaderboard-table thead th").nth(2).hover()
    menus = page.locator("#leaderboard-table .cell-menu-button")
    assert menus.count() == 0 or not any(menus.nth(i).is_visible() for i in range(menus.count()))
    assert "Click a header to sort" not in page.locator("body").inner_text()
    first = column(page, "leaderboard-table", "SUN + MSUN ↑ [%]")
    assert ranks_consistent(column(page, "leaderboard-table", "#"), [float(v) for v in first])
    # Re-rank by mean E_hull (lower is better): rows reorder and # is renumbered.
    page.locator("#lb-rank input").click()
    page.get_by_role("option", name="Mean E_hull ↓").click()
    wait_for(lambda: first_metric(page).startswith("Mean E_hull"), 30, 0.3, "the table ranked by mean E_hull")
    ehull = [float(v) for v in column(page, "leaderboard-table", "Mean E_hull ↓ [eV/atom]")]
    assert ranks_consistent(column(page, "leaderboard-table", "#"), ehull, higher_better=False)
    models = column(page, "leaderboard-table", "Model")
    assert models[0].startswith("Gamma") and len(models) == 3


def test_model_page_empty_state(page, server):
    """Before a submission is picked, the model page explains what will appear: no blank
    tables headed "1 2 3", no empty plot frames."""
    page.goto(server.url)
    open_tab(page, "Model page & downloads")
    empty = page.locator("#model-empty")
    empty.wait_for(state="visible")
    assert "candidate" in empty.inner_text() and "E_hull" in empty.inner_text()
    for elem in ("model-metrics", "model-ehull", "model-ptable", "model-candidates"):
        loc = page.locator(f"#{elem}")
        assert loc.count() == 0 or not loc.first.is_visible(), elem
    headers = page.locator("#tab-model thead th").all_inner_texts()
    assert not any(h.strip() in ("1", "2", "3") for h in headers if page.locator("#tab-model thead").first.is_visible())
    page.screenshot(path=str(ARTIFACTS / "lb-model-empty.png"))


def test_model_page_before_any_results(browser, tmp_path):
    """On a store with no finished submission the model page says what will appear once one is
    evaluated (and the downloads hold an empty table rather than nothing)."""
    from leaderboard.ui.shared_state import make_context

    ctx = make_context(str(tmp_path / "state"), ttl_s=0.5, refresh_s=2.0, status_refresh_s=1.0)
    with served_app(ctx) as (url, _):
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.goto(url)
        open_tab(pg, "Model page & downloads")
        empty = pg.locator("#model-empty")
        empty.wait_for(state="visible")
        assert "No finished submissions yet" in empty.inner_text() and "Submit" in empty.inner_text()
        assert not pg.locator("#model-page").is_visible()
        assert not any(pg.locator(f"#{e}").is_visible() for e in ("model-metrics", "model-ehull", "model-ptable"))
        pg.close()


def test_reference_limits_and_flags_on_screen(page, server):
    """Next to Novel, SUN and MSUN the reference's coverage is stated (leaderboard, plots, model
    page); candidates larger than any reference cell and sparse chemical systems are flagged."""
    load_leaderboard(page, server)
    caption = page.locator("#lb-caption").inner_text()
    assert COVERAGE["description"] in caption and "45,229 structures" in caption
    assert "coverage was not recorded" in caption  # Gamma: evaluated before coverage was stored
    open_tab(page, "Plots")
    page.wait_for_selector("#plot0 .js-plotly-plot")
    wait_for(lambda: "relative to the reference" in page.locator("#plot0").inner_text(), 30, 0.3,
             "the novelty plot's pointer to the reference note")
    assert COVERAGE["description"] in page.locator("#plots-reference").inner_text()
    page.goto(f"{server.url}?submission={server.ids['Alpha']}")
    page.wait_for_selector("#model-meta h2")
    assert COVERAGE["description"] in page.locator("#model-reference").inner_text()
    wait_for(lambda: "larger than any reference cell" in " ".join(table_rows(page, "model-candidates")[0]), 30,
             0.3, "the flag columns of the candidates table")
    flags = column(page, "model-candidates", "larger than any reference cell")
    assert flags.count("⚠ yes") == 1
    assert column(page, "model-candidates", "sparse chemical system").count("⚠ yes") == 1


def test_number_formatting_evaluator_name_and_column_picker(page, server):
    """Rounded to meaning (E_hull 3 decimals, rates % with one decimal, *_frac_parsed as %), the
    evaluator named with its version, one search box, a column picker in the full view."""
    load_leaderboard(page, server)
    assert page.locator("#leaderboard-table input:not([type=file])").count() == 0  # no second search box
    # every row evaluated by the same evaluator: said once, beside the table (the full view has the column)
    assert "Evaluated by" not in table_rows(page, "leaderboard-table")[0]
    assert f"Evaluated by (every row): leaderboard evaluator {EVALUATOR_VERSION}" in \
        page.locator("#lb-caption").inner_text()
    for v in column(page, "leaderboard-table", "SUN + MSUN ↑ [%]"):
        assert len(v.split(".")[1]) == 1, v
    page.get_by_role("radio", name="full").check()
    picker = page.locator("#lb-columns")
    picker.wait_for(state="visible")
    wait_for(lambda: "Valid 95 % CI [%]" in table_rows(page, "leaderboard-table")[0], 30, 0.3, "the full view")
    e_hull = column(page, "leaderboard-table", "Mean E_hull ↓ [eV/atom]")  # full view: every headline metric
    assert e_hull and all(v == "—" or len(v.split(".")[1]) == 3 for v in e_hull), e_hull
    assert "Valid (of parsed) ↑ [%]" not in table_rows(page, "leaderboard-table")[0]  # in the picker only
    # The picker adds a column (fractions of parsed structures: % like every other rate) ...
    picker.locator("input").click()
    page.get_by_role("option", name="Validity · Valid (of parsed) ↑ [%]").click()
    wait_for(lambda: "Valid (of parsed) ↑ [%]" in table_rows(page, "leaderboard-table")[0], 30, 0.3,
             "the picked column")
    assert all(len(v.split(".")[1]) == 1 for v in column(page, "leaderboard-table", "Valid (of parsed) ↑ [%]"))
    page.keyboard.press("Escape")
    n_full = len(table_rows(page, "leaderboard-table")[0])
    # The picker removes a column from the full view.
    picker.get_by_role("button", name="Remove").first.click() if picker.get_by_role("button", name="Remove").count() \
        else picker.locator("[aria-label^='Remove'], .token-remove").first.click()
    wait_for(lambda: len(table_rows(page, "leaderboard-table")[0]) < n_full, 30, 0.3, "one column fewer")
    page.screenshot(path=str(ARTIFACTS / "lb-full.png"))


def test_confidence_intervals_in_table_and_plots(page, server):
    """Intervals in the table, overlap stated (ranks not distinguishable), error bars in the plots."""
    load_leaderboard(page, server)
    ci = dict(zip([m.split(" (")[0] for m in column(page, "leaderboard-table", "Model")],
                  column(page, "leaderboard-table", "SUN + MSUN 95 % CI [%]")))
    assert ci["Alpha"] == "29.7–53.7" and ci["Gamma"] == "—"
    tied = dict(zip([m.split(" (")[0] for m in column(page, "leaderboard-table", "Model")],
                    column(page, "leaderboard-table", "Tied with (rank metric)")))
    # statistically tied: a count and the ranks spanned (Alpha's and Beta's intervals overlap)
    assert all(re.fullmatch(r"[1-9]\d* \(#\d+–#\d+\)", tied[k]) for k in ("Alpha", "Beta")), tied
    assert tied["Gamma"] == "—"
    page.screenshot(path=str(ARTIFACTS / "lb-compact.png"))
    open_tab(page, "Plots")
    page.wait_for_selector("#plot0 .js-plotly-plot")
    wait_for(lambda: page.locator("#plot0 g.errorbar").count() >= 2, 30, 0.3, "error bars on the plot")
    assert "confidence intervals" in page.locator("#plot0").inner_text()
    page.screenshot(path=str(ARTIFACTS / "lb-plots.png"))


def test_candidate_page_structure_and_phase_diagram(page, server):
    """A SUN/MSUN candidate: interactive 3D structure (WebGL scene), phase diagram, energies."""
    page.goto(f"{server.url}?submission={server.ids['Alpha']}")
    page.wait_for_selector("#model-meta h2")
    details = page.locator("#candidate-details")
    wait_for(lambda: "E_hull after relaxation" in details.inner_text(), 60, 0.3, "the candidate details")
    text = details.inner_text()
    assert "E_hull before relaxation: 0.188 eV/atom" in text and "-0.012 eV/atom" in text
    assert "0.123 Å" in text and "mp-22862" in text and "larger than any reference cell" in text
    page.wait_for_selector("#candidate-structure .js-plotly-plot .gl-container canvas")
    assert page.locator("#candidate-structure").inner_text().count("Na") >= 1  # element legend
    page.wait_for_selector("#candidate-pd .js-plotly-plot")
    assert "Phase diagram of NaCl" in page.locator("#candidate-pd").inner_text()
    # Another candidate: the page follows the pick.
    page.locator("#candidate-pick input").click()
    page.get_by_role("option", name="#1 KBr (SUN) ⚠").click()
    wait_for(lambda: "Candidate #1 KBr" in details.inner_text(), 30, 0.3, "the second candidate")
    wait_for(lambda: "Phase diagram of KBr" in page.locator("#candidate-pd").inner_text(), 30, 0.3,
             "its phase diagram")
    page.locator("#candidate-structure").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "lb-candidate.png"), full_page=True)


def test_comparison_view(page, server):
    """Two submissions side by side: metric table with intervals, overlaid E_hull histograms,
    element coverage."""
    page.goto(server.url)
    open_tab(page, "Compare")
    pick = page.locator("#compare-pick input")
    for model in ("Alpha", "Gamma"):
        pick.click()
        page.get_by_role("option", name=f"{model} · {server.ids[model]}").click()
    wait_for(lambda: len(table_rows(page, "compare-table")[0]) == 3, 60, 0.3, "the comparison table")
    headers, rows = table_rows(page, "compare-table")
    assert headers[1].startswith("Alpha (1)") and headers[2].startswith("Gamma (1)")
    sun = next(r for r in rows if r[0].startswith("SUN + MSUN"))
    assert sun[1] == "41.7 % [29.7–53.7]" and sun[2] == "12.5 %"  # Gamma has no interval
    page.wait_for_selector("#compare-ehull .js-plotly-plot")
    wait_for(lambda: page.locator("#compare-ehull g.legend .traces").count() == 2, 30, 0.3, "two histograms")
    page.wait_for_selector("#compare-elements .js-plotly-plot")
    wait_for(lambda: all(m in page.locator("#compare-elements").inner_text() for m in ("Alpha (1)", "Gamma (1)")),
             30, 0.3, "one element-coverage row per submission")
    assert all(el in page.locator("#compare-elements").inner_text() for el in ("Na", "Cl", "K", "Br"))
    page.screenshot(path=str(ARTIFACTS / "lb-compare.png"), full_page=True)
