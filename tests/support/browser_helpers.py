"""What every browser test shares: Debian's chromium (never ``playwright install``), its
flags, the skip when it is missing, and a page that reaches only the app under test
(requests to any other host are aborted and listed in ``page.external_requests``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run"]
NO_GPU = ["--disable-gpu"]
WEBGL = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # software WebGL, for plotly's 3D views

BROWSER_MARKS = [pytest.mark.browser,
                 pytest.mark.skipif(not shutil.which("chromium") and not os.path.exists(CHROMIUM),
                                    reason="Debian chromium not installed (bash scripts/install-chromium.sh)")]


@contextmanager
def chromium(webgl: bool = False) -> Iterator[Any]:
    """A headless Debian chromium (``webgl``: with software WebGL instead of no GPU)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=ARGS + (WEBGL if webgl else NO_GPU))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def offline_page(browser: Any, url: str, width: int = 1400, timeout_ms: int = 60_000,
                 accept_downloads: bool = False) -> Iterator[Any]:
    """A page in a fresh context of ``browser`` that may load only ``url``'s host (and data:
    and blob: URLs); every other request is aborted and kept in ``page.external_requests``."""
    local = urlparse(url).netloc
    external: list[str] = []
    ctx = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=accept_downloads)

    def guard(route: Any) -> Any:
        target = route.request.url
        if target.startswith(("data:", "blob:")) or urlparse(target).netloc == local:
            return route.continue_()
        external.append(target)
        return route.abort()

    ctx.route("**/*", guard)
    page = ctx.new_page()
    page.external_requests = external
    page.set_default_timeout(timeout_ms)
    try:
        yield page
    finally:
        ctx.close()
