"""Assignment 3: checks of the architectures, by shapes, parameter counts and initialisation.

They compare with :mod:`dlcc.models` (the course's reference networks) without printing them.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from dlcc.models import PreActBlock, SmallCNN

from ._report import Report, Stop, student_check


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- architectures --------------------------------------------------------------------------------

def _build(report: Report, cls, label: str, *args, **kwargs):
    """``cls(*args, **kwargs)``, or None (reported) if that raises or is not a module."""
    torch.manual_seed(0)
    try:
        model = report.run(label, cls, *args, **kwargs)
    except Stop:
        return None
    if not isinstance(model, nn.Module):
        report.fail(f"{label} is not an nn.Module: subclass torch.nn.Module")
        return None
    return model


def _output(report: Report, model: nn.Module, x: torch.Tensor, expected: tuple, label: str):
    model.eval()
    try:
        with torch.no_grad():
            out = report.run(f"{label}: the forward pass", model, x)
    except Stop:
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


@student_check("your CNN class")
def check_small_cnn(report: Report, cnn_cls) -> None:
    """Check the Assignment 3 CNN: per width in (32, 64, 128), [3x3 CONV-BN-ReLU] x 2 and a
    2x2 max-pool; then global average pooling and a linear layer; He and Xavier init."""
    model = _check_classifier(report, cnn_cls, SmallCNN(3, 10), "the small CNN")
    if model is not None:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        report.check(len(convs) == 6 and all(m.kernel_size == (3, 3) for m in convs),
                     "six 3x3 convolutions", f"{len(convs)} convolutions with kernel sizes "
                     f"{sorted({m.kernel_size for m in convs})}; the specification has six 3x3 "
                     f"convs, two per block")


@student_check("your CNN class")
def check_depthwise_cnn(report: Report, cnn_cls) -> None:
    """Check the MobileNet-style variant: every 3x3 conv after the first is depthwise
    (``groups`` = its input channels) and followed by BN-ReLU and a 1x1 conv."""
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


@student_check("your block class")
def check_preact_block(report: Report, block_cls) -> None:
    """Check ``block_cls(c_in, c_out, stride=1)``: BN-ReLU before each conv, an identity
    shortcut when shapes match, a 1x1 strided conv shortcut when they do not."""
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


@student_check("your U-Net class")
def check_unet(report: Report, unet_cls) -> None:
    """Check ``unet_cls(in_channels=1, out_channels=1)``: logits of the input's size, skip
    connections concatenated (torch.cat) in the decoder, and learned or fixed up-sampling."""
    model = _build(report, unet_cls, f"{unet_cls.__name__}(in_channels=1, out_channels=1)",
                   in_channels=1, out_channels=1)
    if model is None:
        return
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    mode = _CountCat()
    with mode:
        out = _output(report, model, x, (2, 1, 32, 32), "one-channel images")
    if out is None:
        return
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
