"""Shared fixtures, and the four builds of a test run.

A run makes at most four builds, each once however many xdist workers ask, each in a process of
its own started by the first test of the run that needs it, so it runs while the workers go on
with the unit tests (which come first: tests that need a build are moved to the end):

- ``book``: the whole book, strictly (``-W --keep-going``), after tests/fresh_execution.py has
  run its chapters in a fresh environment into the execution cache the build reads;
- ``hidden_site``: the whole book with ``dlcc_hide_solutions: true``, after the book, from its
  execution cache (tests/test_hidden_solutions.py);
- ``pdf``: the book as one PDF (scripts/build_pdf.py), after the book, from its execution cache
  and parsed pages (tests/test_pdf.py);
- ``tiny_book``: ``tests/tiny_book``, a few pages that hold the course-data rendering, a partial
  build and planted defects (tests/test_course.py, tests/test_guard_rails.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tools import mathjax as mathjax_folder

# One thread per test process (set before anything imports torch or numpy): the xdist workers,
# the builds and the chapters' kernels already share the cores, and more threads than cores
# make torch's and OpenBLAS's thread pools wait on each other rather than work.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

ROOT = Path(__file__).resolve().parents[1]
TINY_BOOK = ROOT / "tests" / "tiny_book"
JUPYTER_BOOK = str(Path(sys.executable).parent / "jupyter-book")
BUILD_TIMEOUT = 3600
WORKER_NICENESS = 10  # test processes, once the builds have started (start_builds)

# Everything that can change what the executed book contains without changing a cell's source:
# jupyter-cache keys only on code cells, so the local cache is keyed on these as well.
CACHE_KEY_INPUTS = ("src", "book/_ext", "requirements.txt", "pyproject.toml")
FRESH_REPORT = "fresh-execution.json"  # in the book's output folder (tests/fresh_execution.py)


@dataclass
class Build:
    returncode: int
    log: str
    html: Path  # the HTML output folder

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def warnings(self) -> list[str]:
        """The build's own warnings (``file:line: WARNING: ...``), colours removed."""
        lines = re.sub(r"\x1b\[[0-9;]*m", "", self.log).splitlines()
        return [line for line in lines if "WARNING:" in line]


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in CACHE_KEY_INPUTS:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            # (not what Python and pip write there: the fresh environment's install of the
            # library writes src/dlcc.egg-info, which would change the key after every run)
            if "__pycache__" in file.parts or any(p.endswith(".egg-info") for p in file.parts):
                continue
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def cached(name: str) -> Path:
    """``.cache/<name>-<hash of the library>``; folders for older hashes are removed."""
    current = ROOT / ".cache" / f"{name}-{source_hash()}"
    for stale in (ROOT / ".cache").glob(f"{name}-*"):
        if stale != current:
            shutil.rmtree(stale, ignore_errors=True)
    return current


# --- The builds ----------------------------------------------------------------------------------


def jupyter_book(source: Path, output: Path, *options: str) -> list[str]:
    return [JUPYTER_BOOK, "build", str(source), "--path-output", str(output), *options,
            "-W", "--keep-going"]


def book_output(run_dir: Path) -> Path:
    """Cold under CI, else reusing the execution cache kept in ``.cache`` for the current
    library source."""
    return run_dir / "book" if os.environ.get("CI") else cached("book")


def book_build(run_dir: Path) -> tuple[Path, list[str], Path]:
    """The whole book, whose chapters tests/fresh_execution.py first runs in a fresh
    environment, two at a time, into the execution cache the build reads."""
    output = book_output(run_dir)
    return ROOT, [sys.executable, str(ROOT / "tests" / "fresh_execution.py"),
                  "--run-dir", str(run_dir), "--cache", str(output / "_build" / ".jupyter_cache"),
                  "--report", str(output / FRESH_REPORT), "--",
                  # --all: every page read again (from the execution cache), also where a local
                  # run reuses the folder, so the log shows where each page's outputs came from
                  *jupyter_book(ROOT, output, "--all")], output


def hidden_site_build(run_dir: Path) -> tuple[Path, list[str], Path]:
    """The whole book as students get it, with a temporary copy of ``_config.yml``
    (``dlcc_hide_solutions: true``). It runs after the book and reads the book's execution
    cache, so it executes no notebook again (solution cells leave the pages after execution)."""
    work = run_dir / "hidden-site"
    work.mkdir(exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    # Paths in local_extensions are relative to the configuration file, which now lives in
    # a temporary folder; every other path stays relative to the source folder, the root.
    sphinx["local_extensions"] = {k: str(ROOT / v) for k, v in sphinx["local_extensions"].items()}
    sphinx["config"]["dlcc_hide_solutions"] = True
    cache = book_output(run_dir) / "_build" / ".jupyter_cache"
    config.setdefault("execute", {})["cache"] = str(cache)
    (work / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    output = work / "out"
    return ROOT, jupyter_book(ROOT, output, "--config", str(work / "_config.yml")), output


def pdf_build(run_dir: Path) -> tuple[Path, list[str], Path]:
    """The README's PDF command on the book's output folder (``_build/pdf/dlcc.pdf`` there),
    with the local MathJax the browser tests use (the runs are offline)."""
    output = book_output(run_dir)
    return ROOT, [sys.executable, str(ROOT / "scripts" / "build_pdf.py"), "--path-output",
                  str(output), "--mathjax", str(mathjax_folder()), "-W", "--keep-going"], output


def tiny_book_build(run_dir: Path) -> tuple[Path, list[str], Path]:
    output = run_dir / "tiny-book"
    return TINY_BOOK, jupyter_book(TINY_BOOK, output, "--toc",
                                   str(TINY_BOOK / "_toc_partial.yml")), output


# name -> (run folder -> the working folder, command and output folder of the build)
BUILDS = {"book": book_build, "hidden_site": hidden_site_build, "pdf": pdf_build,
          "tiny_book": tiny_book_build}
AFTER = {"hidden_site": "book", "pdf": "book"}  # builds that start when another has finished
# Builds nothing waits on but their own few tests: they yield the CPU to the chain of the book
# (its chapters, the book, then the PDF), like the test processes do.
OFF_THE_CHAIN = ("hidden_site", "tiny_book")
LOGS = {"pdf": "pdf.log"}  # the PDF is made in the book's output folder, beside its build.log
_started: dict[str, subprocess.Popen] = {}


def start(run_dir: Path, name: str) -> None:
    """Start build ``name`` (strict: ``-W --keep-going``) unless a worker of this run has."""
    if name in AFTER:
        start(run_dir, AFTER[name])
    with FileLock(run_dir / f"{name}.lock"):
        if (run_dir / f"{name}.started").exists():
            return
        cwd, command, output = BUILDS[name](run_dir)
        output.mkdir(parents=True, exist_ok=True)
        log = output / LOGS.get(name, "build.log")
        # The shell waits for the build this one comes after, if any, and records the exit status
        # once the build ends, for whichever worker waits.
        script = 'until [ -z "$AFTER" ] || [ -s "$AFTER" ]; do sleep 1; done; ' \
                 '"$@" > "$LOG" 2>&1; echo $? > "$RC"'
        after = str(run_dir / f"{AFTER[name]}.rc") if name in AFTER else ""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG": str(log), "AFTER": after,
               "RC": str(run_dir / f"{name}.rc")}
        nice = ["nice", "-n", str(WORKER_NICENESS)] if name in OFF_THE_CHAIN else []
        _started[name] = subprocess.Popen([*nice, "sh", "-c", script, "sh", *command], env=env,
                                          cwd=cwd, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        if name in OFF_THE_CHAIN:
            yield_cpu(_started[name].pid)
        (run_dir / f"{name}.started").write_text(str(output))


def yield_cpu(pid: int) -> None:
    """Let process ``pid`` and its session yield the CPU (niceness :data:`WORKER_NICENESS`).

    Linux schedules each session as a group ("autogroup") and orders processes by their nice
    values only within a group, so the session's group is made nicer too. Builds, chapter
    kernels and browsers each start sessions of their own."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid,
                       max(os.getpriority(os.PRIO_PROCESS, pid), WORKER_NICENESS))
        Path(f"/proc/{pid}/autogroup").write_text(str(WORKER_NICENESS))
    except OSError:  # gone already, or a kernel without autogroups: the nice value stands
        pass


def pytest_configure(config) -> None:
    """Remember the niceness of the test run's session group (the terminal's), which
    :func:`yield_cpu` changes for the workers; :func:`pytest_unconfigure` puts it back."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        config.dlcc_group_nice = group_niceness()


def group_niceness(autogroup: Path = Path("/proc/self/autogroup")) -> str | None:
    """The niceness of this process's session group, as ``/proc/self/autogroup`` reads
    ("/autogroup-1842 nice 0"); None where the kernel has no autogroups (the file is missing,
    or empty, as on some CI machines)."""
    try:
        found = re.search(r"\bnice\s+(-?\d+)", autogroup.read_text())
    except OSError:
        return None
    return found.group(1) if found else None


def pytest_unconfigure(config) -> None:
    if getattr(config, "dlcc_group_nice", None) is not None:
        try:
            Path("/proc/self/autogroup").write_text(config.dlcc_group_nice)
        except OSError:  # lowering a niceness again may need privileges
            pass


def sessions_started_by(pid: int) -> list[int]:
    """The processes below ``pid`` that lead sessions of their own (a browser's, say)."""
    children: dict[int, list[int]] = {}
    leaders = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            child, parent, session = int(stat.parent.name), int(fields[1]), int(fields[3])
        except (OSError, IndexError, ValueError):  # gone, or a /proc of another format
            continue
        children.setdefault(parent, []).append(child)
        if session == child:
            leaders.add(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if child in leaders:
                found.append(child)
    return found


def wait(run_dir: Path, name: str) -> Build:
    start(run_dir, name)
    rc = run_dir / f"{name}.rc"
    deadline = time.monotonic() + BUILD_TIMEOUT
    while not (rc.exists() and rc.read_text().strip()):
        if time.monotonic() > deadline:
            pytest.fail(f"the {name} build did not finish in {BUILD_TIMEOUT} s")
        time.sleep(1)
    output = Path((run_dir / f"{name}.started").read_text())
    return Build(int(rc.read_text()), (output / LOGS.get(name, "build.log")).read_text(),
                 output / "_build" / "html")


def needs(item: pytest.Item) -> list[str]:
    return [name for name in BUILDS if name in item.fixturenames]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests first, then the tiny book's, then the book's, then the hidden site's and the
    PDF's: every worker stays busy while the builds run (the same order on every worker, as
    xdist requires). Tests that wait for the book are marked ``book``."""
    order = {"tiny_book": 1, "book": 2, "hidden_site": 3, "pdf": 3}
    items.sort(key=lambda item: max((order[name] for name in needs(item)), default=0))
    for item in items:  # so that `-m "not book"` leaves out every test that waits for a build
        if any(name != "tiny_book" for name in needs(item)):
            item.add_marker(pytest.mark.book)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A folder shared by every xdist worker of this test run (each worker's own temporary
    folder lies inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def start_builds(request, run_dir):
    """At the first test of each worker: start the builds that the selected tests need. At the
    end, wait for the builds this worker started (another worker may still need them), or stop
    them if the run was cut short."""
    for name in dict.fromkeys(n for item in request.session.items for n in needs(item)):
        start(run_dir, name)
    if _started or any(needs(item) for item in request.session.items):
        # The builds are the run's longest chain (chapters, then the book, then the PDF) and
        # were started above at normal priority; the tests, which fill the gaps, yield to them.
        yield_cpu(os.getpid())
    yield
    if request.session.shouldstop or request.session.shouldfail:
        stop_builds()
    for process in _started.values():
        process.wait()


def stop_builds() -> None:
    """Stop the builds this process started (each is the leader of its own process group)."""
    for process in _started.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)


def pytest_keyboard_interrupt() -> None:
    stop_builds()


@pytest.fixture(scope="session")
def book(run_dir) -> Build:
    return wait(run_dir, "book")


@pytest.fixture(scope="session")
def hidden_site(run_dir) -> Build:
    return wait(run_dir, "hidden_site")


@pytest.fixture(scope="session")
def pdf(run_dir) -> Build:
    return wait(run_dir, "pdf")


@pytest.fixture(scope="session")
def tiny_book(run_dir) -> Build:
    return wait(run_dir, "tiny_book")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train many times faster on one thread on a small shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
