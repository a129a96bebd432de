"""Check a Python environment for the course: versions, the compute device, a matmul speed.

Used by the "Check your setup" page and by ``python -m dlcc doctor`` on a server. With
``--gpu`` it also fails where no usable GPU is found (the GPU guides use that), and
``--network`` tries the data-download path (certificates, proxy).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

PACKAGES = ("numpy", "matplotlib", "torch", "dlcc")
GUIDE = "https://deeplearningcrashcourse.github.io/dlcc/book/setup/linux-gpu-server.html"


@dataclass
class Report:
    """What :func:`check` found: plain data, printable with :func:`format_report`."""

    python: str
    platform: str
    packages: dict[str, str | None]
    device: str
    device_name: str
    device_memory_gib: float | None = None
    cuda_build: str | None = None
    matmul_gflops: float | None = None
    gpu_count: int | None = None  # GPUs PyTorch sees (CUDA only)
    capability: tuple[int, int] | None = None  # of the device used
    nccl: str | None = None  # NCCL version, None where torch has no NCCL
    network: str | None = None  # what --network found
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bf16_native(self) -> bool:
        """Tensor cores compute bfloat16 from compute capability 8.0 (Ampere) on."""
        return self.capability is not None and self.capability >= (8, 0)


@dataclass
class Driver:
    """What ``nvidia-smi`` reports, whatever PyTorch can see."""

    gpus: list[str]
    version: str | None = None  # e.g. "570.133.20"
    cuda: str | None = None  # the newest CUDA the driver supports, e.g. "12.8"


def _version(name: str) -> str | None:
    """The installed version, read from the package metadata (importing torch can fail)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvidia_smi() -> Driver:
    if shutil.which("nvidia-smi") is None:
        return Driver([])
    try:
        names = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return Driver([])
    version = re.search(r"Driver Version:\s*([\d.]+)", header)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return Driver([line.strip() for line in names.splitlines() if line.strip()],
                  version and version[1], cuda and cuda[1])


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


def runs_on(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a build with kernels for ``arch_list`` (``torch.cuda.get_arch_list()``) runs on
    a GPU of ``capability``: a ``sm_XY`` binary runs on major X with minor >= Y, and
    ``compute_XY`` code (PTX) is compiled for any newer GPU when first loaded."""
    for arch in arch_list:
        match = re.fullmatch(r"(sm|compute)_(\d+)(\d)([af]?)", arch)
        if not match:
            continue
        kind, major, minor, variant = match[1], int(match[2]), int(match[3]), match[4]
        if variant:  # architecture-specific code runs on exactly that architecture
            if (major, minor) == capability:
                return True
        elif kind == "sm" and major == capability[0] and minor <= capability[1]:
            return True
        elif kind == "compute" and (major, minor) <= capability:
            return True
    return False


def matmul_gflops(device: str = "cpu", n: int = 1024, seconds: float = 1.0) -> float:
    """Billions of float32 multiply-adds x2 per second for an (n, n) @ (n, n) matmul."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = {"cuda": torch.cuda.synchronize, "mps": lambda: torch.mps.synchronize()}.get(
        device.split(":")[0], lambda: None)
    a @ b  # warm-up: kernel selection and memory allocation are not part of the figure
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        if device != "cpu" and count % 10:
            continue
        sync()
    sync()
    elapsed = time.perf_counter() - start
    return 2 * n**3 * count / elapsed / 1e9


def _import_torch(report: Report):
    """torch, or None with the reason recorded (a broken install raises more than ImportError)."""
    try:
        import torch
    except ImportError as err:
        report.problems.append(
            f"torch {report.packages['torch']} is installed but does not import ({err}): "
            "reinstall it in this environment with `python -m pip install --force-reinstall "
            "--no-deps torch==<version>`.")
        return None
    except OSError as err:  # Windows: a DLL that torch needs is missing or blocked
        report.problems.append(
            f"torch {report.packages['torch']} is installed but a library it needs failed to "
            f"load ({err}). On Windows this is usually the Microsoft Visual C++ "
            "Redistributable missing (install 'vc_redist.x64.exe' from Microsoft, or ask IT), "
            "an antivirus blocking a DLL in the environment, or a folder path longer than 260 "
            "characters: move the course to a short path such as C:\\Users\\<you>\\dlcc and "
            "recreate the environment.")
        return None
    return torch


def _check_cuda(torch, report: Report) -> None:
    """Fill in the GPU lines for a CUDA device, or say why its build cannot run there."""
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    report.device = f"cuda:{index}"
    report.device_name = props.name
    report.device_memory_gib = props.total_memory / 2**30
    report.gpu_count = torch.cuda.device_count()
    report.capability = tuple(torch.cuda.get_device_capability(index))
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_nccl_available():
        report.nccl = ".".join(str(part) for part in torch.cuda.nccl.version())
    arch_list = torch.cuda.get_arch_list()
    if not runs_on(report.capability, arch_list):
        cap = ".".join(map(str, report.capability))
        report.problems.append(
            f"{props.name} has compute capability {cap}, but torch {torch.__version__} has "
            f"kernels only for {', '.join(arch_list)}: it cannot compute on this GPU. Install "
            f"the build for the oldest CUDA in the setup guide's table ({GUIDE}).")


def _explain_unseen_gpus(torch, report: Report, driver: Driver, expect_gpu: bool) -> None:
    """nvidia-smi lists GPUs but torch computes on the CPU: say why, and how bad that is."""
    count = f"{len(driver.gpus)} NVIDIA GPU(s) ({driver.gpus[0]})"
    if torch.version.cuda is None:
        message = (f"This machine has {count} but torch {torch.__version__} is a CPU-only "
                   "build: install the CUDA build of PyTorch (the setup guide's table).")
        if expect_gpu:
            report.problems.append(message)
        else:
            report.warnings.append(message + " The CPU is enough for Part 1.")
        return
    if driver.cuda and _as_tuple(driver.cuda) < _as_tuple(torch.version.cuda):
        report.problems.append(
            f"The NVIDIA driver {driver.version} supports CUDA up to {driver.cuda}, but torch "
            f"{torch.__version__} is built for CUDA {torch.version.cuda}: install the build "
            "for an older CUDA from the setup guide's table, or ask for a newer driver.")
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = (f" CUDA_VISIBLE_DEVICES is set to {visible!r}, which may hide them."
            if visible is not None else " Check the driver with `nvidia-smi`.")
    report.problems.append(
        f"torch {torch.__version__} was built for CUDA {torch.version.cuda} but sees no "
        f"GPU although nvidia-smi lists {len(driver.gpus)}.{hint}")


def check_network(report: Report) -> None:
    """Ask the data server for the first MNIST file's headers, as the data download would."""
    import requests

    from dlcc.data import download

    filename = next(iter(download.REGISTRY["mnist"]))
    url = download.source_url("mnist") + filename
    try:
        requests.head(url, timeout=download.TIMEOUT_S, allow_redirects=True).raise_for_status()
    except requests.exceptions.SSLError as err:
        report.problems.append(
            f"{url}: certificate check failed ({err}). A network that inspects encrypted "
            "traffic re-signs it: install `pip-system-certs` into this environment, or set "
            "REQUESTS_CA_BUNDLE to a file holding your network's root certificate.")
    except requests.exceptions.ProxyError as err:
        report.problems.append(
            f"{url}: the proxy refused the connection ({err}). Check HTTPS_PROXY "
            f"(now {os.environ.get('HTTPS_PROXY', os.environ.get('https_proxy'))!r}).")
    except requests.exceptions.RequestException as err:
        report.problems.append(
            f"{url}: {type(err).__name__} ({err}). Without internet access, copy the data "
            f"files into {download.cache_root()} (or set {download.ENV_CACHE}).")
    else:
        report.network = f"data server reachable ({url})"


def check(seconds: float = 1.0, expect_gpu: bool = False, network: bool = False) -> Report:
    """Inspect this interpreter.

    ``seconds`` is the time spent on the matmul figure (0 skips it); ``expect_gpu`` turns a
    missing or unusable GPU into a problem; ``network`` also tries the data download path.
    """
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0 (0 skips the matmul), got {seconds!r}")
    report = Report(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        packages={name: _version(name) for name in PACKAGES},
        device="none",
        device_name="PyTorch is not installed",
    )
    if report.packages["torch"] is None:
        report.problems.append(
            "PyTorch is not installed: run `python -m pip install -r requirements.txt` "
            "(or see the setup guide for the CUDA build on a GPU server).")
        return report
    torch = _import_torch(report)
    if torch is None:
        report.device_name = "PyTorch does not import"
        return report

    driver = _nvidia_smi()
    report.cuda_build = torch.version.cuda
    if torch.cuda.is_available():
        _check_cuda(torch, report)
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        report.device, report.device_name = "mps", "Apple GPU (Metal)"
    else:
        report.device, report.device_name = "cpu", platform.processor() or platform.machine()
        if driver.gpus:
            _explain_unseen_gpus(torch, report, driver, expect_gpu)
        elif expect_gpu:
            report.problems.append(
                "No GPU found (nvidia-smi lists none and PyTorch sees none), but --gpu says "
                "one is expected: on a server run this where the GPU is visible (inside the "
                "scheduler's job, or with CUDA_VISIBLE_DEVICES set to a free GPU).")
    if network:  # after the GPU checks: it needs dlcc.data, which needs a working torch
        check_network(report)
    if seconds > 0 and not report.problems:
        try:
            report.matmul_gflops = matmul_gflops(report.device, seconds=seconds)
        except RuntimeError as err:
            report.problems.append(f"a matmul on {report.device} failed: {err}")
    return report


def format_report(report: Report) -> str:
    """The report as the lines that ``python -m dlcc doctor`` prints."""
    lines = [f"Python      {report.python} ({report.platform})"]
    for name, version in report.packages.items():
        lines.append(f"{name:<11} {version or 'not installed'}")
    device = f"{report.device} ({report.device_name}"
    if report.device_memory_gib is not None:
        device += f", {report.device_memory_gib:.1f} GiB"
    lines.append(f"device      {device})")
    if report.packages.get("torch"):
        lines.append(f"CUDA build  {report.cuda_build or 'none (CPU-only torch)'}")
    if report.gpu_count is not None:
        cap = ".".join(map(str, report.capability))
        lines.append(f"GPUs        {report.gpu_count} visible, compute capability {cap}, "
                     f"bf16 {'native' if report.bf16_native else 'emulated (slow)'}, "
                     f"NCCL {report.nccl or 'not available'}")
    if report.matmul_gflops is not None:
        lines.append(f"matmul      {report.matmul_gflops:,.1f} GFLOP/s (float32, 1024 x 1024)")
    if report.network is not None:
        lines.append(f"network     {report.network}")
    for warning in report.warnings:
        lines.append(f"WARNING     {warning}")
    for problem in report.problems:
        lines.append(f"PROBLEM     {problem}")
    lines.append("OK: ready for the course." if report.ok else "Not ready: see PROBLEM above.")
    return "\n".join(lines)


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 skips the matmul), got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The doctor's options, for ``python -m dlcc doctor``."""
    parser.add_argument("--seconds", type=_seconds, default=1.0,
                        help="time spent measuring matmul speed (0 to skip; default 1)")
    parser.add_argument("--gpu", action="store_true",
                        help="fail unless PyTorch can compute on an NVIDIA GPU here")
    parser.add_argument("--network", action="store_true",
                        help="also check that data sets can be downloaded (certificates, proxy)")
    return parser


def main(seconds: float = 1.0, expect_gpu: bool = False, network: bool = False) -> int:
    report = check(seconds, expect_gpu=expect_gpu, network=network)
    print(format_report(report))
    sys.stdout.flush()
    return 0 if report.ok else 1

