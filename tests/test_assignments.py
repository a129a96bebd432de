"""The assignment pages: their parts, their cells, their commands and the A1 accuracy bar."""

from __future__ import annotations

import html
import importlib
import re
import shlex

import jupytext
import pytest
import yaml

from conftest import ROOT
from dlcc.cli import build_parser
from test_book import toc_files

# Every assignment of the table of contents (book/assignments/a<N>), by name.
PAGES = {page.rsplit("/", 1)[1]: page for page in toc_files()
         if re.fullmatch(r"book/assignments/a\d+", page)}
EXERCISE = re.compile(r"^:::\{exercise\}([^\n]*)\n((?::[\w-]+:[^\n]*\n)*)", re.M)
SOLUTION = re.compile(r"^:::\{solution\}\s*(\S+)\n((?::[\w-]+:[^\n]*\n)*)", re.M)


def source(page: str) -> str:
    return (ROOT / f"{page}.md").read_text()


def cells(page: str):
    return jupytext.read(ROOT / f"{page}.md", fmt="md:myst").cells


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def exercises(page: str) -> list[dict]:
    found = []
    for match in EXERCISE.finditer(source(page)):
        options = dict(re.findall(r"^:([\w-]+):\s*(.*)$", match.group(2), re.M))
        found.append({"title": match.group(1).strip(), "label": options.get("label"),
                      "task": "nonumber" in options})
    return found


def solutions(page: str) -> dict[str, list[str]]:
    """exercise label -> the option blocks of its solutions."""
    found: dict[str, list[str]] = {}
    for match in SOLUTION.finditer(source(page)):
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


# --- page structure ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PAGES)
def test_page_has_goals_submission_and_front_matter(name):
    text = source(PAGES[name])
    front = yaml.safe_load(text.split("---", 2)[1])
    assert "kernelspec" in front and "jupytext" in front
    assert re.search(r"^:::\{admonition\} Learning goals", text, re.M)
    assert re.search(r"^## What to submit", text, re.M)
    assert re.search(r"^## Part A: questions", text, re.M)
    assert re.search(r"^## Part B: coding", text, re.M)


@pytest.mark.parametrize("name", PAGES)
def test_questions_and_tasks_have_dropdown_solutions(name):
    found, solved = exercises(PAGES[name]), solutions(PAGES[name])
    questions = [e for e in found if not e["task"]]
    tasks = [e for e in found if e["task"]]
    assert len(questions) >= 7, f"only {len(questions)} questions"
    assert len(tasks) >= 6, f"only {len(tasks)} coding tasks"
    assert all(t["title"].startswith("Task ") for t in tasks)
    for exercise in found:
        blocks = solved.get(exercise["label"])
        assert blocks, f"{exercise['label']} has no solution"
        assert all(":class: dropdown" in b for b in blocks), f"{exercise['label']}: not a dropdown"


@pytest.mark.parametrize("name", PAGES)
def test_starter_check_and_solution_cells(name):
    page = cells(PAGES[name])
    code = [c for c in page if c.cell_type == "code"]
    starters = [c for c in code if "raise NotImplementedError" in c.source]
    checks = [c for c in code if re.search(rf"\b{name}\.check_\w+\(", c.source)
              and "solution" not in tags(c)]
    solved = [c for c in code if "solution" in tags(c)]
    assert len(starters) >= 6 and all("skip-execution" in tags(c) for c in starters)
    assert all("# YOUR CODE HERE" in c.source for c in starters)
    assert len(checks) >= 4 and all("skip-execution" in tags(c) for c in checks)
    assert len(solved) >= 6
    for cell in solved:
        assert "# SOLUTION" in cell.source and "hide-input" in tags(cell)
        assert "skip-execution" not in tags(cell), "reference solutions must run in the build"
    public = [c for c in code if "solution" not in tags(c)]
    assert not any("# SOLUTION" in c.source for c in public)


@pytest.mark.parametrize("name", PAGES)
def test_each_solution_cell_follows_a_solution_block(name):
    """Solution code sits right after the prose solution of its task, never before it."""
    last_markdown = ""
    for cell in cells(PAGES[name]):
        if cell.cell_type == "markdown":
            last_markdown = cell.source
        elif "solution" in tags(cell):
            assert "{solution}" in last_markdown, cell.source[:60]


@pytest.mark.parametrize("name", PAGES)
def test_every_check_is_used_on_its_page(name):
    module = importlib.import_module(f"dlcc.checks.{name}")
    text = source(PAGES[name])
    unused = [f for f in module.__all__ if f"{name}.{f}(" not in text]
    assert not unused, f"checks never called on {name}: {unused}"


@pytest.mark.parametrize("name", PAGES)
def test_starters_get_a_not_implemented_report(name):
    """A student who runs a check before writing anything gets a sentence, not a traceback."""
    namespace: dict = {}
    exec("import numpy as np\nimport torch\nfrom torch import nn\n"
         "from torch.nn import functional as F\n"
         "from torch.utils.data import DataLoader, Dataset", namespace)
    page = cells(PAGES[name])
    for cell in page:
        if cell.cell_type == "code" and "raise NotImplementedError" in cell.source:
            exec(cell.source, namespace)
    module = importlib.import_module(f"dlcc.checks.{name}")
    calls = [m for c in page if c.cell_type == "code" and "skip-execution" in tags(c)
             for m in re.finditer(rf"{name}\.(check_\w+)\((\w+)\)", c.source)]
    assert calls
    for match in calls:
        result = getattr(module, match.group(1))(namespace[match.group(2)], quiet=True)
        assert not result.passed
        assert any("not implemented yet" in m for m in result.messages), result.messages


def commands(page: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", source(page), re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line)[3:] for line in lines if line.startswith("python -m dlcc ")]


@pytest.mark.parametrize("name", ["a2", "a3"])
def test_gpu_commands_are_valid(name):
    parsed = [build_parser().parse_args(argv) for argv in commands(PAGES[name])]
    trained = {(a.model, a.data) for a in parsed if a.command == "train"}
    expected = {"a2": {("mlp", "cifar10")},
                "a3": {("smallcnn", "cifar10"), ("smallcnn-dw", "cifar10"),
                       ("resnet", "cifar10"), ("unet", "cells")}}[name]
    assert expected <= trained
    assert any(a.command == "evaluate" and a.split == "test" for a in parsed)


def test_pages_state_the_original_targets():
    assert "0.94" in source(PAGES["a1"]) and "60,000" in source(PAGES["a1"])
    assert re.search(r"above \*\*0\.5\*\*", source(PAGES["a2"]))
    a3 = source(PAGES["a3"])
    assert re.search(r"above \*\*0\.6\*\*", a3) and re.search(r"about \*\*0\.8\*\*", a3)


# --- the built pages -----------------------------------------------------------------------------

def text_of(path) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())).split())


def test_reference_mlp_reaches_092_on_held_out_digits(book):
    """The A1 reference (sigmoid hidden layers, plain mini-batch SGD) on the offline digits."""
    assert book.ok, book.log[-3000:]
    text = text_of(book.html / "book/assignments/a1.html")
    match = re.search(r"reaches a test accuracy of ([0-9.]+) on the ([0-9,]+) held-out", text)
    assert match, "the A1 page does not state the reference test accuracy"
    assert int(match.group(2).replace(",", "")) == 1000  # 20 % of the 5,000 digits
    assert float(match.group(1)) >= 0.92


def test_overview_shows_a_check_rejecting_and_accepting(book):
    text = text_of(book.html / "book/assignments/index.html")
    assert "FAIL the whole array sums to 1" in text
    assert "FAIL softmax is not numerically stable" in text
    assert "All 4 checks passed." in text


@pytest.mark.parametrize("name", PAGES)
def test_built_pages_show_reference_results_but_no_starter_output(book, name):
    page = (book.html / f"{PAGES[name]}.html").read_text()
    assert "All" in page and "checks passed." in page
    assert "NotImplementedError</span>" in page or "NotImplementedError" in page
    assert "Traceback" not in page and "not implemented yet" not in page
