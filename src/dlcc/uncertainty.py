"""Predictive uncertainty from several predictions: deep ensembles and Monte Carlo dropout.

Both give S samples of the class probabilities for the same inputs, stacked as (S, N, K, ...):
:func:`ensemble` from S independently trained models (Lakshminarayanan et al. 2017),
:func:`mc_dropout` from one model run S times with its dropout layers left on (Gal and
Ghahramani 2016). :func:`summarise` turns the samples into the predictive mean, its entropy
(total uncertainty), the mutual information between prediction and model (the part that
comes from disagreement between the samples) and the variance of the probabilities.

Logits with one channel are a binary problem: :func:`probabilities` turns them into two
channels, (1 - p, p), so that everything downstream treats both cases alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from dlcc.scratch._checks import integer


class Predictive(NamedTuple):
    """``mean`` (N, K, ...) probabilities; ``entropy``, ``mutual_information`` and
    ``variance`` (N, ...), in nats for the first two; variance summed over classes."""

    mean: torch.Tensor
    entropy: torch.Tensor
    mutual_information: torch.Tensor
    variance: torch.Tensor


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax along dimension 1; one channel (a binary logit) becomes (1 - p, p)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim < 2:
        got = (f"a {logits.ndim}-D {logits.dtype} tensor" if isinstance(logits, torch.Tensor)
               else type(logits).__name__)
        raise ValueError(f"logits must be a floating-point tensor (N, K, ...), got {got}")
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def _entropy(p: torch.Tensor, dim: int) -> torch.Tensor:
    return -(p * p.clamp(min=1e-12).log()).sum(dim)


def summarise(samples: torch.Tensor) -> Predictive:
    """Predictive mean and uncertainties of probability samples (S, N, K, ...).

    entropy H[mean] is the total uncertainty; mutual information H[mean] - mean_s H[p_s] is
    the epistemic part (zero when all samples agree); variance is sum_k Var_s p_sk.
    """
    if not isinstance(samples, torch.Tensor) or samples.ndim < 3:
        got = (f"shape {tuple(samples.shape)}" if isinstance(samples, torch.Tensor)
               else type(samples).__name__)
        raise ValueError(f"samples must be a tensor (S, N, K, ...) of probabilities, got {got}")
    mean = samples.mean(0)
    entropy = _entropy(mean, 1)
    expected = _entropy(samples, 2).mean(0)
    variance = samples.var(0, unbiased=False).sum(1)
    return Predictive(mean, entropy, (entropy - expected).clamp(min=0), variance)


@torch.no_grad()
def ensemble(models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Probabilities (S, N, K, ...) of ``x`` under each of the S models, each in eval mode
    for the call and left in the mode it was in."""
    models = [] if isinstance(models, nn.Module) else list(models)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError(f"models must be a non-empty sequence of torch.nn.Module, "
                         f"got {type(models).__name__}")
    out = []
    for model in models:
        was_training = model.training
        model.eval()
        try:
            out.append(probabilities(model(x)))
        finally:
            model.train(was_training)
    return torch.stack(out)


@torch.no_grad()
def mc_dropout(model: nn.Module, x: torch.Tensor, samples: int = 20) -> torch.Tensor:
    """Probabilities (S, N, K, ...) of ``x`` from ``samples`` forward passes with dropout on.

    Only the dropout layers are switched to training mode; batch-norm keeps its running
    statistics. Every module is left in the mode it was in. The masks come from torch's
    global generator: seed it (``torch.manual_seed``) for repeatable samples.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    integer("samples", samples, 1)
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not dropouts:
        raise ValueError("model has no dropout layers, so MC dropout would repeat one "
                         "prediction; use a model with nn.Dropout or an ensemble")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for m in dropouts:
        m.train()
    try:
        return torch.stack([probabilities(model(x)) for _ in range(samples)])
    finally:
        for m, mode in modes.items():
            m.training = mode
