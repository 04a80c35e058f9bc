"""Headless Debian chromium (Playwright) on the status screens: the all-submitters queue
table (header on one line, permalinks as real links), the owner's status view (stage,
rate, ETA, last progress, stalled warning, attempts and history) and the withdraw
confirmation. The app runs on its own store, seeded with status documents in the shape
the worker writes, so no real worker ever claims these jobs.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from browser_helpers import BROWSER_MARKS, chromium, offline_page

from app_fixtures import served_app
from repo_paths import ARTIFACTS

WAIT_MS = 90_000  # a bound on waiting for page state on a loaded machine, not a speed claim

pytestmark = BROWSER_MARKS


def _iso(seconds_ago: float) -> str:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return t.isoformat(timespec="milliseconds")


def _seed(store) -> dict[str, str]:
    """Jobs of 'tester' (running with a reclaim in its history; running but stalled; pending)
    and of someone else (pending); returns their ids by role."""
    from leaderboard.jobs.queue import Job, create_job, update_job

    ids = {}
    for role, who, version in (("running", "tester", "run"), ("stalled", "tester", "stall"),
                               ("pending", "tester", "wait"), ("other", "someone", "queued")):
        job = create_job(store, Job(f"20260101-00000{len(ids)}-{role}", submitter=who, model_name="SeedGen",
                                    model_version=version, max_attempts=3))
        ids[role] = job.id

    def running(progress: dict, history: list[dict]):
        def change(j):
            j.status, j.attempts, j.lease_owner = "RUNNING", 2, "worker-b"
            j.started_at, j.lease_expires = _iso(600), _iso(-3600)
            j.progress = progress
            j.history += history
            return j
        return change

    update_job(store, ids["running"], running(
        {"stage": "stability: relax", "done": 30, "total": 120, "stage_started_at": _iso(62),
         "updated_at": _iso(2), "rate": 0.5},
        [{"at": _iso(590), "event": "claimed", "by": "worker-a", "attempt": 1},
         {"at": _iso(300), "event": "stalled", "by": "worker-a", "attempt": 1, "stage": "novelty: match"},
         {"at": _iso(240), "event": "reclaimed", "by": "worker-b", "attempt": 2, "previous_owner": "worker-a"}]))
    update_job(store, ids["stalled"], running(
        {"stage": "novelty: fingerprints", "done": 4, "total": 50, "stage_started_at": _iso(4000),
         "updated_at": _iso(3600), "rate": 0.01},
        [{"at": _iso(4000), "event": "claimed", "by": "worker-b", "attempt": 1}]))
    return ids


@pytest.fixture(scope="module")
def status_app(tmp_path_factory):
    os.environ["GENBENCH_LOCAL_USER"] = "tester"
    os.environ["GENBENCH_RATE_LIMIT"] = "0"
    from leaderboard.ui.shared_state import make_context

    # The status timer never ticks during these tests (every view comes from a page load or a
    # click), so the table can only agree with the detail if the withdraw itself redraws it.
    ctx = make_context(str(tmp_path_factory.mktemp("status-store")), ttl_s=0.5, refresh_s=2.0,
                       status_refresh_s=3600.0)
    ids = _seed(ctx.store)
    with served_app(ctx) as (url, _):
        yield url, ctx, ids


@pytest.fixture(scope="module")
def page(status_app):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser, offline_page(browser, status_app[0], timeout_ms=WAIT_MS) as pg:
        expect.set_options(timeout=WAIT_MS)
        yield pg


# (header text, number of line boxes its text nodes occupy) for each header cell
HEADER_LINES = """ths => ths.map(th => {
    const walk = document.createTreeWalker(th, NodeFilter.SHOW_TEXT), tops = new Set();
    let text = "";
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        if (!n.textContent.trim()) continue;
        text += n.textContent;
        const r = document.createRange(); r.selectNodeContents(n);
        for (const b of r.getClientRects()) if (b.width > 0) tops.add(Math.round(b.top));
    }
    return [text.trim(), tops.size]; })"""


def _open(page, url: str, job_id: str):
    """The permalink of an unfinished submission opens its status view."""
    from playwright.sync_api import expect

    page.goto(f"{url}?submission={job_id}")
    expect(page.locator("#status-detail")).to_contain_text(job_id, timeout=WAIT_MS)


def test_queue_table_header_on_one_line_and_permalinks_are_links(page, status_app):
    from playwright.sync_api import expect

    url, _, ids = status_app
    _open(page, url, ids["running"])
    page.get_by_text("Queue (all submitters)").click()
    table = page.locator("#queue-table")
    expect(table).to_contain_text(ids["other"], timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "status_queue.png"), full_page=True)
    # Every header wraps between words only: "one letter per line" gave 'Queue position' 7+ lines.
    for where in ("#queue-table", "#status-table"):
        for text, lines in page.locator(where).locator("th").evaluate_all(HEADER_LINES):
            if text:
                assert 1 <= lines <= len(text.split()), f"{where} header {text!r} spans {lines} lines"
    links = table.locator(f'a[href*="submission={ids["other"]}"]')
    expect(links).to_have_count(1)
    assert "[open](" not in table.inner_text()


def test_status_view_shows_stage_rate_eta_attempts_and_history(page, status_app):
    from playwright.sync_api import expect

    url, _, ids = status_app
    _open(page, url, ids["running"])
    info = page.locator("#status-detail")
    for text in ("stability: relax", "30/120 (25 %), 0.50/s", "ETA:", "about 3 min", "estimate",
                 "Last progress:", "attempt 2 of 3", "stalled by worker-a (attempt 1) at novelty: match",
                 "reclaimed (lease expired) by worker-b from worker-a (attempt 2)"):
        expect(info).to_contain_text(text)
    row = page.locator('#status-table [role="row"]').filter(has_text=ids["running"])
    expect(row).to_contain_text("0.50/s")
    expect(row).to_contain_text("about 3 min")
    page.screenshot(path=str(ARTIFACTS / "status_detail.png"), full_page=True)

    _open(page, url, ids["stalled"])
    expect(info).to_contain_text("STALLED: no progress for 1 h")
    expect(page.locator('#status-table [role="row"]').filter(has_text=ids["stalled"])).to_contain_text("(stalled)")

    _open(page, url, ids["pending"])
    expect(info).to_contain_text("Starts in:")
    expect(info).to_contain_text("Finishes in:")


def test_status_api_reports_estimates_progress_and_history(status_app):
    from gradio_client import Client

    url, _, ids = status_app
    st = Client(url, verbose=False).predict(ids["running"], api_name="/status")
    assert st["status"] == "RUNNING" and st["attempts"] == 2
    assert st["progress"]["rate"] == 0.5 and st["last_progress_s"] >= 0
    assert st["stalled"] is (st["last_progress_s"] >= 300)  # the default warning threshold
    assert abs(st["estimates"]["ETA"]["seconds"] - 180) < 1 and "measured rate" in st["estimates"]["ETA"]["basis"]
    assert [e["event"] for e in st["history"]] == ["submitted", "claimed", "stalled", "reclaimed"]
    assert Client(url, verbose=False).predict(ids["stalled"], api_name="/status")["stalled"] is True


def test_withdraw_asks_for_confirmation_then_table_and_detail_agree(page, status_app):
    from playwright.sync_api import expect

    from leaderboard.jobs.queue import get_job

    url, ctx, ids = status_app
    jid = ids["pending"]
    _open(page, url, jid)
    confirm = page.locator("#status-confirm-text")  # inside the confirmation group
    page.locator("#status-withdraw").click()
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text(f"Withdraw {jid}")
    assert get_job(ctx.store, jid).status == "PENDING"  # nothing happens before the confirmation
    page.locator("#status-confirm-no").click()
    expect(confirm).to_be_hidden()
    assert get_job(ctx.store, jid).status == "PENDING"

    page.locator("#status-withdraw").click()
    page.locator("#status-confirm-yes").click()
    expect(confirm).to_be_hidden()
    info = page.locator("#status-detail")
    expect(info).to_contain_text("withdrawn")
    expect(info).to_contain_text("Status: HIDDEN")
    row = page.locator('#status-table [role="row"]').filter(has_text=jid)
    expect(row).to_contain_text("HIDDEN")  # the table agrees with the detail at once
    assert get_job(ctx.store, jid).status == "HIDDEN"
    expect(page.locator("#status-withdraw")).to_be_hidden()  # nothing left to withdraw (issue 26)
