"""Export the executable pages of the BUILT book as notebooks (Colab, Binder, download).

A notebook is its page as the strict build rendered it: the page's HTML between code cells,
converted to Markdown once Sphinx has resolved every glue value, reference, citation and
included file, around the cells (and outputs) myst-nb executed into ``_build/jupyter_execute``.
It opens with a cell saying so (and whether it holds the build's outputs), then a collapsed
cell that installs ``dlcc`` at the built commit in Colab only; its metadata asks Colab for a GPU;
links and images point at the published site; cell ids derive from content. After a build::

    python book/_ext/notebooks.py [--html _build/html] (--out DIR | --in-place) [--commit SHA]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import nbformat
import yaml
from bs4 import BeautifulSoup
from markdownify import MarkdownConverter

ROOT = Path(__file__).resolve().parents[2]
SOLUTION_TAG = "solution"
REMOVED = "remove-cell"  # run by the build, never shown on the page
INSTALL_CELL_ID = "dlcc-install"
CELL = "DLCCCODECELL"  # marks where a code cell of the page was


@dataclass(frozen=True)
class Site:
    """What the notebooks need to know about the published book, read from ``_config.yml``."""

    repo_url: str  # https://github.com/ORG/REPO
    branch: str  # the sources' branch (edit buttons)
    baseurl: str  # the published site, ending in "/"
    commit: str  # the commit the notebooks install dlcc from
    notebooks_branch: str = "notebooks"

    @property
    def org_repo(self) -> str:
        return self.repo_url.rstrip("/").split("github.com/")[-1]

    def colab_url(self, page: str) -> str:
        return (f"https://colab.research.google.com/github/{self.org_repo}/blob/"
                f"{self.notebooks_branch}/{page}.ipynb")

    def page_url(self, page: str) -> str:
        return f"{self.baseurl}{page}.html"


def current_commit(root: Path = ROOT) -> str:
    """The commit being built: $GITHUB_SHA in Actions, else ``git rev-parse``, else ""."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def read_site(root: Path = ROOT, commit: str | None = None) -> Site:
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config["repository"]
    baseurl = config["html"]["baseurl"].rstrip("/") + "/"
    branch = repo.get("branch", "main")
    return Site(repo["url"].rstrip("/"), branch, baseurl, commit or current_commit(root) or branch)


def config_hides_solutions(root: Path = ROOT) -> bool:
    """``sphinx.config.dlcc_hide_solutions`` in ``_config.yml``: the site's own setting."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    return bool(((config.get("sphinx") or {}).get("config") or {}).get("dlcc_hide_solutions"))


def built_pages(html: Path) -> list[str]:
    """The executable pages of a build: those with both an executed notebook and a page."""
    executed = html.parent / "jupyter_execute"
    pages = [str(p.relative_to(executed).with_suffix("")) for p in executed.rglob("*.ipynb")]
    return sorted(p for p in pages if (html / f"{p}.html").is_file())



class Converter(MarkdownConverter):
    """markdownify, plus dropdowns as ``<details>`` (Jupyter and Colab render them)."""

    def convert_details(self, el, text, parent_tags):
        summary = el.find("summary")
        title = " ".join(summary.get_text(" ").split()) if summary else "Details"
        return f"\n\n<details><summary>{title}</summary>\n\n{text.strip()}\n\n</details>\n\n"

    def convert_summary(self, el, text, parent_tags):
        return ""


def code_language(pre) -> str:
    """The language of a code block, from Sphinx's ``highlight-<language>`` class."""
    block = pre.find_parent(class_=re.compile(r"^highlight-"))
    name = next(c for c in block["class"] if c.startswith("highlight-"))[10:] if block else ""
    return "python" if name in ("ipython3", "default") else name.replace("none", "")


def tex_macros(soup: BeautifulSoup) -> list[tuple[re.Pattern, Callable]]:
    """The site's MathJax macros (``mathjax3_config``), to expand in the notebook's TeX."""
    script = soup.find("script", string=re.compile(r"window\.MathJax\s*="))
    config = json.loads(script.string.split("=", 1)[1].strip().rstrip(";")) if script else {}
    rules = []
    for name, value in config.get("tex", {}).get("macros", {}).items():
        body, count = value if isinstance(value, list) else (value, 0)  # [body, arguments]
        pattern = re.compile(rf"\\{name}(?![A-Za-z])" + r"\{([^{}]*)\}" * count)
        rules.append((pattern, lambda m, body=body: re.sub(r"#(\d)", lambda a: m[int(a[1])],
                                                           body)))
    return rules


def tex(node, macros) -> str:
    """A math node as Jupyter TeX: ``$...$`` inline, ``$$...$$`` (with its number) displayed."""
    number = node.find("span", class_="eqno")
    source = node.get_text().strip().removeprefix(number.get_text() if number else "")
    # Sphinx wraps multi-line math in {split}, which Jupyter and Colab want inside $$ as {aligned}
    source = re.sub(r"^\\[(\[]|\\[)\]]$", "", source).strip().replace("{split}", "{aligned}")
    for pattern, replace in macros:
        source = pattern.sub(replace, source)
    if node.name == "span":
        return f"${source}$"
    tag = f" \\tag{{{number.get_text(strip=True).strip('()')}}}" if number else ""
    return f"\n\n$$\n{source}{tag}\n$$\n\n"


def page_markdown(path: Path, url: str) -> tuple[str, list[str]]:
    """The page's title, and its Markdown split at its code cells (one more chunk than cells)."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    article, macros = soup.select_one("article.bd-article"), tex_macros(soup)
    for junk in article.select("a.headerlink, script, style, input, button"):
        junk.decompose()
    for cell in article.select("div.cell"):
        marker = soup.new_tag("p", string=CELL)
        cell.replace_with(marker)
        for caption in cell.select("figcaption"):  # figure captions follow their cell
            caption.name, caption.attrs = "p", {}
            marker.insert_after(caption)
    for number in article.select("span.caption-number"):  # "Fig. 1", "Table 2"
        number.name = "strong"
    for link in article.select("a[href]"):
        link["href"] = urljoin(url, link["href"])
    for image in article.select("img[src]"):
        image["src"] = urljoin(url, image["src"])
    math = {}
    for node in article.select("span.math, div.math"):
        math[key := f"DLCCMATH{len(math)}X"] = tex(node, macros)
        node.replace_with(key)
    for label in article.select("label.sd-tab-label, .sd-card-title"):  # tabs, cards
        label.name, label.attrs = "p", {}
        label.string = label.get_text(" ", strip=True)
        label.string.wrap(soup.new_tag("strong"))
    for box in article.select("div.admonition"):
        title = box.find(class_="admonition-title") or soup.new_tag("p")
        heading = " ".join(title.extract().get_text(" ").split())
        folded = "dropdown" in box.get("class", [])  # as the page shows it
        box.name, box.attrs = ("details" if folded else "blockquote"), {}
        box.insert(0, soup.new_tag("summary" if folded else "strong", string=heading))
    title = article.find("h1").get_text(" ", strip=True)
    text = Converter(heading_style="ATX", bullets="-",
                     code_language_callback=code_language).convert_soup(article)
    text = re.sub(r"DLCCMATH\d+X", lambda m: math[m.group(0)], text)
    chunks = re.split(rf"^\s*{CELL}\s*$", text, flags=re.M)
    return title, [re.sub(r"\n{3,}", "\n\n", c).strip() for c in chunks]



def tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def intro_cell(title: str, page: str, site: Site, outputs: bool) -> nbformat.NotebookNode:
    opens = ("with that build's outputs, so the figures and numbers are here before you run "
             "anything; running it top to bottom computes them again" if outputs else
             "without outputs; running it top to bottom computes the page's figures and numbers")
    return nbformat.v4.new_markdown_cell(id="dlcc-about", source=(
        f"*This notebook is [{title}]({site.page_url(page)}), a page of the Deep Learning Crash "
        f"Course, as built from commit `{site.commit[:7]}`. It opens {opens}, on a CPU or, "
        "faster where the page says so, on a GPU (in Colab: Runtime, Change runtime type). "
        "Links lead to the course site.*"))


def install_cell(site: Site) -> nbformat.NotebookNode:
    source = (
        "# @title Colab only: install the course library at the version of this notebook\n"
        "# Anywhere else this cell does nothing (install dlcc as the setup guides describe).\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    %pip install --quiet \"dlcc @ git+{site.repo_url}@{site.commit}\"\n"
    )
    metadata = {"tags": [REMOVED], "cellView": "form", "jupyter": {"source_hidden": True}}
    return nbformat.v4.new_code_cell(source, metadata=metadata, id=INSTALL_CELL_ID)


def code_cell(cell) -> nbformat.NotebookNode:
    """The executed cell, less glue's invisible records (Jupyter has no renderer for them)."""
    for output in cell.outputs:
        if "data" in output:
            output.data = {k: v for k, v in output.data.items() if "papermill" not in k}
    outputs = [output for output in cell.outputs if output.get("data", True)]
    if {"hide-input", "remove-input"} & set(tags(cell)):  # folded, as on the page
        cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    return nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata, outputs=outputs,
                                     execution_count=cell.get("execution_count"))


def stable_ids(nb: nbformat.NotebookNode, page: str) -> None:
    """Ids from the page and the cell's content: regenerating an unchanged page changes nothing."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if cell.id.startswith("dlcc-"):  # the first two cells' fixed ids
            continue
        digest = hashlib.sha1(f"{page}\n{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:10]
        count = seen.get(digest, 0)
        seen[digest] = count + 1
        cell.id = digest if count == 0 else f"{digest}-{count}"


def executed_notebook(html: Path, page: str, cache: Path | None) -> nbformat.NotebookNode:
    """The page's notebook as the build executed it. When myst-nb takes the outputs from its
    execution cache it writes the notebook without them, so they are merged from there."""
    path = html.parent / "jupyter_execute" / f"{page}.ipynb"
    if not path.is_file():
        raise ValueError(f"page: expected an executable page of the build, got {page!r}")
    nb, cache = nbformat.read(path, as_version=4), Path(cache or html.parent / ".jupyter_cache")
    if cache.is_dir():
        from jupyter_cache import get_cache

        with suppress(KeyError):  # no cached execution of these cells
            nb = get_cache(cache).merge_match_into_notebook(nb)[1]
    return nb


def export(page: str, site: Site, *, html: Path, hide_solutions: bool = False,
           cache: Path | None = None) -> nbformat.NotebookNode:
    """The notebook for ``page`` (a docname such as ``book/part1/l2-training``) from the build
    whose HTML folder is ``html`` and execution cache is ``cache`` (by default the build's
    ``.jupyter_cache``). The build's own hook writes it to ``_sources/``."""
    executed = executed_notebook(html, page, cache)
    title, chunks = page_markdown(html / f"{page}.html", site.page_url(page))
    code = [c for c in executed.cells if c.cell_type == "code"
            and not (hide_solutions and SOLUTION_TAG in tags(c))]
    shown = [c for c in code if REMOVED not in tags(c)]
    if len(shown) != len(chunks) - 1:
        raise ValueError(f"{page}: the page shows {len(chunks) - 1} code cells but the executed "
                         f"notebook has {len(shown)} to show; is the build complete?")
    outputs = any(code_cell(c).outputs for c in code)
    cells, chunks = [intro_cell(title, page, site, outputs), install_cell(site)], iter(chunks)
    for cell in code:
        if REMOVED not in tags(cell):
            cells.append(nbformat.v4.new_markdown_cell(next(chunks)))
        cells.append(code_cell(cell))
    cells.append(nbformat.v4.new_markdown_cell(next(chunks)))
    nb = nbformat.v4.new_notebook(cells=[c for c in cells if c.source.strip()])
    nb.metadata = {
        "kernelspec": executed.metadata["kernelspec"],
        "language_info": {"name": "python"},
        "accelerator": "GPU",
        "colab": {"gpuType": "T4", "provenance": [], "name": Path(page).name + ".ipynb"},
        "dlcc": {"page": page, "url": site.page_url(page), "commit": site.commit},
    }
    stable_ids(nb, page)
    nbformat.validate(nb)
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write atomically: a reader never sees a half-written notebook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, tmp := path.with_suffix(".ipynb.tmp"))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html",
                        help="the HTML folder of a finished build (default: _build/html)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="folder to write <page>.ipynb files into")
    where.add_argument("--in-place", action="store_true",
                       help="write each notebook next to its .md (for the notebooks branch)")
    parser.add_argument("--commit", help="commit to install dlcc from (default: git HEAD)")
    args = parser.parse_args(argv)
    if not (args.html.parent / "jupyter_execute").is_dir():
        parser.error(f"--html: expected the HTML folder of a finished build, next to its "
                     f"jupyter_execute folder; got {args.html}")
    site = read_site(ROOT, args.commit)
    for page in built_pages(args.html):
        write(export(page, site, html=args.html, hide_solutions=config_hides_solutions(ROOT)),
              path := (ROOT if args.in_place else args.out) / f"{page}.ipynb")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
