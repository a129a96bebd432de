"""The notebooks behind the launch and download buttons (book/_ext/notebooks.py).

Exported from the strict build, every notebook must read like its page (the same numbers, code,
links and citations, nothing left as MyST) and run top to bottom in a fresh virtual environment
holding only ``dlcc`` and its declared dependencies, as Colab does after the install cell.
"""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import textwrap
from functools import cache
from pathlib import Path

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup
from fresh_execution import executable_pages

import notebooks
from conftest import FRESH_REPORT, ROOT

SITE = notebooks.read_site(ROOT, commit="0123456789abcdef0123456789abcdef01234567")
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PLACEHOLDER = "computed on the website"
# A MyST directive fence or role left as source: ```{name}, :::{name}, {name}`text`
# (a page may still name a directive in code, as in "`{solution}` blocks")
UNRENDERED = re.compile(r"(`{3,}|:{3,})\{[\w:-]+\}|\{[a-z]+(:[a-z]+)?\}`[^`\s][^`]*`")
LINK = re.compile(r"\]\((\S+?)(?:\s+\"[^\"]*\")?\)|(?:href|src)=\"([^\"]+)\"")


PAGES = executable_pages()


def markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


# --- The conversion, on a small page (no build) --------------------------------------------

PAGE = textwrap.dedent("""\
    <html><head><script>window.MathJax = {"tex": {"macros": {"R": "\\\\mathbb{R}",
      "vect": ["\\\\mathbf{#1}", 1]}}}</script></head><body>
    <article class="bd-article"><section id="demo">
    <h1>Demo<a class="headerlink" href="#demo">#</a></h1>
    <p>See <a class="reference internal" href="../reference/glossary.html#term-Epoch">Epoch</a>,
    [<a class="reference internal" href="../reference/reading-list.html#id7"
    >LeCun <em>et al.</em>, 1989</a>], <span class="pasted-text">0.913</span> and
    <span class="math">\\(\\vect{x} \\in \\R^n\\)</span>.</p>
    <div class="math" id="equation-eq-demo"><span class="eqno">(1)<a class="headerlink"
    href="#equation-eq-demo">#</a></span>\\[\\begin{split}a &amp;= b_1 \\\\ c &amp;= d
    \\end{split}\\]</div>
    <div class="cell docutils container"><div class="cell_input"><pre>x = 1</pre></div>
    <figure><img src="../../_images/out.png" alt="output"/><figcaption><p><span
    class="caption-number">Fig. 1 </span><span class="caption-text">A curve.</span></p>
    </figcaption></figure></div>
    <div class="cell tag_solution docutils container"><pre>secret = 'SECRET-CODE'</pre></div>
    <div class="exercise admonition" id="ex-add"><p class="admonition-title">Exercise 1</p>
    <p>What is 1 + 1?</p></div>
    <div class="solution dropdown admonition"><p class="admonition-title">Solution to
    Exercise 1</p><p>It is 2.</p></div>
    <div class="highlight-python notranslate"><div class="highlight"><pre>def f(x):
        return x</pre></div></div>
    <div class="sd-tab-set"><input type="radio"/><label class="sd-tab-label">numpy</label>
    <div class="sd-tab-content"><p>Arrays.</p></div></div>
    <div class="cell tag_hide-input docutils container"><pre>y = 2</pre></div>
    <p>The end. <img src="../../_images/plot.png" alt="a plot"/></p>
    </section></article></body></html>
    """)


@pytest.fixture
def build(tmp_path):
    """A fake build of one page: its HTML and its executed notebook."""
    html = tmp_path / "_build" / "html"
    (html / "book" / "part1").mkdir(parents=True)
    (html / "book" / "part1" / "demo.html").write_text(PAGE)
    cells = [nbformat.v4.new_markdown_cell("# Demo {glue:text}`acc`"),
             nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output(
                 "display_data", {"application/papermill.record/text/plain": "0.913"})]),
             nbformat.v4.new_code_cell("secret = 'SECRET-CODE'",
                                       metadata={"tags": ["solution", "hide-input"]}),
             nbformat.v4.new_code_cell("z = 3", metadata={"tags": ["remove-cell"]}),
             nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["hide-input"]})]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    (html.parent / "jupyter_execute" / "book" / "part1").mkdir(parents=True)
    nbformat.write(nb, html.parent / "jupyter_execute" / "book" / "part1" / "demo.ipynb")
    return html


def export_demo(html, **kwargs):
    return notebooks.export("book/part1/demo", SITE, html=html, **kwargs)


def test_demo_page_reads_as_markdown(build):
    text = markdown(export_demo(build))
    url = SITE.baseurl
    assert f"[Epoch]({url}book/reference/glossary.html#term-Epoch)" in text
    assert f"[[LeCun *et al.*, 1989]({url}book/reference/reading-list.html#id7)]" in text
    assert "0.913" in text and "$\\mathbf{x} \\in \\mathbb{R}^n$" in text
    assert "$$\n\\begin{aligned}a &= b_1 \\\\ c &= d\n\\end{aligned} \\tag{1}\n$$" in text
    assert f"![a plot]({url}_images/plot.png)" in text and "out.png" not in text
    assert "**Fig. 1** A curve." in text
    assert "> **Exercise 1**\n>\n> What is 1 + 1?" in text
    assert "<details><summary>Solution to Exercise 1</summary>\n\nIt is 2.\n\n</details>" in text
    assert "```python\ndef f(x):\n    return x\n```" in text
    assert "**numpy**\n\nArrays." in text
    assert "Demo#" not in text and "(1)#" not in text  # no heading or equation links


def test_code_cells_pair_with_the_page(build):
    nb = export_demo(build)
    kinds = [(c.cell_type, c.source.split("\n")[0][:14]) for c in nb.cells]
    assert kinds == [("markdown", "*This notebook"), ("code", "# @title Colab"),
                     ("markdown", "# Demo"), ("code", "x = 1"), ("markdown", "**Fig. 1** A c"),
                     ("code", "secret = 'SECR"), ("code", "z = 3"),
                     ("markdown", "> **Exercise 1"), ("code", "y = 2"),
                     ("markdown", "The end. ![a p")]
    assert nb.cells[3].outputs == []  # glue's invisible record is dropped
    # A student build (dlcc_hide_solutions): the solution cell runs but leaves the page.
    page = build / "book" / "part1" / "demo.html"
    page.write_text(re.sub(r'<div class="cell tag_solution.*?</div>', "", page.read_text()))
    with pytest.raises(ValueError, match="shows 2 code cells but the executed notebook has 3 "):
        export_demo(build)
    hidden = export_demo(build, hide_solutions=True)
    assert "SECRET-CODE" not in nbformat.writes(hidden)
    assert [c.source for c in hidden.cells if c.cell_type == "code"][1:] == ["x = 1", "z = 3",
                                                                             "y = 2"]


def test_first_cells_say_what_the_notebook_is_and_install_dlcc_only_in_colab(build):
    nb = export_demo(build)
    assert "opens without outputs" in nb.cells[0].source  # glue's record is no output
    assert SITE.page_url("book/part1/demo") in nb.cells[0].source
    install = nb.cells[1]
    assert install.id == notebooks.INSTALL_CELL_ID and "remove-cell" in install.metadata.tags
    assert install.metadata.cellView == "form" and install.metadata.jupyter.source_hidden
    assert 'if "google.colab" in sys.modules:' in install.source
    assert f"git+{SITE.repo_url}@{SITE.commit}" in install.source


def test_metadata_requests_a_colab_gpu(build):
    nb = export_demo(build)
    assert nb.metadata.accelerator == "GPU" and nb.metadata.colab.gpuType == "T4"
    assert nb.metadata.kernelspec.name == "python3"
    nbformat.validate(nb)


def test_cell_ids_are_stable_and_local(build):
    ids = [c.id for c in export_demo(build).cells]
    assert ids == [c.id for c in export_demo(build).cells] and len(set(ids)) == len(ids)
    page = build / "book" / "part1" / "demo.html"
    page.write_text(page.read_text().replace("The end.", "The very end."))
    changed = [c.id for c in export_demo(build).cells]
    assert sum(a != b for a, b in zip(ids, changed, strict=True)) == 1


def test_outputs_come_from_the_execution_cache_when_the_build_used_it(build):
    """myst-nb writes a page's notebook without outputs when it took them from its cache."""
    get_cache = pytest.importorskip("jupyter_cache").get_cache  # a myst-nb dependency
    from jupyter_cache.base import CacheBundleIn

    path = build.parent / "jupyter_execute" / "book" / "part1" / "demo.ipynb"
    executed = nbformat.read(path, as_version=4)
    executed.cells[4].outputs = [nbformat.v4.new_output("stream", text="CACHED-OUTPUT\n")]
    elsewhere = build.parent.parent / "cache"  # a build may be told to use another cache
    get_cache(elsewhere).cache_notebook_bundle(CacheBundleIn(executed, str(path)),
                                               check_validity=False)
    assert "CACHED-OUTPUT" not in nbformat.writes(export_demo(build))
    shutil.copytree(elsewhere, build.parent / ".jupyter_cache")  # the default place
    for nb in (export_demo(build, cache=elsewhere), export_demo(build)):
        assert "CACHED-OUTPUT" in nbformat.writes(nb) and "build's outputs" in nb.cells[0].source


def test_a_page_that_is_not_executable_is_an_error(build):
    with pytest.raises(ValueError, match="page: expected an executable page"):
        notebooks.export("book/part1/missing", SITE, html=build)


def test_cli_rejects_a_folder_that_is_not_a_build(tmp_path, capsys):
    with pytest.raises(SystemExit):
        notebooks.main(["--html", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "--html: expected the HTML folder of a finished build" in capsys.readouterr().err


# --- Every notebook of the strict build ----------------------------------------------------


@pytest.fixture(scope="session")
def exported(book) -> dict[str, nbformat.NotebookNode]:
    """The notebooks the build wrote beside its pages (``_sources/<page>.ipynb``: the download
    button's, and what the launch buttons open), for every executable page it built."""
    assert book.ok, book.log[-3000:]
    found = {page: book.html / "_sources" / f"{page}.ipynb"
             for page in notebooks.built_pages(book.html)}
    return {page: nbformat.read(path, as_version=4) for page, path in found.items()
            if path.is_file()}


@cache
def anchors(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


def broken_links(text: str, html: Path) -> list[str]:
    """Links to the site that name no file, or no element id, of the build."""
    broken = []
    for match in LINK.finditer(text):
        url = htmllib.unescape(match.group(1) or match.group(2))
        if not url.startswith(SITE.baseurl):
            continue
        path, _, anchor = url.removeprefix(SITE.baseurl).partition("#")
        target = html / (path or "index.html")
        if not target.is_file() or (anchor and target.suffix == ".html"
                                    and anchor not in anchors(target)):
            broken.append(url)
    return broken


def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book" / "references.bib").read_text(), re.M)


@pytest.mark.book
def test_every_executable_page_of_the_toc_is_exported(exported):
    assert not set(PAGES) - set(exported), set(PAGES) - set(exported)
    assert "book/setup/check" in PAGES and any(p.startswith("book/part1/") for p in PAGES)


@pytest.mark.book
@pytest.mark.parametrize("page", PAGES)
def test_notebook_reads_like_its_page(exported, book, page):
    nb = exported[page]
    nbformat.validate(nb)
    assert nb.metadata.accelerator == "GPU" and nb.metadata.colab.gpuType == "T4"
    assert "opens with that build's outputs" in nb.cells[0].source
    # the library at the commit the build was made from
    assert nb.cells[1].id == notebooks.INSTALL_CELL_ID
    assert notebooks.read_site(ROOT).commit in nb.cells[1].source
    assert 'if "google.colab" in sys.modules:' in nb.cells[1].source
    text = markdown(nb)
    assert PLACEHOLDER not in text
    assert not UNRENDERED.search(text), UNRENDERED.search(text).group(0)
    assert not broken_links(text, book.html), broken_links(text, book.html)[:5]
    prose = LINK.sub("", text)  # link targets may hold anything; the words may not
    assert not [k for k in bib_keys() if re.search(rf"\b{re.escape(k)}\b", prose)]
    soup = BeautifulSoup((book.html / f"{page}.html").read_text(), "html.parser")
    article = soup.select_one("article.bd-article")
    shown = sum(bool(cell.select("div.cell_output")) for cell in article.select("div.cell"))
    assert sum(bool(c.get("outputs")) for c in nb.cells) >= shown, "outputs missing"
    for cell in article.select("div.cell"):
        cell.decompose()
    # The page's glued numbers and included code are in the notebook, as on the page.
    for value in article.select("span.pasted-text"):
        assert value.get_text() in text, f"glued value {value.get_text()!r} missing"
    for block in article.select("div.highlight pre"):
        first = (block.get_text().strip().splitlines() or [""])[0]
        assert first in text, f"code block starting {first!r} missing"


# --- Running them as a reader would ---------------------------------------------------------


@pytest.fixture(scope="session")
def fresh_runs(book) -> dict:
    """tests/fresh_execution.py's report: page -> "ok", "cached" or the traceback."""
    return json.loads((book.html.parents[1] / FRESH_REPORT).read_text())


@pytest.mark.parametrize("page", PAGES)
def test_notebook_runs_top_to_bottom_in_a_fresh_environment(fresh_runs, book, page):
    """Before the build, every executable page ran top to bottom in a virtual environment
    holding only ``dlcc`` and its declared dependencies (what Colab has after the install
    cell), in an empty folder, starter cells tagged ``skip-execution`` excepted, within the
    build's cell time limit; and the build showed that very run, from the execution cache,
    rather than running the page again in the test environment. The exported notebook holds
    the same code cells as the page (test_notebook_reads_like_its_page), so it runs too."""
    assert "error" not in fresh_runs, fresh_runs.get("error")
    assert fresh_runs.get(page) in ("ok", "cached"), fresh_runs.get(page, "not run")[-3000:]
    used = re.compile(rf"{re.escape(str(ROOT / page))}\.md: Using cached notebook")
    assert used.search(book.log), f"the build executed {page} itself"
