"""Sphinx extension for the DLCC book.

- Launch buttons (Colab, Binder) open the generated notebook on the ``notebooks`` branch,
  while the edit and source buttons keep pointing at the ``.md`` sources on the main branch.
  Binder starts from a stable environment branch and pulls the notebooks with nbgitpuller.
- The download button offers that same notebook (install cell included).
- Every page gets a "Cite this page" box (BibTeX and APA) and ``citation_*`` meta tags.
- ``dlcc_hide_solutions: true`` builds a student-facing site without any solution.
- Executed pages print one progress line per epoch (``DLCC_PROGRESS=epoch`` for the kernels).
"""

from __future__ import annotations

import datetime
import html
import os
import re
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

from docutils import nodes

sys.path.insert(0, str(Path(__file__).parent))

import dlcc
import notebooks  # noqa: E402  (the exporter next to this file)

SKIP_PAGES = {"genindex", "search", "index"}
PDF_NAME = "dlcc.pdf"  # the whole book (scripts/build_pdf.py), published beside the site


def number_per_page(app, builder):
    """Number figures, tables, equations and exercises from 1 on every page.

    The toctree is not numbered (chapters are called "L1", "A1", ...), so Sphinx counts across
    the whole book and A1 would open with "Exercise 45"; every ``{numref}`` in the book points
    within its own page, so per-page numbers read naturally. Sphinx has no per-page option
    (``numfig_secnum_depth`` needs a numbered toctree, which would number the chapters), so this
    renumbers ``env.toc_fignumbers`` at ``write-started``: after Sphinx has pickled the
    environment with its own numbers (which it compares on the next build, so an unchanged page
    is not rewritten) and before any page is resolved or written.
    """
    for numbers in builder.env.toc_fignumbers.values():
        for ids in numbers.values():
            for n, figure_id in enumerate(sorted(ids, key=ids.get), start=1):
                ids[figure_id] = (n,)


def _configure(app, config):
    """Everything site-wide derives from ``html.baseurl`` and ``repository`` in _config.yml."""
    if not config.html_baseurl.endswith("/"):
        config.html_baseurl += "/"
    config.ogp_site_url = config.html_baseurl
    if config.dlcc_hide_solutions:
        config.hide_solutions = True  # sphinx-exercise: drops {solution} blocks from the HTML
        config.html_copy_source = False  # _sources/*.md would still hold the solutions
    # Kernels started by the build inherit these: the trainer prints one line per epoch, and
    # numpy and PyTorch compute on one thread (the chapters' small matrices run several times
    # faster so on a small shared build machine; readers' own runs keep their defaults).
    os.environ["DLCC_PROGRESS"] = "epoch"
    for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(threads, "1")
    encrypt_kernels()
    root = Path(app.confdir)
    app.dlcc_site = notebooks.Site(
        repo_url=config.html_theme_options["repository_url"].rstrip("/"),
        branch=config.html_theme_options.get("repository_branch", "main"),
        baseurl=config.html_baseurl,
        commit=notebooks.current_commit(root) or "main",
    )
    launch = config.html_theme_options.get("launch_buttons", {})
    app.dlcc_binder = (launch.get("binderhub_url", "https://mybinder.org").rstrip("/"),
                       launch.get("binder_env_branch", "binder-env"))


def encrypt_kernels() -> None:
    """The build's kernels talk to it over local TCP, and ipykernel 7 warns in the build log at
    every chapter that this is unencrypted. jupyter_client hands a kernel CurveZMQ keys when its
    policy is "auto" and the kernel spec declares support (ipykernel's does); myst-nb gives
    jupyter_client no configuration, so the policy's default is set here."""
    import zmq
    from jupyter_client.manager import KernelManager

    if zmq.has("curve"):
        KernelManager.transport_encryption.default_value = "auto"


def _remember_bibtex_plugins(app, config):
    """sphinxcontrib-bibtex asks pybtex for the same three plugins at every citation, and each
    ask reads the entry points of every installed package (a tenth of a build, 500 asks).
    Registered once through pybtex's own ``register_plugin``, they are found in memory."""
    from pybtex import plugin

    for group, name in [("pybtex.backends", "docutils"), ("pybtex.backends", "plaintext"),
                        ("pybtex.style.formatting", config.bibtex_default_style)]:
        plugin.register_plugin(group, name, plugin.find_plugin(group, name), force=True)


def _singlehtml_like_html(app):
    """The PDF is printed from the ``singlehtml`` build. sphinx-exercise registers its nodes for
    ``singlehtml`` by name, and then Sphinx looks that builder's node visitors up by name only,
    missing every node other extensions (sphinx-design's cards) registered for ``html``."""
    if app.builder.name == "singlehtml":
        handlers = app.registry.translation_handlers
        handlers["singlehtml"] = {**handlers.get("html", {}), **handlers.get("singlehtml", {})}


# --- Solutions ------------------------------------------------------------------------------

def _drop_solution_cells(app, doctree):
    """In a student build, solution code cells still run (later cells may need their results)
    but leave the page. Removing them from the page after execution, instead of tagging them
    ``remove-cell`` before it, keeps each notebook the same as in the full build, so a student
    build can reuse the full build's execution cache."""
    if not app.config.dlcc_hide_solutions:
        return
    for cell in list(doctree.findall(nodes.container)):
        if (cell.get("nb_element") == "cell_code"
                and notebooks.SOLUTION_TAG in cell.get("cell_metadata", {}).get("tags", [])):
            cell.parent.remove(cell)


# --- Launch and download buttons --------------------------------------------------------------


def _is_notebook(app, pagename):
    return "kernelspec" in app.env.metadata.get(pagename, {})


def _drop_thebe(app, pagename, templatename, context, doctree):
    """Jupyter Book always loads sphinx-thebe, whose setup script then runs twice and throws
    "THEBE_JS_URL has already been declared". Launching goes through Colab and Binder instead."""
    def thebe(script):
        text = f"{getattr(script, 'filename', script)} {getattr(script, 'attributes', {})}"
        return "thebe" in text.lower()

    context["script_files"] = [s for s in context.get("script_files", []) if not thebe(s)]
    context["css_files"] = [s for s in context.get("css_files", []) if not thebe(s)]


def _fix_bibliography_roles(app, pagename, templatename, context, doctree):
    """docutils marks the bibliography ``role="list"`` but its entries are not list items,
    which screen readers (and axe) reject; the entries keep their ``doc-biblioentry`` role."""
    if "body" in context:
        context["body"] = context["body"].replace('<div role="list" class="citation-list">',
                                                  '<div class="citation-list">')


def binder_url(site: notebooks.Site, page: str, binderhub: str = "https://mybinder.org",
               env_branch: str = "binder-env") -> str:
    """Binder at the environment branch, told to git-pull the notebooks branch and open ``page``.

    Binder builds one image per commit of the branch it launches, and the ``notebooks`` branch
    gets a new commit on every deploy. ``env_branch`` moves only when the environment does
    (the deploy workflow's ``binder-env`` job), so its image stays cached; nbgitpuller then
    clones (or updates) the notebooks into ``~/REPO`` and JupyterLab opens the page there.
    The ``git-pull?...`` path is itself a query, so it is encoded once more inside ``urlpath``.
    """
    repo = site.org_repo.split("/")[-1]
    pull = urlencode({"repo": site.repo_url, "branch": site.notebooks_branch,
                      "urlpath": f"lab/tree/{repo}/{page}.ipynb"})
    return (f"{binderhub}/v2/gh/{site.org_repo}/{env_branch}"
            f"?urlpath={quote('git-pull?' + pull, safe='')}")


def _rewrite_buttons(app, pagename, templatename, context, doctree):
    """Runs after the theme's own handlers (priority 501) have built the header buttons."""
    if not _is_notebook(app, pagename):
        return
    site = app.dlcc_site
    urls = {"Colab": site.colab_url(pagename),
            "Binder": binder_url(site, pagename, *app.dlcc_binder)}
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            if group.get("label") == "launch-buttons" and button.get("text") in urls:
                button["url"] = urls[button["text"]]
            if button.get("label") == "download-notebook-button":
                button["tooltip"] = "Download the notebook (runs in Jupyter or Colab)"


def _link_pdf(app, pagename, templatename, context, doctree):
    """Every page's download menu offers the whole book as one PDF, where the deploy workflow
    publishes it (the site's top folder)."""
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].append({
                "type": "link", "url": app.config.html_baseurl + PDF_NAME,
                "text": "Download the book (PDF)", "tooltip": "The whole book as one PDF",
                "icon": "fas fa-book", "label": "download-book-pdf-button"})


# --- Citation ---------------------------------------------------------------------------------


def _plain(title: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", title)).strip()


def citation(app, pagename: str, title: str) -> dict:
    """The fields of a chapter's citation, and its BibTeX and APA renderings."""
    config, site = app.config, app.dlcc_site
    metadata = app.env.metadata.get(pagename, {})
    authors = metadata.get("authors") or [config.author]
    if isinstance(authors, str):
        authors = [authors]
    year = str(config.copyright).strip()[:4] or str(datetime.date.today().year)
    version = dlcc.__version__
    commit = site.commit[:7]
    edition = f"version {version}, commit {commit}"
    url = site.page_url(pagename)
    book = config.html_title
    key = "dlcc-" + re.sub(r"[^a-z0-9]+", "-", pagename.split("/")[-1].lower()).strip("-")
    bib_authors = " and ".join(f"{{{a}}}" if " " in a and "," not in a else a for a in authors)
    bibtex = "\n".join([
        f"@incollection{{{key},",
        f"  title     = {{{title}}},",
        f"  author    = {{{bib_authors}}},",
        f"  booktitle = {{{book}}},",
        f"  year      = {{{year}}},",
        f"  note      = {{{edition.capitalize()}}},",
        f"  url       = {{{url}}}",
        "}",
    ])
    apa = f"{', '.join(authors)}. ({year}). {title}. In {book} ({edition}). {url}"
    return {"title": title, "authors": authors, "year": year, "url": url, "key": key,
            "book": book, "commit": commit, "bibtex": bibtex, "apa": apa}


def _add_citation(app, pagename, templatename, context, doctree):
    if doctree is None or pagename in SKIP_PAGES or "title" not in context:
        return
    cite = citation(app, pagename, _plain(context["title"]))
    context["dlcc_cite"] = cite
    tags = [("citation_title", cite["title"])]
    tags += [("citation_author", author) for author in cite["authors"]]
    tags += [
        ("citation_publication_date", cite["year"]),
        ("citation_inbook_title", cite["book"]),
        ("citation_book_title", cite["book"]),
        ("citation_publisher", app.config.author),
        ("citation_fulltext_html_url", cite["url"]),
        ("citation_public_url", cite["url"]),
    ]
    meta = "".join(f'<meta name="{name}" content="{html.escape(value, quote=True)}" />\n'
                   for name, value in tags)
    context["metatags"] = context.get("metatags", "") + meta


# --- Notebooks for download --------------------------------------------------------------------


def _export_notebooks(app, exception):
    """Put each page's launch notebook where the download button points (``_sources/``)."""
    if exception is not None or app.builder.name != "html":  # it reads each page's own HTML
        return
    html = Path(app.outdir)
    for page in app.env.found_docs:
        if _is_notebook(app, page):
            nb = notebooks.export(page, app.dlcc_site, html=html,
                                  hide_solutions=app.config.dlcc_hide_solutions)
            notebooks.write(nb, html / "_sources" / f"{page}.ipynb")


def setup(app):
    app.add_config_value("dlcc_hide_solutions", False, "env", types=[bool])
    app.connect("config-inited", _configure)
    app.connect("config-inited", _remember_bibtex_plugins)
    app.connect("builder-inited", _singlehtml_like_html)
    app.connect("doctree-read", _drop_solution_cells)
    app.connect("write-started", number_per_page)
    app.connect("html-page-context", _rewrite_buttons, priority=502)
    app.connect("html-page-context", _link_pdf, priority=502)
    app.connect("html-page-context", _drop_thebe)
    app.connect("html-page-context", _fix_bibliography_roles)
    app.connect("html-page-context", _add_citation)
    app.connect("build-finished", _export_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
