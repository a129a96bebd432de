"""Calibration: does a predicted probability of 0.8 come true 80 % of the time?

Predictions are class probabilities ``probs`` of shape (N, K, ...) with labels (N, ...), the
class along dimension 1 as PyTorch's losses have it: (N, K) for a classifier, (N, K, H, W)
for a segmentation network, every pixel one prediction. A single channel (K = 1) is the
probability of the positive class of a binary problem.

The **confidence** of a prediction is the probability of its predicted class (the largest).
:func:`reliability` sorts predictions into ``bins`` equal-width bins of confidence on [0, 1]
(bin ``b`` holds confidences in ``(b / bins, (b + 1) / bins]``, the first also 0) and returns
each bin's mean confidence, accuracy and count; :func:`expected_calibration_error` is the
count-weighted mean gap between the two (Naeini et al. 2015; Guo et al. 2017).
:func:`fit_temperature` fits the one parameter of temperature scaling (Guo et al. 2017) by
minimising the negative log-likelihood of held-out logits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from dlcc.scratch._checks import integer


class Reliability(NamedTuple):
    """Per-bin calibration data: ``edges`` (bins + 1,), and per bin ``confidence`` (mean
    confidence, NaN when empty), ``accuracy`` (fraction correct, NaN when empty), ``count``."""

    edges: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor
    count: torch.Tensor


def _flat(name: str, values: torch.Tensor, labels: torch.Tensor) -> tuple:
    """(N, K, ...) and (N, ...) -> (M, K) and (M,), one row per prediction."""
    if not isinstance(values, torch.Tensor) or not values.is_floating_point() or values.ndim < 2:
        got = (f"a {values.ndim}-D {values.dtype} tensor" if isinstance(values, torch.Tensor)
               else type(values).__name__)
        raise ValueError(f"{name} must be a floating-point tensor (N, K, ...) with classes "
                         f"along dimension 1, got {got}")
    expected = values.shape[:1] + values.shape[2:]
    if not isinstance(labels, torch.Tensor) or labels.shape != expected:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor of shape {tuple(expected)} (one label per "
                         f"prediction of {name}), got {got}")
    k = values.shape[1]
    labels = labels.reshape(-1)
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise ValueError("labels must hold class indices (whole numbers), got fractions")
        labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= max(k, 2)):
        raise ValueError(f"labels must be class indices in [0, {max(k, 2)}), got values from "
                         f"{labels.min().item()} to {labels.max().item()}")
    return values.movedim(1, -1).reshape(-1, k), labels


def _two_columns(probs: torch.Tensor) -> torch.Tensor:
    """A binary problem's (M, 1) probabilities of class 1 as (M, 2)."""
    return torch.cat([1 - probs, probs], dim=1) if probs.shape[1] == 1 else probs


def reliability(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> Reliability:
    """Mean confidence, accuracy and count of the predictions in each confidence bin."""
    integer("bins", bins, 1)
    probs, labels = _flat("probs", probs, labels)
    if probs.numel() and (probs.min() < 0 or probs.max() > 1):
        raise ValueError(f"probs must lie in [0, 1], got values from {probs.min().item():.3g} "
                         f"to {probs.max().item():.3g}")
    confidence, predicted = _two_columns(probs.double()).max(dim=1)
    correct = (predicted == labels).double()
    # bin b holds (b / bins, (b + 1) / bins]; a confidence of exactly 0 goes to the first
    which = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    count = torch.bincount(which, minlength=bins)
    total_conf = torch.bincount(which, weights=confidence, minlength=bins)
    total_correct = torch.bincount(which, weights=correct, minlength=bins)
    empty = count == 0
    mean_conf = (total_conf / count.clamp(min=1)).masked_fill(empty, float("nan"))
    accuracy = (total_correct / count.clamp(min=1)).masked_fill(empty, float("nan"))
    return Reliability(torch.linspace(0, 1, bins + 1, dtype=torch.float64), mean_conf,
                       accuracy, count)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor,
                               bins: int = 15) -> float:
    """ECE = sum over bins of (count / total) * |accuracy - mean confidence|, in [0, 1].

    Equal-width bins as in :func:`reliability` (15 by default, as in Guo et al. 2017). A
    perfectly calibrated predictor scores 0 up to sampling noise and the spread of
    confidences within a bin.
    """
    r = reliability(probs, labels, bins)
    total = r.count.sum()
    if total == 0:
        raise ValueError("probs holds no predictions")
    gaps = (r.accuracy - r.confidence).abs().nan_to_num(0.0)
    return float((r.count / total * gaps).sum())


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean NLL of the labels: cross-entropy for K >= 2 channels, binary for one channel."""
    logits, labels = _flat("logits", logits, labels)
    return float(_nll(logits.double(), labels))


def _nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype))
    return F.cross_entropy(logits, labels)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits / T)`` (or, for one
    channel, ``sigmoid(logits / T)``) on held-out data.

    Dividing all logits by one T never changes which class is largest, so accuracy is
    unchanged; T > 1 softens an over-confident model, T < 1 sharpens an under-confident one.
    The NLL is convex in 1 / T; we minimise over log T with L-BFGS in float64.
    """
    logits, labels = _flat("logits", logits, labels)
    logits = logits.detach().double()
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = _nll(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())
