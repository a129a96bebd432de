"""Where training runs and in what precision: device choice, seeding, autocast.

The rules live here once so that ``fit``, ``evaluate``, the command line and the book agree
on them (setup guides "Your own Ubuntu GPU machine" and "NHLBI Linux GPU server").
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch

AMP_MODES = ("auto", "off", "bf16", "fp16")


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA, else Apple MPS, else CPU.

    ``prefer`` is anything ``torch.device`` accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"``) or ``"auto"``. Asking for a device that this machine lacks raises
    ``ValueError`` rather than failing later inside the first ``.to(device)``.
    """
    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            # An explicit index: under torchrun each process has set its own current device.
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {prefer!r} is not a device name such as 'cpu' or "
                         f"'cuda:0' ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for but CUDA is not available "
                             f"(torch {torch.__version__}, CUDA build "
                             f"{torch.version.cuda or 'none'}); use 'cpu' or 'auto'")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        elif device.index >= torch.cuda.device_count():
            raise ValueError(f"device {prefer!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                       and torch.backends.mps.is_available()):
        raise ValueError(f"device {prefer!r} was asked for but Apple MPS is not available")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every GPU).

    Library code takes explicit generators; this is for the global state that dropout,
    weight initialisation and shuffling without a generator draw from.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def native_bf16(device: torch.device) -> bool:
    """True when the GPU ``device`` computes in bfloat16 natively (compute capability 8.0+).

    ``torch.cuda.is_bf16_supported()`` also says yes on older GPUs (T4, V100, RTX 20xx) that
    only emulate bfloat16, slower than float32; and it asks about the current device, not
    necessarily ``device``.
    """
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_amp(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or ``None`` for full float32.

    ``"auto"`` turns mixed precision on for CUDA only: bfloat16 where ``device`` computes it
    natively (Ampere and later, :func:`native_bf16`), otherwise float16 with a gradient
    scaler. On a CPU autocast rarely pays, but ``"bf16"`` and ``"fp16"`` run it anyway so
    both paths can be tried and tested anywhere.
    """
    if amp is True:
        amp = "auto"
    if amp is None or amp is False:
        amp = "off"
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` for ``dtype``, or a do-nothing context for float32."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
