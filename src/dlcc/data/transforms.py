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
from torch.utils.data import Dataset

from dlcc.scratch._checks import integer

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
    integer("padding", padding, low=0)
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

    Randomness is a pure function of ``(seed, epoch, index)``: item ``index`` draws from a
    generator seeded with those three numbers, so an epoch's augmentations are the same in
    every process and DataLoader worker, and resuming a run needs no saved state.
    :func:`dlcc.train.fit` calls :meth:`set_epoch` before each epoch (as it does for a
    ``DistributedSampler``); a hand-written loop should too, or every epoch repeats the
    augmentations of epoch 0.
    """

    def __init__(self, dataset: Dataset, transform: Transform, *, seed: int = 0,
                 masks: bool = False):
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        self.dataset = dataset
        self.transform = transform
        self.masks = masks
        self.seed = seed
        # In shared memory, so worker processes (persistent ones too) see set_epoch's value.
        self.epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentations of ``epoch`` from now on."""
        self.epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def generator(self, index: int) -> torch.Generator:
        """The generator item ``index`` draws from in the current epoch."""
        # hash() of a tuple of ints is the same in every process (only str hashes are salted).
        seed = hash((self.seed, int(self.epoch), int(index))) % 2**64
        return torch.Generator().manual_seed(seed)

    def __getitem__(self, index):
        image, *rest = self.dataset[index]
        generator = self.generator(index)
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
