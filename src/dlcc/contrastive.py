"""Self-supervised contrastive learning (SimCLR): two views of each image and the NT-Xent loss.

SimCLR (Chen et al. 2020) trains an encoder without labels: every image is augmented twice,
and the loss asks the two embeddings of the same image (the *positive pair*) to be more similar
to each other than to the embeddings of every other image in the batch (the *negatives*).
:func:`nt_xent` is that loss; :func:`microscopy_views` is an augmentation for single-channel
microscopy patches built on :mod:`dlcc.data.transforms`; :func:`two_view_loader` feeds
:func:`dlcc.train.fit` batches of both views, and :func:`contrastive_loss` is the matching
``loss_fn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcc.data.synthetic import gaussian_blur
from dlcc.data.transforms import Transform, _as_batch, _check_generator, random_crop, random_flip
from dlcc.scratch._checks import integer

__all__ = ["nt_xent", "contrastive_loss", "intensity_jitter", "microscopy_views",
           "two_view_loader"]


def _temperature(temperature: object) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The normalised-temperature cross-entropy of SimCLR, averaged over all 2N anchors.

    ``z1[i]`` and ``z2[i]`` (each (N, D)) embed two views of image ``i``. With every row
    scaled to unit length and ``s(a, b)`` the cosine similarity, the loss of anchor ``z1[i]``
    is ``-log(exp(s(z1[i], z2[i]) / t) / sum_{k != anchor} exp(s(z1[i], k) / t))``, the sum
    running over the other 2N - 1 embeddings; the anchors ``z2[i]`` are treated the same way.
    It is a (2N)-way softmax cross-entropy whose correct class is the positive.
    """
    t = _temperature(temperature)
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or not z.is_floating_point():
            got = f"shape {tuple(z.shape)} of {z.dtype}" if isinstance(z, torch.Tensor) \
                else type(z).__name__
            raise ValueError(f"{name} must be a floating-point tensor (N, D), got {got}")
    if z1.shape != z2.shape:
        raise ValueError(f"z2 must have the shape of z1 {tuple(z1.shape)}, got "
                         f"{tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"z1 must hold at least 2 rows (one positive, one negative), got {n}")
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / t
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                -math.inf)  # an embedding is not its own candidate
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, positive)


def contrastive_loss(temperature: float = 0.5) -> Callable[[torch.Tensor, torch.Tensor],
                                                           torch.Tensor]:
    """``loss_fn(z, _)`` for :func:`dlcc.train.fit`: ``z`` is (2N, D), the first N rows the
    first views (as :func:`two_view_loader` stacks them); the targets are ignored."""
    t = _temperature(temperature)

    def loss_fn(z: torch.Tensor, _targets: torch.Tensor) -> torch.Tensor:
        if z.shape[0] % 2:
            raise ValueError(f"z must stack two views (an even number of rows), got "
                             f"{z.shape[0]}")
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, t)
    return loss_fn


def intensity_jitter(x: torch.Tensor, generator: torch.Generator, contrast: float = 0.4,
                     brightness: float = 0.4, noise: float = 0.1,
                     blur: float = 1.0) -> torch.Tensor:
    """Change each image the way two acquisitions of one sample differ.

    Per image: multiply by a contrast factor uniform in [1 - contrast, 1 + contrast] (in
    units of the image's standard deviation, around its mean), shift by brightness times a
    standard normal (same units), blur with probability 1/2 (a Gaussian of std ``blur``
    pixels) and add Gaussian noise of std uniform in [0, noise] (same units). The colour
    jitter of SimCLR, for one channel.
    """
    batch, single = _as_batch(x)
    _check_generator(generator)
    for name, value in (("contrast", contrast), ("brightness", brightness), ("noise", noise),
                        ("blur", blur)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if contrast >= 1:
        raise ValueError(f"contrast must be < 1 (a factor can not reach 0), got {contrast}")
    n = len(batch)

    def draw(*shape):
        return torch.rand(n, *shape, generator=generator, dtype=batch.dtype)

    scale = batch.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    factor = 1 + contrast * (2 * draw(1, 1, 1) - 1)
    shift = brightness * torch.randn(n, 1, 1, 1, generator=generator, dtype=batch.dtype)
    out = mean + (batch - mean) * factor + shift * scale
    if blur > 0:
        blurred = draw(1, 1, 1) < 0.5
        out = torch.where(blurred, gaussian_blur(out, blur), out)
    sigma = noise * draw(1, 1, 1) * scale
    out = out + sigma * torch.randn(out.shape, generator=generator, dtype=batch.dtype)
    return out[0] if single else out


def microscopy_views(crop: int = 4, **jitter) -> Transform:
    """The SimCLR augmentation for single-channel microscopy patches: a random shift of up
    to ``crop`` pixels (:func:`dlcc.data.transforms.random_crop`), a left-right flip, a
    random multiple of 90 degrees (no interpolation, no empty corners) and
    :func:`intensity_jitter` with the options ``jitter``. Orientation carries no meaning in
    a micrograph, so every one of these should leave a patch's class unchanged."""
    integer("crop", crop, low=0)

    def views(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, single = _as_batch(x)
        out = random_flip(random_crop(batch, generator, padding=crop), generator)
        if out.shape[-1] == out.shape[-2]:
            quarter = torch.randint(0, 4, (len(out),), generator=generator)
            turns = torch.stack([torch.rot90(out, k, dims=(-2, -1)) for k in range(4)])
            out = turns[quarter, torch.arange(len(out))]
        out = intensity_jitter(out, generator, **jitter)
        return out[0] if single else out
    return views


class _TwoViews:
    """collate_fn: a list of (image,) items -> (both views stacked (2N, C, H, W), zeros (N,))."""

    def __init__(self, augment: Transform, seed: int):
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, items):
        x = torch.stack([item[0] for item in items])
        views = torch.cat([self.augment(x, self.generator), self.augment(x, self.generator)])
        return views, torch.zeros(len(x), dtype=torch.long)


def two_view_loader(images: torch.Tensor, batch_size: int, augment: Transform | None = None,
                    *, seed: int = 0) -> DataLoader:
    """Shuffled batches of unlabelled ``images`` (N, C, H, W), each returned as its two
    augmented views stacked, ``(2B, C, H, W)``, with dummy targets: train with
    ``fit(nn.Sequential(encoder, projection), two_view_loader(...),
    loss_fn=contrastive_loss(t), ...)``. The last incomplete batch is dropped (a batch of
    one has no negatives). ``augment`` defaults to :func:`microscopy_views`; shuffling and
    augmentation draw from generators seeded with ``seed``, so a run is reproducible. The
    augmentation generator runs on from epoch to epoch and is not in ``fit``'s checkpoints:
    a resumed run draws other views than the uninterrupted one would have.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (N, C, H, W), got {got}")
    batch_size = integer("batch_size", batch_size, low=2)
    if len(images) < batch_size:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the number of images "
                         f"({len(images)})")
    augment = augment if augment is not None else microscopy_views()
    if not callable(augment):
        raise TypeError(f"augment must be callable, got {type(augment).__name__}")
    return DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True,
                      drop_last=True, collate_fn=_TwoViews(augment, seed + 1),
                      generator=torch.Generator().manual_seed(seed))
