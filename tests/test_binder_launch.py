"""The Binder button: a stable environment branch, and the notebooks pulled in by nbgitpuller."""

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from dlcc_book import binder_url
from notebooks import read_site

ROOT = Path(__file__).resolve().parents[1]

PAGE = "book/part1/l6-making-training-work"


def follow(url: str) -> tuple[str, str, dict[str, str]]:
    """What Binder launches, and the git-pull request that JupyterLab's server then receives.

    Binder decodes its ``urlpath`` argument once and sends the browser there; the server
    decodes the ``git-pull`` query once more for nbgitpuller.
    """
    parts = urlsplit(url)
    (urlpath,) = parse_qs(parts.query, strict_parsing=True)["urlpath"]
    route, _, query = urlpath.partition("?")
    pull = {key: value for key, (value,) in parse_qs(query, strict_parsing=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", route, pull


def test_binder_launches_the_environment_branch_and_pulls_the_notebooks():
    site = read_site(ROOT, commit="0123abc")
    org_repo = site.org_repo
    launched, route, pull = follow(binder_url(site, PAGE))
    assert launched == f"https://mybinder.org/v2/gh/{org_repo}/binder-env"
    assert route == "git-pull"
    repo = org_repo.split("/")[1]
    assert pull == {"repo": f"https://github.com/{org_repo}", "branch": "notebooks",
                    "urlpath": f"lab/tree/{repo}/{PAGE}.ipynb"}


def test_a_page_name_with_odd_characters_survives_both_decodings():
    site = read_site(ROOT, commit="0123abc")
    page = "book/a b&c=d?e"
    _, _, pull = follow(binder_url(site, page, "https://binder.example.org", "env"))
    assert pull["urlpath"].endswith(f"/{page}.ipynb")
    assert binder_url(site, page, "https://binder.example.org", "env").startswith(
        f"https://binder.example.org/v2/gh/{site.org_repo}/env?urlpath=git-pull%3Frepo%3D")


def test_the_configured_branch_is_the_one_the_deploy_workflow_publishes():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    branch = config["launch_buttons"]["binder_env_branch"]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    script = "\n".join(step.get("run", "") for step in workflow["jobs"]["binder-env"]["steps"])
    assert f"origin {branch}" in script and f"HEAD:refs/heads/{branch}" in script
    # The image is rebuilt for everything it bakes in: binder/ and the library postBuild installs.
    assert "pip install" in (ROOT / "binder" / "postBuild").read_text()
    for path in ("binder", "src", "pyproject.toml"):
        assert f"$1:{path}" in script, path


def test_binder_installs_nbgitpuller():
    pins = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("nbgitpuller==") for line in pins)
