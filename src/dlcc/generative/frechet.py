"""Sample quality as a number: the Fréchet distance between two sets of features.

Fit a Gaussian to each set of feature vectors (means m_a, m_b; covariances C_a, C_b); the
Fréchet (2-Wasserstein) distance between the two Gaussians is

    d^2 = |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2})

(Dowson and Landau 1982). Computed on the features of an Inception network it is the FID of
Heusel et al. (2017); the course uses the penultimate layer of a small digit classifier trained
on the real offline MNIST digits (:func:`digit_classifier`), so that every page computes the
same number the same way. It is only comparable between runs with the same classifier and
similar sample sizes (it is biased upwards for small sets): report it beside real-vs-real
(held-out real digits) and noise-vs-real.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from dlcc.scratch._checks import integer


def _as_features(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"{name} must be a 2-D array of feature vectors (N, D) with N >= 2, "
                         f"got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (via eigh)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(feats_a, feats_b) -> float:
    """The Fréchet distance d^2 between Gaussians fitted to ``feats_a`` and ``feats_b``.

    Both are (N, D) arrays or tensors of feature vectors (the numbers of rows may differ).
    The matrix square root goes through symmetric eigendecompositions: tr((C_a C_b)^{1/2})
    equals the sum of the square roots of the eigenvalues of C_a^{1/2} C_b C_a^{1/2}, a
    symmetric positive semi-definite matrix, which avoids the complex round-off of a general
    ``sqrtm``. Returns a float >= 0, in squared feature units; 0 for identical sets.
    """
    a, b = _as_features("feats_a", feats_a), _as_features("feats_b", feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same number of features, got "
                         f"{a.shape[1]} and {b.shape[1]}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    d2 = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(d2, 0.0))


def _check_pixels(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1:] != (1, 28,
                                                                                       28):
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of digit images (N, 1, 28, 28), got {got}")
    low, high = images.min().item(), images.max().item()
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"images must hold pixel values in [0, 1], got {low:.3g}..{high:.3g}; "
                         "map a tanh generator's output with (x + 1) / 2")
    return images.float()


@torch.no_grad()
def classifier_features(model: nn.Module, images: torch.Tensor,
                        batch_size: int = 500) -> torch.Tensor:
    """The input of ``model``'s last linear layer for each image: (N, features), float32.

    That penultimate layer is what the classifier has learned to find in an image; two sets
    of images whose features are distributed alike look alike to it. ``images`` are digits
    (N, 1, 28, 28) with pixels in [0, 1], the classifier's training scale. The model runs in
    eval mode on its own device; the features come back on the CPU.
    """
    images = _check_pixels(images)
    batch_size = integer("batch_size", batch_size)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(f"model must end in an nn.Linear layer whose input are the features; "
                         f"{type(model).__name__} has none")
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = linear[-1].register_forward_hook(lambda m, inputs, out: captured.append(inputs[0]))
    was_training = model.training
    try:
        model.eval()
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size].to(device))
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat([c.float().cpu() for c in captured]).flatten(1)


@functools.lru_cache(maxsize=4)
def _trained_classifier(seed: int, epochs: int) -> nn.Module:
    from dlcc.data import make_loader, mnist_small
    from dlcc.models import LeNet5
    from dlcc.train import fit

    train = mnist_small(seed=seed, standardize=False).train
    x, y = train.tensors
    with torch.random.fork_rng(devices=[]):  # the caller's global generator is left alone
        torch.manual_seed(seed)
        model = LeNet5(1, 10)
        fit(model, make_loader(TensorDataset(x / 255, y), 64, shuffle=True, seed=seed),
            loss_fn=nn.CrossEntropyLoss(), epochs=epochs, device="cpu", progress="off",
            optimizer=torch.optim.Adam(model.parameters(), lr=2e-3))
    return model.eval()


def digit_classifier(seed: int = 0, epochs: int = 3) -> nn.Module:
    """A LeNet-5 trained on the training split of the real offline MNIST digits.

    The 3,500 training digits of ``dlcc.data.mnist_small(seed=seed)`` (pixels divided by
    255, so [0, 1]), ``epochs`` epochs of Adam; deterministic for a seed and cached in the
    process, so every page that asks gets the same network (above 90 % test accuracy with the
    defaults; a few seconds on one CPU thread). Use the digits of the validation and
    test splits as held-out real references: the classifier never saw them. Its features are
    the 84 numbers before the output layer (:func:`classifier_features`). On the CPU; move
    it with ``.to(device)`` if needed (a copy: ``copy.deepcopy`` first keeps the cache's).
    """
    return _trained_classifier(integer("seed", seed, low=0), integer("epochs", epochs))


def image_frechet_distance(images_a: torch.Tensor, images_b: torch.Tensor,
                           classifier: nn.Module | None = None) -> float:
    """:func:`frechet_distance` of two sets of digit images in ``classifier``'s features.

    Images (N, 1, 28, 28) with pixels in [0, 1]; ``classifier`` defaults to
    :func:`digit_classifier` ``()``.
    """
    classifier = classifier if classifier is not None else digit_classifier()
    return frechet_distance(classifier_features(classifier, images_a),
                            classifier_features(classifier, images_b))
