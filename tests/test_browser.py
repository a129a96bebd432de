"""The built site in a real browser: Debian's Chromium driven by Playwright, fully offline.

External requests are blocked, except MathJax's CDN, which is answered from a local copy.
Screenshots of every page (in light mode, dark mode and at phone width) land in
``<build>/screenshots/``, for people to look at: nothing is asserted on them. They show the
first screen; ``DLCC_SCREENSHOTS=full pytest tests/test_browser.py`` shoots whole pages in
light mode and at phone width (a third of the browser tests' time).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import lxml.html
import pytest
import yaml
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import sync_playwright

from conftest import ROOT, sessions_started_by, yield_cpu
from test_book import toc_files
from tools import mathjax

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3[^/]*/(.*)$")
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
BASEURL = CONFIG["html"]["baseurl"].rstrip("/") + "/"
ORG_REPO = CONFIG["repository"]["url"].rstrip("/").split("github.com/")[-1]
PHONE = {"width": 390, "height": 844}
FULL_PAGE = os.environ.get("DLCC_SCREENSHOTS") == "full"
COLOUR_CONTRAST = {"type": "rule", "values": ["color-contrast"]}  # axe's runOnly option
# Every rule in one axe run, colour contrast everywhere but code cells' sources (a second run
# for colour contrast alone cost each page a third more).
CODE_SOURCE = ".cell_input"  # a code cell's source, as myst-nb writes it
CONTRAST_OUTSIDE_CODE = {"rules": [{"id": "color-contrast",
                                    "selector": f"*:not({CODE_SOURCE} *)"}]}
AXE_SCRIPT = Axe().axe_script


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(book):
    assert book.ok, "the book did not build; see test_book.py"
    handler = functools.partial(QuietHandler, directory=str(book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Chromium is missing: `apt-get install chromium` (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for leader in sessions_started_by(os.getpid()):  # Chromium, in a session of its own
            yield_cpu(leader)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(book):
    folder = book.html.parent / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def offline(route, mathjax_dir: Path):
    """Serve MathJax from the local copy, let localhost through, block everything else."""
    url = route.request.url
    host = urlparse(url).hostname
    if host == "127.0.0.1":
        return route.continue_()
    cdn = MATHJAX_CDN.match(url.split("?")[0])
    if cdn and (mathjax_dir / cdn.group(1)).is_file():
        body = (mathjax_dir / cdn.group(1)).read_bytes()
        ctype = "application/javascript" if url.endswith(".js") else None
        return route.fulfill(status=200, body=body, content_type=ctype)
    return route.abort()


@pytest.fixture
def open_page(browser, site):
    """Open a page; return (page, console errors) after MathJax finished typesetting."""
    mathjax_dir = mathjax()
    contexts = []

    def _open(path: str, viewport=None, color_scheme="light"):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900},
                                      color_scheme=color_scheme)
        contexts.append(context)
        context.route("**/*", lambda route: offline(route, mathjax_dir))
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(site + path, wait_until="load")
        page.evaluate("""async () => {
            if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
                await MathJax.startup.promise;
            }
        }""")
        return page, errors

    yield _open
    for context in contexts:
        context.close()


PAGES = toc_files()


def slug(page: str) -> str:
    return page.replace("/", "__")


def is_notebook(page: str) -> bool:
    return "kernelspec:" in (ROOT / f"{page}.md").read_text()[:600]


@pytest.mark.parametrize("page_name", PAGES)
def test_page_in_browser(open_page, shots, book, page_name):
    page, errors = open_page(f"{page_name}.html")
    page.screenshot(path=str(shots / f"{slug(page_name)}-light.png"), full_page=FULL_PAGE)

    assert not errors, f"console errors: {errors}"

    # Accessibility: axe-core finds no serious or critical violation. The colours of code
    # cells' sources come from one highlighting style whatever the page, and checking them
    # is half of axe's time on a page: test_code_cell_colours checks them on a few pages.
    before_axe = len(errors)
    violations = accessibility_violations(page, configure=CONTRAST_OUTSIDE_CODE)
    # axe's colour-contrast rule fetches the theme's `@import "../basic.css"` relative to the
    # page instead of the stylesheet: a 404 of the test tool's making, not of the site's.
    del errors[before_axe:]
    assert not violations, f"accessibility violations: {violations}"

    # Math: every math node typeset by MathJax, no errors, no red undefined-macro text.
    math = page.evaluate("""() => {
        const nodes = [...document.querySelectorAll('.math, span.math, div.math')];
        return {
            total: nodes.length,
            unrendered: nodes.filter(n => !n.querySelector('mjx-container')).length,
            errors: document.querySelectorAll('mjx-merror').length,
            red: [...document.querySelectorAll('mjx-container [style*="color"]')]
                   .filter(e => /red|#f00|rgb\\(255, 0, 0\\)/i.test(e.getAttribute('style')))
                   .length,
        };
    }""")
    assert math["unrendered"] == 0, f"{math['unrendered']} of {math['total']} math nodes untypeset"
    assert math["errors"] == 0 and math["red"] == 0, f"MathJax errors: {math}"

    # Images carry alt text.
    missing_alt = page.evaluate("""() => [...document.querySelectorAll('article img')]
        .filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.src)""")
    assert not missing_alt, f"images without alt text: {missing_alt}"

    # The cite box, with the page's canonical URL.
    url = f"{BASEURL}{page_name}.html"
    assert page.locator(".dlcc-cite").count() == 1, "no 'Cite this page' box"
    assert page.locator(".dlcc-cite-url").get_attribute("href") == url
    assert url in page.locator(".dlcc-cite-bibtex").text_content()
    assert page.locator('link[rel="canonical"]').first.get_attribute("href") == url
    assert page.locator('meta[name="citation_title"]').count() == 1

    if is_notebook(page_name):
        check_launch_buttons(page, book, page_name)

    # Dark mode: the theme's switch changes the page's theme.
    before = page.evaluate("document.documentElement.dataset.theme")
    for _ in range(3):
        page.locator(".theme-switch-button").first.click()
        if page.evaluate("document.documentElement.dataset.theme") == "dark":
            break
    assert page.evaluate("document.documentElement.dataset.theme") == "dark", before
    settle(page)
    page.screenshot(path=str(shots / f"{slug(page_name)}-dark.png"))  # the first screen

    # Phone width (same page, narrower viewport): nothing wider than the viewport.
    page.evaluate("document.documentElement.dataset.theme = 'light'")
    page.set_viewport_size(PHONE)
    settle(page)  # the sidebars slide off the screen: measure and shoot where they end
    page.screenshot(path=str(shots / f"{slug(page_name)}-mobile.png"), full_page=FULL_PAGE)
    scroll = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if scroll > 0:
        culprits = page.evaluate("""() => [...document.querySelectorAll('article *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + '.' + e.className).slice(0, 5)""")
        pytest.fail(f"horizontal overflow of {scroll}px at 390 px width: {culprits}")
    assert not errors, f"console errors: {errors}"


def settle(page) -> None:
    """Wait until the CSS transitions and animations that a change started have finished
    (those that run forever excepted)."""
    page.evaluate("""async () => {
        await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
        const moving = document.getAnimations().filter(
            a => a.effect && a.effect.getComputedTiming().endTime !== Infinity);
        await Promise.all(moving.map(a => a.finished.catch(() => null)));
    }""")


def accessibility_violations(page, context=None, configure=None,
                             **options) -> list[tuple[str, str, int]]:
    """axe-core's serious and critical violations on ``page``: (rule, impact, nodes).
    ``configure`` changes axe's rules first (``axe.configure``'s argument)."""
    page.evaluate(AXE_SCRIPT)
    if configure:
        page.evaluate("spec => axe.configure(spec)", configure)
    response = page.evaluate("([context, options]) => axe.run(context || document, options)",
                             [context, {"resultTypes": ["violations"], **options}])
    return [(v["id"], v["impact"], len(v["nodes"])) for v in response["violations"]
            if v.get("impact") in ("serious", "critical")]


def code_token_cover(html: Path, pages: list[str]) -> list[str]:
    """Few pages whose code cells hold every highlighting class that any page's code cells
    hold (a greedy set cover)."""
    tokens = {}
    for name in pages:
        tree = lxml.html.parse(str(html / f"{name}.html"))
        tokens[name] = {cls for value in tree.xpath(
            "//div[contains(concat(' ', @class, ' '), ' cell_input ')]//span/@class")
            for cls in value.split()}
    missing, cover = set().union(*tokens.values()), []
    while missing:
        best = max(pages, key=lambda name: len(tokens[name] & missing))
        cover.append(best)
        missing -= tokens[best]
    return cover


def code_colour_violations(page) -> list[tuple[str, str, int]]:
    return accessibility_violations(page, {"include": [[CODE_SOURCE]]}, runOnly=COLOUR_CONTRAST)


def test_code_cell_colours(open_page, book):
    """Code cells' text has enough contrast, in light and dark mode, on pages that together
    use every highlighting class."""
    cover = code_token_cover(book.html, PAGES)
    assert 1 <= len(cover) < len(PAGES) / 2, cover
    for name in cover:
        page, _ = open_page(f"{name}.html")
        for theme in ("light", "dark"):
            page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
            violations = code_colour_violations(page)
            assert not violations, f"{name}, {theme} mode: {violations}"


def test_colour_checks_catch_faint_text(browser):
    page = browser.new_page()
    try:
        page.set_content('<main><div class="cell_input"><pre><span style="color: #ccc">'
                         'x = 1</span></pre></div><p>Text</p></main>')
        assert [rule for rule, *_ in code_colour_violations(page)] == ["color-contrast"]
        page.set_content('<main><div class="cell_input"><pre>x = 1</pre></div>'
                         '<p style="color: #ccc">Faint text outside code</p></main>')
        assert code_colour_violations(page) == []  # outside the code: the page test's part
        # The page test's run: faint text outside code is caught, faint code left to the above.
        page.set_content('<!DOCTYPE html><html lang="en"><title>Planted</title><main><h1>Page</h1>'
                         '<div class="cell_input"><div><pre><span style="color: #ccc">x = 1'
                         '</span></pre></div></div>'
                         '<p><em style="color: #ccc">Faint text</em> outside code</p></main>')
        assert [(rule, nodes) for rule, _, nodes in accessibility_violations(
            page, configure=CONTRAST_OUTSIDE_CODE)] == [("color-contrast", 1)]
    finally:
        page.close()


def check_launch_buttons(page, book, page_name):
    hrefs = page.eval_on_selector_all(
        ".dropdown-launch-buttons a, a.btn-launch, [aria-label*='Launch'] ~ ul a",
        "els => els.map(e => e.href)")
    hrefs = [h for h in hrefs if h.startswith("http") and "127.0.0.1" not in h]
    colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/")]
    binder = [h for h in hrefs if h.startswith("https://mybinder.org/")]
    assert colab and binder, f"launch buttons missing: {hrefs}"
    assert colab[0] == (f"https://colab.research.google.com/github/{ORG_REPO}/blob/notebooks/"
                        f"{page_name}.ipynb")
    # Binder launches the stable environment branch, and nbgitpuller pulls the notebooks in.
    launched, query = binder[0].split("?", 1)
    assert launched == f"https://mybinder.org/v2/gh/{ORG_REPO}/binder-env"
    (urlpath,) = parse_qs(query)["urlpath"]
    assert urlpath.startswith("git-pull?"), urlpath
    assert parse_qs(urlpath.removeprefix("git-pull?")) == {
        "repo": [f"https://github.com/{ORG_REPO}"], "branch": ["notebooks"],
        "urlpath": [f"lab/tree/{ORG_REPO.split('/')[1]}/{page_name}.ipynb"]}
    # The notebook the buttons open is the one generated from this page.
    notebook = book.html / "_sources" / f"{page_name}.ipynb"
    assert notebook.is_file(), f"no generated notebook for {page_name}"
    nb = json.loads(notebook.read_text())
    assert nb["metadata"]["accelerator"] == "GPU" and nb["metadata"]["colab"]["gpuType"]
    # A first cell that says what the notebook is, then the Colab-only install cell.
    assert "google.colab" in "".join(nb["cells"][1]["source"])
    assert nb["cells"][1]["cell_type"] == "code"
    download = page.eval_on_selector_all(".dropdown-download-buttons a",
                                         "els => els.map(e => e.href)")
    assert any(h.endswith(f"_sources/{page_name}.ipynb") for h in download), download
    # Edit/source buttons still point at the Markdown source on main.
    edit = page.eval_on_selector_all("a[href*='/edit/']", "els => els.map(e => e.href)")
    assert f"https://github.com/{ORG_REPO}/edit/main/{page_name}.md" in edit


def test_search_finds_a_known_term(open_page):
    page, errors = open_page("search.html?q=backpropagation")
    page.wait_for_selector("#search-results li", timeout=20000)
    results = page.locator("#search-results li").count()
    assert results >= 1
    assert not errors
