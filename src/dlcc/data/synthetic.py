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

from dlcc.scratch._checks import integer

MAX_AXIS = 0.14  # largest semi-axis, as a fraction of the image side


def _check(n, size, noise, blur, max_cells) -> None:
    for name, value, low in (("n", n, 1), ("size", size, 8), ("max_cells", max_cells, 1)):
        integer(name, value, low)
    for name, value in (("noise", noise), ("blur", blur)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur images (..., H, W) with a Gaussian of std ``sigma`` pixels, reflecting at borders.

    Written as ``B_h @ x @ B_w.T`` with (H, H) and (W, W) blur matrices: one batched matmul
    is much faster on a CPU than a convolution with a single input channel.
    """
    if sigma == 0:
        return x
    return _blur_matrix(x.shape[-2], sigma) @ x @ _blur_matrix(x.shape[-1], sigma).T


def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) matrix M with ``M @ v`` = v blurred along its length (reflect padding)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    # Column j of M is the blurred unit vector e_j; reflect needs radius < n.
    mode = "reflect" if radius < n else "replicate"
    eye = F.pad(torch.eye(n).unsqueeze(1), (radius, radius), mode=mode)  # (n, 1, n + 2r)
    return F.conv1d(eye, kernel).squeeze(1).T


def _render(cx, cy, a, b, angle, brightness, present, size):
    """Masks and cell intensities (n, 1, H, W) from per-cell parameters (n, max_cells).

    Each cell is drawn only on a square patch around its centre that holds its largest
    possible ellipse, then scattered into the image: about a tenth of the work of evaluating
    every cell at every pixel.
    """
    n, m = cx.shape
    p = math.ceil(2 * MAX_AXIS * size) + 2                          # patch side
    offsets = torch.arange(p)
    x0 = torch.floor(cx - MAX_AXIS * size - 0.5).long()            # patch corner (n, m)
    y0 = torch.floor(cy - MAX_AXIS * size - 0.5).long()
    px = x0[..., None, None] + offsets.view(1, 1, 1, p)            # (n, m, 1, p)
    py = y0[..., None, None] + offsets.view(1, 1, p, 1)            # (n, m, p, 1)
    dx = px + 0.5 - cx[..., None, None]                            # from the pixel centre
    dy = py + 0.5 - cy[..., None, None]
    cos, sin = angle.cos()[..., None, None], angle.sin()[..., None, None]
    # Squared radius in the ellipse's own frame: <= 1 inside.
    r2 = ((dx * cos + dy * sin) / a[..., None, None]) ** 2 \
        + ((dy * cos - dx * sin) / b[..., None, None]) ** 2         # (n, m, p, p)
    onscreen = (px >= 0) & (px < size) & (py >= 0) & (py < size)
    inside = (r2 <= 1) & present[..., None, None] & onscreen
    # A dome: bright centre, rim at 60% of it, like a stained nucleus.
    profile = brightness[..., None, None] * (1 - 0.4 * r2)

    # Pixels outside the ellipse (or off the image) all go to one spare slot at the end.
    index = torch.where(inside, py * size + px, size * size).view(n, -1)
    cells = torch.zeros(n, size * size + 1)
    cells.scatter_reduce_(1, index, profile.view(n, -1), reduce="amax")
    masks = torch.zeros(n, size * size + 1)
    masks.scatter_(1, index, 1.0)
    shape = (n, 1, size, size)
    return masks[:, :-1].reshape(shape), cells[:, :-1].reshape(shape)


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
    a = uniform(0.05 * size, MAX_AXIS * size, (n, m))
    b = a * uniform(0.55, 1.0, (n, m))  # elongation
    angle = uniform(0, math.pi, (n, m))
    cx, cy = uniform(0, size, (n, m)), uniform(0, size, (n, m))
    brightness = uniform(0.5, 1.0, (n, m))
    level = uniform(0.0, 0.3, (n, 1, 1, 1))
    slope_x, slope_y = uniform(-0.2, 0.2, (n, 1, 1, 1)), uniform(-0.2, 0.2, (n, 1, 1, 1))

    masks, cells = _render(cx, cy, a, b, angle, brightness, present, size)
    ramp = torch.linspace(-1, 1, size)
    background = level + slope_x * ramp.view(1, 1, 1, -1) + slope_y * ramp.view(1, 1, -1, 1)
    images = gaussian_blur(background + cells, blur)
    images = images + noise * torch.randn(images.shape, generator=g)
    return TensorDataset(images, masks)
