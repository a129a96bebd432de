"""Shared fixtures: the built book (built once per test session, on one xdist worker)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Everything that can change what the executed book contains without changing a cell's source:
# jupyter-cache keys only on code cells, so the local cache is keyed on these as well.
CACHE_KEY_INPUTS = ("src", "book/_ext", "requirements.txt", "pyproject.toml")


@dataclass
class Build:
    returncode: int
    log: str
    html: Path  # the HTML output folder

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def jupyter_book(source: Path, output: Path, *extra: str, timeout: int = 1800) -> Build:
    """Run a strict ``jupyter-book build`` of ``source`` into ``output``."""
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(source),
           "--path-output", str(output), "-W", "--keep-going", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=source, capture_output=True, text=True, timeout=timeout, env=env)
    return Build(proc.returncode, proc.stdout + proc.stderr, output / "_build" / "html")


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in CACHE_KEY_INPUTS:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def book_output_dir(tmp_path_factory) -> Path:
    """A cold folder under CI; locally a folder whose execution cache is keyed on the library."""
    if os.environ.get("CI"):
        return tmp_path_factory.mktemp("book")
    current = ROOT / ".cache" / f"book-{source_hash()}"
    for stale in (ROOT / ".cache").glob("book-*"):
        if stale != current:
            shutil.rmtree(stale, ignore_errors=True)
    return current


@pytest.fixture(scope="session")
def book(tmp_path_factory) -> Build:
    """The whole book, built strictly. Tests using it must be in xdist group "book"."""
    build = jupyter_book(ROOT, book_output_dir(tmp_path_factory))
    build.html.parent.mkdir(parents=True, exist_ok=True)
    (build.html.parent / "build.log").write_text(build.log)
    return build


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train many times faster on one thread on a small shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
