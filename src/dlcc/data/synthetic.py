"""A synthetic microscopy segmentation set: noisy, blurred images of elliptical cells.

Real fluorescence images of nuclei need a download and hand-drawn masks; these are generated
in well under a second and their masks are exact, so a U-Net's errors are its own. What makes
the task more than a threshold: cells of different brightness with a dim rim, uneven
illumination across the field, blur that smears the edges, and per-pixel camera noise.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

CHUNK = 128  # images rendered at once: bounds the (chunk, max_cells, H, W) intermediates


def _check(n, size, noise, blur, max_cells) -> None:
    for name, value, low in (("n", n, 1), ("size", size, 8), ("max_cells", max_cells, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    for name, value in (("noise", noise), ("blur", blur)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images (N, C, H, W) with a Gaussian of std ``sigma`` pixels (separable, reflect)."""
    if sigma == 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    # Reflect padding needs radius < side; replicate works for any size.
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _render(cx, cy, a, b, angle, brightness, present, size):
    """Masks and cell intensities (n, 1, H, W) from per-cell parameters (n, max_cells)."""
    pix = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    dx = pix.view(1, 1, 1, -1) - cx[..., None, None]     # (n, m, 1, W)
    dy = pix.view(1, 1, -1, 1) - cy[..., None, None]     # (n, m, H, 1)
    cos, sin = angle.cos()[..., None, None], angle.sin()[..., None, None]
    # Squared radius in the ellipse's own frame: <= 1 inside.
    r2 = ((dx * cos + dy * sin) / a[..., None, None]) ** 2 \
        + ((dy * cos - dx * sin) / b[..., None, None]) ** 2          # (n, m, H, W)
    inside = (r2 <= 1) & present[..., None, None]
    # A dome: bright centre, rim at 60% of it, like a stained nucleus.
    profile = torch.where(inside, brightness[..., None, None] * (1 - 0.4 * r2), 0.0)
    return inside.any(dim=1, keepdim=True).float(), profile.amax(dim=1, keepdim=True)


def synthetic_cells(n: int = 256, size: int = 64, seed: int = 0, noise: float = 0.3,
                    blur: float = 1.0, max_cells: int = 8) -> TensorDataset:
    """``n`` images with 1..``max_cells`` elliptical cells each, and their exact masks.

    Returns a TensorDataset of images float32 (n, 1, size, size) and masks float32 (n, 1, size,
    size) in {0, 1}. Cells (semi-axes 5-14% of ``size``) may overlap and may be cut by the
    border; the mask is their union. Image = background + cells, blurred with a Gaussian of
    std ``blur`` pixels, plus Gaussian noise of std ``noise``. Cell brightness is 0.5-1.0 over a
    background of 0-0.3 with an illumination gradient of up to +-0.2. The same ``seed`` gives
    the same data, bit for bit.
    """
    _check(n, size, noise, blur, max_cells)
    g = torch.Generator().manual_seed(seed)

    def uniform(low, high, shape):
        return low + (high - low) * torch.rand(shape, generator=g)

    m = max_cells
    present = torch.arange(m) < torch.randint(1, m + 1, (n, 1), generator=g)  # (n, m)
    a = uniform(0.05 * size, 0.14 * size, (n, m))
    b = a * uniform(0.55, 1.0, (n, m))  # elongation
    angle = uniform(0, math.pi, (n, m))
    cx, cy = uniform(0, size, (n, m)), uniform(0, size, (n, m))
    brightness = uniform(0.5, 1.0, (n, m))
    level = uniform(0.0, 0.3, (n, 1, 1, 1))
    slope_x, slope_y = uniform(-0.2, 0.2, (n, 1, 1, 1)), uniform(-0.2, 0.2, (n, 1, 1, 1))

    masks, cells = [], []
    for i in range(0, n, CHUNK):
        part = slice(i, i + CHUNK)
        mask, cell = _render(cx[part], cy[part], a[part], b[part], angle[part],
                             brightness[part], present[part], size)
        masks.append(mask)
        cells.append(cell)
    ramp = torch.linspace(-1, 1, size)
    background = level + slope_x * ramp.view(1, 1, 1, -1) + slope_y * ramp.view(1, 1, -1, 1)
    images = gaussian_blur(background + torch.cat(cells), blur)
    images = images + noise * torch.randn(images.shape, generator=g)
    return TensorDataset(images, torch.cat(masks))
