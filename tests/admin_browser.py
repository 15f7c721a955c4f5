"""Headless Chromium for the admin's browser tests (Debian's chromium,
driven by Playwright): the module-scoped ``browser`` fixture and a page
signed in as a superuser, shared by tests/test_browser_admin*.py."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs a loop

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def signed_in_page(browser, server_url: str, *, width: int, height: int) -> Iterator:
    """A page at ``width`` x ``height`` signed in to the admin as the
    superuser ``admin`` / ``pw-admin-1`` (which the caller created)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{server_url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pw-admin-1")
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        yield page
    finally:
        context.close()
