"""Shared fixtures: the built book, built once per test run however many xdist workers ask."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

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


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A folder shared by every xdist worker of this test run (each worker's own temporary
    folder lies inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once_per_run(run_dir: Path, name: str, make: Callable[[], dict]) -> dict:
    """Call ``make`` on the first worker that asks; the others wait for it and read its result.

    A lock rather than ``--dist loadgroup``: pytest-xdist 3.8 groups tests by rewriting
    ``item._nodeid``, which pytest 9 no longer reads, so groups are spread over the workers.
    """
    record = run_dir / f"{name}.json"
    with FileLock(run_dir / f"{name}.lock"):
        if not record.exists():
            record.write_text(json.dumps(make()))
    return json.loads(record.read_text())


def cached(name: str) -> Path:
    """``.cache/<name>-<hash of the library>``; folders for older hashes are removed."""
    current = ROOT / ".cache" / f"{name}-{source_hash()}"
    for stale in (ROOT / ".cache").glob(f"{name}-*"):
        if stale != current:
            shutil.rmtree(stale, ignore_errors=True)
    return current


@pytest.fixture(scope="session")
def book(run_dir) -> Build:
    """The whole book, built strictly: cold under CI, else reusing the execution cache kept in
    ``.cache`` for the current library source."""
    def make() -> dict:
        output = run_dir / "book" if os.environ.get("CI") else cached("book")
        build = jupyter_book(ROOT, output)
        build.html.parent.mkdir(parents=True, exist_ok=True)
        (build.html.parent / "build.log").write_text(build.log)
        return {"returncode": build.returncode, "log": build.log, "html": str(build.html)}

    done = once_per_run(run_dir, "book", make)
    return Build(done["returncode"], done["log"], Path(done["html"]))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train many times faster on one thread on a small shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
