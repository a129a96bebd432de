"""Noise predictors for diffusion models: a small U-Net for images and an MLP for points.

Both compute ``model(x, t)``, the noise :math:`\\epsilon_\\theta(\\mathbf{x}_t, t)` in ``x_t``,
given the noised input and the timestep index ``t`` (``(N,)`` integers); the timestep enters
through its sinusoidal embedding (Ho et al. 2020, the transformer's position encoding
applied to the step). Chapter L11, section "Diffusion models".
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._common import check_images, init_weights, positive_int


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of timesteps ``t`` (N,): (N, dim), the sines then the cosines of
    ``t / 10000^(2i/dim)``, so nearby steps get nearby vectors at every scale."""
    if positive_int("dim", dim) % 2:
        raise ValueError(f"dim must be even (sines and cosines in pairs), got {dim}")
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be a 1-D tensor of timesteps, one per example; got {got}")
    freq = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angle = t.float()[:, None] * freq  # (N, dim/2)
    return torch.cat([angle.sin(), angle.cos()], dim=1)


def _check_steps(t: object, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"t must be a tensor of shape ({x.shape[0]},), one timestep per "
                         f"example of x; got {got}")
    return t


class _TimeMLP(nn.Sequential):
    """Timestep -> embedding -> two-layer MLP, (N,) -> (N, time_dim)."""

    def __init__(self, time_dim: int):
        super().__init__(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.time_dim = time_dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return super().forward(timestep_embedding(t, self.time_dim))


class NoiseMLP(nn.Module):
    """Noise predictor for points in ``dim`` dimensions (2-D toy data): ``layers`` SiLU layers
    of ``hidden`` units reading the point, its Fourier features and the step's embedding.

    The Fourier features ``sin(f x)``, ``cos(f x)`` for each of ``frequencies`` (Tancik et
    al. 2020) let a small MLP represent the sharp functions the last, low-noise steps need;
    with raw coordinates alone it learns the coarse shape of the data long before the detail.
    ``frequencies=()`` feeds the coordinates only.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, time_dim: int = 32, layers: int = 3,
                 frequencies: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)):
        super().__init__()
        self.dim = positive_int("dim", dim)
        positive_int("hidden", hidden)
        positive_int("layers", layers)
        self.time = _TimeMLP(positive_int("time_dim", time_dim))
        self.register_buffer("frequencies", torch.tensor(frequencies, dtype=torch.float32))
        widths = [dim * (1 + 2 * len(frequencies)) + time_dim] + [hidden] * layers
        blocks = [m for a, b in zip(widths[:-1], widths[1:], strict=True)
                  for m in (nn.Linear(a, b), nn.SiLU())]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (N, {self.dim}); got {got}")
        angle = (x[:, :, None] * self.frequencies.to(x.dtype)).flatten(1)  # (N, dim * F)
        features = [x, angle.sin(), angle.cos(), self.time(_check_steps(t, x)).to(x.dtype)]
        return self.net(torch.cat(features, dim=1))


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 4 channels per group: with one channel per group it would be instance
    normalisation, which erases each map's mean, the overall brightness of a noisy image."""
    return nn.GroupNorm(channels // 4, channels)


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the timestep's embedding added in between, plus a
    (1x1-projected) shortcut; (N, c_in, H, W), (N, time_dim) -> (N, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(emb)[:, :, None, None]  # one shift per channel, from the step
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class NoiseUNet(nn.Module):
    """A two-level U-Net noise predictor for images (Ho et al. 2020, much smaller).

    ``base`` channels at full resolution, ``2 base`` at half and at quarter resolution (the
    middle), one residual block per level on the way down and up, skip connections between
    them, the timestep's embedding added in every block. H and W must be multiples of 4.
    """

    def __init__(self, in_channels: int = 1, base: int = 32, time_dim: int = 64):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        if positive_int("base", base) % 4:
            raise ValueError(f"base must be a multiple of 4 (GroupNorm's groups of 4), got {base}")
        self.time = _TimeMLP(positive_int("time_dim", time_dim))
        c1, c2 = base, 2 * base
        self.stem = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.down1 = _ResBlock(c1, c1, time_dim)
        self.down2 = _ResBlock(c1, c2, time_dim)
        self.middle = _ResBlock(c2, c2, time_dim)
        self.up2 = _ResBlock(c2 + c2, c2, time_dim)
        self.up1 = _ResBlock(c2 + c1, c1, time_dim)
        self.out = nn.Sequential(_norm(c1), nn.SiLU(), nn.Conv2d(c1, in_channels, 3, padding=1))
        init_weights(self)
        nn.init.zeros_(self.out[-1].weight)  # start by predicting zero noise: a calm start

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(f"x must have H and W divisible by 4; got {tuple(x.shape)}")
        emb = self.time(_check_steps(t, x))
        h1 = self.down1(self.stem(x), emb)  # (N, c1, H, W)
        h2 = self.down2(F.avg_pool2d(h1, 2), emb)  # (N, c2, H/2, W/2)
        h = self.middle(F.avg_pool2d(h2, 2), emb)  # (N, c2, H/4, W/4)
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2.0), h2], dim=1), emb)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2.0), h1], dim=1), emb)
        return self.out(h)
