"""``python -m dlcc doctor`` on the broken installs people really have.

No GPU exists here, so torch's CUDA queries and ``nvidia-smi`` are faked with monkeypatch;
each case asserts the verdict (OK, WARNING or PROBLEM) and that the message names the cause.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests
import torch

from dlcc import doctor

ARCH_CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
ARCH_CU126 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]


def no_matmul(*args, **kwargs):
    raise AssertionError("the matmul must not run on a device that cannot compute")


def fake_driver(monkeypatch, gpus=("NVIDIA A100-SXM4-80GB",), version="580.65.06", cuda="13.0"):
    monkeypatch.setattr(doctor, "_nvidia_smi", lambda: doctor.Driver(list(gpus), version, cuda))


def fake_cuda(monkeypatch, *, build="13.0", capability=(8, 0), arch_list=ARCH_CU130, count=1,
              name="NVIDIA A100-SXM4-80GB", available=True, nccl=(2, 27, 7)):
    """torch as a CUDA build would answer on a machine with ``count`` GPUs of ``capability``."""
    monkeypatch.setattr(torch.version, "cuda", build)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name=name, total_memory=80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arch_list)
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: nccl is not None)
    monkeypatch.setattr(torch.cuda, "nccl", SimpleNamespace(version=lambda: nccl))


def test_cpu_machine_without_gpu_is_ok(monkeypatch):
    fake_driver(monkeypatch, gpus=())
    report = doctor.check(seconds=0.05)
    assert report.ok and report.device == "cpu" and not report.warnings
    assert report.matmul_gflops > 0
    assert report.gpu_count is None and "GPUs" not in doctor.format_report(report)


def test_gpu_expected_but_none_found_fails(monkeypatch):
    fake_driver(monkeypatch, gpus=())
    report = doctor.check(seconds=0, expect_gpu=True)
    assert not report.ok and "No GPU found" in report.problems[0]


def test_cpu_torch_with_nvidia_card_warns_on_a_desktop(monkeypatch):
    fake_driver(monkeypatch, gpus=("NVIDIA T1000 8GB",))
    report = doctor.check(seconds=0)
    assert report.ok, report.problems
    assert "CPU-only build" in report.warnings[0] and "Part 1" in report.warnings[0]
    text = doctor.format_report(report)
    assert "WARNING     This machine has 1 NVIDIA GPU(s) (NVIDIA T1000 8GB)" in text
    assert text.endswith("OK: ready for the course.")


def test_cpu_torch_with_nvidia_card_fails_where_gpu_expected(monkeypatch):
    fake_driver(monkeypatch)
    report = doctor.check(seconds=0, expect_gpu=True)
    assert not report.ok and "CPU-only build" in report.problems[0]


def test_driver_too_old_for_the_cuda_build(monkeypatch):
    fake_driver(monkeypatch, version="570.133.20", cuda="12.8")
    fake_cuda(monkeypatch, build="13.0", available=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    report = doctor.check(seconds=0.05)
    (problem,) = report.problems
    assert "driver 570.133.20 supports CUDA up to 12.8" in problem
    assert "built for CUDA 13.0" in problem and "CUDA_VISIBLE_DEVICES" not in problem
    assert report.matmul_gflops is None


def test_gpus_hidden_by_cuda_visible_devices(monkeypatch):
    fake_driver(monkeypatch, cuda="13.0")
    fake_cuda(monkeypatch, build="13.0", available=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    (problem,) = doctor.check(seconds=0).problems
    assert "sees no GPU" in problem and "CUDA_VISIBLE_DEVICES is set to ''" in problem


@pytest.mark.parametrize("seconds", [0, 1.0])
def test_gpu_too_old_for_the_build_is_reported_not_a_traceback(monkeypatch, seconds):
    """A V100 (7.0) with a cu13x wheel: the wheel has no kernels for it."""
    fake_driver(monkeypatch, gpus=("Tesla V100-SXM2-32GB",))
    fake_cuda(monkeypatch, capability=(7, 0), name="Tesla V100-SXM2-32GB")
    monkeypatch.setattr(doctor, "matmul_gflops", no_matmul)
    report = doctor.check(seconds=seconds)
    (problem,) = report.problems
    assert "compute capability 7.0" in problem and "sm_75" in problem
    assert "oldest CUDA" in problem
    assert doctor.format_report(report).endswith("Not ready: see PROBLEM above.")


def test_working_gpu_reports_count_bf16_and_nccl(monkeypatch):
    fake_driver(monkeypatch)
    fake_cuda(monkeypatch, capability=(8, 0), count=4)
    monkeypatch.setattr(doctor, "matmul_gflops", lambda device, seconds: 18532.6)
    report = doctor.check(seconds=1.0, expect_gpu=True)
    assert report.ok, report.problems
    assert report.device == "cuda:0" and report.bf16_native
    assert ("GPUs        4 visible, compute capability 8.0, bf16 native, NCCL 2.27.7"
            in doctor.format_report(report))


def test_turing_gpu_has_emulated_bf16_and_no_nccl_on_windows(monkeypatch):
    fake_driver(monkeypatch, gpus=("Tesla T4",))
    fake_cuda(monkeypatch, capability=(7, 5), name="Tesla T4", nccl=None)
    report = doctor.check(seconds=0)
    assert report.ok and not report.bf16_native
    assert "bf16 emulated (slow), NCCL not available" in doctor.format_report(report)


@pytest.mark.parametrize(("capability", "arch_list", "runs"), [
    ((8, 6), ["sm_80"], True),  # sm_80 binaries run on 8.6
    ((8, 0), ["sm_86"], False),  # but not the other way round
    ((7, 0), ARCH_CU130, False),
    ((7, 0), ARCH_CU126, True),
    ((12, 1), ["sm_90", "sm_120"], True),
    ((10, 3), ["sm_90", "compute_90"], True),  # PTX is compiled for newer GPUs
    ((10, 3), ["sm_90", "sm_100a"], False),  # 'a' code runs on its architecture only
])
def test_runs_on(capability, arch_list, runs):
    assert doctor.runs_on(capability, arch_list) is runs


def test_mac_matmul_runs_on_the_device_it_names(monkeypatch):
    fake_driver(monkeypatch, gpus=())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    used = []
    monkeypatch.setattr(doctor, "matmul_gflops",
                        lambda device, seconds: used.append(device) or 5000.0)
    report = doctor.check(seconds=0.5)
    assert report.device == "mps" and used == ["mps"]


def test_matmul_failure_is_a_problem_not_a_traceback(monkeypatch):
    fake_driver(monkeypatch)
    fake_cuda(monkeypatch, capability=(9, 0))

    def fail(device, seconds):
        raise RuntimeError("CUDA error: no kernel image is available for execution")

    monkeypatch.setattr(doctor, "matmul_gflops", fail)
    (problem,) = doctor.check(seconds=1.0).problems
    assert problem.startswith("a matmul on cuda:0 failed: CUDA error: no kernel image")


def test_torch_that_fails_to_load_a_dll_is_explained(monkeypatch):
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "torch":
            raise OSError("[WinError 126] The specified module could not be found. Error "
                          "loading \"...\\torch\\lib\\fbgemm.dll\" or one of its dependencies.")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(builtins, "__import__", broken)
    report = doctor.check(seconds=1.0)
    (problem,) = report.problems
    assert "fbgemm.dll" in problem and "Visual C++ Redistributable" in problem
    assert report.device_name == "PyTorch does not import"
    assert doctor.format_report(report).endswith("Not ready: see PROBLEM above.")


def test_nvidia_smi_header_is_parsed(monkeypatch):
    header = ("| NVIDIA-SMI 580.65.06     Driver Version: 580.65.06     CUDA Version: 13.0     |")

    def run(cmd, **kwargs):
        out = "NVIDIA H100 80GB HBM3\nNVIDIA H100 80GB HBM3\n" if len(cmd) > 1 else header
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(doctor.subprocess, "run", run)
    assert doctor._nvidia_smi() == doctor.Driver(["NVIDIA H100 80GB HBM3"] * 2, "580.65.06",
                                                 "13.0")


@pytest.mark.parametrize(("error", "words"), [
    (requests.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), "pip-system-certs"),
    (requests.exceptions.ProxyError("407 Proxy Authentication Required"), "HTTPS_PROXY"),
    (requests.exceptions.ConnectionError("Name or service not known"), "DLCC_DATA"),
])
def test_network_check_names_the_fix(monkeypatch, error, words):
    def head(url, **kwargs):
        raise error

    fake_driver(monkeypatch, gpus=())
    monkeypatch.setattr(requests, "head", head)
    (problem,) = doctor.check(seconds=0, network=True).problems
    assert words in problem and "mnist" in problem


def test_network_check_passes_when_the_server_answers(monkeypatch):
    urls = []

    def head(url, **kwargs):
        urls.append(url)
        return SimpleNamespace(raise_for_status=lambda: None)

    fake_driver(monkeypatch, gpus=())
    monkeypatch.setenv("DLCC_DATA_URL", "https://mirror.example.org/dlcc")
    monkeypatch.setattr(requests, "head", head)
    report = doctor.check(seconds=0, network=True)
    assert report.ok and urls[0].startswith("https://mirror.example.org/dlcc/mnist/")
    assert "network     data server reachable (https://mirror" in doctor.format_report(report)


def test_negative_seconds_is_refused():
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        doctor.check(seconds=-1)


def test_command_line_flags():
    """``python -m dlcc doctor --gpu`` fails exactly where torch cannot compute on a GPU."""
    proc = subprocess.run([sys.executable, "-m", "dlcc", "doctor", "--seconds", "0", "--gpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == (0 if torch.cuda.is_available() else 1), proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dlcc", "doctor", "--seconds", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--seconds: must be >= 0" in proc.stderr, proc.stderr
