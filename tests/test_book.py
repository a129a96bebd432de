"""The whole book builds strictly, every page in the table of contents is there and executed."""

from __future__ import annotations

import re

import pytest
import yaml
from fresh_execution import executable_pages

from conftest import ROOT


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_strict_build_succeeds(book):
    assert book.ok, book.log[-5000:]
    warnings = [line for line in book.log.splitlines() if "WARNING:" in line]
    assert not warnings, "\n".join(warnings)


@pytest.mark.parametrize("page", toc_files())
def test_every_toc_page_has_html(book, page):
    html = book.html / f"{page}.html"
    assert html.is_file(), f"{page}.md produced no HTML"
    title = re.search(r"<title>(.*?)</title>", html.read_text(), re.S)
    assert title and title.group(1).strip(), f"{page} has no title"


@pytest.mark.parametrize("page", executable_pages())
def test_executable_pages_show_outputs(book, page):
    html = (book.html / f"{page}.html").read_text()
    assert 'class="cell_output' in html, f"{page}: no executed output in the HTML"
    assert "Traceback (most recent call last)" not in html


@pytest.mark.parametrize("page", executable_pages())
def test_outputs_hold_no_paths_of_the_build_machine(book, page):
    """A package's warning, or a traceback, prints where the package lives on the machine that
    built the book: nothing a reader should see."""
    html = (book.html / f"{page}.html").read_text(encoding="utf-8")
    outputs = re.findall(r'<div class="cell_output docutils container">(.*?)</div>\s*</div>',
                         html, re.S)
    leaked = [o for o in outputs if "site-packages" in o]
    assert not leaked, re.sub(r"<[^>]+>", "", leaked[0])[:500]


def test_check_page_reports_measured_throughput(book):
    html = (book.html / "book/setup/check.html").read_text()
    match = re.search(r"matmul\s+([\d,]+\.\d) GFLOP/s", html)
    assert match, "the setup check printed no matmul figure"
    assert float(match.group(1).replace(",", "")) > 0


def test_execution_reports_are_not_in_a_clean_build(book):
    assert not (book.html / "reports").exists()


def test_execution_table_lists_every_executable_page(book):
    html = (book.html / "book/reference/execution.html").read_text()
    for page in executable_pages():
        assert page in html, f"{page} missing from the execution table"


def pages_with_exercises() -> list[str]:
    return [p for p in toc_files() if "{exercise}" in (ROOT / f"{p}.md").read_text()]


@pytest.mark.parametrize("page", pages_with_exercises())
def test_exercises_and_figures_are_numbered_from_one_on_every_page(book, page):
    """A1 opens with "Exercise 1", not with the book-wide count of exercises before it; the same
    for figures and numbered equations."""
    html = (book.html / f"{page}.html").read_text()
    equations = [int(n) for n in re.findall(r'class="eqno">\((\d+)\)', html)]
    assert equations == list(range(1, len(equations) + 1)), f"{page}: equations {equations}"
    text = re.sub(r"<[^>]+>", " ", html)
    for kind in ("Exercise", "Fig."):
        numbers = sorted({int(n) for n in re.findall(rf"{re.escape(kind)}\s+(\d+)\b", text)})
        if kind == "Exercise" or numbers:
            assert numbers and numbers[0] == 1, f"{page}: {kind} numbers start at {numbers[:1]}"
            assert numbers == list(range(1, len(numbers) + 1)), f"{page}: {kind} {numbers}"
