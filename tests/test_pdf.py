"""The book as one PDF (``scripts/build_pdf.py``), read back as a reader's viewer would (the
text with PDFium, Chrome's PDF engine; the outline, links and images with pikepdf): pages,
chapters in the text and the outline, typeset math, figures, solutions, links."""

from __future__ import annotations

import importlib.util
import re

import lxml.html
import pikepdf
import pypdfium2
import pytest
import yaml

from conftest import ROOT
from test_book import toc_files

SCRIPT = ROOT / "scripts" / "build_pdf.py"
HEADERLINK = "contains(concat(' ', @class, ' '), ' headerlink ')"  # Sphinx's '#' link
PRINT_SERVER = re.compile(r"http://127\.0\.0\.1:\d+/(book/|dlcc-print|_)")
# TeX that MathJax should have turned into symbols; in prose it means a formula was not typeset.
TEX = re.compile(r"\\(frac|mathbf|sum|partial|sqrt|hat|bar|lambda|eta|sigma|top|cdot|odot)\b"
                 r"|\$[^$\s][^$]*\$")


def load_script():
    spec = importlib.util.spec_from_file_location("build_pdf", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_PDF = load_script()

def titles() -> dict[str, str]:
    """Each page of the table of contents -> its title (the first heading of its source)."""
    out = {}
    for page in toc_files():
        text = (ROOT / f"{page}.md").read_text(encoding="utf-8")
        out[page] = re.search(r"^# (.+)$", text, re.M).group(1).strip()
    return out


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="session")
def printed(pdf):
    assert pdf.ok, pdf.log[-3000:]
    path = pdf.html.parent / "pdf" / "dlcc.pdf"
    document = pypdfium2.PdfDocument(path)
    text = [page.get_textpage().get_text_range() for page in document]
    document.close()
    with pikepdf.open(path) as reader:
        yield path, reader, text


def pictures(reader) -> list:
    """The pictures the PDF holds: its images (counted without decoding them), each once,
    apart from the transparency masks of other images."""
    found = [obj for obj in reader.objects
             if isinstance(obj, pikepdf.Stream) and obj.get("/Subtype") == "/Image"]
    masks = {image.SMask.objgen for image in found if "/SMask" in image}
    return [image for image in found if image.objgen not in masks]


@pytest.fixture(scope="session")
def printed_page(pdf):
    """The single-page build the PDF was printed from, parsed (lxml: 0.1 s for its 3.6 MB,
    BeautifulSoup 2.4 s)."""
    return lxml.html.parse(str(pdf.html.parent / "singlehtml" / "dlcc-print.html")).getroot()


@pytest.fixture(scope="session")
def page_code(printed_page) -> set[str]:
    """Every line of code shown in the single-page build (it may hold ``$`` and TeX legally)."""
    return {words(line) for pre in printed_page.iter("pre")
            for line in pre.text_content().splitlines() if line.strip()}


@pytest.mark.book
def test_the_pdf_build_is_strict_and_says_what_it_wrote(pdf):
    assert pdf.ok, pdf.log[-3000:]
    assert not pdf.warnings(), "\n".join(pdf.warnings())
    assert re.search(r"wrote .*dlcc\.pdf \([\d.]+ MB, \d+ chapters; \d+ wide formulas", pdf.log)


@pytest.mark.book
def test_page_count_is_sane_for_the_number_of_chapters(printed):
    _, reader, _ = printed
    chapters = len(toc_files())
    assert 3 * chapters <= len(reader.pages) <= 30 * chapters, len(reader.pages)


@pytest.mark.book
def test_title_page_names_the_book_its_authors_and_version(printed):
    import dlcc

    _, reader, text = printed
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    first = words(text[0])
    assert config["title"] in first
    assert all(author["name"] in first for author in cff["authors"])
    assert f"Version {dlcc.__version__}" in first
    assert str(reader.docinfo["/Title"]) == config["title"]
    assert "Contents" in text[1]


@pytest.fixture(scope="session")
def outline(printed) -> list[str]:
    _, reader, _ = printed
    return [str(item.Title) for item in BUILD_PDF.outline_items(reader.Root.get("/Outlines"))]


@pytest.mark.book
def test_every_chapter_is_in_the_text_and_the_outline(printed, outline):
    _, _, text = printed
    bookmarks = {BUILD_PDF.squeeze(title) for title in outline}
    body = BUILD_PDF.squeeze(" ".join(text[2:]))  # after the title page and the contents
    for page, title in titles().items():
        plain = re.sub(r"\s|[`*]|\{[a-z]+\}", "", title)
        assert plain in body, f"{page}: {title!r} is not in the PDF's text"
        assert plain in bookmarks, f"{page}: {title!r} is not in the outline"


@pytest.mark.book
def test_every_bookmark_reads_as_its_heading(outline, printed_page):
    """Chromium repeats the first line of a heading that begins a page in its bookmark
    ("SummarySummary": 58 of 412 bookmarks); the print script mends them."""
    squeeze = BUILD_PDF.squeeze
    headings = {squeeze("".join(heading.xpath(f".//text()[not(ancestor::a[{HEADERLINK}])]")))
                for heading in printed_page.xpath("//h1|//h2|//h3|//h4|//h5|//h6")}
    headings.add("Contents")  # the heading of the contents the script adds before printing
    assert len(outline) > 300
    assert not [title for title in outline if squeeze(title) not in headings]


def test_doubled_bookmarks_are_mended():
    mended = BUILD_PDF.mended
    headings = {"Summary": "Summary",
                "Transferlearning:whattransfers,andhowtoreuseit":
                    "Transfer learning: what transfers, and how to reuse it"}
    assert mended("SummarySummary", headings) == "Summary"
    assert mended("Transfer learning: what transfers, and how toTransfer learning: what "
                  "transfers, and how toreuse it", headings) == headings[
                      "Transferlearning:whattransfers,andhowtoreuseit"]
    assert mended("Summary", headings) == "Summary"
    assert mended("Not a heading", headings) == "Not a heading"  # left as Chromium wrote it


@pytest.mark.book
def test_math_is_typeset_outside_code(printed, page_code):
    _, _, text = printed
    debris = [(n + 1, line) for n, page in enumerate(text) for line in page.splitlines()
              if TEX.search(line) and not any(words(line) in code for code in page_code)]
    assert not debris, f"raw TeX in the text (page, line): {debris[:10]}"


@pytest.mark.book
def test_figures_and_solutions_are_printed(printed, pdf):
    _, reader, text = printed
    html = (pdf.html.parent / "singlehtml" / "dlcc-print.html").read_text(encoding="utf-8")
    figures = len(set(re.findall(r'<img[^>]+src="(_images/[^"]+)"', html)))
    # The figures and nothing else: a shadow printed as a picture (an admonition's was one)
    # would add pictures no page shows.
    assert figures > 50 and len(pictures(reader)) == figures, (figures, len(pictures(reader)))
    solutions = html.count('class="solution')
    assert words(" ".join(text)).count("Solution to") >= solutions > 50


@pytest.mark.book
def test_links_stay_inside_the_pdf(printed):
    """The contents and cross-references jump within the document; none points at the local
    server the page was printed from (a chapter may still name localhost, e.g. TensorBoard's)."""
    _, reader, _ = printed
    internal, local = 0, []
    for page in reader.pages:
        for annotation in page.obj.get("/Annots") or []:
            action = annotation.get("/A")
            uri = action.get("/URI") if action is not None else None
            if uri is not None and PRINT_SERVER.match(str(uri)):
                local.append(str(uri))
            elif "/Dest" in annotation or (action is not None and action.get("/S") == "/GoTo"):
                internal += 1
    assert not local, local[:5]
    assert internal >= len(toc_files())


def test_overflow_check_finds_what_would_run_off_the_page(tmp_path):
    """The print script's check, on a page with a wide unbroken table and a narrow paragraph."""
    from playwright.sync_api import sync_playwright

    (tmp_path / "page.html").write_text(
        "<article class='bd-article' style='width:300px'><section><h2>Wide</h2>"
        "<table><tr><td style='white-space:nowrap'>" + "x" * 400 + "</td></tr></table>"
        "</section><section><h2>Narrow</h2><p>fits</p><pre>short</pre></section></article>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BUILD_PDF.chromium(), args=["--no-sandbox"])
        tab = browser.new_page()
        tab.goto((tmp_path / "page.html").as_uri())
        found = tab.evaluate(BUILD_PDF.OVERFLOW_JS, 300)
        browser.close()
    assert found == ['table in "Wide"']


def test_a_formula_wider_than_its_line_is_set_smaller(tmp_path):
    from playwright.sync_api import sync_playwright

    (tmp_path / "page.html").write_text(
        "<div style='width:340px'><mjx-container display='true' style='display:block'>"
        "<mjx-math style='display:inline-block;width:600px'>x</mjx-math></mjx-container>"
        "<mjx-container display='true' style='display:block'>"
        "<mjx-math style='display:inline-block;width:100px'>y</mjx-math></mjx-container></div>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BUILD_PDF.chromium(), args=["--no-sandbox"])
        tab = browser.new_page()
        tab.goto((tmp_path / "page.html").as_uri())
        shrunk = tab.evaluate(BUILD_PDF.FIT_MATH_JS)
        sizes = tab.evaluate("[...document.querySelectorAll('mjx-container')]"
                             ".map(m => m.style.fontSize)")
        browser.close()
    assert shrunk == 1 and sizes == ["50%", ""]  # (340 - 40) / 600 of the size; the other kept


def test_parts_follow_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = BUILD_PDF.parts_of(toc)
    assert parts[0] == ("", [toc["root"]])
    assert [caption for caption, _ in parts[1:]] == [p["caption"] for p in toc["parts"]]
    assert [page for _, pages in parts for page in pages] == toc_files()


def test_a_missing_mathjax_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        BUILD_PDF.main(["--mathjax", str(tmp_path), "--no-build"])
    assert "--mathjax must be a MathJax 3 folder" in capsys.readouterr().err


def test_every_page_links_the_pdf(book):
    for page in toc_files():
        html = (book.html / f"{page}.html").read_text(encoding="utf-8")
        assert "Download the book (PDF)" in html and "/dlcc.pdf" in html, page


def test_deploy_publishes_the_pdf_beside_the_site():
    deploy = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "python scripts/build_pdf.py" in deploy
    assert "cp _build/pdf/dlcc.pdf _build/html/dlcc.pdf" in deploy
    readme = (ROOT / "README.md").read_text()
    assert "python scripts/build_pdf.py" in readme
