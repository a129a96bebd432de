"""The VAE's objective: the evidence lower bound (ELBO), term by term.

For an image x (pixels in [0, 1], read as Bernoulli probabilities), an encoder
q(z | x) = N(mu, diag(sigma^2)) and a standard normal prior p(z),

    log p(x) >= E_q[log p(x | z)] - KL(q(z | x) || p(z)),

and the KL between two Gaussians has the closed form

    KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1).

:func:`elbo` returns the negative ELBO to minimise, with both terms, in nats per image.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F


class ELBOTerms(NamedTuple):
    """Per-image means over the batch, in nats: ``loss = reconstruction + beta * kl``."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) for each row, (N, D) -> (N,), in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=1)


def _check(name: str, value, shape=None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                        f"{type(value).__name__}"
                        + (f" of {value.dtype}" if isinstance(value, torch.Tensor) else ""))
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(value.shape)}")
    return value


def elbo(x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
         beta: float = 1.0) -> ELBOTerms:
    """The negative ELBO of a batch and its two terms, each a per-image mean in nats.

    - ``x``: the images, (N, ...) with values in [0, 1]; ``x_hat``: the decoder's Bernoulli
      means for them, same shape, in (0, 1).
    - ``mu``, ``logvar``: the encoder's Gaussian, (N, D).
    - ``reconstruction``: ``-log p(x | z)``, the binary cross-entropy summed over pixels;
      ``kl``: :func:`kl_to_standard_normal`; ``loss = reconstruction + beta * kl`` (``beta``
      = 1 is the ELBO; Higgins et al.'s beta-VAE weighs the KL more to untangle the code).

    Computed in float32 even under autocast (the cross-entropy of half-precision
    probabilities is not safe).
    """
    _check("x", x)
    _check("x_hat", x_hat, x.shape)
    _check("mu", mu)
    if mu.ndim != 2 or len(mu) != len(x):
        raise ValueError(f"mu must have shape (N, D) with N = {len(x)} images, "
                         f"got {tuple(mu.shape)}")
    _check("logvar", logvar, mu.shape)
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"x must hold pixel values in [0, 1], got {x.min().item():.3g}.."
                         f"{x.max().item():.3g}; divide 0..255 pixels by 255")
    with torch.autocast(x.device.type, enabled=False):
        bce = F.binary_cross_entropy(x_hat.float(), x.float(), reduction="none")
        reconstruction = bce.reshape(len(x), -1).sum(dim=1).mean()
        kl = kl_to_standard_normal(mu.float(), logvar.float()).mean()
    return ELBOTerms(reconstruction + beta * kl, reconstruction, kl)


class VAELoss:
    """``loss_fn(outputs, x)`` for :func:`dlcc.train.fit`: the negative ELBO of a VAE.

    ``fit`` calls ``loss_fn(model(x), y)``; a VAE returns ``(x_hat, mu, logvar)`` and its
    target is the input itself, so train on a data set of ``(x, x)`` pairs
    (``TensorDataset(x, x)``) with ``loss_fn=VAELoss(beta)``.
    """

    def __init__(self, beta: float = 1.0):
        self.beta = beta

    def __call__(self, outputs, x: torch.Tensor) -> torch.Tensor:
        if not (isinstance(outputs, tuple) and len(outputs) == 3):
            raise ValueError("outputs must be the VAE's (x_hat, mu, logvar), got "
                             f"{type(outputs).__name__}")
        x_hat, mu, logvar = outputs
        return elbo(x, x_hat, mu, logvar, self.beta).loss
