"""Check a Python environment for the course: versions, the compute device, a matmul speed.

Used by the "Check your setup" page and by ``python -m dlcc doctor`` on a server.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field


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
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


PACKAGES = ("numpy", "matplotlib", "torch", "dlcc")


def _version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None


def _nvidia_gpus() -> list[str]:
    """GPU names that the driver reports, whatever PyTorch can see."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def matmul_gflops(device: str = "cpu", n: int = 1024, seconds: float = 1.0) -> float:
    """Billions of float32 multiply-adds x2 per second for an (n, n) @ (n, n) matmul."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
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


def check(seconds: float = 1.0) -> Report:
    """Inspect this interpreter; ``seconds`` is the time spent on the matmul figure (0 skips it)."""
    packages = {name: _version(name) for name in PACKAGES}
    report = Report(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        packages=packages,
        device="none",
        device_name="PyTorch is not installed",
    )
    gpus = _nvidia_gpus()
    if packages["torch"] is None:
        report.problems.append(
            "PyTorch is not installed: run `python -m pip install -r requirements.txt` "
            "(or see the setup guide for the CUDA build on a GPU server)."
        )
        return report

    import torch

    report.cuda_build = torch.version.cuda
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        report.device = f"cuda:{index}"
        report.device_name = props.name
        report.device_memory_gib = props.total_memory / 2**30
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        report.device, report.device_name = "mps", "Apple GPU (Metal)"
    else:
        report.device, report.device_name = "cpu", platform.processor() or platform.machine()
        if gpus and torch.version.cuda is None:
            report.problems.append(
                f"This machine has {len(gpus)} NVIDIA GPU(s) ({gpus[0]}) but the installed "
                f"torch {torch.__version__} is a CPU-only build: install the CUDA build of "
                "PyTorch (see the Linux GPU server guide)."
            )
        elif gpus:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            hint = (f" CUDA_VISIBLE_DEVICES is set to {visible!r}." if visible is not None
                    else " Check the driver with `nvidia-smi`.")
            report.problems.append(
                f"torch {torch.__version__} was built for CUDA {torch.version.cuda} but sees no "
                f"GPU although nvidia-smi lists {len(gpus)}.{hint}"
            )
    if seconds > 0:
        report.matmul_gflops = matmul_gflops("cpu" if report.device == "mps" else report.device,
                                             seconds=seconds)
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
    if report.matmul_gflops is not None:
        lines.append(f"matmul      {report.matmul_gflops:,.1f} GFLOP/s (float32, 1024 x 1024)")
    for problem in report.problems:
        lines.append(f"PROBLEM     {problem}")
    lines.append("OK: ready for the course." if report.ok else "Not ready: see PROBLEM above.")
    return "\n".join(lines)


def main(seconds: float = 1.0) -> int:
    report = check(seconds)
    print(format_report(report))
    sys.stdout.flush()
    return 0 if report.ok else 1
