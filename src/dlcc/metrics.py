"""Metrics and losses for classification and binary segmentation.

Every metric takes the model's raw outputs (logits) and the targets of one batch and returns
a Python float, the mean over the batch, which is what :func:`dlcc.train.fit` expects in its
``metrics`` dict (chapters "Classification" and "Segmentation with a U-Net").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples whose highest logit is the true class.

    ``logits``: (N, C) class scores; ``y``: (N,) integer labels. With a single output
    column, (N,) or (N, 1), the logits are binary and the prediction is ``logit > 0``.
    """
    if logits.ndim == 2 and logits.shape[1] > 1:
        predicted = logits.argmax(dim=1)
    elif logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        predicted = (logits.reshape(-1) > 0).long()
    else:
        raise ValueError(f"logits must have shape (N, C) or (N,), got {tuple(logits.shape)}")
    if predicted.shape != y.shape:
        raise ValueError(f"logits of shape {tuple(logits.shape)} give {predicted.numel()} "
                         f"predictions but y has shape {tuple(y.shape)}")
    return (predicted == y).float().mean().item()


def _binary_masks(logits: torch.Tensor, masks: torch.Tensor, threshold: float):
    """Predicted and true masks as (N, pixels) floats, one row per image."""
    if logits.shape != masks.shape:
        raise ValueError(f"logits have shape {tuple(logits.shape)} but masks have shape "
                         f"{tuple(masks.shape)}; they must match, e.g. (N, 1, H, W)")
    n = logits.shape[0]
    predicted = (torch.sigmoid(logits.float()) > threshold).float().reshape(n, -1)
    return predicted, masks.float().reshape(n, -1)


def dice(logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5,
         eps: float = 1e-6) -> float:
    """Mean Dice coefficient ``2|P ∩ T| / (|P| + |T|)`` over the images of a batch.

    ``logits``, ``masks``: (N, 1, H, W) or (N, H, W); a pixel is predicted foreground where
    ``sigmoid(logit) > threshold``. ``eps`` makes an image with both masks empty score 1.
    """
    predicted, true = _binary_masks(logits, masks, threshold)
    overlap = (predicted * true).sum(dim=1)
    scores = (2 * overlap + eps) / (predicted.sum(dim=1) + true.sum(dim=1) + eps)
    return scores.mean().item()


def iou(logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5,
        eps: float = 1e-6) -> float:
    """Mean intersection over union ``|P ∩ T| / |P ∪ T|`` (Jaccard index) over the images.

    Shapes and thresholding as in :func:`dice`.
    """
    predicted, true = _binary_masks(logits, masks, threshold)
    overlap = (predicted * true).sum(dim=1)
    union = predicted.sum(dim=1) + true.sum(dim=1) - overlap
    return ((overlap + eps) / (union + eps)).mean().item()


def dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """One minus the soft Dice coefficient, averaged over images: a differentiable loss.

    "Soft" because it uses the probabilities ``sigmoid(logits)`` instead of thresholded
    masks; ``smooth`` keeps the gradient finite on images with little foreground.
    """
    if logits.shape != masks.shape:
        raise ValueError(f"logits have shape {tuple(logits.shape)} but masks have shape "
                         f"{tuple(masks.shape)}")
    n = logits.shape[0]
    p = torch.sigmoid(logits.float()).reshape(n, -1)
    t = masks.float().reshape(n, -1)
    scores = (2 * (p * t).sum(dim=1) + smooth) / (p.sum(dim=1) + t.sum(dim=1) + smooth)
    return 1 - scores.mean()


class DiceBCELoss(nn.Module):
    """Binary cross-entropy plus soft Dice loss, the usual pairing for U-Net segmentation.

    Cross-entropy gives every pixel a gradient from the first step; the Dice term weighs the
    small foreground as much as the large background, so thin objects are not ignored.
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.dice_weight = dice_weight
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits.float(), masks.float())
        return bce + self.dice_weight * dice_loss(logits, masks, self.smooth)
