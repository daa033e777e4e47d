from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright; never a browser Playwright downloads."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: bin/run-tests installs it with apt-get")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests
    # make from here are ordinary synchronous ones.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="mailadmin-chromium-")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(tmp_path):
    """Takes the page's screenshot: into docs/ (the README's) with MAILADMIN_SCREENSHOTS=1, else
    into the test's temporary folder, so that a test run leaves the checkout as it found it."""
    folder = DOCS if os.environ.get("MAILADMIN_SCREENSHOTS") == "1" else tmp_path

    def take(page, name: str) -> None:
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / name), full_page=True)

    return take
