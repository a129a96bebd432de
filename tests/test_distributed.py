"""dlcc.train.distributed and fit with DDP: two CPU processes with the Gloo backend.

Each process gets the environment variables torchrun would set and then runs the code a
user's training script would: ``init_distributed``, ``wrap_model``, a ``DistributedSampler``
and an unchanged ``fit``.
"""

import importlib
import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcc.metrics import accuracy
from dlcc.train import distributed, fit, load_checkpoint

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
