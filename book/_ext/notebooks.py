"""Export the book's MyST chapters as Jupyter notebooks for Colab, Binder and download.

The ``.md`` chapters stay the only source. Each exported notebook gets:

- a first cell that installs ``dlcc`` at the commit the site was built from, only in Colab;
- metadata asking Colab for a GPU runtime;
- links and images rewritten to absolute URLs on the published site, and MyST roles and
  directive fences turned into plain Markdown that Jupyter and Colab render;
- cell ids derived from the cell's content, so regenerating gives the same ids.

Usage (the deploy workflow runs the second form before publishing the ``notebooks`` branch)::

    python book/_ext/notebooks.py --out DIR [--commit SHA] [--hide-solutions]
    python book/_ext/notebooks.py --in-place [--commit SHA]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import posixpath
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
SOLUTION_TAG = "solution"
INSTALL_CELL_ID = "dlcc-install"


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

    def binder_url(self, page: str) -> str:
        return (f"https://mybinder.org/v2/gh/{self.org_repo}/{self.notebooks_branch}"
                f"?urlpath=lab/tree/{page}.ipynb")

    def page_url(self, page: str) -> str:
        return f"{self.baseurl}{page}.html"


def current_commit(root: Path = ROOT) -> str:
    """The commit being built: $GITHUB_SHA in Actions, else ``git rev-parse``, else the branch."""
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


def toc_pages(root: Path = ROOT) -> list[str]:
    """Every page in ``_toc.yml`` (docnames without suffix), in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def is_notebook(md_path: Path) -> bool:
    """A page is executable (and launchable) when its front matter declares a kernel."""
    text = md_path.read_text()
    if not text.startswith("---"):
        return False
    front = yaml.safe_load(text.split("---", 2)[1]) or {}
    return "kernelspec" in front


def notebook_pages(root: Path = ROOT) -> list[str]:
    return [p for p in toc_pages(root) if is_notebook(root / f"{p}.md")]


def install_cell(site: Site) -> nbformat.NotebookNode:
    source = (
        "# Colab only: install the course library at the version this page was built from.\n"
        "# Anywhere else this cell does nothing (install dlcc as the setup guides describe).\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    %pip install --quiet \"dlcc @ git+{site.repo_url}@{site.commit}\"\n"
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["remove-cell"]})
    cell.id = INSTALL_CELL_ID
    return cell


# --- Markdown rewriting ----------------------------------------------------------------------

LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
ROLE = re.compile(r"\{(\w+(?::\w+)?)\}`([^`]*)`")
FENCE_OPEN = re.compile(r"^(`{3,}|:{3,})\{([\w-]+)\}\s*(.*)$")
OPTION = re.compile(r"^:[\w-]+:")


def absolute_url(target: str, page: str, site: Site) -> str:
    """A link or image path as written in ``page``, as an absolute URL on the site."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return target
    path, _, anchor = target.partition("#")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    if resolved.endswith(".md"):
        resolved = resolved[:-3] + ".html"
    elif not re.search(r"\.\w+$", resolved):
        resolved += ".html"
    return site.baseurl + resolved + (f"#{anchor}" if anchor else "")


def rewrite_role(role: str, text: str, site: Site) -> str:
    label, _, target = text.partition("<")
    label, target = label.strip(), target.rstrip(">").strip()
    if role == "cite" or role.startswith("cite:"):
        keys = ", ".join(k.strip() for k in text.split(","))
        return f"[{keys}]({site.baseurl}book/reference/reading-list.html)"
    if role == "doc":
        return f"[{label or target}]({absolute_url(target or label, '', site)})"
    if role.startswith("glue"):
        return "(value computed on the website)"
    if role in ("math",):
        return f"${text}$"
    if role == "eq":
        return f"equation ({label or target})"
    # term, ref, numref, eq, abbr, ...: keep the words a reader sees
    return label or target


def rewrite_markdown(source: str, page: str, site: Site, hide_solutions: bool) -> str:
    """MyST Markdown -> Markdown that Jupyter/Colab render, with absolute links."""
    out: list[str] = []
    closing: list[str] = []  # fence strings of open directives; "" marks a dropped block
    skipping = 0
    for line in source.splitlines():
        stripped = line.strip()
        opened = FENCE_OPEN.match(stripped)
        if opened:
            fence, name, argument = opened.groups()
            drop = skipping or (hide_solutions and name.startswith("solution"))
            closing.append(fence if not drop else "\0" + fence)
            skipping += bool(drop)
            if not drop and name not in ("math",):
                # {admonition} Hints -> **Hints**; {exercise} Title -> **Exercise** Title
                kind = "" if name == "admonition" else name.replace("-", " ").capitalize()
                title = " ".join(part for part in (kind and f"**{kind}**",
                                                   argument if kind else f"**{argument}**")
                                 if part)
                if argument or kind:
                    out += [title, ""]
            continue
        if closing and stripped == closing[-1].lstrip("\0"):
            skipping -= closing.pop().startswith("\0")
            continue
        if skipping or (closing and OPTION.match(stripped)):
            continue
        if re.match(r"^\(([\w-]+)\)=\s*$", stripped):  # MyST target labels
            continue
        line = ROLE.sub(lambda m: rewrite_role(m.group(1), m.group(2), site), line)
        line = LINK.sub(lambda m: rewrite_link(m, page, site), line)
        out.append(line)
    return "\n".join(out).strip("\n")


def rewrite_link(match: re.Match, page: str, site: Site) -> str:
    bang, text, target = match.groups()
    url = image_url(target, page, site) if bang else absolute_url(target, page, site)
    return f"{bang}[{text}]({url})"


def image_url(target: str, page: str, site: Site) -> str:
    """Sphinx copies every local image into ``_images/`` under its file name."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):
        return target
    return f"{site.baseurl}_images/{posixpath.basename(target)}"


# --- Export ----------------------------------------------------------------------------------


def stable_ids(nb: nbformat.NotebookNode, page: str) -> None:
    """Ids from the page and the cell's content: regenerating an unchanged page changes nothing."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if cell.get("id") == INSTALL_CELL_ID:
            continue
        digest = hashlib.sha1(f"{page}\n{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:10]
        count = seen.get(digest, 0)
        seen[digest] = count + 1
        cell.id = digest if count == 0 else f"{digest}-{count}"


def export(page: str, site: Site, *, root: Path = ROOT, hide_solutions: bool = False
           ) -> nbformat.NotebookNode:
    """The notebook for ``page`` (a docname such as ``book/part1/l1-neural-networks``)."""
    nb = jupytext.read(root / f"{page}.md", fmt="md:myst")
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if hide_solutions and SOLUTION_TAG in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = rewrite_markdown(cell.source, page, site, hide_solutions)
            if not cell.source.strip():
                continue
        cells.append(cell)
    nb.cells = [install_cell(site), *cells]
    nb.metadata.pop("jupytext", None)
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["colab"] = {"gpuType": "T4", "provenance": [], "name": Path(page).name + ".ipynb"}
    nb.metadata["dlcc"] = {"page": page, "url": site.page_url(page), "commit": site.commit}
    nb.nbformat, nb.nbformat_minor = 4, 5
    stable_ids(nb, page)
    nbformat.validate(nb)
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write atomically: a reader never sees a half-written notebook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_book(out: Path, site: Site, *, root: Path = ROOT, hide_solutions: bool = False
                ) -> list[Path]:
    """Write ``out/<page>.ipynb`` for every executable page; return the paths written."""
    written = []
    for page in notebook_pages(root):
        path = out / f"{page}.ipynb"
        write(export(page, site, root=root, hide_solutions=hide_solutions), path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="folder to write <page>.ipynb files into")
    where.add_argument("--in-place", action="store_true",
                       help="write each notebook next to its .md (for the notebooks branch)")
    parser.add_argument("--commit", help="commit to install dlcc from (default: git HEAD)")
    parser.add_argument("--hide-solutions", action="store_true",
                        help="drop solution cells and solution blocks (also done whenever "
                             "_config.yml sets dlcc_hide_solutions: true)")
    args = parser.parse_args(argv)
    site = read_site(ROOT, args.commit)
    out = ROOT if args.in_place else args.out
    # The notebooks branch must not publish what the student-facing site hides.
    hide = args.hide_solutions or config_hides_solutions(ROOT)
    for path in export_book(out, site, hide_solutions=hide):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
