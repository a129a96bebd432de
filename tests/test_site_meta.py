"""Sharing and discovery: sitemap, OpenGraph, the notebooks branch, and the Binder environment."""

from __future__ import annotations

import re

import pytest
import yaml

import notebooks
from conftest import ROOT
from test_book import toc_files

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
BASEURL = CONFIG["html"]["baseurl"].rstrip("/") + "/"


def pins(path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_sitemap_lists_every_page(book):
    sitemap = (book.html / "sitemap.xml").read_text()
    for page in toc_files():
        assert f"<loc>{BASEURL}{page}.html</loc>" in sitemap, page


@pytest.mark.parametrize("prop", ["og:title", "og:url", "og:image", "og:description"])
def test_opengraph_tags_on_every_page(book, prop):
    for page in toc_files():
        html = (book.html / f"{page}.html").read_text()
        assert f'property="{prop}"' in html, f"{page} lacks {prop}"
    html = (book.html / "book/setup/check.html").read_text()
    assert f'content="{BASEURL}book/setup/check.html"' in html


def test_deploy_publishes_the_branch_the_buttons_open():
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    jobs = workflow["jobs"]
    assert "notebooks" in jobs["deploy"]["needs"], "notebooks must be published before the site"
    steps = " ".join(step.get("run", "") for step in jobs["notebooks"]["steps"])
    branch = notebooks.read_site(ROOT).notebooks_branch
    assert f"git push --force origin {branch}" in steps
    assert "notebooks.py --in-place" in steps
    assert jobs["notebooks"]["permissions"] == {"contents": "write"}
    assert workflow["permissions"] == {"contents": "read"}
    assert jobs["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_deploy_never_publishes_execution_reports():
    steps = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())["jobs"]["build"]
    runs = [step.get("run", "") for step in steps["steps"]]
    upload = next(i for i, s in enumerate(steps["steps"])
                  if "upload-pages-artifact" in s.get("uses", ""))
    removal = next(i for i, r in enumerate(runs) if "rm -rf _build/html/reports" in r)
    assert removal < upload


def test_binder_environment_matches_the_book_environment():
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"
    binder, book = pins(ROOT / "binder/requirements.txt"), pins(ROOT / "requirements.txt")
    assert binder.pop("torch") == book["torch"] + "+cpu", "Binder must get the CPU build of torch"
    for name, version in binder.items():
        assert book.get(name) == version, f"binder/requirements.txt: {name}=={version}"
    post_build = (ROOT / "binder/postBuild").read_text()
    assert post_build.startswith("#!/bin/bash\nset -e") and "pip install" in post_build
