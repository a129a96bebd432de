"""Planted defects: each one must make the strict build fail (on a scratch copy of a tiny book)."""

from __future__ import annotations

import re
import textwrap

import pytest

from conftest import jupyter_book

CONFIG = """\
title: Guard rails
execute:
  execute_notebooks: force
only_build_toc_files: true
"""
TOC = "format: jb-book\nroot: index\nchapters:\n  - file: chapter\n"
FRONT = textwrap.dedent("""\
    ---
    jupytext:
      text_representation:
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---
    """)
GOOD_CHAPTER = FRONT + textwrap.dedent("""
    (sec-good)=
    # Chapter

    ```{code-cell} ipython3
    from myst_nb import glue
    glue("answer", 42, display=False)
    ```

    The answer is {glue:text}`answer` and {ref}`sec-good` links here.
    """)

DEFECTS = {
    "raising cell": GOOD_CHAPTER.replace("glue(\"answer\", 42", "1 / 0\nglue(\"answer\", 42"),
    "broken cross-reference": GOOD_CHAPTER.replace("{ref}`sec-good`", "{ref}`sec-missing`"),
    "missing glue key": GOOD_CHAPTER.replace("{glue:text}`answer`", "{glue:text}`no_such_key`"),
}


def make_book(path, chapter: str):
    path.mkdir()
    (path / "_config.yml").write_text(CONFIG)
    (path / "_toc.yml").write_text(TOC)
    (path / "index.md").write_text("# Guard rails\n\nA tiny book.\n")
    (path / "chapter.md").write_text(chapter)
    return path


def test_clean_tiny_book_builds(tmp_path):
    build = jupyter_book(make_book(tmp_path / "book", GOOD_CHAPTER), tmp_path / "out")
    assert build.ok, build.log[-3000:]
    text = re.sub(r"<[^>]+>", "", (build.html / "chapter.html").read_text())
    assert "The answer is 42" in text


@pytest.mark.parametrize("defect", DEFECTS)
def test_planted_defect_fails_strict_build(tmp_path, defect):
    build = jupyter_book(make_book(tmp_path / "book", DEFECTS[defect]), tmp_path / "out")
    assert not build.ok, f"the strict build passed despite a {defect}"
    assert "WARNING:" in build.log
