"""Data-parallel training on several GPUs or machines with ``torch.distributed`` (DDP).

Launch any script that uses these helpers with ``torchrun``, which starts one process per
GPU and tells each its place through environment variables::

    torchrun --nproc_per_node 4 train.py                        # one machine, 4 GPUs
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 \\
        --rdzv_endpoint host0:29500 train.py                    # run on each of 2 machines

Each process holds a full copy of the model and trains on its own shard of every epoch
(``DistributedSampler``); DDP averages the gradients during ``backward`` so the copies stay
identical. :func:`dlcc.train.fit` notices an initialised process group by itself: it sums
its metrics over processes, and only rank 0 prints, logs and writes checkpoints (chapter
"Training on many GPUs").
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler


def is_distributed() -> bool:
    """True when this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's number, 0 to world size - 1 (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """How many processes train together (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the one process that prints, logs and saves."""
    return get_rank() == 0


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` set up and return this process's device.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT``)
    from the environment. The backend is NCCL between GPUs and Gloo on CPUs. Without those
    variables (a plain ``python train.py``) nothing is initialised and the usual single
    device comes back, so one script serves both ways of running.
    """
    if is_distributed():
        return _local_device()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        from dlcc.train.device import get_device  # here: dlcc.train imports this module

        return get_device()
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend, init_method="env://",
                            device_id=_local_device() if backend == "nccl" else None)
    return _local_device()


def _local_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def cleanup() -> None:
    """Leave the process group (call once at the end of a distributed script)."""
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here, e.g. before reading a file rank 0 just wrote."""
    if is_distributed():
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Move ``model`` to ``device`` and wrap it in ``DistributedDataParallel`` when distributed.

    DDP broadcasts rank 0's weights to every process here, so all copies start equal even if
    each process initialised its own randomly.
    """
    device = device or _local_device()
    model = model.to(device)
    if not is_distributed():
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (whose ``state_dict`` keys lack ``module.``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def distributed_sampler(dataset, *, shuffle: bool = True, seed: int = 0):
    """A ``DistributedSampler`` giving this process its shard, or ``None`` when not distributed.

    Pass it as ``sampler=`` to the DataLoader (with ``shuffle=False``: the sampler shuffles).
    ``fit`` calls its ``set_epoch`` so every epoch has a new order. The sampler pads the
    dataset with repeats to a multiple of the world size, so each process gets equal work.
    """
    if not is_distributed():
        return None
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` elementwise over all processes (in place; unchanged when alone)."""
    if is_distributed():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
