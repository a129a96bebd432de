"""A "Clever Hans" microscopy set: the label is in the cells, and also in a scale bar.

The images are :func:`dlcc.data.microscopy.fluorescent_nuclei` acquisitions; an image is
labelled "dense" (1) when its nuclei cover more than ``threshold`` of the field and "sparse"
(0) otherwise, a property of the cells alone. The shortcut: with probability ``bar_match`` a
bright scale bar in the bottom-right corner is drawn exactly on the dense images (as if the
dense samples had all been imaged on the microscope that stamps a bar), otherwise it is drawn
on a random half of the images whatever their label. ``bar_match=1`` makes the bar a perfect
predictor, ``bar_match=0`` makes it uninformative.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from .microscopy import fluorescent_nuclei


def scale_bar(size: int) -> tuple[slice, slice]:
    """Rows and columns of the scale bar in a ``size`` x ``size`` image: bottom right."""
    thick, length, margin = max(1, size // 16), size // 3, max(1, size // 12)
    return (slice(size - margin - thick, size - margin),
            slice(size - margin - length, size - margin))


def clever_hans(n: int = 512, size: int = 32, bar_match: float = 1.0, seed: int = 0,
                threshold: float = 0.07, brightness: float = 1.0) -> TensorDataset:
    """``n`` images (n, 1, size, size) in [0, 1], labels (n,) and whether a bar is drawn (n,).

    Returns a TensorDataset of (images float32, labels int64, bar bool). The images are the
    noisy acquisitions clipped to [0, 1], with the bar's pixels set to ``brightness``.
    """
    if not 0 <= bar_match <= 1:
        raise ValueError(f"bar_match must be a probability in [0, 1], got {bar_match!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a fraction in (0, 1), got {threshold!r}")
    noisy, _, masks = fluorescent_nuclei(n=n, size=size, seed=seed, max_cells=6).tensors
    labels = (masks.mean(dim=(1, 2, 3)) > threshold).long()
    g = torch.Generator().manual_seed(seed + 1)
    matched = torch.rand(n, generator=g) < bar_match
    coin = torch.rand(n, generator=g) < 0.5
    bar = torch.where(matched, labels.bool(), coin)
    images = noisy.clamp(0, 1)
    rows, cols = scale_bar(size)
    images[bar, :, rows, cols] = brightness
    return TensorDataset(images, labels, bar)
