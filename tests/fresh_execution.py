"""Run every chapter once, as a reader would, and let the book build reuse the result.

``python tests/fresh_execution.py --run-dir DIR --cache CACHE --report REPORT.json -- BUILD...``

1. Makes a virtual environment holding only ``dlcc`` (installed from this checkout), its
   declared dependencies and a kernel (``DIR/fresh-venv``): what Colab has after a chapter's
   install cell, plus myst-nb's ``glue`` (without its dependencies) so that the pages' numbers
   reach the build. Every package but ``dlcc`` is linked from this environment, at the
   versions requirements.txt pins (tests/tools.py's ``link_distributions``), rather than
   installed again: seconds instead of a minute, and no download.
2. Executes every executable page of ``_toc.yml`` in that environment, each in an empty
   temporary folder, two at a time (jupyter-cache's worker, with myst-nb's reader), and stores
   the executed notebooks in the jupyter-cache ``CACHE``, which the book build then reads: each
   chapter runs once per test run instead of twice. A page that fails here is left out of the
   cache; the build runs it again in its own environment, and tests/test_notebooks.py reports
   the failure from ``REPORT.json`` (page -> "ok", "cached" or the traceback).
3. Runs ``BUILD`` (the book's ``jupyter-book build`` command) and exits with its status.

Kernels get the build's settings: one thread per kernel and one progress line per epoch.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import tomllib
import yaml
from filelock import FileLock
from packaging.requirements import Requirement

from tools import link_distributions

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"]
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "DLCC_PROGRESS": "epoch"}  # what book/_ext/dlcc_book.py gives the build's kernels


def executable_pages() -> list[str]:
    """Every page of ``_toc.yml`` whose front matter declares a kernel."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    executable = []
    for page in pages:
        text = (ROOT / f"{page}.md").read_text()
        front = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else {}
        if "kernelspec" in (front or {}):
            executable.append(page)
    return executable


def declared_dependencies() -> list[str]:
    """The names of the library's dependencies, as ``pyproject.toml`` declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line).name for line in project["dependencies"]]


def fresh_venv(run_dir: Path) -> Path:
    """The fresh environment's Python, made once per run (whoever asks first)."""
    venv = run_dir / "fresh-venv"
    python = venv / "bin" / "python"
    with FileLock(run_dir / "fresh-venv.lock"):
        if (venv / "ready").exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        # The library's declared dependencies and what they require, a kernel, its client and
        # ipywidgets (which Colab and the course's requirements have; without it tqdm.auto,
        # imported by pooch and Optuna, warns on every page), linked from this environment:
        # the same pinned versions, nothing copied. Of myst-nb only its glue function (and
        # docutils, which it imports): nothing a chapter could lean on by accident.
        packages = run_dir / "fresh-packages"
        link_distributions([*declared_dependencies(), "ipykernel", "nbclient", "ipywidgets"],
                           packages)
        link_distributions(["myst-nb", "docutils"], packages, follow=False)
        site = next((venv / "lib").glob("python*/site-packages"))
        (site / "fresh_packages.pth").write_text(f"{packages}\n")
        # The library itself is installed from this checkout, as a reader's pip would.
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                              str(ROOT)], capture_output=True, text=True)
        if pip.returncode != 0:
            raise RuntimeError(f"the fresh environment could not be made:\n{pip.stderr[-3000:]}")
        (venv / "ready").touch()
    return python


def use_kernel_of(python: Path, run_dir: Path) -> None:
    """Make ``python3`` (the chapters' kernel) start ``python``: a kernel spec of its own,
    found first through ``JUPYTER_PATH``."""
    spec = run_dir / "fresh-kernels" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (fresh environment)", "language": "python",
        "metadata": {"supported_encryption": ["curve"]}}))  # as ipykernel's own spec says
    os.environ["JUPYTER_PATH"] = str(spec.parents[1])
    os.environ.pop("PYTHONPATH", None)
    os.environ.update(KERNEL_ENV)


def execute(cache_dir: Path, pages: list[str]) -> dict[str, str]:
    """Execute the pages the cache lacks, two at a time. Page -> "ok" (ran now), "cached"
    (the cache had it: a local test run reuses the book's cache while the library is
    unchanged; CI's runs are cold) or the traceback."""
    from jupyter_cache import get_cache
    from jupyter_cache.executors.basic import ExecutionWorkerTempMProc, ProcessData

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from dlcc_book import encrypt_kernels  # (the book's extension: Sphinx and docutils)

    encrypt_kernels()  # kernels as the book build starts them
    cache = get_cache(cache_dir)
    uri = {page: str(ROOT / f"{page}.md") for page in pages}
    records = {page: cache.add_nb_to_project(uri[page],
                                             read_data={"name": "myst_nb_md", "type": "plugin"})
               for page in pages}
    todo = [page for page in reversed(pages)  # Part 2 and the assignments, the longest, first
            if cache.get_cached_project_nb(records[page].pk) is None]
    work = [ProcessData(records[page].pk, uri[page], cache, TIMEOUT, False) for page in todo]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for _ in pool.imap_unordered(ExecutionWorkerTempMProc(), work, chunksize=1):
            pass
    report = {}
    for page in pages:
        if cache.get_cached_project_nb(records[page].pk) is not None:
            report[page] = "ok" if page in todo else "cached"
        else:
            report[page] = cache.get_project_record(records[page].pk).traceback or "not run"
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("build", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    started, build_env = time.perf_counter(), dict(os.environ)
    try:
        use_kernel_of(fresh_venv(args.run_dir), args.run_dir)
        report = execute(args.cache, executable_pages())
    except Exception as error:  # the build still runs; the notebook tests report this
        report = {"error": f"{type(error).__name__}: {error}"}
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.report.write_text(json.dumps(report, indent=1))
    build = [a for a in args.build if a != "--"]
    return subprocess.run(build, env=build_env).returncode if build else 0


if __name__ == "__main__":
    sys.exit(main())
