"""Data augmentation as plain tensor functions with an explicit ``torch.Generator``.

Every augmentation has the signature ``f(x, generator, **options)`` and works on one image
(C, H, W) or a batch (N, C, H, W), drawing independent randomness per image. Passing the
generator explicitly (never the global RNG) makes every augmented image reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F
from torch.utils.data import Dataset, get_worker_info

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _as_batch(x: object) -> tuple[torch.Tensor, bool]:
    """(N, C, H, W) view of ``x`` and whether ``x`` was a single (C, H, W) image."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim == 4:
        return x, False
    raise ValueError(f"x must have shape (C, H, W) or (N, C, H, W); got {tuple(x.shape)}")


def _check_generator(generator: object) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``; same shape as ``x``."""
    batch, single = _as_batch(x)
    _check_generator(generator)
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    flip = torch.rand(len(batch), generator=generator) < p
    out = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
    return out[0] if single else out


def random_crop(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Zero-pad by ``padding`` on every side, then cut a random window of the original size.

    The CIFAR recipe of He et al. (2016): shifts of up to ``padding`` pixels in each direction.
    """
    batch, single = _as_batch(x)
    _check_generator(generator)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    n, _, h, w = batch.shape
    padded = F.pad(batch, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator)
    rows = (top + torch.arange(h))[:, :, None]   # (n, h, 1)
    cols = (left + torch.arange(w))[:, None, :]  # (n, 1, w)
    # Advanced indexing on dims 0, 2, 3 puts the channel dim last: (n, h, w, C).
    out = padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    return out[0] if single else out


def random_rotate(x: torch.Tensor, generator: torch.Generator, degrees: float = 15.0,
                  mode: str = "bilinear") -> torch.Tensor:
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees].

    Pixels that come from outside the image are 0. ``mode="nearest"`` keeps label values
    (e.g. masks) exact. ``x`` must be floating point: the rotation interpolates.
    """
    batch, single = _as_batch(x)
    _check_generator(generator)
    if not batch.is_floating_point():
        raise TypeError(f"x must be floating point to be rotated, got {batch.dtype}")
    if not degrees >= 0:
        raise ValueError(f"degrees must be >= 0, got {degrees}")
    n, _, h, w = batch.shape
    angle = (2 * torch.rand(n, generator=generator) - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    # affine_grid works in coordinates scaled to [-1, 1] on each axis; the H/W factors undo
    # that scaling so a non-square image turns rigidly instead of being sheared.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = -sin * w / h, cos
    grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out[0] if single else out


def compose(*transforms: Transform) -> Transform:
    """One transform that applies ``transforms`` in order, sharing the generator."""
    def composed(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in transforms:
            x = t(x, generator)
        return x
    return composed


class Augmented(Dataset):
    """``dataset`` whose images (first element of each item) pass through ``transform``.

    ``transform(image, generator)`` is e.g. ``functools.partial(random_crop, padding=4)`` or a
    :func:`compose` of several. With ``masks=True`` the second element is a mask (C_m, H, W)
    that must move with the image: it is stacked onto the image as extra channels, so both see
    the same random draws, and re-binarised at 0.5 afterwards. Use only geometric transforms
    then; a change of brightness would change the mask too.

    Randomness comes from a generator seeded with ``seed``; in DataLoader worker processes each
    worker seeds its own from the loader's per-worker seed, so workers do not repeat each
    other and a seeded loader gives the same epochs again.
    """

    def __init__(self, dataset: Dataset, transform: Transform, *, seed: int = 0,
                 masks: bool = False):
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.transform = transform
        self.masks = masks
        self.generator = torch.Generator().manual_seed(seed)
        self._worker: tuple[int, torch.Generator] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def _generator(self) -> torch.Generator:
        info = get_worker_info()
        if info is None:
            return self.generator
        if self._worker is None or self._worker[0] != info.seed:
            self._worker = (info.seed, torch.Generator().manual_seed(info.seed))
        return self._worker[1]

    def __getitem__(self, index):
        image, *rest = self.dataset[index]
        generator = self._generator()
        if not self.masks:
            return (self.transform(image, generator), *rest)
        if not rest or not isinstance(rest[0], torch.Tensor) or rest[0].ndim != 3 \
                or rest[0].shape[-2:] != image.shape[-2:]:
            got = tuple(rest[0].shape) if rest and isinstance(rest[0], torch.Tensor) else rest
            raise ValueError(f"masks=True needs items (image, mask) with a mask (C, H, W) of "
                             f"the image's size {tuple(image.shape[-2:])}; got {got}")
        mask = rest[0]
        both = self.transform(torch.cat([image, mask.to(image.dtype)]), generator)
        c = image.shape[0]
        return (both[:c], (both[c:] > 0.5).to(mask.dtype), *rest[1:])
