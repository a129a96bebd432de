"""Checkpoints: one dict of ``state_dict``s, counters, RNG states and config, saved atomically.

Everything in a checkpoint is a tensor, a number, a string or a list/dict/tuple of them, so
:func:`load_checkpoint` can use ``torch.load(weights_only=True)``, which never runs code from
the file.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` so that a crash at any moment leaves the old file intact.

    The bytes go to a temporary file in the same directory, are flushed to disk, and only
    then renamed over ``path``; a rename within one file system is atomic, so a reader sees
    either the complete old checkpoint or the complete new one, never half of each.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600); "x" mode honours the umask.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "xb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable on POSIX; Windows cannot open a directory, so skip."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; ``FileNotFoundError`` names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state(device: torch.device, generators: list[torch.Generator] = ()) -> dict[str, Any]:
    """This process's random states as checkpointable data.

    Python's, numpy's and torch's CPU generators, the generator of ``device`` if it is a GPU
    (this process's own GPU only: under DDP each rank saves its own), and ``generators``
    (those a DataLoader shuffles and seeds its workers with, see :func:`loader_generators`).
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.copy()), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "loader": [g.get_state() for g in generators],
    }


def set_rng_state(state: dict[str, Any], device: torch.device,
                  generators: list[torch.Generator] = ()) -> None:
    """Restore what :func:`rng_state` captured (the GPU state onto ``device``)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    # strict=False: a loader rebuilt without a generator simply reshuffles from global RNG.
    for generator, saved in zip(generators, state["loader"], strict=False):
        generator.set_state(saved)


def loader_generators(loader) -> list[torch.Generator]:
    """The ``torch.Generator``s a DataLoader shuffles with (its own and its sampler's).

    A DataLoader built with ``generator=`` draws each epoch's order, and the seeds of its
    worker processes, from that generator, so an exact resume puts its state back too.
    """
    found = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found
