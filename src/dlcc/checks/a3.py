"""Checks for Assignment 3: training loops, CNNs, a pre-activation ResNet block, U-Net, Dice.

What the assignment asks for, and what each check gives it::

    train_step(model, x, y, optimizer, loss_fn) -> float       check_train_step
    evaluate(model, loader) -> float (accuracy)                check_evaluate
    MyCNN(in_channels=3, num_classes=10)                       check_small_cnn
    MyDepthwiseCNN(in_channels=3, num_classes=10)              check_depthwise_cnn
    MyPreActBlock(c_in, c_out, stride=1)                       check_preact_block
    MyUNet(in_channels=1, out_channels=1)                      check_unet
    dice(probs, masks) -> float                                check_dice

The architecture checks compare with :mod:`dlcc.models` (the course's reference networks)
by shapes, parameter counts and initialisation statistics, never by printing them.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset

from dlcc.models import PreActBlock, SmallCNN

from ._report import CheckResult, Report, StudentError, call, require_callable, require_class

__all__ = ["check_train_step", "check_evaluate", "check_small_cnn", "check_depthwise_cnn",
           "check_preact_block", "check_unet", "check_dice"]


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-6) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x, y, atol=tol)
                                    for x, y in zip(a, b, strict=True))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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


def check_train_step(train_step, *, quiet: bool = False) -> CheckResult:
    """Check ``train_step(model, x, y, optimizer, loss_fn) -> float`` against a reference step.

    The model holds batch norm and dropout, its ``.grad`` holds stale gradients from a
    "previous" step, and the optimizer is SGD with momentum, as in a real loop.
    """
    require_callable("check_train_step", train_step)
    report = Report("check_train_step")
    model, optimizer, x, y = _step_setup()
    before = _params(model)
    torch.manual_seed(123)
    try:
        returned, _ = call(train_step, model, x, y, optimizer, nn.CrossEntropyLoss())
    except StudentError as error:
        hint = ""
        if "modified by an inplace operation" in str(error):
            hint = (" -- optimizer.step() probably ran before loss.backward(): the step "
                    "changes the weights that backward() still needs, so it must come after")
        report.fail(f"train_step {str(error).split(' Hint:')[0]}{hint}")
        return report.finish(quiet)
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
    return report.finish(quiet)


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


def check_evaluate(evaluate, *, quiet: bool = False) -> CheckResult:
    """Check ``evaluate(model, loader) -> accuracy`` (a fraction of all examples)."""
    require_callable("check_evaluate", evaluate)
    report = Report("check_evaluate")
    model, loader = _evaluate_case()
    try:
        got, _ = call(evaluate, model, loader)
    except StudentError as error:
        report.fail(f"evaluate {error}")
        return report.finish(quiet)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        report.note("evaluate returned a tensor; .item() gives a plain float")
        got = got.item()
    if not isinstance(got, (float, int)) or isinstance(got, bool):
        report.fail(f"evaluate returned {type(got).__name__}; return the accuracy as a float")
        return report.finish(quiet)
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
    return report.finish(quiet)


# --- architectures --------------------------------------------------------------------------------

def _build(report: Report, cls, label: str, *args, **kwargs):
    try:
        torch.manual_seed(0)
        model, _ = call(cls, *args, **kwargs)
    except StudentError as error:
        report.fail(f"{label} {error}")
        return None
    if not isinstance(model, nn.Module):
        report.fail(f"{label} is not an nn.Module: subclass torch.nn.Module")
        return None
    return model


def _output(report: Report, model: nn.Module, x: torch.Tensor, expected: tuple, label: str):
    model.eval()
    try:
        with torch.no_grad():
            out, _ = call(model, x)
    except StudentError as error:
        report.fail(f"{label}: the forward pass {error}")
        return None
    ok = isinstance(out, torch.Tensor) and tuple(out.shape) == expected
    report.check(ok, f"{label}: input {tuple(x.shape)} gives output {expected}",
                 f"{label}: input {tuple(x.shape)} gives "
                 f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}"
                 f", expected {expected}")
    return out if ok else None


def _check_init(report: Report, model: nn.Module) -> None:
    """He init for convs (fan-in or fan-out), Xavier for linear layers, BN as the identity."""
    bad_convs, default_like = [], 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            fan_out = m.out_channels * m.weight[0, 0].numel()
            std = m.weight.std().item()
            ok = any(0.8 < std / math.sqrt(2 / fan) < 1.25 for fan in (fan_in, fan_out))
            if not ok:
                bad_convs.append(name)
                default_like += 0.8 < std * math.sqrt(3 * fan_in) < 1.25
    if not bad_convs:
        report.ok("conv weights have He initialisation (std sqrt(2 / fan))")
    elif default_like == len(bad_convs):
        report.fail(f"conv weights keep PyTorch's default initialisation ({', '.join(bad_convs)}"
                    f"): use He init, nn.init.kaiming_normal_(w, nonlinearity='relu')")
    else:
        report.fail(f"conv weights of {', '.join(bad_convs)} do not have the He std "
                    f"sqrt(2 / fan_in) (or fan_out)")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    bad = [n for n, m in linears
           if not 0.8 < m.weight.std().item() / math.sqrt(2 / (m.in_features + m.out_features))
           < 1.25]
    report.check(not bad, "linear weights have Xavier initialisation",
                 f"linear layer {', '.join(bad)} does not have Xavier init (std "
                 f"sqrt(2 / (fan_in + fan_out))): nn.init.xavier_uniform_ or xavier_normal_")
    biases = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
              and m.bias is not None and m.bias.abs().max() > 0]
    if biases:
        report.fail(f"biases of {', '.join(biases)} do not start at 0")


def _check_classifier(report: Report, cls, reference: nn.Module, name: str) -> nn.Module | None:
    model = _build(report, cls, f"{cls.__name__}(in_channels=3, num_classes=10)",
                   in_channels=3, num_classes=10)
    if model is None:
        return None
    _output(report, model, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
            (2, 10), "CIFAR-size images")
    gray = _build(report, cls, f"{cls.__name__}(in_channels=1, num_classes=10)",
                  in_channels=1, num_classes=10)
    if gray is not None:
        _output(report, gray, torch.randn(2, 1, 28, 28), (2, 10), "MNIST-size images")
    count, wanted = _count(model), _count(reference)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    conv_biases = sum(m.out_channels for m in convs if m.bias is not None)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if count == wanted:
        report.ok(f"{wanted:,} parameters, as the specification gives")
    elif conv_biases and count - conv_biases == wanted:
        report.fail(f"{count - wanted:,} parameters too many: the convs have biases; a conv "
                    f"followed by batch norm needs none (bias=False), BN's shift replaces it")
    elif not norms:
        report.fail(f"{count:,} parameters, expected {wanted:,}: there is no BatchNorm2d; "
                    f"each block is [CONV-BN-ReLU] x 2")
    elif linears and linears[-1].in_features != 128:
        report.fail(f"{count:,} parameters, expected {wanted:,}: the linear head takes "
                    f"{linears[-1].in_features} inputs; the specification pools each of the "
                    f"128 final channels to one number (nn.AdaptiveAvgPool2d(1)) first")
    else:
        widths = [m.out_channels for m in convs]
        report.fail(f"{count:,} parameters, expected {wanted:,} for {name}; your convs have "
                    f"{widths} output channels")
    _check_init(report, model)
    return model


def check_small_cnn(cnn_cls, *, quiet: bool = False) -> CheckResult:
    """Check the Assignment 3 CNN: per width in (32, 64, 128), [3x3 CONV-BN-ReLU] x 2 and a
    2x2 max-pool; then global average pooling and a linear layer; He and Xavier init."""
    require_class("check_small_cnn", cnn_cls, "your CNN class")
    report = Report("check_small_cnn")
    model = _check_classifier(report, cnn_cls, SmallCNN(3, 10), "the small CNN")
    if model is not None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        report.check(len(convs) == 6 and all(m.kernel_size == (3, 3) for m in convs),
                     "six 3x3 convolutions", f"{len(convs)} convolutions with kernel sizes "
                     f"{sorted({m.kernel_size for m in convs})}; the specification has six 3x3 "
                     f"convs, two per block")
    return report.finish(quiet)


def check_depthwise_cnn(cnn_cls, *, quiet: bool = False) -> CheckResult:
    """Check the MobileNet-style variant: every 3x3 conv after the first is depthwise
    (``groups`` = its input channels) and followed by BN-ReLU and a 1x1 conv."""
    require_class("check_depthwise_cnn", cnn_cls, "your CNN class")
    report = Report("check_depthwise_cnn")
    model = _check_classifier(report, cnn_cls, SmallCNN(3, 10, depthwise=True),
                              "the depthwise-separable CNN")
    if model is not None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        depthwise = [m for m in convs if m.groups > 1 and m.groups == m.in_channels]
        pointwise = [m for m in convs if m.kernel_size == (1, 1)]
        if not depthwise:
            report.fail("no depthwise convolution: a depthwise conv has groups equal to its "
                        "input channels (nn.Conv2d(c, c, 3, padding=1, groups=c))")
        elif len(pointwise) < len(depthwise):
            report.fail(f"{len(depthwise)} depthwise convs but {len(pointwise)} 1x1 convs: "
                        f"each depthwise conv needs a 1x1 (pointwise) conv to mix channels")
        else:
            report.ok(f"{len(depthwise)} depthwise 3x3 convs, each with a 1x1 conv")
    return report.finish(quiet)


def check_preact_block(block_cls, *, quiet: bool = False) -> CheckResult:
    """Check ``block_cls(c_in, c_out, stride=1)``: BN-ReLU before each conv, an identity
    shortcut when shapes match, a 1x1 strided conv shortcut when they do not."""
    require_class("check_preact_block", block_cls, "your block class")
    report = Report("check_preact_block")
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    block = _build(report, block_cls, f"{block_cls.__name__}(8, 8, stride=1)", 8, 8, stride=1)
    if block is not None and _output(report, block, x, (2, 8, 6, 6),
                                     "c_in = c_out = 8") is not None:
        report.check(_count(block) == _count(PreActBlock(8, 8)),
                     f"{_count(PreActBlock(8, 8)):,} parameters with c_in = c_out = 8",
                     f"{_count(block):,} parameters with c_in = c_out = 8, expected "
                     f"{_count(PreActBlock(8, 8)):,} (two BN and two 3x3 convs without bias; "
                     f"no shortcut conv when the shapes match)")
        order: list[type] = []
        hooks = [m.register_forward_pre_hook(lambda m, _: order.append(type(m)))
                 for m in block.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        with torch.no_grad():
            for m in block.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.zero_()
                    if m.bias is not None:
                        m.bias.zero_()
            out = block(x)
        for h in hooks:
            h.remove()
        if torch.allclose(out, x, atol=1e-6):
            report.ok("with its convs zeroed the block returns its input (identity shortcut)")
        elif torch.allclose(out, F.relu(x), atol=1e-6):
            report.fail("with its convs zeroed the block returns relu(x): a ReLU after the "
                        "addition makes it a post-activation block; in a pre-activation block "
                        "the sum is the output, so the shortcut stays an identity")
        elif torch.allclose(out, torch.zeros_like(out), atol=1e-6):
            report.fail("with its convs zeroed the block returns 0: add the input x (the "
                        "shortcut) to the output of the second conv")
        else:
            report.fail("with its convs zeroed the block does not return its input: the "
                        "shortcut must be the identity when the shapes match")
        if order and order[0] is nn.Conv2d:
            report.fail("the block starts with a convolution: in a pre-activation block, batch "
                        "norm and ReLU come before each conv")
    down = _build(report, block_cls, f"{block_cls.__name__}(8, 16, stride=2)", 8, 16, stride=2)
    if down is not None:
        out = _output(report, down, x, (2, 16, 3, 3), "c_in = 8, c_out = 16, stride 2")
        if out is not None:
            wanted = _count(PreActBlock(8, 16, 2))
            report.check(_count(down) == wanted, f"{wanted:,} parameters with a 1x1 shortcut",
                         f"{_count(down):,} parameters for (8, 16, stride 2), expected "
                         f"{wanted:,}: the shortcut is one 1x1 conv with stride 2, no bias")
        else:
            report.note("when the shapes differ, the shortcut needs a 1x1 conv with the "
                        "block's stride and c_out channels")
    return report.finish(quiet)


class _CountCat(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.cats = 0
        self.upsampling = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.cat, torch.concat, torch.concatenate):
            self.cats += 1
        if func in (F.interpolate, F.conv_transpose2d):
            self.upsampling += 1
        return func(*args, **(kwargs or {}))


def check_unet(unet_cls, *, quiet: bool = False) -> CheckResult:
    """Check ``unet_cls(in_channels=1, out_channels=1)``: logits of the input's size, skip
    connections concatenated (torch.cat) in the decoder, and learned or fixed up-sampling."""
    require_class("check_unet", unet_cls, "your U-Net class")
    report = Report("check_unet")
    model = _build(report, unet_cls, f"{unet_cls.__name__}(in_channels=1, out_channels=1)",
                   in_channels=1, out_channels=1)
    if model is None:
        return report.finish(quiet)
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    mode = _CountCat()
    with mode:
        out = _output(report, model, x, (2, 1, 32, 32), "one-channel images")
    if out is None:
        return report.finish(quiet)
    report.check(mode.cats > 0, f"{mode.cats} skip connections concatenated",
                 "no torch.cat in the forward pass: a U-Net concatenates each encoder map "
                 "with the up-sampled decoder map of the same size (adding them would be a "
                 "different network)")
    has_up = mode.upsampling or any(isinstance(m, (nn.ConvTranspose2d, nn.Upsample))
                                    for m in model.modules())
    report.check(bool(has_up), "the decoder up-samples",
                 "no up-sampling found (nn.ConvTranspose2d, nn.Upsample or F.interpolate)")
    with torch.no_grad():  # bright images push logits far outside [0, 1]
        loud = model(100 * x)
    report.check(bool((loud < 0).any() or (loud > 1).any()), "returns logits",
                 "every output lies in [0, 1], even for very bright images: the U-Net ends "
                 "with a sigmoid; return logits and train with BCEWithLogitsLoss, which is "
                 "numerically stabler")
    return report.finish(quiet)


# --- Dice -----------------------------------------------------------------------------------------

def _dice_case(empty: bool):
    g = torch.Generator().manual_seed(5 if empty else 4)
    masks = (torch.rand(4, 1, 8, 8, generator=g) > 0.6).float()
    noise = torch.rand(4, 1, 8, 8, generator=g)
    probs = 0.35 + 0.3 * masks + 0.4 * (noise - 0.5)  # mostly right, errors both ways
    if empty:
        masks[1] = 0
        probs[1] = 0.3 * noise[1]
    return probs, masks


def _dice_variants(probs: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    n = len(probs)
    p, t = (probs > 0.5).float().reshape(n, -1), masks.reshape(n, -1)
    soft = probs.reshape(n, -1)
    inter, total = (p * t).sum(1), p.sum(1) + t.sum(1)
    return {
        "right": ((2 * inter + 1e-6) / (total + 1e-6)).mean().item(),
        "soft": (2 * (soft * t).sum(1) / (soft.sum(1) + t.sum(1))).mean().item(),
        "batch": (2 * inter.sum() / total.sum()).item(),
        "iou": (inter / (total - inter)).mean().item(),
        "no 2": (inter / total).mean().item(),
        "sum": (2 * inter / total).sum().item(),
    }


def check_dice(dice, *, quiet: bool = False) -> CheckResult:
    """Check ``dice(probs, masks) -> float``: the mean over images of 2|P n T| / (|P| + |T|),
    with P = probs > 0.5; an image whose masks are both empty scores 1."""
    require_callable("check_dice", dice)
    report = Report("check_dice")
    probs, masks = _dice_case(empty=False)
    kept = probs.clone()
    variants = _dice_variants(probs, masks)
    messages = {
        "soft": "no threshold: Dice compares binary masks, so threshold the probabilities at "
                "0.5 first (the soft version is for the Dice loss)",
        "batch": "Dice was computed over the whole batch at once: compute it per image, then "
                 "average the images' scores",
        "iou": "that is the IoU |P n T| / |P u T|; Dice is 2|P n T| / (|P| + |T|)",
        "no 2": "the factor 2 in 2|P n T| / (|P| + |T|) is missing (a perfect match must "
                "score 1)",
        "sum": "the scores of the 4 images are summed: return their mean",
    }
    try:
        got, _ = call(dice, probs, masks)
    except StudentError as error:
        report.fail(f"dice {error}")
        return report.finish(quiet)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if not isinstance(got, (float, int)) or isinstance(got, bool):
        report.fail(f"dice returned {type(got).__name__}; return one number, the mean Dice")
        return report.finish(quiet)
    if not torch.equal(probs, kept):
        report.fail("dice changed probs in place (e.g. probs[probs > 0.5] = 1): threshold "
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
    probs, masks = _dice_case(empty=True)
    expected = _dice_variants(probs, masks)["right"]
    try:
        got, _ = call(dice, probs, masks)
        value = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        value = float(value)
    except (StudentError, TypeError, ValueError) as error:
        report.fail(f"with an image whose masks are both empty, dice {error}")
        return report.finish(quiet)
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
    return report.finish(quiet)
