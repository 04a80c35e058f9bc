"""Headless Debian chromium (Playwright) drives the real page: tabs, the example
submission, status, the model page via its permalink. Every request to a host
other than the app is blocked, so the page is shown to work offline.

Screenshots go to tests/artifacts/ (gitignored); good ones are copied to
docs/screenshots/ for the README by hand.
"""

from __future__ import annotations


import pytest
from browser_helpers import BROWSER_MARKS, chromium, offline_page
from repo_paths import ARTIFACTS

# Bound of every wait on the page's state: generous, since a loaded CI machine (load average
# several times its cores) can take minutes where an idle one takes a second. Hang detection only.
UI_WAIT_S = 300

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_server):
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser, offline_page(browser, app_server.url) as pg:
        yield pg


def shot(page, name: str, full_page: bool = False) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()


def test_tabs_example_submission_status_and_permalink(page, app_server, finished_job, wait):
    from leaderboard.jobs.queue import get_job

    page.goto(app_server.url)
    page.wait_for_selector("#leaderboard-table")
    page.get_by_text("SUN + MSUN", exact=False).first.wait_for()
    shot(page, "leaderboard")

    # Compact -> full view adds columns.
    n_compact = page.locator("#leaderboard-table th").count()
    page.get_by_role("radio", name="full").check()
    wait(lambda: page.locator("#leaderboard-table th").count() > n_compact, UI_WAIT_S, 0.5, "full view")

    open_tab(page, "Plots")
    page.wait_for_selector("#plot0 .js-plotly-plot")
    shot(page, "plots")

    open_tab(page, "Submit")
    page.locator("#submit-example").click()
    check = page.locator("#submit-check")
    wait(lambda: "structures found" in check.inner_text(), UI_WAIT_S, 0.5, "the example's upload check")
    assert "parsed" in check.inner_text()
    assert page.locator("#meta-model_name input, #meta-model_name textarea").first.input_value()
    page.locator("#submit-button").click()
    result = page.locator("#submit-result")
    wait(lambda: "Accepted" in result.inner_text() or "efused" in result.inner_text(), UI_WAIT_S, 0.5,
             "the submission result")
    assert "Accepted" in result.inner_text(), result.inner_text()
    pending_id = result.inner_text().split("submission ")[1].split()[0].strip("`*")
    shot(page, "submit")

    open_tab(page, "My submissions")
    table = page.locator("#status-table")
    wait(lambda: "MatterGen" in table.inner_text(), UI_WAIT_S, 0.5, "the status row")
    assert "PENDING" in table.inner_text() or "RUNNING" in table.inner_text()
    shot(page, "status")

    # The permalink of a finished submission opens its model page.
    page.goto(f"{app_server.url}?submission={finished_job}")
    page.wait_for_selector("#model-meta h2")
    assert get_job(app_server.ctx.store, finished_job).model_name in page.locator("#model-meta").inner_text()
    page.wait_for_selector("#model-ptable .js-plotly-plot")
    page.wait_for_selector("#model-ehull .js-plotly-plot")
    assert "_cell_length_a" in page.locator("#model-cif").inner_text()
    shot(page, "model", full_page=True)
    # ... and an unfinished one opens its status.
    page.goto(f"{app_server.url}?submission={pending_id}")
    wait(lambda: pending_id in page.locator("#status-detail").inner_text(), UI_WAIT_S, 0.5,
         "the status detail")
    # The owner withdraws the example from the status tab (it is hidden, not deleted), after confirming.
    page.locator("#status-withdraw").click()
    page.locator("#status-confirm-yes").click()
    wait(lambda: "withdrawn" in page.locator("#status-detail").inner_text(), UI_WAIT_S, 0.5, "the withdrawal")
    assert get_job(app_server.ctx.store, pending_id).status == "HIDDEN"
    print("blocked external requests:", page.external_requests)
