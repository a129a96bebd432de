"""Fluorescence micrographs simulated the way a microscope and camera make them.

A fluorescence image is the density of fluorophores, seen through the microscope's point-spread
function (PSF, a blur), under uneven illumination, then counted as photons: the count in a pixel
is Poisson-distributed around its expected value (shot noise), and the camera adds Gaussian read
noise. :func:`poisson_gaussian` is that last step on any image, real or simulated;
:func:`fluorescent_nuclei` runs the whole chain on generated nuclei and returns, for every
image, the noisy acquisition, the expected (noise-free) image and the exact mask.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import TensorDataset

from dlcc.scratch._checks import integer

from .synthetic import MAX_AXIS, _render, gaussian_blur


def _positive(name: str, value, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok or math.isinf(value):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {expected}, got {value!r}")
    return float(value)


def poisson_gaussian(clean: torch.Tensor, photons: float, read_noise: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """A noisy acquisition of the expected image ``clean`` (values >= 0, 1 = full brightness).

    A pixel of value ``c`` collects on average ``photons * c`` photo-electrons; their count is
    Poisson-distributed (shot noise), and the camera adds Gaussian read noise of standard
    deviation ``read_noise`` electrons. The result is divided by ``photons`` again, so it has
    the units of ``clean`` and ``clean`` is its expectation; its variance is
    ``c / photons + (read_noise / photons) ** 2``: the fewer photons, the noisier.
    """
    photons = _positive("photons", photons)
    read_noise = _positive("read_noise", read_noise, allow_zero=True)
    if not isinstance(clean, torch.Tensor) or not clean.is_floating_point():
        raise ValueError(f"clean must be a floating-point tensor, got {type(clean).__name__}"
                         + (f" of {clean.dtype}" if isinstance(clean, torch.Tensor) else ""))
    if (clean < 0).any():
        raise ValueError(f"clean must be >= 0 (an expected photon count), got a minimum of "
                         f"{clean.min().item():.3g}")
    electrons = torch.poisson(clean * photons, generator=generator)
    electrons = electrons + read_noise * torch.randn(clean.shape, generator=generator,
                                                     dtype=clean.dtype)
    return electrons / photons


def fluorescent_nuclei(n: int = 256, size: int = 48, seed: int = 0, photons: float = 30.0,
                       read_noise: float = 2.0, psf_sigma: float = 1.5,
                       max_cells: int = 8) -> TensorDataset:
    """``n`` simulated fluorescence images of stained nuclei: noisy, clean and mask.

    Returns a TensorDataset of three float32 tensors (n, 1, size, size): the noisy acquisition,
    its expectation (the clean image a denoiser should recover) and the exact nuclear mask in
    {0, 1}. The chain: 1..``max_cells`` elliptical nuclei (semi-axes 5-14 % of ``size``,
    brightness 0.5-1, dimmer rim) on autofluorescence of 0.02-0.1; a Gaussian PSF of std
    ``psf_sigma`` pixels; illumination falling off by up to 30 % across the field;
    :func:`poisson_gaussian` with ``photons`` photo-electrons at full brightness and
    ``read_noise`` electrons of read noise. The same ``seed`` gives the same data, bit for bit.
    """
    for name, value, low in (("n", n, 1), ("size", size, 8), ("max_cells", max_cells, 1)):
        integer(name, value, low)
    psf_sigma = _positive("psf_sigma", psf_sigma, allow_zero=True)
    g = torch.Generator().manual_seed(seed)

    def uniform(low, high, shape):
        return low + (high - low) * torch.rand(shape, generator=g)

    m = max_cells
    present = torch.arange(m) < torch.randint(1, m + 1, (n, 1), generator=g)
    a = uniform(0.05 * size, MAX_AXIS * size, (n, m))
    b = a * uniform(0.55, 1.0, (n, m))
    angle = uniform(0, math.pi, (n, m))
    cx, cy = uniform(0, size, (n, m)), uniform(0, size, (n, m))
    brightness = uniform(0.5, 1.0, (n, m))
    masks, cells = _render(cx, cy, a, b, angle, brightness, present, size)
    autofluorescence = uniform(0.02, 0.1, (n, 1, 1, 1))
    # Illumination: 1 at the brightest corner, down to 0.7 at the opposite one.
    ramp = torch.linspace(0, 1, size)
    fall_x, fall_y = uniform(0, 0.15, (n, 1, 1, 1)), uniform(0, 0.15, (n, 1, 1, 1))
    illumination = 1 - fall_x * ramp.view(1, 1, 1, -1) - fall_y * ramp.view(1, 1, -1, 1)
    clean = illumination * gaussian_blur(autofluorescence + cells, psf_sigma)
    noisy = poisson_gaussian(clean, photons, read_noise, generator=g)
    return TensorDataset(noisy, clean, masks)
