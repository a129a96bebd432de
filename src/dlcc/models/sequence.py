"""Sequence models of Lecture 9: a recurrent network (RNN, LSTM or GRU) and a 1-D CNN.

Both read x of shape (N, T, D) (N sequences of T steps with D features each) and return
(N, num_outputs) from the end of the sequence: logits for classification, or the forecast for
next-step regression; the loss decides which. ``all_steps=True`` returns (N, T, num_outputs),
a prediction after every step, for sequence-to-sequence training.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import positive_int


def check_sequences(x: object, in_features: int) -> torch.Tensor:
    """Return ``x`` if it is a float tensor (N, T, in_features) with T >= 1, else raise."""
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"x must be a floating-point torch.Tensor, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != 3 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (N, T, D) with T >= 1; got {tuple(x.shape)}")
    if x.shape[2] != in_features:
        raise ValueError(f"x has {x.shape[2]} features per step but the model expects "
                         f"{in_features}")
    return x


class RecurrentNet(nn.Module):
    """A recurrent network (``cell`` = "rnn" (tanh), "lstm" or "gru") and a linear head.

    ``num_layers`` cells are stacked; the head reads the top layer's hidden state.
    """

    CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

    def __init__(self, in_features: int, num_outputs: int, hidden: int = 64, *,
                 cell: str = "lstm", num_layers: int = 1):
        super().__init__()
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {', '.join(self.CELLS)}, got {cell!r}")
        self.in_features = positive_int("in_features", in_features)
        for name, value in (("num_outputs", num_outputs), ("hidden", hidden),
                            ("num_layers", num_layers)):
            positive_int(name, value)
        self.cell = cell
        self.rnn = self.CELLS[cell](in_features, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        h, _ = self.rnn(check_sequences(x, self.in_features))
        return self.head(h if all_steps else h[:, -1])


class Conv1dNet(nn.Module):
    """A causal 1-D CNN: ``len(dilations)`` convolutions of width ``kernel_size`` with growing
    dilation, ReLU between them, padded on the left so that the output at step t sees only
    steps <= t. The receptive field is 1 + (kernel_size - 1) * sum(dilations) steps.

    ``pool="last"`` classifies from the last step's features (forecasting); ``pool="max"``
    takes each channel's maximum over time, so a pattern counts wherever it occurs (motif
    detection).
    """

    def __init__(self, in_features: int, num_outputs: int, channels: int = 32, *,
                 kernel_size: int = 5, dilations: tuple[int, ...] = (1, 2, 4),
                 pool: str = "last"):
        super().__init__()
        self.in_features = positive_int("in_features", in_features)
        for name, value in (("num_outputs", num_outputs), ("channels", channels),
                            ("kernel_size", kernel_size)):
            positive_int(name, value)
        if not dilations:
            raise ValueError("dilations must name at least one convolution")
        if pool not in ("last", "max"):
            raise ValueError(f"pool must be 'last' or 'max', got {pool!r}")
        self.pool = pool
        layers: list[nn.Module] = []
        c = in_features
        for d in dilations:
            positive_int("every dilation", d)
            layers += [nn.ConstantPad1d(((kernel_size - 1) * d, 0), 0.0),
                       nn.Conv1d(c, channels, kernel_size, dilation=d), nn.ReLU()]
            c = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_outputs)
        self.receptive_field = 1 + (kernel_size - 1) * sum(dilations)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        h = self.features(check_sequences(x, self.in_features).transpose(1, 2)).transpose(1, 2)
        if all_steps:
            return self.head(h)
        return self.head(h.amax(dim=1) if self.pool == "max" else h[:, -1])
