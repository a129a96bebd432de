"""The multilayer perceptron: the network of Part 1, now in PyTorch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import positive_int

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module from its name (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Fully connected network ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    The input is flattened first, so images (N, C, H, W) work as well as vectors (N, D), with
    ``D = C*H*W == sizes[0]``. Every hidden layer is Linear -> activation -> Dropout; the last
    layer is Linear alone and returns logits (N, sizes[-1]).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output size, "
                             f"e.g. [784, 128, 10]; got {sizes!r}")
        for s in sizes:
            positive_int("every entry of sizes", s)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        activation_layer(activation)  # fail early on a bad name, even with no hidden layer

        self.sizes = tuple(sizes)
        layers: list[nn.Module] = [nn.Flatten()]
        for d_in, d_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            layers += [nn.Linear(d_in, d_out), activation_layer(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2:
            raise ValueError(f"x must have shape (N, D) or (N, C, H, W); got {tuple(x.shape)}")
        features = x[0].numel()
        if features != self.sizes[0]:
            raise ValueError(f"x has {features} features per example (shape {tuple(x.shape)}) "
                             f"but the MLP expects {self.sizes[0]}")
        return self.net(x)
