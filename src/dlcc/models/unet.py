"""U-Net for segmentation (Ronneberger, Fischer, Brox 2015), small and size-agnostic."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._common import check_images, init_weights, positive_int


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """[3x3 conv -> BN -> ReLU] x 2; (N, c_in, H, W) -> (N, c_out, H, W)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder-decoder with skip connections; returns logits (N, out_channels, H, W).

    Level ``i`` of the encoder has ``width * 2**i`` channels and ends in a 2x2 max-pool;
    after ``depth`` levels a bottleneck of ``width * 2**depth`` channels; the decoder mirrors
    the encoder with 2x2 transposed convs and concatenates the encoder map of the same size.
    Any H, W work: the input is padded (reflect where possible) up to the next multiple of
    ``2**depth`` and the output cropped back, so every pooled map has an even size.
    For binary segmentation use ``out_channels=1`` with ``BCEWithLogitsLoss``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 3,
                 width: int = 16):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        positive_int("out_channels", out_channels)
        self.depth = positive_int("depth", depth)
        positive_int("width", width)

        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for c in chans[:-1]:
            self.down.append(double_conv(c_in, c))
            c_in = c
        self.bottleneck = double_conv(chans[-2], chans[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for c_deep, c in zip(chans[:0:-1], chans[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(c_deep, c, 2, stride=2))
            self.merge.append(double_conv(2 * c, c))  # skip (c) + upsampled (c) channels
        self.out = nn.Conv2d(width, out_channels, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        h, w = x.shape[-2:]
        multiple = 2**self.depth
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            # Reflection continues the image without an artificial edge; it needs the pad to
            # be smaller than the side, so tiny inputs fall back to zeros.
            mode = "reflect" if pad_h < h and pad_w < w else "constant"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([skip, up(x)], dim=1))
        return self.out(x)[..., :h, :w]
