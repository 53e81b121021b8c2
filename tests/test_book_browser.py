"""The built book in a real browser: every page has its title, figures load, no error output, no broken link.

Runs after ``make book`` (``make test-browser``; marker ``browser``). Serves ``_build/html`` on 127.0.0.1 and opens
every page in headless Chromium (Debian's ``chromium``) through Playwright; saves a screenshot of each page under
``_build/screenshots/``.
"""

from __future__ import annotations

import re
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from conftest import PROJECT

from vcclib.pipeline.book import toc_files

pytestmark = pytest.mark.browser
HTML = PROJECT / "_build" / "html"
SCREENSHOTS = PROJECT / "_build" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-crash-reporter", "--disable-breakpad",
]  # fmt: skip


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").is_file():
        pytest.fail("the book is not built: run `make book` first")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: `make browser-deps`")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def _pages() -> list[str]:
    return [f"{entry}.html" for entry in toc_files()]


@pytest.mark.parametrize("page_path", _pages())
def test_page_renders_with_figures_and_no_errors(site, browser, page_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed_requests = []
    page.on("requestfailed", lambda request: failed_requests.append(request.url))
    response = page.goto(urljoin(site, page_path), wait_until="load")
    assert response is not None and response.status == 200, page_path
    heading = re.sub(r"^[\d.\s]+", "", page.locator("main h1").first.inner_text()).strip().rstrip("#").strip()
    assert heading and heading in page.title(), (heading, page.title())
    images = page.evaluate(
        "() => Array.from(document.querySelectorAll('main img')).map(i => [i.src, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    for src, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"{page_path}: image {src} did not load"
    assert page.locator("main .output.traceback").count() == 0, f"{page_path}: a cell shows a traceback"
    text = page.locator("main").inner_text()
    assert "Traceback (most recent call last)" not in text, f"{page_path}: error output in the page"
    local = [r for r in failed_requests if urlparse(r).hostname == "127.0.0.1"]
    assert not local, f"{page_path}: failed to load {local}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / (Path(page_path).stem + ".png")), full_page=True)
    page.close()


def test_no_broken_internal_links(site, browser):
    page = browser.new_page()
    broken = []
    checked: set[str] = set()
    for page_path in _pages():
        page.goto(urljoin(site, page_path), wait_until="load")
        links = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
        for link in links:
            target, _ = urldefrag(link)
            if urlparse(target).hostname != "127.0.0.1" or target in checked:
                continue
            checked.add(target)
            local = HTML / urlparse(target).path.lstrip("/")
            if local.is_dir():
                local = local / "index.html"
            if not local.exists():
                broken.append(f"{page_path} -> {target}")
    page.close()
    assert checked, "no internal links found"
    assert not broken, broken
