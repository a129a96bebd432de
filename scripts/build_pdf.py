"""The whole book as one PDF: ``python scripts/build_pdf.py`` writes ``_build/pdf/dlcc.pdf``.

Run it after ``jupyter-book build .``: it builds the book once more as a single HTML page
(``--builder singlehtml``), which reads that build's execution cache and parsed pages, so no
chapter runs twice; then Chromium (the one the browser tests drive) prints the page after
MathJax has typeset every formula, with a title page, a table of contents, page numbers and
the PDF outline (bookmarks). Solutions are printed open, as the page shows them.

Options: ``--path-output DIR`` where the book was built (jupyter-book's option of the same
name, default ``.``); ``--output FILE``; ``--mathjax DIR``: a local MathJax 3 folder (``npm
install mathjax@3``) to use instead of its CDN, for machines without internet; ``--no-build``
prints an existing single-page build. Extra arguments go to ``jupyter-book build`` (``-W``).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3[^/]*/(.*)$")

# What the screen needs and paper does not, and wide content kept on the page.
PRINT_CSS = """
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header-article, .prev-next-area,
.bd-footer, .bd-footer-article, .bd-footer-content, footer, .dlcc-cite, .headerlink,
.copybtn, #pst-back-to-top, .toggle-button, .search-button, .skip-link, .pst-scrollable-table
.scroll-shadow { display: none !important; }
.bd-main, .bd-content, .bd-article-container, .bd-container, .bd-container__inner,
.bd-page-width { max-width: none !important; width: auto !important; padding: 0 !important;
  margin: 0 !important; }
article.bd-article { max-width: 100vw !important; min-width: 0 !important; }
html { font-size: 9.5pt !important; }
pre, .highlight pre, .output pre { white-space: pre-wrap !important; word-break: break-word;
  overflow: visible !important; }
div.cell_output, .output, .highlight, .table-wrapper, .pst-scrollable-table-container {
  overflow: visible !important; max-height: none !important; }
table { width: 100% !important; table-layout: auto; font-size: 0.85em; word-break: break-word; }
img { max-width: 100% !important; height: auto !important; break-inside: avoid; }
figure, .admonition, div.cell { break-inside: avoid-page; }
mjx-container[display="true"] { overflow: visible !important; max-width: 100%; }
.toggle-hidden, .toggle-details__container { display: revert !important; }
.dlcc-pdf-part { break-before: page; }
span[id^="document-"] { display: block; break-before: page; }
.dlcc-title-page { height: 20cm; display: flex; flex-direction: column;
  justify-content: center; text-align: center; }
.dlcc-title-page h1 { font-size: 3em; border: 0; }
.dlcc-contents { break-before: page; }
.dlcc-contents ol { list-style: none; padding-left: 0; }
.dlcc-contents ol ol { padding-left: 1.5em; }
.dlcc-contents li.part { font-weight: bold; margin-top: 0.8em; }
.dlcc-contents li.part li { font-weight: normal; }
/* No shadows on paper. Chromium prints a blurred shadow as a picture (each admonition's was
   one: 11 of the PDF's 38 MB and a third of its printing time); :not(#_) outranks the theme's
   own !important rules. */
:not(#_), :not(#_)::before, :not(#_)::after { box-shadow: none !important; }
"""

# Runs in the page laid out at the paper's text width: what would run off the page.
OVERFLOW_JS = """
(width) => {
  const article = document.querySelector('article.bd-article') || document.body;
  const box = article.getBoundingClientRect();  // the article may not be wider than the paper
  const right = Math.min(box.right, box.left + width) + 1;
  const bad = [];
  document.querySelectorAll('pre, table, img, svg, mjx-container, .cell_output').forEach(e => {
    const box = e.getBoundingClientRect();
    const block = e.matches('pre, table, .cell_output, mjx-container[display="true"]');
    const wide = box.width > 0 && (box.right > right
                                  || (block && e.scrollWidth > e.clientWidth + 1));
    if (wide && !e.closest('.dlcc-title-page')) {
      const section = e.closest('section');
      const heading = section && section.querySelector('h1, h2, h3');
      bad.push(`${e.tagName.toLowerCase()} in "${heading ? heading.textContent : '?'}"`);
    }
  });
  return bad;
}
"""
A4_TEXT_WIDTH_PX = round((21.0 - 2 * 1.7) / 2.54 * 96)  # A4 less the side margins, at 96 px/in

# A display formula wider than the paper (the screen is wider) is set in a smaller size to fit
# its line, as one would in LaTeX; MathJax does not break lines.
FIT_MATH_JS = """
() => {
  let shrunk = 0;
  document.querySelectorAll('mjx-container[display="true"]').forEach(container => {
    const formula = container.querySelector('mjx-math');
    const room = container.parentElement.getBoundingClientRect().width - 40;  // the (number)
    const width = formula ? formula.getBoundingClientRect().width : 0;
    if (width > room) {
      container.style.fontSize = `${Math.floor(100 * room / width)}%`;
      shrunk += 1;
    }
  });
  return shrunk;
}
"""

FOOTER = ('<div style="font-size:8pt;width:100%;text-align:center;color:#555">'
          '<span class="pageNumber"></span> / <span class="totalPages"></span></div>')

# Runs in the page: opens every collapsed block, adds the title page and the contents.
PREPARE_JS = """
({title, subtitle, authors, version, parts}) => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  const article = document.querySelector('article.bd-article') || document.body;
  const titles = {};
  document.querySelectorAll('span[id^="document-"]').forEach(span => {
    const section = span.nextElementSibling;
    const heading = section && section.querySelector('h1, h2');
    const page = span.id.slice('document-'.length);
    if (heading) titles[page] = heading.textContent.replace('#', '').trim();
  });
  const link = doc => `<li><a href="#document-${doc}">${titles[doc] || doc}</a></li>`;
  const contents = parts.map(([caption, docs]) =>
    `<li class="part">${caption}<ol>${docs.filter(d => d in titles).map(link).join('')}</ol></li>`
  ).join('');
  const front = document.createElement('div');
  front.innerHTML = `
    <section class="dlcc-title-page"><h1>${title}</h1><p>${subtitle}</p>
      <p><strong>${authors}</strong></p><p>${version}</p></section>
    <nav class="dlcc-contents"><h2>Contents</h2><ol>${contents}</ol></nav>`;
  article.prepend(front);
  return Object.keys(titles).length;
}
"""


def parts_of(toc: dict) -> list[tuple[str, list[str]]]:
    """The book's parts as (caption, [page, ...]) in reading order, from ``_toc.yml``."""
    parts = [("", [toc["root"]])]
    for part in toc.get("parts", []):
        docs = []
        for chapter in part.get("chapters", []):
            docs.append(chapter["file"])
            docs += [section["file"] for section in chapter.get("sections", [])]
        parts.append((part.get("caption", ""), docs))
    return parts


def chromium() -> str | None:
    """``$DLCC_CHROMIUM``, else a Chromium or Chrome on the PATH, else None: Playwright's own
    browser (``python -m playwright install chromium``)."""
    return os.environ.get("DLCC_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def singlehtml(path_output: Path, extra: list[str]) -> None:
    jupyter_book = str(Path(sys.executable).parent / "jupyter-book")
    command = [jupyter_book, "build", str(ROOT), "--builder", "singlehtml",
               "--path-output", str(path_output), *extra]
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"the single-page build failed (exit status {result.returncode})")


def print_page(site: Path, output: Path, mathjax: Path | None) -> dict:
    """Print ``site``'s root page with Chromium; return what the page reported."""
    from playwright.sync_api import sync_playwright

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    root = toc["root"]
    page = (site / f"{root}.html").read_text(encoding="utf-8")
    # Sphinx writes the root page in its folder but makes every link relative to the build's
    # top folder; a copy at the top keeps images and styles, and its own anchors become local.
    page = page.replace(f'href="{root}.html#', 'href="#')
    # The print style is in the page from the start: added after loading, it made Chromium lay
    # the whole book out a second time (4 s).
    page = page.replace("</head>", f"<style>{PRINT_CSS}</style>\n</head>", 1)
    (site / "dlcc-print.html").write_text(page, encoding="utf-8")
    import dlcc

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    facts = {
        "title": config["title"],
        "subtitle": cff.get("abstract", "").strip(),
        "authors": ", ".join(a.get("name") or f"{a.get('given-names')} {a.get('family-names')}"
                             for a in cff["authors"]),
        "version": f"Version {dlcc.__version__}" + (f", commit {commit}" if commit else "")
                   + f", printed {datetime.date.today():%d %B %Y}",
        "parts": parts_of(toc),
    }

    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(),
                                        args=["--no-sandbox", "--disable-gpu"])
            tab = browser.new_page(viewport={"width": A4_TEXT_WIDTH_PX, "height": 1200})
            if mathjax is not None:
                tab.route(MATHJAX_CDN, lambda route: route.fulfill(
                    path=str(mathjax / MATHJAX_CDN.match(route.request.url).group(1)
                             .split("?")[0])))
            tab.emulate_media(media="print")
            tab.goto(f"http://127.0.0.1:{server.server_port}/dlcc-print.html",
                     wait_until="load", timeout=300_000)
            tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                                  timeout=120_000)
            tab.evaluate("MathJax.startup.promise")
            chapters = tab.evaluate(PREPARE_JS, facts)
            errors = tab.evaluate("document.querySelectorAll('mjx-merror').length")
            shrunk = tab.evaluate(FIT_MATH_JS)
            overflowing = tab.evaluate(OVERFLOW_JS, A4_TEXT_WIDTH_PX)
            headings = tab.evaluate("[...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]"
                                    ".map(h => h.innerText)")
            output.parent.mkdir(parents=True, exist_ok=True)
            partial = output.with_suffix(".part.pdf")
            tab.pdf(path=str(partial), format="A4", print_background=True, outline=True,
                    tagged=True, display_header_footer=True, header_template="<div></div>",
                    footer_template=FOOTER,
                    margin={"top": "1.6cm", "bottom": "1.8cm", "left": "1.7cm",
                            "right": "1.7cm"})
            browser.close()
    finally:
        server.shutdown()
    _finish(partial, facts, headings)
    partial.replace(output)  # atomic: a reader never sees half a PDF
    return {"chapters": chapters, "math_errors": errors, "overflowing": overflowing,
            "shrunk": shrunk}


def _finish(path: Path, facts: dict, headings: list[str]) -> None:
    """Stamp the PDF's metadata and mend its outline, in place, with pikepdf (qpdf: a second
    for the whole book, where pypdf took twelve)."""
    import pikepdf

    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        pdf.docinfo["/Title"] = facts["title"]
        pdf.docinfo["/Author"] = facts["authors"]
        pdf.docinfo["/Subject"] = facts["version"]
        texts = {squeeze(text): " ".join(text.split()) for text in headings}
        for item in outline_items(pdf.Root.get("/Outlines")):
            item.Title = mended(str(item.Title), texts)
        pdf.save(path)


def outline_items(outlines):
    """Every item of a PDF outline (its ``/Outlines`` dictionary), depth first."""
    item = outlines.get("/First") if outlines is not None else None
    while item is not None:
        yield item
        yield from outline_items(item)
        item = item.get("/Next")


def squeeze(text: str) -> str:
    """Text compared without whitespace (a title on two lines may lose a space) and with
    ligatures undone (NFKC: a PDF's "ff" can be one glyph)."""
    return re.sub(r"\s", "", unicodedata.normalize("NFKC", text))


def mended(title: str, headings: dict[str, str]) -> str:
    """The outline title of a heading, as the page shows it. Chromium repeats the first line of
    a heading that begins a page ("SummarySummary"; "Transfer learning: what transfers, and how
    toTransfer learning: what transfers, and how toreuse it" for a heading on two lines);
    ``headings`` maps each heading's text without whitespace to the text itself."""
    key = squeeze(title)
    if key in headings:
        return title
    for cut in range(1, len(key) // 2 + 1):
        if key[:cut] == key[cut:2 * cut] and key[cut:] in headings:
            return headings[key[cut:]]
    return title


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path-output", type=Path, default=ROOT)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--mathjax", type=Path, default=None)
    parser.add_argument("--no-build", action="store_true")
    args, extra = parser.parse_known_args(argv)
    build = args.path_output / "_build"
    output = args.output or build / "pdf" / "dlcc.pdf"
    if args.mathjax is not None and not (args.mathjax / "es5" / "tex-mml-chtml.js").exists():
        parser.error(f"--mathjax must be a MathJax 3 folder (with es5/tex-mml-chtml.js), "
                     f"got {args.mathjax}")
    if not args.no_build:
        singlehtml(args.path_output, extra)
    site = build / "singlehtml"
    if not (site / "_static").is_dir():
        parser.error(f"no single-page build in {site}: run without --no-build")
    report = print_page(site, output, args.mathjax)
    if report["math_errors"]:
        sys.exit(f"MathJax could not typeset {report['math_errors']} formulas; see the page")
    if report["overflowing"]:
        sys.exit("these run off the page:\n  " + "\n  ".join(report["overflowing"]))
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB, "
          f"{report['chapters']} chapters; {report['shrunk']} wide formulas set smaller)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
