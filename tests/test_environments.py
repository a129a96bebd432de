"""The library's declared dependencies hold: its unit tests pass on the lowest versions that
``pyproject.toml`` allows, and the numpy half and the notebook exporter run on Python 3.13
(Colab's interpreter).

Each test builds a virtual environment once and keeps it in ``.cache/`` under a name that
changes with what it installs. PyTorch is never downloaded: the lowest-versions environment
reuses this environment's torch (the version requirements.txt pins) through a folder of
links, and the Python 3.13 environment has no torch at all.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version
from test_setup_guides import pins

from tools import link_distributions

ROOT = Path(__file__).resolve().parents[1]
# The library's unit tests: the numpy half, models, metrics, data, the trainer (new test files
# of these parts are picked up by their names).
UNIT_TESTS = ["tests/scratch"] + sorted(
    str(path.relative_to(ROOT)) for part in ("models", "metrics", "data", "train")
    for path in (ROOT / "tests").glob(f"test_{part}*.py"))
# What the test run itself needs besides the library's dependencies (versions as pinned).
TEST_TOOLS = ["pytest", "filelock", "threadpoolctl"]
PY313_NEEDS = ["numpy", "scipy", "matplotlib", "scikit-learn", "mlxtend", "jupytext", "nbformat",
               "pyyaml", "nbclient", "beautifulsoup4", "markdownify"]


def tool_versions() -> dict[str, str]:
    """The test tools at the versions pinned, or else installed, in this environment."""
    pinned = pins(ROOT / "requirements.txt")
    return {name: pinned.get(name) or importlib.metadata.version(name) for name in TEST_TOOLS}


def lower_bounds() -> dict[str, str]:
    """``name -> lowest allowed version`` for every dependency of the library, extras included
    (the trainer's tests write TensorBoard logs)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [line for group in project.get("optional-dependencies", {}).values()
              for line in group]
    bounds = {}
    for line in project["dependencies"] + extras:
        req = Requirement(line)
        (low,) = [spec.version for spec in req.specifier if spec.operator == ">="]
        bounds[req.name.lower()] = low
    return bounds


def env_dir(name: str, spec: str) -> Path:
    """``.cache/<name>-<hash of spec>``; folders built for another spec are removed."""
    folder = ROOT / ".cache" / f"{name}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"
    for stale in (ROOT / ".cache").glob(f"{name}-*"):
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return folder


def pip(python: Path, *args: str) -> None:
    # --no-compile: the tests import a small part of what is installed, and compiling all of
    # it (scipy, matplotlib, scikit-learn) was three quarters of the installation's time
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", *args],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def make_venv(python: str, folder: Path) -> Path:
    subprocess.run([python, "-m", "venv", str(folder)], check=True, timeout=300)
    site = subprocess.run([str(folder / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the library from this checkout, without installing it (no build, no download)
    (Path(site) / "dlcc_src.pth").write_text(str(ROOT / "src") + "\n")
    return Path(site)


def run_tests(python: Path, *args: str) -> subprocess.CompletedProcess:
    # A run of its own: not the outer run's options (PYTEST_ADDOPTS may name the outer run's
    # --basetemp, which pytest would clear) and a temporary folder that pytest's clean-up of old
    # numbered folders cannot share with the outer run.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    basetemp = tempfile.mkdtemp(prefix="dlcc-inner-pytest-")
    return subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider",
                           "-o", "addopts=", "--basetemp", basetemp, "-q", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def passed(output: str) -> int:
    match = re.search(r"(\d+) passed", output)
    return int(match[1]) if match else 0


def test_lowest_allowed_versions_pass_the_unit_tests():
    bounds = lower_bounds()
    torch_pin = pins(ROOT / "requirements.txt")["torch"]
    assert importlib.metadata.version("torch").split("+")[0] == torch_pin
    tools = tool_versions()
    others = {name: low for name, low in bounds.items() if name != "torch"}
    spec = f"{sys.version} {sorted(others.items())} {sorted(tools.items())} torch {torch_pin}"
    folder = env_dir("env-lowest", spec)
    python = folder / "venv" / "bin" / "python"
    if not (folder / "ready").exists():
        shutil.rmtree(folder, ignore_errors=True)
        site = make_venv(sys.executable, folder / "venv")
        # torch (and its own requirements) from this environment: pip sees it as installed
        link_distributions(["torch"], folder / "torch")
        (site / "torch_only.pth").write_text(str(folder / "torch") + "\n")
        pip(python, *(f"{name}=={low}" for name, low in others.items()),
            *(f"{name}=={version}" for name, version in tools.items()))
        (folder / "ready").write_text(spec)

    versions = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, sys\n"
         "for name in sys.argv[1:]: print(name, m.version(name))", "torch", *others],
        capture_output=True, text=True, check=True).stdout.split()
    got = dict(zip(versions[::2], versions[1::2], strict=True))
    assert got.pop("torch").split("+")[0] == torch_pin
    wrong = {name: got[name] for name, low in others.items() if Version(got[name]) != Version(low)}
    assert not wrong, f"the environment does not hold the lowest allowed versions: {wrong}"
    # torch's bound is not tested here (another torch is a multi-GB download); it follows
    # from the newest torch API the library uses: torch.amp.GradScaler(device), new in 2.3.
    assert Requirement(f"torch>={bounds['torch']}").specifier.contains("2.3.0")
    assert not Requirement(f"torch>={bounds['torch']}").specifier.contains("2.2.2")

    proc = run_tests(python, *UNIT_TESTS)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert passed(proc.stdout) >= 300, proc.stdout[-500:]


def python313() -> str | None:
    for candidate in ("/root/.pyenv/versions/3.13.0/bin/python", shutil.which("python3.13")):
        if candidate and subprocess.run([candidate, "--version"], capture_output=True,
                                        timeout=60).returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(python313() is None, reason="no Python 3.13 interpreter on this machine "
                    "(python3.13 on PATH or pyenv's 3.13.0)")
def test_numpy_half_and_exporter_on_python_313():
    """Colab runs Python 3.13: the numpy half and the notebook exporter must work there."""
    pinned = pins(ROOT / "requirements.txt")
    needs = {name: pinned[name] for name in PY313_NEEDS if name in pinned} | tool_versions()
    interpreter = python313()
    spec = f"{interpreter} {sorted(needs.items())}"
    folder = env_dir("env-py313", spec)
    python = folder / "venv" / "bin" / "python"
    if not (folder / "ready").exists():
        shutil.rmtree(folder, ignore_errors=True)
        make_venv(interpreter, folder / "venv")
        pip(python, *(f"{name}=={version}" for name, version in needs.items()))
        (folder / "ready").write_text(spec)

    version = subprocess.run([str(python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "(3, 13)"
    # Most modules of tests/scratch compare with torch, imported at the top: those cannot run
    # without torch (which for Python 3.13 would be a multi-GB download); the others do.
    modules = sorted((ROOT / "tests" / "scratch").glob("test_*.py"))
    torch_free = [str(m.relative_to(ROOT)) for m in modules
                  if not re.search(r"^\s*(?:import|from) torch\b", m.read_text(), re.M)]
    assert len(torch_free) >= 4, torch_free
    proc = run_tests(python, *torch_free)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert passed(proc.stdout) >= 100, proc.stdout[-500:]
    # the exporter's tests that need neither the built book nor torch
    proc = run_tests(python, "tests/test_notebooks.py", "-m", "not book",
                     "-k", "not fresh_kernel and not two_chapters")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert passed(proc.stdout) >= 1, proc.stdout[-500:]
