"""External tools some tests drive. ``.ci/run`` installs them; a test that finds one missing
fails saying how to install it.

- cffconvert lives in its own virtual environment, ``.cache/cffconvert``: it pins an old
  jsonschema that would downgrade the test environment's.
- MathJax 3 comes from npm (``.cache/node``) so the browser tests can render math offline.

And :func:`link_distributions`, which gives a new virtual environment packages installed here.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"


def _missing(what: str) -> None:
    pytest.fail(f"{what} is not installed: run `.ci/run --install-only` (installs what the tests "
                "need without running them)")


def cffconvert() -> Path:
    """Path of the ``cffconvert`` executable in ``.cache/cffconvert``."""
    exe = CACHE / "cffconvert" / "bin" / "cffconvert"
    if not exe.exists():
        _missing("cffconvert (.cache/cffconvert)")
    return exe


def mathjax() -> Path:
    """The folder of a local MathJax 3 (what the CDN serves under ``npm/mathjax@3/``)."""
    prefix = Path(os.environ.get("DLCC_MATHJAX_PREFIX", CACHE / "node"))
    folder = prefix / "node_modules" / "mathjax"
    if not (folder / "es5" / "tex-mml-chtml.js").exists():
        _missing(f"MathJax 3 ({prefix})")
    return folder


def link_distributions(names: list[str], folder: Path, follow: bool = True) -> list[str]:
    """Link the files of the installed distributions ``names`` into ``folder`` and, with
    ``follow``, of everything they require (extras left out), recursively; return the names
    linked. A ``.pth`` file naming ``folder`` gives another environment of this Python exactly
    these packages at the versions installed here, without copying or downloading any."""
    seen: list[str] = []
    todo = list(names)
    folder.mkdir(parents=True, exist_ok=True)
    while todo:
        name = todo.pop()
        if name.lower() in map(str.lower, seen):
            continue
        seen.append(name)
        dist = importlib.metadata.distribution(name)
        base = Path(dist.locate_file(""))
        for top in {Path(str(f)).parts[0] for f in dist.files if not str(f).startswith("..")}:
            if not (folder / top).exists():
                (folder / top).symlink_to(base / top)
        for line in (dist.requires or []) if follow else []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen
