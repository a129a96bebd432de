"""Convolutional classifiers: LeNet-5 and the assignment-3 CNN (optionally MobileNet-style)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._common import check_images, check_widths, init_weights, positive_int


class LeNet5(nn.Module):
    """LeCun et al. (1998): conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> classes.

    Input (N, in_channels, H, W) with H, W >= 16; output logits (N, num_classes). The first conv
    pads by 2, so a 28x28 MNIST digit gets the 32x32 field of the original. The original used
    scaled tanh, trainable subsampling, a sparse C3 connection table and an RBF output layer
    (about 60,000 trainable parameters); this version uses ReLU, max-pooling, a dense C3 and a
    linear output, which train faster and hold 61,706.

    Parameters for in_channels=1, num_classes=10 (weights + biases)::

        conv1  6*1*5*5 + 6     =    156
        conv2  16*6*5*5 + 16   =  2,416
        fc1    400*120 + 120   = 48,120   (16 feature maps of 5x5 = 400 inputs)
        fc2    120*84 + 84     = 10,164
        fc3    84*10 + 10      =    850
        total                  = 61,706
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        positive_int("num_classes", num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(),
            # Exactly MaxPool2d(2) on the 10x10 maps of a 28x28 input; also brings the 12x12
            # maps of a 32x32 CIFAR image to the 5x5 that fc1 expects.
            nn.AdaptiveMaxPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"x must be at least 16x16 pixels for LeNet5; got "
                             f"{tuple(x.shape[-2:])}")
        return self.classifier(self.features(x))


def conv_bn_relu(c_in: int, c_out: int, depthwise: bool = False) -> nn.Sequential:
    """3x3 conv ('same' padding) -> BatchNorm -> ReLU; (N, c_in, H, W) -> (N, c_out, H, W).

    ``depthwise=True`` factorises the conv as in MobileNet (Howard et al. 2017): a 3x3 conv per
    channel (``groups=c_in``) -> BN -> ReLU, then a 1x1 conv that mixes channels. That costs
    9*c_in + c_in*c_out weights instead of 9*c_in*c_out. No conv bias: BN's shift replaces it.
    """
    if not depthwise:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                             nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """The assignment-3 CNN: per width, [CONV-BN-ReLU] x 2 -> 2x2 max-pool; then GAP -> linear.

    Input (N, in_channels, H, W) with H and W at least ``2**len(widths)``; output logits
    (N, num_classes). Global average pooling makes the head independent of the image size.
    ``depthwise=True`` makes every conv after the very first depthwise-separable (see
    :func:`conv_bn_relu`); the first stays dense because with 1-3 input channels there is
    nothing to save.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10,
                 widths: Sequence[int] = (32, 64, 128), depthwise: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        positive_int("num_classes", num_classes)
        self.widths = check_widths("widths", widths)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")

        layers: list[nn.Module] = []
        c_in = in_channels
        for i, w in enumerate(self.widths):
            layers += [conv_bn_relu(c_in, w, depthwise=depthwise and i > 0),
                       conv_bn_relu(w, w, depthwise=depthwise),
                       nn.MaxPool2d(2)]
            c_in = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        smallest = 2 ** len(self.widths)
        if min(x.shape[-2:]) < smallest:
            raise ValueError(f"x must be at least {smallest}x{smallest} pixels for "
                             f"{len(self.widths)} pooling stages; got {tuple(x.shape[-2:])}")
        return self.head(self.features(x))
