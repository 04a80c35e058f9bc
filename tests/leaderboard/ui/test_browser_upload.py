"""The upload flow in the real page (headless Debian chromium via Playwright, issue 26 item 1):
the limits are on the page before anything is uploaded; an empty file leaves the upload box
while the good ones stay and are checked; removing a file from the box checks the rest; the
time estimate is a paragraph of its own, never inside the failures list; the example button
runs the check on what it put in the box. Every request to another host is blocked.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from browser_helpers import BROWSER_MARKS, chromium, offline_page

UI_WAIT_S = 300  # hang detection on a loaded machine, not a speed claim

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def page(app_server):
    with chromium() as browser, offline_page(browser, app_server.url) as pg:
        yield pg


@pytest.fixture(scope="module")
def files(tmp_path_factory, data) -> dict[str, Path]:
    """Real MP crystals (not the ones other app tests submit as this user), an empty CIF, and
    a zip holding a good CIF and a broken one."""
    d = tmp_path_factory.mktemp("upload-browser")
    src = sorted(data.path("structures/mp_sample").glob("mp_*.cif"))[200:203]
    out = {f"good{i}": Path(shutil.copy(p, d / p.name)) for i, p in enumerate(src)}
    out["empty"] = d / "empty.cif"
    out["empty"].write_bytes(b"")
    out["zip"] = d / "with_broken.zip"
    with zipfile.ZipFile(out["zip"], "w") as z:
        z.write(src[2], src[2].name)
        z.writestr("broken.cif", "data_x\n_cell_length_a 3\n")
    return out


def check_text(page, wait, what: str, contains: str) -> str:
    check = page.locator("#submit-check")
    return wait(lambda: check.inner_text() if contains in check.inner_text() else "", UI_WAIT_S, 0.3, what)


def test_limits_box_updates_estimate_paragraph_and_example(page, app_server, files, wait):
    from leaderboard.intake.policy import SubmissionPolicy

    page.goto(app_server.url)
    page.get_by_role("tab", name="Submit").click()
    limits = page.locator("#submit-limits")
    limits.wait_for()
    policy = SubmissionPolicy.from_env()
    assert f"{policy.max_files} files" in limits.inner_text()  # stated before anything is uploaded
    assert f"{policy.ingest.max_structures:,} structures" in limits.inner_text()

    box = page.locator("#submit-files")
    good = [files["good0"], files["good1"]]
    box.locator("input[type=file]").set_input_files([str(p) for p in good] + [str(files["empty"])])
    text = check_text(page, wait, "the check of good + empty files", "structures found")
    assert text.startswith("OK:") and "empty.cif: empty file" in text, text
    wait(lambda: "empty.cif" not in box.inner_text(), UI_WAIT_S, 0.3, "the empty file to leave the box")
    assert all(p.stem in box.inner_text() for p in good), box.inner_text()  # (name and suffix apart)

    # removing a file from the box checks what is left
    page.locator("#submit-files button[aria-label='Remove this file']").first.click()
    text = check_text(page, wait, "the check after a removal", "1 structures found")
    assert "1 of at most 20 files" in text, text

    # failures are a list; the estimate after it is a paragraph of its own
    page.locator("#submit-files button[aria-label='Clear']").first.click()
    wait(lambda: page.locator("#submit-check").inner_text().strip() == "", UI_WAIT_S, 0.3, "the cleared check")
    box.locator("input[type=file]").set_input_files([str(files["zip"])])
    check_text(page, wait, "the check of a zip with a broken CIF", "Estimated evaluation time")
    items = page.locator("#submit-check li")
    assert items.count() >= 1 and "broken.cif" in items.first.inner_text()
    assert all("Estimated" not in t for t in items.all_inner_texts())
    assert page.locator("#submit-check p", has_text="Estimated evaluation time").count() == 1

    # the example button puts its zip in the box and the check runs on it
    page.locator("#submit-example").click()
    text = check_text(page, wait, "the example's check", "21 structures found")
    assert "mattergen_base_unconditional" in box.inner_text()
