"""Transfer learning: a linear probe on frozen features, and fine-tuning with per-layer rates.

A pretrained encoder is reused in one of three ways: *frozen* (only a new linear head is
trained on its features: a linear probe), *partly frozen* (the top stages train as well) or
*unfrozen* (everything trains). Lower stages compute generic features (edges, blobs,
textures) and higher ones task-specific ones, so fine-tuning often gives lower stages smaller
learning rates (*discriminative* rates, Howard & Ruder 2018). :func:`fine_tune_groups`
freezes and builds the optimizer's parameter groups; :func:`features` and
:func:`linear_probe` are the probe. Training goes through :func:`dlcc.train.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dlcc.scratch._checks import integer
from dlcc.train import fit

__all__ = ["set_trainable", "fine_tune_groups", "features", "SampledBatches", "linear_probe"]


def set_trainable(module: nn.Module, trainable: bool) -> nn.Module:
    """Set ``requires_grad`` of every parameter of ``module``; returns ``module``.

    A frozen module's weights get no gradient, but in training mode its BatchNorm layers
    still normalise with each batch's statistics and update their running averages: call
    ``.eval()`` on it after ``model.train()`` to freeze those too.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable must be True or False, got {trainable!r}")
    for p in module.parameters():
        p.requires_grad_(trainable)
    return module


def _rate(name: str, value: object, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 < value <= upper or math.isinf(value):
        bound = "in (0, 1]" if upper == 1 else "> 0 and finite"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def fine_tune_groups(stages: Sequence[nn.Module], head: nn.Module, lr: float, *,
                     trainable: int | None = None, decay: float = 1.0) -> list[dict]:
    """Freeze all but the top ``trainable`` of ``stages`` and return optimizer groups.

    ``stages`` are the encoder's blocks from input to output, ``head`` the new classifier on
    top. ``trainable=0`` freezes the whole encoder (only the head trains), ``None`` (the
    default) trains every stage, and ``0 < trainable < len(stages)`` the top ones only. The
    head learns at ``lr``; the trainable stage just below it at ``lr * decay``, the next at
    ``lr * decay**2``, and so on down. Frozen stages get ``requires_grad=False`` and no group.
    Use ``torch.optim.Adam(fine_tune_groups(...))``.
    """
    if isinstance(stages, nn.Module) or not isinstance(stages, Sequence) or not stages \
            or not all(isinstance(s, nn.Module) for s in stages):
        raise TypeError(f"stages must be a non-empty list of nn.Module blocks (input to "
                        f"output), got {type(stages).__name__}")
    if not isinstance(head, nn.Module):
        raise TypeError(f"head must be a torch.nn.Module, got {type(head).__name__}")
    lr, decay = _rate("lr", lr), _rate("decay", decay, upper=1)
    trainable = len(stages) if trainable is None else integer("trainable", trainable, low=0)
    if trainable > len(stages):
        raise ValueError(f"trainable must be at most the number of stages ({len(stages)}), "
                         f"got {trainable}")
    frozen = len(stages) - trainable
    groups = [{"params": list(set_trainable(head, True).parameters()), "lr": lr}]
    for depth, stage in enumerate(reversed(stages[frozen:]), start=1):
        groups.append({"params": list(set_trainable(stage, True).parameters()),
                       "lr": lr * decay ** depth})
    for stage in stages[:frozen]:
        set_trainable(stage, False)
    return [g for g in groups if g["params"]]


@torch.no_grad()
def features(encoder: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The encoder's outputs for ``x`` in evaluation mode (BatchNorm uses its running
    statistics), computed in batches without gradients; the encoder's mode is restored."""
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    batch_size = integer("batch_size", batch_size)
    was_training = encoder.training
    encoder.eval()
    try:
        return torch.cat([encoder(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        encoder.train(was_training)


class SampledBatches:
    """``batches`` batches per pass of ``batch_size`` examples drawn with replacement from
    the tensors ``x`` and ``y``: a light loader for :func:`dlcc.train.fit`.

    With 10 labelled examples an epoch is one small batch; drawing a fixed number of batches
    instead gives every labelled-set size the same number of optimiser steps. Each pass
    draws new batches from a generator seeded with ``seed``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, batches: int, *,
                 seed: int = 0):
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) \
                or len(x) != len(y) or len(x) == 0:
            got = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                   for t in (x, y)]
            raise ValueError(f"x and y must be non-empty tensors with one row per example, "
                             f"got {got[0]} and {got[1]}")
        self.x, self.y = x, y
        self.batch_size = integer("batch_size", batch_size)
        self.batches = integer("batches", batches)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        for _ in range(self.batches):
            i = torch.randint(len(self.x), (self.batch_size,), generator=self.generator)
            yield self.x[i], self.y[i]


def linear_probe(train_features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                 steps: int = 200, lr: float = 1e-2, weight_decay: float = 1e-3,
                 seed: int = 0) -> nn.Linear:
    """A linear classifier (softmax regression) on fixed ``train_features`` (n, D) and
    integer ``labels`` (n,): the linear probe. ``steps`` full-batch Adam steps through
    :func:`dlcc.train.fit` (the problem is convex, and n is small when labels are few)."""
    if not isinstance(train_features, torch.Tensor) or train_features.ndim != 2:
        got = tuple(train_features.shape) if isinstance(train_features, torch.Tensor) \
            else type(train_features).__name__
        raise ValueError(f"train_features must be a tensor (n, D), got {got}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(train_features),):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor ({len(train_features)},), one per row of "
                         f"train_features, got {got}")
    num_classes = integer("num_classes", num_classes, low=2)
    torch.manual_seed(seed)
    head = nn.Linear(train_features.shape[1], num_classes).to(train_features.device)
    batch = (train_features.detach(), labels.long())
    fit(head, [batch] * integer("steps", steps), loss_fn=F.cross_entropy, epochs=1,
        optimizer=torch.optim.Adam(head.parameters(), _rate("lr", lr),
                                   weight_decay=weight_decay),
        progress="off", device=train_features.device)
    return head.eval()
