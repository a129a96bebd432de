"""``dlcc_hide_solutions: true`` leaves no solution in the built site or its notebooks.

The whole book is built twice (tests/conftest.py): strictly, as it is, and for students
(``hidden_site``). The probes are taken from the assignment sources: the ``# SOLUTION`` marker
and distinctive lines of every cell tagged ``solution``, a plain-text phrase from every
``{solution}`` block, and the words that only solutions use. Every probe must appear in the
assignments' files of the first build (so this test can fail) and none in those of the
students' build: pages, exported notebooks, their entries in the search index.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

import notebooks
from conftest import ROOT
from test_book import toc_files

PAGES = ["book/assignments/index",
         *(page for page in toc_files() if re.fullmatch(r"book/assignments/a\d+", page))]
ASSIGNMENTS = PAGES[1:]
OTHERS = ["book/reference/reading-list", "book/reference/glossary"]
MARKER = "# SOLUTION"
SOLUTION_BLOCK = re.compile(r"^:::\{solution\}[^\n]*\n(.*?)^:::[ \t]*$", re.M | re.S)


# --- probes from the sources ---------------------------------------------------------------------

def solution_blocks(page: str) -> list[str]:
    return SOLUTION_BLOCK.findall((ROOT / f"{page}.md").read_text())


def solution_cells(page: str) -> list[str]:
    nb = jupytext.read(ROOT / f"{page}.md", fmt="md:myst")
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])]


def public_text(page: str) -> str:
    """A page's source without its solution blocks and solution cells."""
    text = SOLUTION_BLOCK.sub("", (ROOT / f"{page}.md").read_text())
    for cell in solution_cells(page):
        text = text.replace(cell, "")
    return text


def plain(markdown: str) -> str:
    """The words a reader sees, with a break ("|") wherever a role, math or code was."""
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " | ", markdown)
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|`[^`]*`", " | ", text, flags=re.S)
    text = re.sub(r"^:[\w-]+:.*$", " | ", text, flags=re.M)
    return re.sub(r"[*_]", "", text)


def phrase(block: str) -> str | None:
    """The longest run of at least six plain words (letters, digits, commas) in a block.

    Quotes, apostrophes and dashes are left out because Sphinx turns them into typographic
    characters.
    """
    runs = re.findall(r"[A-Za-z0-9][A-Za-z0-9 ,\n]*[A-Za-z0-9]", plain(block))
    runs = [" ".join(r.split()) for r in runs if len(r.split()) >= 6]
    return max(runs, key=len) if runs else None


def code_lines(page: str) -> list[str]:
    """Distinctive lines of the solution cells: long, and in no public cell or text."""
    public = " ".join(public_text(p) for p in PAGES)
    lines = []
    for cell in solution_cells(page):
        for line in cell.splitlines():
            line = line.strip()
            if len(line) >= 24 and line not in public and not line.startswith(("#", '"""')):
                lines.append(line)
    return lines


WORD = re.compile(r"[a-z]{5,}")


def solution_only_stems() -> set[str]:
    """Search-index stems of the prose solutions' words that nothing else in the reduced book
    produces (the search index stores stems, so "matters" and "matter" are one term)."""
    in_solutions = set()
    for page in ASSIGNMENTS:
        for block in solution_blocks(page):
            in_solutions |= set(WORD.findall(plain(block).lower()))
    public = " ".join(public_text(p) for p in [*PAGES, *OTHERS, "book/intro"])
    public += (ROOT / "book" / "references.bib").read_text()
    # The checks' messages are printed on the pages (in executed examples), so they are public.
    public += " ".join(f.read_text() for f in (ROOT / "src" / "dlcc" / "checks").glob("*.py"))
    public_stems = {stem(w) for w in re.findall(r"[a-z]+", public.lower())}
    return {stem(w) for w in in_solutions} - public_stems


# --- reading the built site ----------------------------------------------------------------------

def file_text(path: Path) -> str | None:
    """What a reader or a search could find in a file, whitespace collapsed; None if binary."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    if path.suffix == ".html":
        raw = html.unescape(re.sub(r"<[^>]+>", "", raw))
    elif path.suffix in (".ipynb", ".json"):
        raw = " ".join(strings(json.loads(raw)))
    return " ".join(raw.split())


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def site_texts(html_dir: Path, only: str = "") -> dict[str, str]:
    """The text of each file whose path contains ``only``."""
    texts = {}
    for path in sorted(html_dir.rglob("*")):
        if path.is_file() and only in str(path.relative_to(html_dir)):
            text = file_text(path)
            if text is not None:
                texts[str(path.relative_to(html_dir))] = text
    return texts


def search_terms(html_dir: Path, pages: list[str]) -> set[str]:
    """The search index's terms that point to one of ``pages``."""
    index = (html_dir / "searchindex.js").read_text()
    data = json.loads(index[index.index("(") + 1:index.rindex(")")])
    wanted = {i for i, name in enumerate(data["docnames"]) if name in pages}
    found = set()
    for terms in (data["terms"], data.get("titleterms", {})):
        for term, docs in terms.items():
            if wanted & ({docs} if isinstance(docs, int) else set(docs)):
                found.add(term)
    return found


def stem(word: str) -> str:
    from sphinx.search.en import SearchEnglish

    return SearchEnglish({}).stem(word)


# --- the two sites ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sites(book, hidden_site):
    """The whole book built twice: as it is (solutions shown) and for students."""
    assert book.ok, book.log[-5000:]
    assert hidden_site.ok, hidden_site.log[-5000:]
    return {"shown": book.html, "hidden": hidden_site.html}


@pytest.fixture(scope="module")
def texts(sites):
    """The assignments' files (pages, notebooks, images) of both sites."""
    return {name: site_texts(path, only="assignments") for name, path in sites.items()}


def probes() -> list[tuple[str, str]]:
    found = [("marker", MARKER)]
    for page in ASSIGNMENTS:
        found += [(f"{page} solution cell", line) for line in code_lines(page)]
        for block in solution_blocks(page):
            text = phrase(block)
            if text:
                found.append((f"{page} solution block", text))
    return found


# --- tests ---------------------------------------------------------------------------------------

def test_every_solution_has_a_probe():
    for page in ASSIGNMENTS:
        blocks, cells = solution_blocks(page), solution_cells(page)
        assert blocks and cells, f"{page} has no solutions to hide"
        assert all(phrase(b) for b in blocks), f"{page}: a solution block without a phrase"
        assert all(MARKER in c for c in cells), f"{page}: a solution cell without {MARKER!r}"
    assert len(solution_only_stems()) >= 30


def test_probes_appear_when_solutions_are_shown(texts):
    everything = " ".join(texts["shown"].values())
    missing = [(where, text) for where, text in probes() if " ".join(text.split()) not in
               everything]
    assert not missing, f"probes not found in the normal build: {missing[:5]}"


def test_hidden_site_has_no_solution_text_or_code(texts):
    leaks = [(name, where, text) for name, content in texts["hidden"].items()
             for where, text in probes() if " ".join(text.split()) in content]
    assert not leaks, f"solutions leak into the hidden build: {leaks[:5]}"
    assert not any(name.endswith((".md", ".txt")) and "assignments" in name
                   for name in texts["hidden"]), "page sources were copied into the site"


def test_search_index_has_no_solution_words(sites):
    stems = solution_only_stems()
    shown = search_terms(sites["shown"], PAGES)
    hidden = search_terms(sites["hidden"], PAGES)
    assert len(stems & shown) >= 0.8 * len(stems), "solution words missing from the index"
    assert not stems & hidden, f"solution words in the hidden search index: {stems & hidden}"


@pytest.mark.parametrize("page", ASSIGNMENTS)
def test_exported_notebooks_drop_solutions(sites, page):
    for name in ("shown", "hidden"):
        nb = json.loads((sites[name] / "_sources" / f"{page}.ipynb").read_text())
        sources = ["".join(c["source"]) for c in nb["cells"]]
        tagged = [c for c in nb["cells"] if "solution" in c["metadata"].get("tags", [])]
        # the tasks and starter code in both; solution cells and folded solutions when shown
        assert any("Exercise" in s for s in sources), "exercises missing"
        assert any("NotImplementedError" in s for s in sources), "starter cells missing"
        shown = name == "shown"
        assert bool(tagged) is shown and any(MARKER in s for s in sources) is shown
        assert any("<summary>Solution to" in s for s in sources) is shown
        assert shown or not any(s.startswith("**Solution") for s in sources)


@pytest.mark.parametrize("page", ASSIGNMENTS)
def test_hidden_pages_keep_the_expected_results(sites, page):
    """Solution cells still run when hidden: the glued results are the same in both builds."""
    pasted = re.compile(r'<span class="pasted-text">(.*?)</span>')
    shown = pasted.findall((sites["shown"] / f"{page}.html").read_text())
    hidden = pasted.findall((sites["hidden"] / f"{page}.html").read_text())
    assert shown and hidden == shown


def test_notebooks_branch_follows_the_config(tmp_path):
    """The deploy workflow exports the notebooks branch without --hide-solutions: the
    exporter must read the flag from _config.yml itself."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert notebooks.config_hides_solutions(ROOT) is bool(
        config["sphinx"]["config"]["dlcc_hide_solutions"])
    config["sphinx"]["config"]["dlcc_hide_solutions"] = True
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    assert notebooks.config_hides_solutions(tmp_path) is True
