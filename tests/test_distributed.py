"""dlcc.train.distributed and fit with DDP: two CPU processes with the Gloo backend.

Each process gets the environment variables torchrun would set and then runs the code a
user's training script would: ``init_distributed``, ``wrap_model``, a ``DistributedSampler``
and an unchanged ``fit``.
"""

import importlib
import json
import math
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcc.metrics import accuracy
from dlcc.train import NonFiniteLossError, distributed, fit, load_checkpoint

EPOCHS, BATCH = 4, 16  # per process; the single-process run uses 2 * BATCH


def dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    return TensorDataset(x[:192], y[:192]), TensorDataset(x[192:], y[192:])


def model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 2))


def test_helpers_without_a_process_group():
    assert not distributed.is_distributed()
    assert (distributed.get_rank(), distributed.get_world_size()) == (0, 1)
    assert distributed.is_main_process()
    assert distributed.init_distributed() == distributed.init_distributed()  # no env: no group
    plain = nn.Linear(2, 2)
    assert distributed.wrap_model(plain, torch.device("cpu")) is plain
    assert distributed.unwrap_model(plain) is plain
    assert distributed.distributed_sampler(dataset()[0]) is None
    assert distributed.shard_sampler(dataset()[0]) is None
    assert torch.equal(distributed.all_reduce_sum(torch.ones(2)), torch.ones(2))
    distributed.barrier()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, out: Path, port: int) -> None:
    """One of the two processes: the environment torchrun would set, then a normal script."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool
    device = distributed.init_distributed()
    assert distributed.get_world_size() == 2 and distributed.is_main_process() == (rank == 0)
    train, val = dataset()
    # Different seeds per rank on purpose: DDP must broadcast rank 0's initial weights.
    net = distributed.wrap_model(model(seed=rank), device)
    sampler = distributed.distributed_sampler(train, shuffle=True, seed=0)
    history = fit(net, DataLoader(train, batch_size=BATCH, sampler=sampler),
                  DataLoader(val, batch_size=32,
                             sampler=distributed.shard_sampler(val)),
                  loss_fn=F.cross_entropy, optimizer=torch.optim.SGD(net.parameters(), lr=0.2),
                  epochs=EPOCHS, metrics={"accuracy": accuracy}, device=device,
                  checkpoint_dir=out / "run", progress="epoch")
    torch.save(distributed.unwrap_model(net).state_dict(), out / f"rank{rank}.pt")
    (out / f"history{rank}.json").write_text(json.dumps(history.epochs))
    distributed.cleanup()


def test_two_processes_train_like_one(tmp_path, capfd):
    # fork, not spawn: the children start with torch already imported, in milliseconds.
    # DDP's constructor imports torch._dynamo (seconds); import it once, before the fork.
    importlib.import_module("torch._dynamo")
    mp.start_processes(worker, args=(tmp_path, free_port()), nprocs=2, start_method="fork")

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between ranks"
    histories = [json.loads((tmp_path / f"history{r}.json").read_text()) for r in (0, 1)]
    losses = [[r["train_loss"] for r in h] for h in histories]
    assert losses[0] == losses[1]  # metrics are reduced over both processes

    # Only rank 0 prints and writes: one line per epoch, one checkpoint, one CSV.
    assert capfd.readouterr().out.count("epoch 1/") == 1
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == EPOCHS
    assert len((tmp_path / "run" / "metrics.csv").read_text().splitlines()) == 1 + EPOCHS

    train, val = dataset()
    single = model(seed=0)
    history = fit(single, DataLoader(train, batch_size=2 * BATCH, shuffle=True,
                                     generator=torch.Generator().manual_seed(0)),
                  DataLoader(val, batch_size=64), loss_fn=F.cross_entropy, epochs=EPOCHS,
                  optimizer=torch.optim.SGD(single.parameters(), lr=0.2), progress="off")
    ddp_loss, single_loss = losses[0], history.column("train_loss")
    assert ddp_loss[-1] < 0.6 * ddp_loss[0]
    assert 0.7 < ddp_loss[-1] / single_loss[-1] < 1.4
    assert histories[0][-1]["val_accuracy"] > 0.85


# Scenarios of issue 23, each run by two processes in one process group.

def run_two(scenario, tmp_path, *args):
    importlib.import_module("torch._dynamo")
    mp.start_processes(_scenario_worker, args=(scenario, tmp_path, free_port(), args), nprocs=2,
                       start_method="fork")
    return [json.loads((tmp_path / f"result{r}.json").read_text()) for r in (0, 1)]


def _scenario_worker(rank, scenario, out, port, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init_distributed("cpu")
    try:
        result = scenario(rank, out, *args)
    finally:
        distributed.cleanup()
    (out / f"result{rank}.json").write_text(json.dumps(result))


def ddp_fit(rank, epochs, checkpoint_dir=None, resume=False, loss_fn=F.cross_entropy,
            amp="off", val_size=63):
    torch.manual_seed(rank)  # different per process: DDP sends rank 0's weights
    train, val = dataset()
    val = TensorDataset(*val[:val_size])
    net = distributed.wrap_model(model(seed=0), torch.device("cpu"))
    sampler = distributed.distributed_sampler(train, shuffle=True, seed=0)
    history = fit(net, DataLoader(train, batch_size=BATCH, sampler=sampler),
                  DataLoader(val, batch_size=16, sampler=distributed.shard_sampler(val)),
                  loss_fn=loss_fn, optimizer=torch.optim.SGD(net.parameters(), lr=0.2),
                  epochs=epochs, metrics={"accuracy": accuracy}, device="cpu", amp=amp,
                  checkpoint_dir=checkpoint_dir, resume=resume, progress="off")
    weights = [p.tolist() for p in distributed.unwrap_model(net).state_dict().values()]
    return history.epochs, weights


def without_time(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")}
            for r in records]


def interrupt_at(step, error):
    calls = []

    def loss_fn(outputs, targets):
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == step:
                raise error
        return F.cross_entropy(outputs, targets)

    return loss_fn


class Clock:
    """A perf_counter that advances one second per call: fit's epoch takes 1 s to train."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def resume_scenario(rank, out):
    from dlcc.train import loop

    real_time, loop.time = loop.time, Clock()
    try:
        straight, straight_weights = ddp_fit(rank, 4)
    finally:
        loop.time = real_time
    # Ctrl-C in epoch 3 on every process (6 steps per epoch), then a resume in which rank
    # 1 looks into a directory without last.pt, as a second machine without a shared disk.
    own = out / f"rank{rank}"
    stopped, _ = ddp_fit(rank, 4, own, loss_fn=interrupt_at(2 * 6 + 3, KeyboardInterrupt))
    resumed, resumed_weights = ddp_fit(rank, 4, own, resume=True)
    return {"straight": straight, "stopped": len(stopped), "resumed": resumed,
            "same": resumed_weights == straight_weights, "weights": straight_weights}


def test_two_processes_resume_from_rank_0_after_ctrl_c(tmp_path):
    results = run_two(resume_scenario, tmp_path)
    assert not (tmp_path / "rank1" / "last.pt").exists()  # rank 1 never had a checkpoint
    for result in results:
        assert result["stopped"] == 2 and result["same"]
        assert without_time(result["resumed"]) == without_time(result["straight"])
    assert results[0]["weights"] == results[1]["weights"]
    # samples_per_s counts both processes' samples: 192 in the epoch's (fake) second.
    assert [r["samples_per_s"] for r in results[0]["straight"]] == [192.0] * 4
    # Validation counts each of the 63 samples once (a padded sampler would count 64).
    net = model(seed=0)
    for p, w in zip(net.parameters(), results[0]["weights"], strict=True):
        p.data = torch.tensor(w)
    x, y = dataset()[1][:63]
    expected = accuracy(net(x), y)
    assert abs(results[0]["straight"][-1]["val_accuracy"] - expected) < 1e-6


def overflow_scenario(rank, out, single_dir):
    result = {}
    once = []

    def inf_once_on_rank_1(outputs, targets):
        loss = F.cross_entropy(outputs, targets)
        if rank == 1 and torch.is_grad_enabled() and not once:
            once.append(1)
            return loss * float("inf")
        return loss

    history, weights = ddp_fit(rank, 2, amp="fp16", loss_fn=inf_once_on_rank_1)
    result["skipped"] = {"epochs": len(history), "weights": weights}

    def nan_on_rank_1_from_step_3(outputs, targets):
        loss = F.cross_entropy(outputs, targets)
        if rank == 1 and torch.is_grad_enabled():
            once.append(1)
            if len(once) >= 3 + 1:
                return loss * float("nan")
        return loss

    try:
        ddp_fit(rank, 8, amp="fp16", loss_fn=nan_on_rank_1_from_step_3)
    except NonFiniteLossError as error:
        result["diverged"] = str(error)
    try:
        ddp_fit(rank, 2, single_dir, resume=True)
    except ValueError as error:
        result["mismatch"] = str(error)
    return result


def test_two_processes_skip_fp16_overflows_agree_on_divergence_and_refuse_a_mismatch(
        tmp_path):
    train, _ = dataset()
    single = model(seed=0)
    fit(single, DataLoader(train, batch_size=BATCH, shuffle=True), loss_fn=F.cross_entropy,
        optimizer=torch.optim.SGD(single.parameters(), lr=0.2), epochs=1,
        checkpoint_dir=tmp_path / "single", progress="off")
    results = run_two(overflow_scenario, tmp_path, tmp_path / "single")
    # One overflowing step on rank 1 is skipped by both scalers; training goes on.
    skipped = [r["skipped"] for r in results]
    assert [s["epochs"] for s in skipped] == [2, 2] and skipped[0] == skipped[1]
    assert all(math.isfinite(w) for p in skipped[0]["weights"] for w in torch.tensor(p).flatten())
    # A NaN that stays: both processes stop together, after FP16_SKIP_LIMIT steps in a row.
    assert results[1]["diverged"].startswith("loss is nan at epoch 5, step 27")
    assert results[0]["diverged"].startswith("another rank's loss is not finite at epoch 5, "
                                             "step 27")
    assert "25 float16 steps in a row" in results[0]["diverged"]
    for result in results:
        assert result["mismatch"].endswith(
            "was written by 1 process(es) taking 12 steps per epoch; this run has 2 taking 6: "
            "resume with the same number of processes and batch size, or use a new "
            "checkpoint_dir")
