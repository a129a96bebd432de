"""External tools some tests drive. ``.ci/run`` installs them; a test that finds one missing
fails saying how to install it.

- cffconvert lives in its own virtual environment, ``.cache/cffconvert``: it pins an old
  jsonschema that would downgrade the test environment's.
- MathJax 3 comes from npm (``.cache/node``) so the browser tests can render math offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
