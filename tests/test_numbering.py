"""Per-page numbering (``dlcc_book.number_per_page``) against the pinned Sphinx.

A tiny Sphinx project of two pages, each with figures, a table, numbered equations and
exercises (sphinx-exercise), is built with ``sphinx.cmd.build`` in a few seconds: without the
handler the second page would continue the first page's count.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

CONF = f"""\
import sys
sys.path.insert(0, {str(ROOT / "book" / "_ext")!r})
from dlcc_book import number_per_page

extensions = ["sphinx_exercise"]
numfig = True
html_theme = "basic"

def setup(app):
    app.connect("write-started", number_per_page)
"""
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>\n'


def page(name: str, figures: int) -> str:
    """A page with ``figures`` figures, one table, two numbered equations, two exercises and a
    {numref} to its last figure."""
    parts = [f"{name.upper()}\n{'=' * len(name)}\n"]
    for i in range(1, figures + 1):
        parts.append(f".. _{name}-fig{i}:\n\n.. figure:: dot.svg\n   :alt: a dot\n\n"
                     f"   Figure {i} of {name}.\n")
    parts.append(f".. list-table:: A table of {name}\n\n   * - cell\n")
    for i in (1, 2):
        parts.append(f".. math::\n   :label: {name}-eq{i}\n\n   x = {i}\n")
        parts.append(f".. exercise::\n   :label: {name}-ex{i}\n\n   Exercise {i} of {name}.\n")
    parts.append(f"See :numref:`{name}-fig{figures}`.\n")
    return "\n".join(parts)


def sphinx_build(source, output):
    proc = subprocess.run([sys.executable, "-m", "sphinx.cmd.build", "-b", "html", "-W",
                           "--keep-going", str(source), str(output)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    source = tmp_path_factory.mktemp("numbering")
    (source / "conf.py").write_text(CONF)
    (source / "dot.svg").write_text(SVG)
    (source / "index.rst").write_text(textwrap.dedent("""\
        Numbering
        =========

        .. toctree::

           first
           second
        """))
    (source / "first.rst").write_text(page("first", 3))
    (source / "second.rst").write_text(page("second", 2))
    output = source / "_build"
    sphinx_build(source, output)
    return source, output


def numbers(html: str) -> dict[str, list[int]]:
    text = re.sub(r"<[^>]+>", " ", html)
    return {kind: [int(n) for n in re.findall(pattern, text)]
            for kind, pattern in (("figure", r"Fig\.\s+(\d+)\s+Figure"),
                                  ("table", r"Table\s+(\d+)\s+A table"),
                                  ("exercise", r"Exercise\s+(\d+)\s+\(?\s*Exercise"),
                                  ("reference", r"See\s+Fig\.\s+(\d+)"))
            } | {"equation": [int(n) for n in re.findall(r'class="eqno">\((\d+)\)', html)]}


def test_every_page_numbers_from_one(project):
    _, output = project
    first = numbers((output / "first.html").read_text())
    second = numbers((output / "second.html").read_text())
    assert first == {"figure": [1, 2, 3], "table": [1], "exercise": [1, 2], "reference": [3],
                     "equation": [1, 2]}, first
    assert second == {"figure": [1, 2], "table": [1], "exercise": [1, 2], "reference": [2],
                      "equation": [1, 2]}, second


def test_unchanged_pages_are_not_rewritten(project):
    """Sphinx compares the numbers it computes with those it stored: the stored ones must be its
    own, or every page after a changed one would be rewritten on each build."""
    source, output = project
    before = {name: (output / f"{name}.html").stat().st_mtime_ns for name in ("first", "second")}
    (source / "first.rst").write_text(page("first", 3) + "\nOne more sentence.\n")
    log = sphinx_build(source, output)
    after = {name: (output / f"{name}.html").stat().st_mtime_ns for name in ("first", "second")}
    assert after["first"] != before["first"], log
    assert after["second"] == before["second"], f"second.html was rewritten:\n{log}"
    assert numbers((output / "second.html").read_text())["figure"] == [1, 2]
    assert numbers((output / "first.html").read_text())["exercise"] == [1, 2]
