"""Which device and RNG state each process uses, with torch.cuda's answers mocked (no GPU)."""

import pytest
import torch

from dlcc.train import distributed
from dlcc.train.checkpoint import rng_state
from dlcc.train.checkpoint import set_rng_state as restore_rng_state


def fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_each_torchrun_process_takes_its_local_gpu(monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device("auto") == torch.device("cuda", 1)
    assert distributed.local_device("cuda") == torch.device("cuda", 1)
    assert distributed.local_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda:0' names one GPU"):
        distributed.local_device("cuda:0")


def test_more_processes_than_gpus_is_named(monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match=r"LOCAL_RANK 2 has no GPU: this machine has 2; start "
                                         r"at most 2 processes per machine"):
        distributed.local_device("auto")


def test_rng_state_saves_and_restores_only_this_process_gpu(monkeypatch):
    """Under DDP rank k owns cuda:k: it saves that generator and restores it there."""
    calls = []

    def get_rng_state(device):
        calls.append(("get", device))
        return torch.full((8,), 7, dtype=torch.uint8)

    def set_rng_state(state, device):
        calls.append(("set", device, state.tolist()))

    def every_gpu():
        pytest.fail("every GPU's state was saved")

    monkeypatch.setattr(torch.cuda, "get_rng_state", get_rng_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_gpu)
    gpu1 = torch.device("cuda", 1)
    state = rng_state(gpu1)
    assert calls == [("get", gpu1)]
    restore_rng_state(state, gpu1)
    assert calls[-1] == ("set", gpu1, [7] * 8)
    restore_rng_state(state, torch.device("cpu"))  # resumed on a CPU: the GPU state is unused
    assert len(calls) == 2
    assert rng_state(torch.device("cpu"))["cuda"] is None
