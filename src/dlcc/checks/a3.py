"""Checks for Assignment 3: training loops, CNNs, a pre-activation ResNet block, U-Net, Dice.

What the assignment asks for, and what each check gives it::

    train_step(model, x, y, optimizer, loss_fn) -> float       check_train_step
    evaluate(model, loader) -> float (accuracy)                check_evaluate
    MyCNN(in_channels=3, num_classes=10)                       check_small_cnn
    MyDepthwiseCNN(in_channels=3, num_classes=10)              check_depthwise_cnn
    MyPreActBlock(c_in, c_out, stride=1)                       check_preact_block
    MyUNet(in_channels=1, out_channels=1)                      check_unet
    dice(logits, masks) -> float                               check_dice

The architecture checks (in ``_a3_models``) compare with :mod:`dlcc.models`, the course's
reference networks, by shapes, parameter counts and initialisation statistics, never by
printing them.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from .. import metrics
from ._a3_models import (
    check_depthwise_cnn,
    check_preact_block,
    check_small_cnn,
    check_unet,
)
from ._report import Report, student_check

__all__ = ["check_train_step", "check_evaluate", "check_small_cnn", "check_depthwise_cnn",
           "check_preact_block", "check_unet", "check_dice"]


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x, y, atol=tol)
                                    for x, y in zip(a, b, strict=True))


# --- one training step ---------------------------------------------------------------------------

def _step_setup():
    """A small model with batch norm and dropout, stale gradients, and one batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Dropout(0.25), nn.Linear(8, 3))
    for p in model.parameters():  # what the previous step left behind
        p.grad = torch.full_like(p, 0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 2, 2, generator=g), torch.randint(0, 3, (8,), generator=g)
    return model, optimizer, x, y


def _reference_step(variant: str = "right"):
    """Parameters after one step done right or with a known mistake, and the loss."""
    model, optimizer, x, y = _step_setup()
    model.train(variant != "eval")
    torch.manual_seed(123)
    if variant != "no zero_grad":
        optimizer.zero_grad()
    out = model(x)
    loss = F.cross_entropy(F.softmax(out, dim=1) if variant == "softmax" else out, y)
    loss.backward()
    optimizer.step()
    return _params(model), loss.item()


@student_check()
def check_train_step(report: Report, train_step) -> None:
    """Check ``train_step(model, x, y, optimizer, loss_fn) -> float`` against a reference step.

    The model holds batch norm and dropout, its ``.grad`` holds stale gradients from a
    "previous" step, and the optimizer is SGD with momentum, as in a real loop.
    """
    model, optimizer, x, y = _step_setup()
    before = _params(model)
    torch.manual_seed(123)
    returned = report.run("train_step", train_step, model, x, y, optimizer,
                          nn.CrossEntropyLoss(), hints={
                              "modified by an inplace operation":
                                  " -- optimizer.step() probably ran before loss.backward(): "
                                  "the step changes the weights that backward() still needs, "
                                  "so it must come after"})
    after = _params(model)
    expected, expected_loss = _reference_step()
    if _same(after, expected):
        report.ok("the parameters after the step match the reference step")
    elif _same(after, before):
        grads = [p.grad for p in model.parameters()]
        if all(g is None for g in grads):
            report.fail("the parameters did not change and no gradients exist: the order is "
                        "optimizer.zero_grad(), loss.backward(), optimizer.step(), with "
                        "zero_grad() before backward(), not between backward() and step()")
        elif all(g is not None and not g.any() for g in grads):
            report.fail("the parameters did not change and the gradients are zero: "
                        "optimizer.zero_grad() must come before loss.backward(), not between "
                        "backward() and step()")
        else:
            report.fail("the parameters did not change: call optimizer.step() after "
                        "loss.backward()")
    elif _same(after, _reference_step("no zero_grad")[0]):
        report.fail("the step used the new gradients plus the ones left from the previous "
                    "step: .grad accumulates, so call optimizer.zero_grad() before backward()")
    elif _same(after, _reference_step("softmax")[0]):
        report.fail("the loss was computed on softmax probabilities: CrossEntropyLoss expects "
                    "the raw logits (it applies log-softmax itself)")
    elif _same(after, _reference_step("eval")[0]):
        report.fail("the step ran with the model in eval mode: call model.train() so that "
                    "batch norm uses batch statistics and dropout is active")
    else:
        report.fail("the parameters after the step differ from the reference step: the order "
                    "is zero_grad, forward, loss, backward, step (with one forward pass)")
    if not model.training:
        report.fail("train_step left the model in eval mode")
    if isinstance(returned, torch.Tensor):
        report.fail("train_step returned a tensor: return loss.item(), a Python float, so that "
                    "logging it does not keep the graph alive")
    elif not isinstance(returned, (float, int)) or isinstance(returned, bool):
        report.fail(f"train_step returned {type(returned).__name__}; return the batch's loss "
                    f"as a float (loss.item())")
    else:
        report.check(math.isclose(returned, expected_loss, rel_tol=1e-5, abs_tol=1e-7),
                     "returns the batch's loss as a float",
                     f"train_step returned {returned:.5g}, but the loss of this batch before "
                     f"the step is {expected_loss:.5g}")


# --- evaluation ---------------------------------------------------------------------------------

class _Probe(nn.Module):
    """A classifier whose train and eval outputs differ, recording how it was called."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
        self.net[1].running_mean.fill_(1.5)
        self.net[1].running_var.fill_(4.0)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.net(x)


def _evaluate_case():
    """23 examples in batches of 10, 10, 3; correct: 10 of 10, 5 of 10, 0 of 3."""
    model = _Probe().eval()
    x = torch.randn(23, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    y = predicted.clone()
    wrong = list(range(15, 23))
    y[wrong] = (predicted[wrong] + 1) % 3
    model.calls.clear()
    model.train()
    return model, DataLoader(TensorDataset(x, y), batch_size=10, shuffle=False)


@student_check()
def check_evaluate(report: Report, evaluate) -> None:
    """Check ``evaluate(model, loader) -> accuracy`` (a fraction of all examples)."""
    model, loader = _evaluate_case()
    got = report.run("evaluate", evaluate, model, loader)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        report.note("evaluate returned a tensor; .item() gives a plain float")
        got = got.item()
    if not isinstance(got, (float, int)) or isinstance(got, bool):
        report.fail(f"evaluate returned {type(got).__name__}; return the accuracy as a float")
        return
    modes = {training for training, _ in model.calls}
    grad_modes = {grad for _, grad in model.calls}
    expected = 15 / 23
    if not model.calls:
        report.fail("the model was never called")
    elif True in modes:
        report.fail("the model ran in training mode: call model.eval() first, so that batch "
                    "norm uses its running statistics and dropout is off")
    elif math.isclose(got, expected, abs_tol=1e-6):
        report.ok(f"accuracy {expected:.4f} over all 23 examples")
    elif math.isclose(got, 100 * expected, abs_tol=1e-4):
        report.fail("evaluate returned a percentage: return a fraction between 0 and 1")
    elif math.isclose(got, 15, abs_tol=1e-6):
        report.fail("evaluate returned the number of correct predictions: divide by the "
                    "number of examples")
    elif math.isclose(got, (1 + 0.5 + 0) / 3, abs_tol=1e-6):
        report.fail("evaluate averaged the accuracies of the batches: the last batch has only "
                    "3 examples, so count correct predictions over all batches and divide by "
                    "the total number of examples")
    else:
        report.fail(f"evaluate returned {got:.4g}, expected {expected:.4f}")
    report.check(model.calls and True not in grad_modes, "no gradients tracked while evaluating",
                 "gradients were tracked during evaluation: wrap the loop in torch.no_grad() "
                 "(it saves memory and time)")


# --- Dice -----------------------------------------------------------------------------------------

def _dice_case(empty: bool):
    """Logits (4, 1, 8, 8) that are mostly right, with errors both ways, and true masks."""
    g = torch.Generator().manual_seed(5 if empty else 4)
    masks = (torch.rand(4, 1, 8, 8, generator=g) > 0.6).float()
    noise = torch.rand(4, 1, 8, 8, generator=g)
    probs = 0.35 + 0.3 * masks + 0.4 * (noise - 0.5)
    if empty:
        masks[1] = 0
        probs[1] = 0.01 + 0.29 * noise[1]
    return torch.logit(probs), masks


def _dice_variants(logits: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """The right score (the library's :func:`dlcc.metrics.dice`) and realistic wrong ones."""
    n = len(logits)
    p, t = (logits > 0).float().reshape(n, -1), masks.reshape(n, -1)
    soft = torch.sigmoid(logits).reshape(n, -1)
    raw = (logits > 0.5).float().reshape(n, -1)
    inter, total = (p * t).sum(1), p.sum(1) + t.sum(1)
    return {
        "right": metrics.dice(logits, masks),
        "soft": (2 * (soft * t).sum(1) / (soft.sum(1) + t.sum(1))).mean().item(),
        "logits at 0.5": ((2 * (raw * t).sum(1) + 1e-6)
                          / (raw.sum(1) + t.sum(1) + 1e-6)).mean().item(),
        "batch": (2 * inter.sum() / total.sum()).item(),
        "iou": (inter / (total - inter)).mean().item(),
        "no 2": (inter / total).mean().item(),
        "sum": (2 * inter / total).sum().item(),
    }


@student_check()
def check_dice(report: Report, dice) -> None:
    """Check ``dice(logits, masks) -> float``, the contract of :func:`dlcc.metrics.dice`: the
    mean over images of 2|P n T| / (|P| + |T|), with P where sigmoid(logits) > 0.5 (the logit
    is positive); an image whose masks are both empty scores 1."""
    logits, masks = _dice_case(empty=False)
    kept = logits.clone()
    variants = _dice_variants(logits, masks)
    messages = {
        "soft": "no threshold: Dice compares binary masks, so predict foreground where "
                "sigmoid(logits) > 0.5, that is logits > 0 (the soft version is for the Dice "
                "loss)",
        "logits at 0.5": "the logits were thresholded at 0.5: 0.5 is the threshold for "
                         "probabilities, sigmoid(logits) > 0.5, which is logits > 0",
        "batch": "Dice was computed over the whole batch at once: compute it per image, then "
                 "average the images' scores",
        "iou": "that is the IoU |P n T| / |P u T|; Dice is 2|P n T| / (|P| + |T|)",
        "no 2": "the factor 2 in 2|P n T| / (|P| + |T|) is missing (a perfect match must "
                "score 1)",
        "sum": "the scores of the 4 images are summed: return their mean",
    }
    got = report.run("dice", dice, logits, masks)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, (float, int)) or isinstance(got, bool):
        report.fail(f"dice returned {type(got).__name__}; return one number, the mean Dice")
        return
    if not torch.equal(logits, kept):
        report.fail("dice changed logits in place (e.g. logits[logits > 0] = 1): threshold "
                    "into a new tensor")
    if math.isclose(got, variants["right"], abs_tol=1e-5):
        report.ok(f"mean Dice over 4 images: {got:.4f}")
    elif math.isclose(got, 1 - variants["right"], abs_tol=1e-5):
        report.fail("dice returned 1 - Dice (the Dice loss): return the coefficient itself")
    else:
        for name, message in messages.items():
            if math.isclose(got, variants[name], abs_tol=1e-5):
                report.fail(message)
                break
        else:
            report.fail(f"dice returned {got:.5g}, expected {variants['right']:.5g}")
    logits, masks = _dice_case(empty=True)
    expected = _dice_variants(logits, masks)["right"]
    got = report.run("with an image whose masks are both empty, dice", dice, logits, masks)
    value = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
    if not isinstance(value, (float, int)) or isinstance(value, bool):
        report.fail(f"with an image whose masks are both empty, dice returned "
                    f"{type(got).__name__}; return the mean Dice as a float")
        return
    if math.isnan(value):
        report.fail("an image whose masks are both empty gives NaN (0 / 0): add a small eps "
                    "to the numerator and the denominator, so that it scores 1")
    elif math.isclose(value, expected, abs_tol=1e-5):
        report.ok("an image with both masks empty scores 1")
    elif math.isclose(value, expected - 0.25, abs_tol=1e-5):
        report.fail("an image whose masks are both empty scores 0: nothing to find and nothing "
                    "found is a perfect match; put eps in the numerator too")
    else:
        report.fail(f"with an empty image, dice returned {value:.5g}, expected {expected:.5g}")
