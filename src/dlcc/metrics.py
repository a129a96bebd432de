"""Metrics and losses for classification and binary segmentation.

Every metric takes the model's raw outputs (logits) and the targets of one batch and returns
a Python float, the mean over the batch, which is what :func:`dlcc.train.fit` expects in its
``metrics`` dict (Assignments 2 and 3 use them).
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


def _binary_masks(outputs: torch.Tensor, masks: torch.Tensor, threshold: float):
    """Predicted and true masks as (N, pixels) floats, one row per image."""
    if not isinstance(outputs, torch.Tensor) or not isinstance(masks, torch.Tensor):
        raise TypeError(f"outputs and masks must be tensors, got {type(outputs).__name__} "
                        f"and {type(masks).__name__}")
    if outputs.shape != masks.shape:
        raise ValueError(f"outputs have shape {tuple(outputs.shape)} but masks have shape "
                         f"{tuple(masks.shape)}; they must match, e.g. (N, 1, H, W)")
    n = outputs.shape[0]
    if outputs.dtype == torch.bool:
        predicted = outputs
    else:
        predicted = torch.sigmoid(outputs.float()) > threshold
    return predicted.float().reshape(n, -1), masks.float().reshape(n, -1)


def dice(outputs: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5,
         eps: float = 1e-6) -> float:
    """Mean Dice coefficient ``2|P ∩ T| / (|P| + |T|)`` over the images of a batch.

    The one contract of every segmentation score here (:func:`iou`, :func:`precision`,
    :func:`recall` too): ``outputs`` are a model's logits (N, 1, H, W) or (N, H, W), and a
    pixel is predicted foreground where ``sigmoid(logit) > threshold`` (for the default 0.5,
    where the logit is positive); a boolean tensor of that shape is a predicted mask, used as
    it is (for masks from a classical method). ``masks`` hold the true masks in {0, 1}.
    ``eps`` makes an image with both masks empty score 1.
    """
    predicted, true = _binary_masks(outputs, masks, threshold)
    overlap = (predicted * true).sum(dim=1)
    scores = (2 * overlap + eps) / (predicted.sum(dim=1) + true.sum(dim=1) + eps)
    return scores.mean().item()


def iou(outputs: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5,
        eps: float = 1e-6) -> float:
    """Mean intersection over union ``|P ∩ T| / |P ∪ T|`` (Jaccard index) over the images.

    Arguments as in :func:`dice`.
    """
    predicted, true = _binary_masks(outputs, masks, threshold)
    overlap = (predicted * true).sum(dim=1)
    union = predicted.sum(dim=1) + true.sum(dim=1) - overlap
    return ((overlap + eps) / (union + eps)).mean().item()


def precision(outputs: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5,
              eps: float = 1e-6) -> float:
    """Mean over images of ``|P ∩ T| / |P|``: the fraction of predicted foreground that is
    true foreground (1 when nothing is predicted). Arguments as in :func:`dice`."""
    predicted, true = _binary_masks(outputs, masks, threshold)
    overlap = (predicted * true).sum(dim=1)
    return ((overlap + eps) / (predicted.sum(dim=1) + eps)).mean().item()


def recall(outputs: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5,
           eps: float = 1e-6) -> float:
    """Mean over images of ``|P ∩ T| / |T|``: the fraction of true foreground that is found
    (1 when there is none). Arguments as in :func:`dice`."""
    predicted, true = _binary_masks(outputs, masks, threshold)
    overlap = (predicted * true).sum(dim=1)
    return ((overlap + eps) / (true.sum(dim=1) + eps)).mean().item()


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
