"""The notebooks behind the launch and download buttons (book/_ext/notebooks.py)."""

from __future__ import annotations

import shutil
import sys
import textwrap

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import notebooks  # noqa: E402

SITE = notebooks.Site(repo_url="https://github.com/org/repo", branch="main",
                      baseurl="https://org.github.io/repo/", commit="0123456789abcdef")

PAGE = textwrap.dedent("""\
    ---
    jupytext:
      text_representation:
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---

    (sec-demo)=
    # Demo

    See [the setup check](../setup/check.md#from-a-shell), {term}`Epoch`, and {cite}`lecun2015deep`.

    ![A figure](figures/plot.png)

    ```{code-cell} ipython3
    x = 1 + 1
    ```

    :::{exercise} Add numbers
    :label: ex-add

    What is 1 + 1?
    :::

    :::{solution} ex-add
    :class: dropdown

    SECRET-ANSWER is 2.
    :::

    ```{code-cell} ipython3
    :tags: [solution]
    secret = "SECRET-CODE"
    ```
    """)


@pytest.fixture
def book_root(tmp_path):
    (tmp_path / "book" / "part1").mkdir(parents=True)
    (tmp_path / "book" / "part1" / "demo.md").write_text(PAGE)
    return tmp_path


def export(root, **kwargs):
    return notebooks.export("book/part1/demo", SITE, root=root, **kwargs)


def test_first_cell_installs_dlcc_at_the_commit_only_in_colab(book_root):
    nb = export(book_root)
    first = nb.cells[0]
    assert first.cell_type == "code" and "remove-cell" in first.metadata["tags"]
    assert 'if "google.colab" in sys.modules:' in first.source
    assert "git+https://github.com/org/repo@0123456789abcdef" in first.source


def test_metadata_requests_a_colab_gpu(book_root):
    nb = export(book_root)
    assert nb.metadata["accelerator"] == "GPU"
    assert nb.metadata["colab"]["gpuType"] == "T4"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(nb)


def test_links_images_and_roles_become_absolute_markdown(book_root):
    text = "\n".join(c.source for c in export(book_root).cells if c.cell_type == "markdown")
    assert "(https://org.github.io/repo/book/setup/check.html#from-a-shell)" in text
    assert "![A figure](https://org.github.io/repo/_images/plot.png)" in text
    assert "{term}" not in text and "Epoch" in text
    assert "[lecun2015deep](https://org.github.io/repo/book/reference/reading-list.html)" in text
    assert "(sec-demo)=" not in text and ":label:" not in text
    assert "**Exercise** Add numbers" in text


def test_cell_ids_are_stable_and_local(book_root):
    ids = [c.id for c in export(book_root).cells]
    assert ids == [c.id for c in export(book_root).cells]
    assert len(set(ids)) == len(ids)
    page = book_root / "book" / "part1" / "demo.md"
    page.write_text(page.read_text().replace("x = 1 + 1", "x = 1 + 2"))
    changed = [c.id for c in export(book_root).cells]
    assert sum(a != b for a, b in zip(ids, changed, strict=True)) == 1


def test_hidden_solutions_leave_no_trace(book_root):
    shown = nbformat.writes(export(book_root))
    assert "SECRET-ANSWER" in shown and "SECRET-CODE" in shown
    hidden = nbformat.writes(export(book_root, hide_solutions=True))
    assert "SECRET-ANSWER" not in hidden and "SECRET-CODE" not in hidden
    assert "What is 1 + 1?" in hidden


def test_every_executable_page_exports():
    pages = notebooks.notebook_pages(ROOT)
    assert "book/setup/check" in pages
    for page in pages:
        nb = notebooks.export(page, SITE)
        assert nb.cells[0].id == notebooks.INSTALL_CELL_ID


def two_chapters() -> list[str]:
    pages = notebooks.notebook_pages(ROOT)
    part1 = [p for p in pages if p.startswith("book/part1/")]
    return ["book/setup/check", *part1[:1]]


@pytest.mark.parametrize("page", two_chapters())
def test_exported_notebook_runs_in_a_fresh_kernel(tmp_path, monkeypatch, page):
    """Outside Colab the install cell must do nothing and the chapter must run as exported."""
    for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):  # as in the book build
        monkeypatch.setenv(threads, "1")
    nb = notebooks.export(page, SITE)
    workdir = tmp_path / "run"
    shutil.copytree((ROOT / page).parent, workdir)  # the chapter's own folder: data, images
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors
    assert nb.cells[0].get("outputs") == []


def test_two_chapters_are_run():
    assert len(two_chapters()) == 2, "Part 1 has no executable chapter yet"
