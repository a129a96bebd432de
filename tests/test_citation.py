"""CITATION.cff is valid and agrees with the book's configuration."""

from __future__ import annotations

import subprocess

import yaml

from conftest import ROOT
from tools import cffconvert


def test_citation_cff_is_valid():
    proc = subprocess.run([str(cffconvert()), "--validate", "-i", str(ROOT / "CITATION.cff")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_citation_cff_converts_to_bibtex_and_apa():
    for fmt, expected in (("bibtex", "@misc"), ("apalike", "The DLCC authors")):
        proc = subprocess.run([str(cffconvert()), "-f", fmt, "-i", str(ROOT / "CITATION.cff")],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and expected in proc.stdout, proc.stdout + proc.stderr


def test_citation_cff_matches_config_and_package():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]
    assert cff["url"].rstrip("/") == config["html"]["baseurl"].rstrip("/")
    import dlcc

    assert str(cff["version"]) == dlcc.__version__
