"""Planted defects: each one must fail the strict build with its own warning.

The defects sit one per page in the shared tiny book (tests/tiny_book, built once per run with
``-W --keep-going``, so every page reports its own warnings); a clean executed page beside them
must build without any.
"""

from __future__ import annotations

import re

import pytest

DEFECTS = {
    "raising-cell": "Executing notebook failed",
    "broken-xref": "undefined label: 'sec-missing'",
    "missing-glue": "No key 'no_such_key' found in glue data",
}
CLEAN = ["index", "lecture1", "a1", "glue"]


def warnings_of(build, page: str) -> list[str]:
    return [line for line in build.warnings() if f"/tiny_book/{page}.md" in line]


def test_strict_build_fails(tiny_book):
    assert not tiny_book.ok, "the strict build passed despite the planted defects"


@pytest.mark.parametrize("page", DEFECTS)
def test_planted_defect_is_reported(tiny_book, page):
    found = warnings_of(tiny_book, page)
    assert any(DEFECTS[page] in line for line in found), (
        f"no {DEFECTS[page]!r} warning for {page}.md; its warnings: {found}")


@pytest.mark.parametrize("page", CLEAN)
def test_clean_page_builds_without_warnings(tiny_book, page):
    assert not warnings_of(tiny_book, page)
    assert (tiny_book.html / f"{page}.html").is_file(), tiny_book.log[-3000:]


def test_glue_and_references_work_on_the_clean_page(tiny_book):
    text = re.sub(r"<[^>]+>", "", (tiny_book.html / "glue.html").read_text())
    assert "The answer is 42" in text


def test_every_warning_belongs_to_a_defect(tiny_book):
    pages = [re.search(r"/tiny_book/([\w-]+)\.md", line) for line in tiny_book.warnings()
             if "[IPKernelApp]" not in line]
    assert pages and all(p and p[1] in DEFECTS for p in pages), tiny_book.warnings()
