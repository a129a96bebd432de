"""Data-parallel training on several GPUs or machines with ``torch.distributed`` (DDP).

Launch any script that uses these helpers with ``torchrun``, which starts one process per
GPU and tells each its place through environment variables::

    torchrun --nproc_per_node 4 train.py                        # one machine, 4 GPUs
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 4 \\
        --rdzv_endpoint host0:29500 train.py                    # run on each of 2 machines

Each process holds a full copy of the model and trains on its own shard of every epoch
(``DistributedSampler``); DDP averages the gradients during ``backward`` so the copies stay
identical. :func:`dlcc.train.fit` notices an initialised process group by itself: it sums
its metrics over processes, and only rank 0 prints, logs and writes checkpoints.
"""

from __future__ import annotations

import io
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from dlcc.train.device import get_device


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


def local_device(prefer: str | torch.device | None = "auto") -> torch.device:
    """The device of this ``torchrun`` process: GPU ``LOCAL_RANK``, or the CPU.

    ``prefer`` is ``"auto"`` (a GPU if there is one), ``"cuda"`` or ``"cpu"``. A device with
    an index (``"cuda:1"``) is refused: under ``torchrun`` every process takes its own GPU, so
    one name cannot be right for all of them.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    name = "auto" if prefer is None else str(prefer)
    if ":" in name:
        raise ValueError(f"device {name!r} names one GPU, but under torchrun process k uses "
                         "cuda:k (its LOCAL_RANK); pass 'cuda', 'cpu' or 'auto'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cuda":
        return get_device(name)
    if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise ValueError(f"process with LOCAL_RANK {local_rank} has no GPU: this machine has "
                         f"{count}; start at most {count} processes per machine "
                         f"(torchrun --nproc_per_node {count}) or pass device 'cpu'")
    return torch.device("cuda", local_rank)


def init_distributed(device: str | torch.device | None = "auto",
                     backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` set up and return this process's device.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT``)
    from the environment; the device follows :func:`local_device`. The backend is NCCL
    between GPUs and Gloo on CPUs. Without those variables (a plain ``python train.py``)
    nothing is initialised and ``get_device(device)`` comes back, so one script serves both
    ways of running.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return get_device(device)
    this = local_device(device)
    if is_distributed():
        return this
    if this.type == "cuda":
        torch.cuda.set_device(this)
    backend = backend or ("nccl" if this.type == "cuda" else "gloo")
    dist.init_process_group(backend=backend, init_method="env://",
                            device_id=this if backend == "nccl" else None)
    return this


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
    device = device or local_device()
    model = model.to(device)
    if not is_distributed():
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (whose ``state_dict`` keys lack ``module.``)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def distributed_sampler(dataset, *, shuffle: bool = True, seed: int = 0):
    """A training ``DistributedSampler`` giving this process its shard, or ``None`` alone.

    Pass it as ``sampler=`` to the DataLoader (with ``shuffle=False``: the sampler shuffles).
    ``fit`` calls its ``set_epoch`` so every epoch has a new order. The sampler pads the
    dataset with repeats to a multiple of the world size, so every process takes the same
    number of steps, as DDP's gradient averaging needs. For evaluation use
    :func:`shard_sampler`, which does not pad.
    """
    if not is_distributed():
        return None
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed)


def shard_sampler(dataset):
    """An evaluation sampler: this process's share of ``dataset``, ``None`` when alone.

    Shards differ in size by at most one and together hold every sample exactly once, so
    means summed over processes count no sample twice (a ``DistributedSampler`` pads with
    repeats, which would weigh some validation samples double).
    """
    if not is_distributed():
        return None
    return range(get_rank(), len(dataset), get_world_size())  # a range serves as a sampler


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` elementwise over all processes (in place; unchanged when alone)."""
    if is_distributed():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def _to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# The objects travel as torch.save bytes: pickling tensors inside broadcast_object_list's
# own pickle fails on some storages, and weights_only=True unpickles nothing but data.


def broadcast(obj):
    """Rank 0's ``obj`` (tensors, numbers, strings, containers) on every process."""
    if not is_distributed():
        return obj
    box = [_to_bytes(obj) if is_main_process() else None]
    dist.broadcast_object_list(box, src=0)
    return _from_bytes(box[0])


def all_gather(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` when alone)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * get_world_size()
    dist.all_gather_object(gathered, _to_bytes(obj))
    return [_from_bytes(data) for data in gathered]
