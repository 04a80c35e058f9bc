"""The leaderboard UI in headless Debian chromium (Playwright): downloads, ranking, the
empty model page, the reference's limits, number formatting, confidence intervals, the
candidate page and the comparison view.

The app runs on its own store holding three finished submissions published in the
evaluator's layout (tests/leaderboard_fixtures.py): Alpha and Beta with confidence
intervals, reference coverage and candidate records, Gamma evaluated "before" those
existed. Every request to another host is blocked (the page works offline).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from conftest_app import free_port, wait_for
from leaderboard_fixtures import COVERAGE, EVALUATOR_VERSION, publish_fixture, ranks_consistent

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # WebGL for plotly 3D
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists(CHROMIUM),
                                 reason="Debian chromium not installed (bash scripts/install-chromium.sh)")]


class Server:
    def __init__(self, url, ctx, ids):
        self.url, self.ctx, self.ids = url, ctx, ids


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.pop("SPACE_ID", None)
    from leaderboard.ui import build_app, launch_kwargs
    from leaderboard.ui.context import make_context

    root = tmp_path_factory.mktemp("lbstore")
    ctx = make_context(str(root / "state"), ttl_s=0.5, refresh_s=2.0, status_refresh_s=1.0)
    ids = {"Alpha": publish_fixture(ctx.store, root, "Alpha", 12, 3, 2, ci_halfwidth=0.12),
           "Beta": publish_fixture(ctx.store, root, "Beta", 10, 2, 1, ci_halfwidth=0.1),
           "Gamma": publish_fixture(ctx.store, root, "Gamma", 8, 0, 1, old_style=True)}
    demo = build_app(ctx)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_kwargs())
    yield Server(f"http://127.0.0.1:{port}/", ctx, ids)
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ARTIFACTS.mkdir(exist_ok=True)
    local = urlparse(server.url).netloc
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)

    def guard(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).netloc == local:
            return route.continue_()
        return route.abort()

    ctx.route("**/*", guard)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


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
    page.goto(server.url)
    open_tab(page, "Model page & downloads")
    with page.expect_download(timeout=30_000) as info:
        page.locator("#dl-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    assert sorted(r["submission_id"] for r in rows) == sorted(server.ids.values())
    with page.expect_download(timeout=30_000) as info:
        page.locator("#dl-parquet").click()
    table = pd.read_parquet(info.value.path())
    assert sorted(table["submission_id"]) == sorted(server.ids.values())
    assert {"model_name", "sun.sun_plus_msun_frac_submitted"} <= set(table.columns)


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
