"""External tools some tests drive, installed on first use when missing (.ci/run pre-installs).

- cffconvert lives in its own virtual environment: it pins an old jsonschema that would
  downgrade the test environment's.
- MathJax 3 comes from npm so the browser tests can render math without the CDN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
CFFCONVERT_VERSION = "2.0.0"
MATHJAX_VERSION = "3.2.2"


def _locked(name: str) -> FileLock:
    CACHE.mkdir(exist_ok=True)
    return FileLock(str(CACHE / f"{name}.lock"), timeout=900)


def cffconvert() -> Path:
    """Path of a ``cffconvert`` executable in ``.cache/cffconvert``."""
    venv = CACHE / "cffconvert"
    exe = venv / "bin" / "cffconvert"
    with _locked("cffconvert"):
        if not exe.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            f"cffconvert=={CFFCONVERT_VERSION}"], check=True)
    return exe


def mathjax() -> Path:
    """The folder of a local MathJax 3 (what the CDN serves under ``npm/mathjax@3/``)."""
    prefix = Path(os.environ.get("DLCC_MATHJAX_PREFIX", CACHE / "node"))
    folder = prefix / "node_modules" / "mathjax"
    with _locked("mathjax"):
        if not (folder / "es5" / "tex-mml-chtml.js").exists():
            prefix.mkdir(parents=True, exist_ok=True)
            subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                            str(prefix), f"mathjax@{MATHJAX_VERSION}"], check=True)
    return folder
