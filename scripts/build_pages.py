"""Build a few pages of the book quickly, strictly, with the real configuration.

    python scripts/build_pages.py book/part1/l1-neural-networks [more pages...]

The pages are built with the home page, the reading list and the glossary (so citations and
terms resolve) into ``.cache/pages-<first page's name>/``; open ``<that>/_build/html/<page>.html``.
Cross-references to pages left out are reported as warnings; the full build is the judge.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = ["book/reference/reading-list", "book/reference/glossary"]


def main(pages: list[str]) -> int:
    pages = [p.removesuffix(".md") for p in pages]
    missing = [p for p in pages if not (ROOT / f"{p}.md").is_file()]
    if missing or not pages:
        print(f"usage: {sys.argv[0]} book/<path-without-.md> ...; not found: {missing}")
        return 2
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "Pages", "chapters": [{"file": p} for p in
                                                       dict.fromkeys(pages + ALWAYS)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(toc, f)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--toc", f.name,
           "--path-output", str(ROOT / ".cache" / f"pages-{Path(pages[0]).name}"),
           "-W", "--keep-going"]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
