"""The built book in a real browser: every page has its title, figures load, no error output, no broken link; every
chapter opens with its key-takeaways box, shows no code before a click, no stderr block, numbered figure captions,
no page-wide horizontal scroll (wide tables scroll inside their cell) and links its notebook and tables.

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

from vcclib.analyses.takeaways import TAKEAWAYS_CLASS
from vcclib.pipeline.book import CHAPTER_PREFIX, book_chapters, toc_files

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


@pytest.mark.parametrize("chapter", book_chapters())
def test_chapter_reads_like_a_report(site, browser, chapter):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(urljoin(site, f"{CHAPTER_PREFIX}{chapter}.html"), wait_until="load")
    main = page.locator("main")
    # the answer first: one key-takeaways box with points, above every figure
    box = main.locator(f"div.admonition.{TAKEAWAYS_CLASS}")
    assert box.count() == 1, f"{chapter}: no key-takeaways box"
    assert box.locator("li").count() >= 1 and box.is_visible()
    first_output = main.locator("div.cell_output").first
    assert first_output.locator(f"div.admonition.{TAKEAWAYS_CLASS}").count() == 1, (
        f"{chapter}: an output comes before the key-takeaways box: {first_output.inner_text()[:200]!r}"
    )
    box_top = box.bounding_box()["y"]
    figures = main.locator("figure")
    # every image is a figure with a numbered caption (checked last)
    uncaptioned = page.evaluate(
        "() => Array.from(document.querySelectorAll('main img')).filter(i => !(i.closest('figure') && "
        "i.closest('figure').querySelector('figcaption .caption-number'))).map(i => i.src)"
    )
    figure_problems = []
    if figures.count() < 1:
        figure_problems.append("no figure")
    if not all(box_top < figures.nth(i).bounding_box()["y"] for i in range(figures.count())):
        figure_problems.append("a figure above the key-takeaways box")
    if uncaptioned:
        figure_problems.append(f"{len(uncaptioned)} image(s) without a numbered caption")
    # no code visible before a click; a click on a toggle shows it
    inputs = main.locator("div.cell_input")
    assert inputs.count() >= 1
    visible = [i for i in range(inputs.count()) if inputs.nth(i).is_visible()]
    assert not visible, f"{chapter}: {len(visible)} code cell(s) visible before a click"
    toggle = main.locator("details.above-input > summary").first
    toggle.click()
    assert main.locator("details.above-input").first.locator("div.cell_input").is_visible()
    # no stderr block, no page-wide horizontal scroll (wide tables scroll inside their cell)
    assert main.locator(".output.stderr").count() == 0, f"{chapter}: a stderr block is shown"
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{chapter}: the page scrolls sideways ({width})"
    # downloads: the executed notebook and the tables
    links = page.evaluate("() => Array.from(document.querySelectorAll('main a.download')).map(a => a.href)")
    assert any(link.endswith(".ipynb") for link in links), f"{chapter}: no link to the executed notebook"
    assert any(link.endswith(".csv") for link in links), f"{chapter}: no table to download"
    for link in links:
        assert page.request.get(link).status == 200, link
    page.close()
    assert not figure_problems, f"{chapter}: {'; '.join(figure_problems)}"


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
