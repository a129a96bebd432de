"""The test run's own plumbing (conftest): it must not break on machines unlike this one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import group_niceness, sessions_started_by


@pytest.mark.parametrize(("text", "expected"), [
    ("/autogroup-1842 nice 0\n", "0"),
    ("/autogroup-7 nice -5\n", "-5"),
    ("", None),  # a kernel without autogroups (seen on a CI machine)
    ("garbage\n", None),
])
def test_group_niceness_reads_the_autogroup_file_or_gives_none(tmp_path, text, expected):
    path = tmp_path / "autogroup"
    path.write_text(text)
    assert group_niceness(path) == expected
    assert group_niceness(tmp_path / "missing") is None


def test_sessions_started_by_finds_a_child_that_leads_its_own_session():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             start_new_session=True)
    try:
        assert child.pid in sessions_started_by(os.getpid())
    finally:
        child.kill()
        child.wait()
