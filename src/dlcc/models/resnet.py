"""A small pre-activation ResNet for 32x32 images (He, Zhang, Ren, Sun 2016, "Identity
Mappings in Deep Residual Networks")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ._common import check_images, check_widths, init_weights, positive_int


class PreActBlock(nn.Module):
    """``x + conv(relu(bn(conv(relu(bn(x))))))``: (N, c_in, H, W) -> (N, c_out, H/s, W/s).

    Normalisation and ReLU come *before* each conv, so the shortcut path is a pure identity
    from block to block and gradients reach early layers unchanged. When the shape changes
    (stride 2 or new width) the shortcut is a 1x1 conv of the pre-activated input, as in the
    paper's code.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class ResNet(nn.Module):
    """3x3 stem conv -> stages of :class:`PreActBlock` -> BN-ReLU -> global avg pool -> linear.

    Stage ``i`` has ``blocks_per_stage`` blocks of width ``widths[i]``; every stage after the
    first starts with a stride-2 block, so a 32x32 input ends at 8x8 with the default three
    stages. With ``blocks_per_stage=n`` the network has 6n+2 layers (n=3: ResNet-20).
    Input (N, in_channels, H, W); output logits (N, num_classes).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10,
                 widths: Sequence[int] = (16, 32, 64), blocks_per_stage: int = 2):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        positive_int("num_classes", num_classes)
        self.widths = check_widths("widths", widths)
        positive_int("blocks_per_stage", blocks_per_stage)

        self.stem = nn.Conv2d(in_channels, self.widths[0], 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c_in = self.widths[0]
        for i, w in enumerate(self.widths):
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(PreActBlock(c_in, w, stride))
                c_in = w
        self.blocks = nn.Sequential(*blocks)
        # The last block's output is a sum that no BN has seen yet: normalise before pooling.
        self.head = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c_in, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        return self.head(self.blocks(self.stem(x)))
