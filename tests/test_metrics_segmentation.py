"""One contract for the segmentation scores: logits (sigmoid > threshold) or a boolean mask."""

from __future__ import annotations

import pytest
import torch

from dlcc.metrics import dice, iou, precision, recall


def _case():
    """Image 0: 4 predicted, 3 true, 2 shared; image 1: 1 predicted, 2 true, 1 shared."""
    predicted = torch.zeros(2, 1, 2, 3, dtype=torch.bool)
    true = torch.zeros(2, 1, 2, 3)
    predicted[0, 0, 0, :] = True
    predicted[0, 0, 1, 0] = True
    true[0, 0, 0, 1:] = 1
    true[0, 0, 1, 2] = 1
    predicted[1, 0, 1, 1] = True
    true[1, 0, 1, 1:] = 1
    return predicted, true


def test_precision_and_recall_by_hand():
    predicted, true = _case()
    assert precision(predicted, true) == pytest.approx((2 / 4 + 1 / 1) / 2)
    assert recall(predicted, true) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert dice(predicted, true) == pytest.approx((4 / 7 + 2 / 3) / 2)
    assert iou(predicted, true) == pytest.approx((2 / 5 + 1 / 2) / 2)


def test_a_boolean_mask_and_its_logits_score_the_same():
    predicted, true = _case()
    logits = torch.where(predicted, 3.0, -3.0)
    for score in (dice, iou, precision, recall):
        assert score(logits, true) == pytest.approx(score(predicted, true))
    # A float 0/1 mask is read as logits: sigmoid(0) = 0.5 is not foreground, sigmoid(1) is.
    assert dice(predicted.float(), true) == pytest.approx(dice(predicted, true))


def test_empty_images_score_one():
    empty = torch.zeros(1, 1, 3, 3)
    for score in (dice, iou, precision, recall):
        assert score(empty.bool(), empty) == pytest.approx(1.0)


def test_dice_is_the_harmonic_mean_of_precision_and_recall_per_image():
    predicted, true = _case()
    p, r = precision(predicted[:1], true[:1]), recall(predicted[:1], true[:1])
    assert dice(predicted[:1], true[:1]) == pytest.approx(2 * p * r / (p + r))


def test_scores_reject_arrays_and_mismatched_shapes():
    with pytest.raises(TypeError, match="must be tensors"):
        precision([[1.0]], torch.ones(1, 1))
    with pytest.raises(ValueError, match="must match"):
        recall(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
