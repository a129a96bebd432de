"""dlcc.metrics against values worked out by hand."""

import math

import pytest
import torch

from dlcc.metrics import DiceBCELoss, accuracy, dice, dice_loss, iou

BIG = 8.0  # sigmoid(8) > 0.999: a confident foreground logit


def two_images():
    """Image 0: prediction 3 pixels, truth 2, overlap 2. Image 1: both empty."""
    logits = torch.tensor([[[[BIG, -BIG], [BIG, BIG]]], [[[-BIG, -BIG], [-BIG, -BIG]]]])
    masks = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    return logits, masks


def test_accuracy_multiclass():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, y) == 0.75


def test_accuracy_binary_logits():
    logits = torch.tensor([[1.5], [-0.5], [0.2]])
    assert accuracy(logits, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)


def test_accuracy_rejects_mismatched_labels():
    with pytest.raises(ValueError, match=r"y has shape \(3,\)"):
        accuracy(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_dice_by_hand():
    logits, masks = two_images()
    # Image 0: 2 * 2 / (3 + 2) = 0.8; image 1: empty and empty counts as perfect.
    assert dice(logits, masks) == pytest.approx((0.8 + 1.0) / 2)
    assert dice(logits[:1], masks[:1]) == pytest.approx(0.8)


def test_iou_by_hand():
    logits, masks = two_images()
    # Image 0: overlap 2, union 3.
    assert iou(logits, masks) == pytest.approx((2 / 3 + 1.0) / 2)


def test_threshold_is_applied_to_probabilities():
    logits = torch.tensor([[[[1.0, 0.0]]]])  # probabilities 0.73 and exactly 0.5
    masks = torch.tensor([[[[1.0, 1.0]]]])
    assert dice(logits, masks) == pytest.approx(2 * 1 / (1 + 2))  # 0.5 is not above 0.5
    assert dice(logits, masks, threshold=0.8) == pytest.approx(0.0, abs=1e-5)
    assert iou(logits, masks, threshold=0.4) == pytest.approx(1.0)


def test_segmentation_metrics_reject_shape_mismatch():
    with pytest.raises(ValueError, match="masks have shape"):
        dice(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))


def test_dice_loss_by_hand():
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)  # every probability 0.5
    masks = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    loss = dice_loss(logits, masks, smooth=1.0)
    # soft overlap 2 * 0.5 = 1; (2 * 1 + 1) / (2 + 2 + 1) = 0.6
    assert loss.item() == pytest.approx(0.4)
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad[0, 0, 0] < 0)  # raise true pixels


def test_dice_bce_loss_by_hand():
    logits = torch.zeros(1, 1, 2, 2)
    masks = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert DiceBCELoss()(logits, masks).item() == pytest.approx(math.log(2) + 0.4)
    assert DiceBCELoss(dice_weight=0.0)(logits, masks).item() == pytest.approx(math.log(2))
