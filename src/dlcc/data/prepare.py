"""From tensors to batches: standardisation with training statistics, loaders.

For random splits of a Dataset, use ``torch.utils.data.random_split(dataset, (0.8, 0.1, 0.1),
generator=torch.Generator().manual_seed(seed))``.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from dlcc.scratch._checks import integer


def _check_images(images: object) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W); got {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("images is empty: statistics need at least one image")
    return images


def normalization_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std, float32 (C,), of images (N, C, H, W), in the images' units.

    Pass the training split only: statistics that saw the test images leak information about
    them into the model. Sums run in float64, since 60,000 MNIST images hold 47M values.
    A constant channel gets std 1 so that standardising it gives zeros, not NaN.
    """
    x = _check_images(images).to(torch.float64)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.float(), std.float()


def to_dataset(images: torch.Tensor, labels: torch.Tensor, mean=None, std=None
               ) -> TensorDataset:
    """TensorDataset of ``(images - mean) / std`` as float32 (N, C, H, W) and int64 labels (N,).

    ``mean`` and ``std`` are per channel, (C,), in the units of ``images`` (0..255 for uint8).
    Leave both out for the training split, whose own statistics are then used; give the
    training statistics (from :func:`normalization_stats`) for validation and test splits::

        mean, std = normalization_stats(x_train)
        train = to_dataset(x_train, y_train, mean, std)
        test = to_dataset(x_test, y_test, mean, std)
    """
    _check_images(images)
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),):
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), one per image; "
                         f"got {got}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (training statistics) or neither")
    if mean is None:
        mean, std = normalization_stats(images)
    c = images.shape[1]
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
    std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
    if mean.numel() != c or std.numel() != c:
        raise ValueError(f"mean and std need one value per channel ({c}); got {mean.numel()} "
                         f"and {std.numel()}")
    x = (images.float() - mean.view(1, c, 1, 1)) / std.view(1, c, 1, 1)
    return TensorDataset(x, labels.long())


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, *,
                device: str | torch.device | None = None, num_workers: int = 0, seed: int = 0,
                sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader whose shuffling is reproducible (a generator seeded with ``seed``).

    Memory is pinned only for a CUDA ``device``, where it lets ``.to(device,
    non_blocking=True)`` overlap the copy with compute; on CPU it would only cost time.
    ``sampler`` replaces shuffling (e.g. a ``DistributedSampler``), so it excludes
    ``shuffle=True``. Worker processes start afresh each epoch, seeded from the loader's
    generator: a data set that draws from torch's global generator in ``__getitem__`` then
    gets the same draws again when :func:`dlcc.train.fit` resumes a run (persistent workers
    would carry their generators from epoch to epoch, where no checkpoint sees them).
    """
    batch_size = integer("batch_size", batch_size)
    if sampler is not None and shuffle:
        raise ValueError("shuffle must be False when a sampler is given: the sampler decides "
                         "the order")
    num_workers = integer("num_workers", num_workers, low=0)
    pin = device is not None and torch.device(device).type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                      num_workers=num_workers, pin_memory=pin,
                      generator=torch.Generator().manual_seed(seed))
