"""Every lecture chapter has the elements a reader relies on (checked on the MyST sources).

Objectives, at least two executed figures with alt text, at least three exercises each with a
solution, a summary, suggested reading with citations, and a kernelspec (launch buttons).
"""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT

CHAPTERS = sorted(p.relative_to(ROOT).with_suffix("").as_posix()
                  for p in (ROOT / "book" / "part1").glob("*.md"))


def source(page: str) -> str:
    return (ROOT / f"{page}.md").read_text()


def front_matter(text: str) -> dict:
    assert text.startswith("---"), "no front matter"
    return yaml.safe_load(text.split("---", 2)[1]) or {}


def test_part1_has_its_chapters():
    names = {page.split("/")[-1] for page in CHAPTERS}
    expected = {"prologue", "l1-neural-networks", "l2-training", "l3-backprop",
                "l4-math-session", "note-softmax-ce", "l5-optimisation",
                "l6-making-training-work", "l7-cnn", "l8-cnn-architectures"}
    assert expected <= names


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
    """Chapters call dlcc; they do not define their own layers, losses or training loops."""
    code = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", source(page), re.S))
    defined = re.findall(r"^def (\w+)", code, re.M)
    library = {"linear_forward", "linear_backward", "relu_forward", "sigmoid_forward", "softmax",
               "softmax_cross_entropy", "conv2d_forward", "im2col", "fit", "evaluate", "MLP"}
    assert not set(defined) & library, f"redefines library functions: {set(defined) & library}"
