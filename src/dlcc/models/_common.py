"""Helpers shared by the models: input checks, weight initialisation, parameter counting."""

from __future__ import annotations

import torch
from torch import nn

from dlcc.scratch._checks import integer as positive_int  # one check for both halves


def check_images(x: object, in_channels: int) -> torch.Tensor:
    """Return ``x`` if it is a float tensor of shape (N, in_channels, H, W), else raise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W); got {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"x has {x.shape[1]} channels but the model expects {in_channels}")
    return x


def check_widths(name: str, value: object) -> tuple[int, ...]:
    """A non-empty sequence of positive ints (channel widths, one per stage)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, "
                         f"got {value!r}")
    return tuple(positive_int(f"every entry of {name}", w) for w in value)


def init_weights(model: nn.Module) -> None:
    """He init for convs, Xavier for linear layers, BatchNorm as the identity; biases 0.

    He et al. (2015) keep the variance of ReLU activations constant from layer to layer;
    ``fan_out`` keeps it constant for the gradients in the backward pass instead, the choice of
    the ResNet paper. Xavier suits the linear head, which is not followed by a ReLU.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
