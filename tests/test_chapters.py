"""Every lecture chapter has the elements a reader relies on (checked on the MyST sources).

The chapters are those of the "Part ..." parts of ``_toc.yml`` (a part's landing page,
``index``, aside), so a new chapter is checked as soon as it is listed. The contract
(../shared/part2.md, the same for both parts): learning objectives, at least two executed
figures with alt text, at least three exercises each with a collapsed solution, suggested
reading with citations, a summary, a kernelspec (launch buttons); and the chapter calls the
library instead of redefining it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re

import pytest
import yaml
from sphinx_external_toc.parsing import parse_toc_yaml

import dlcc
from conftest import ROOT

# Programs, not library functions: their names (main, build, check, ...) are any script's.
COMMAND_LINE = {"dlcc.__main__", "dlcc.cli", "dlcc.doctor"}


def chapters() -> list[str]:
    book = parse_toc_yaml(ROOT / "_toc.yml")
    return [page for part in book[book.root.docname].subtrees
            if (part.caption or "").startswith("Part")
            for page in part.items if isinstance(page, str) and not page.endswith("/index")]


CHAPTERS = chapters()


@functools.cache
def library_names() -> dict[str, str]:
    """Every public name of dlcc (a module's ``__all__``, else the functions and classes it
    defines), walking every public module: name -> the module that defines it."""
    names = {}
    for info in pkgutil.walk_packages(dlcc.__path__, "dlcc."):
        if info.name in COMMAND_LINE or any(p.startswith("_") for p in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        public = getattr(module, "__all__", None) or [
            name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == info.name]
        names.update({name: info.name for name in public})
    return names


def source(page: str) -> str:
    return (ROOT / f"{page}.md").read_text()


def front_matter(text: str) -> dict:
    assert text.startswith("---"), "no front matter"
    return yaml.safe_load(text.split("---", 2)[1]) or {}


def test_every_chapter_file_is_in_the_toc():
    """A chapter left out of _toc.yml is neither built nor checked here."""
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix()
               for part in ("part1", "part2") for p in (ROOT / "book" / part).glob("*.md")}
    missing = {p for p in on_disk if not p.endswith("/index")} - set(CHAPTERS)
    assert not missing, f"chapters not in _toc.yml: {sorted(missing)}"
    assert len(CHAPTERS) >= 10


def test_library_names_cover_both_halves():
    names = library_names()
    for name in ("linear_forward", "softmax_cross_entropy", "im2col", "MLP", "fit", "evaluate",
                 "SmallCNN", "UNet", "make_loader", "dice", "Adam"):
        assert name in names, name
    assert len(names) > 100


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_elements(page):
    text = source(page)
    front = front_matter(text)
    assert "kernelspec" in front and "jupytext" in front, "front matter lacks a kernelspec"
    assert re.search(r"Learning objectives", text), "no learning objectives"
    assert re.search(r"^#+ Summary", text, re.M), "no summary section"
    reading = re.search(r"^#+ Suggested reading\s*\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert reading and "{cite" in reading.group(1), "no suggested reading with citations"

    figures = re.findall(r"```\{code-cell\}[^\n]*\n---\n(.*?)\n---\n", text, re.S)
    alts = [yaml.safe_load(f).get("mystnb", {}).get("image", {}).get("alt") for f in figures]
    assert sum(bool(a) for a in alts) >= 2, "fewer than two figures with alt text"

    exercises = re.findall(r"[:`]{3,}\{exercise\}[^\n]*\n:label:\s*(\S+)", text)
    solutions = re.findall(r"[:`]{3,}\{solution\}\s*(\S+)", text)
    assert len(exercises) >= 3, f"only {len(exercises)} exercises"
    unsolved = set(exercises) - set(solutions)
    assert not unsolved, f"exercises without a solution: {unsolved}"
    dropdowns = re.findall(r"\{solution\}[^\n]*\n(?::[\w-]+:[^\n]*\n)*?:class:\s*dropdown", text)
    assert len(dropdowns) >= len(exercises), "solutions must be collapsed dropdowns"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_does_not_redefine_the_library(page):
    """Chapters call dlcc and show its code with {literalinclude}; they do not define their own
    version of anything the library offers."""
    code = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", source(page), re.S))
    defined = re.findall(r"^(?:def|class) (\w+)", code, re.M)
    names = library_names()
    clashes = {name: names[name] for name in defined if name in names}
    assert not clashes, f"redefines library names (import them instead): {clashes}"
