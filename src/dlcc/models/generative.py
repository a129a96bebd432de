"""Generative models for 28x28 single-channel images, and a patch discriminator.

- :class:`ConvAutoencoder`: image -> ``latent_dim`` numbers -> image (learned compression).
- :class:`VAE`: the same shape of network, with a Gaussian encoder q(z | x) and a sampled code.
- :class:`DCGANGenerator`, :class:`DCGANDiscriminator`: Radford et al. (2016) at MNIST size,
  conditional on a class label when ``num_classes`` is given.
- :class:`PatchDiscriminator`: the PatchGAN of pix2pix (Isola et al. 2017), a real/fake logit
  per patch for image-to-image translation; the generator there is :class:`dlcc.models.UNet`.

Pixels: the autoencoder and VAE output values in (0, 1) (a sigmoid), the DCGAN generator values
in (-1, 1) (a tanh, as in the DCGAN paper).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_images, init_weights, positive_int

SIDE = 28  # image side these models are built for: 28 -> 14 -> 7 and back


def _check_side(x: torch.Tensor, name: str = "x") -> None:
    if tuple(x.shape[-2:]) != (SIDE, SIDE):
        raise ValueError(f"{name} must be {SIDE}x{SIDE} images, got {tuple(x.shape[-2:])}")


def _encoder(in_channels: int, width: int) -> nn.Sequential:
    """(N, in_channels, 28, 28) -> (N, 2*width*7*7): two stride-2 convs, then flatten."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.BatchNorm2d(2 * width),
        nn.LeakyReLU(0.2), nn.Flatten())


def _decoder(latent_dim: int, width: int, out: nn.Module) -> nn.Sequential:
    """(N, latent_dim) -> (N, 1, 28, 28): a linear map to 7x7 maps, two stride-2 transposed
    convs, and the output nonlinearity ``out``."""
    return nn.Sequential(
        nn.Linear(latent_dim, 2 * width * 7 * 7), nn.Unflatten(1, (2 * width, 7, 7)),
        nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), out)


class ConvAutoencoder(nn.Module):
    """Encoder to a ``latent_dim`` code, decoder back to (N, 1, 28, 28) pixels in (0, 1).

    ``encode(x)`` gives the code (N, latent_dim), ``decode(z)`` the image; ``forward`` is both.
    Train with a reconstruction loss such as ``nn.BCELoss()`` or ``nn.MSELoss()`` on pixels
    scaled to [0, 1].
    """

    def __init__(self, latent_dim: int = 16, width: int = 32):
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)
        positive_int("width", width)
        self.encoder = nn.Sequential(_encoder(1, width), nn.Linear(2 * width * 49, latent_dim))
        self.decoder = _decoder(latent_dim, width, nn.Sigmoid())
        init_weights(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, 1)
        _check_side(x)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class VAE(nn.Module):
    """Variational autoencoder (Kingma and Welling 2014) for (N, 1, 28, 28) pixels in [0, 1].

    The encoder gives the mean ``mu`` and log-variance ``logvar`` (N, latent_dim) of a
    diagonal Gaussian q(z | x); :meth:`reparameterize` draws ``z = mu + exp(logvar / 2) * eps``
    with ``eps ~ N(0, I)``, so the sample is a differentiable function of ``mu`` and
    ``logvar``; the decoder maps z to Bernoulli means (pixel values in (0, 1)).
    ``forward(x)`` returns ``(x_hat, mu, logvar)``, what :func:`dlcc.generative.vae.elbo`
    takes. New images: ``decode(torch.randn(n, latent_dim))``.
    """

    def __init__(self, latent_dim: int = 16, width: int = 32):
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)
        positive_int("width", width)
        self.encoder = _encoder(1, width)
        self.to_stats = nn.Linear(2 * width * 49, 2 * latent_dim)  # mu and logvar
        self.decoder = _decoder(latent_dim, width, nn.Sigmoid())
        init_weights(self)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x), each (N, latent_dim)."""
        check_images(x, 1)
        _check_side(x)
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """A sample of N(mu, diag(exp(logvar))) as ``mu + sigma * eps`` (torch's global RNG)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def _check_labels(labels, num_classes: int | None, n: int) -> None:
    if num_classes is None:
        if labels is not None:
            raise ValueError("labels were given but the model is unconditional "
                             "(num_classes=None)")
        return
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point():
        got = (f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor)
               else type(labels).__name__)
        raise ValueError(f"labels must be an integer tensor of shape ({n},) for a model "
                         f"conditioned on {num_classes} classes, got {got}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got "
                         f"{labels.min().item()}..{labels.max().item()}")


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) [and labels (N,)] -> images (N, 1, 28, 28) in (-1, 1).

    DCGAN's recipe: a linear projection to 7x7 maps, then stride-2 transposed convolutions
    with BatchNorm and ReLU, and tanh at the output. With ``num_classes`` the label's learned
    embedding (``latent_dim`` numbers) is concatenated to z (a conditional GAN, Mirza and
    Osindero 2014), and ``forward(z, labels)`` needs the labels.
    """

    def __init__(self, latent_dim: int = 64, num_classes: int | None = None, width: int = 64):
        super().__init__()
        self.latent_dim = positive_int("latent_dim", latent_dim)
        self.num_classes = None if num_classes is None else positive_int("num_classes",
                                                                          num_classes)
        positive_int("width", width)
        extra = 0
        if num_classes is not None:
            self.embed = nn.Embedding(num_classes, latent_dim)
            extra = latent_dim
        self.net = _decoder(latent_dim + extra, width, nn.Tanh())
        init_weights(self)
        for m in self.modules():  # DCGAN's initialisation: N(0, 0.02) weights
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {got}")
        _check_labels(labels, self.num_classes, len(z))
        if self.num_classes is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """Images (N, 1, 28, 28) in [-1, 1] [and labels (N,)] -> one real/fake logit each, (N,).

    Two stride-2 convolutions with LeakyReLU(0.2) (BatchNorm on the second, none on the input
    layer, as in DCGAN), then a linear layer. With ``num_classes`` the label's embedding is
    reshaped to a 28x28 map and stacked as a second input channel, so the discriminator judges
    whether the image is a real example *of that class*.
    """

    def __init__(self, num_classes: int | None = None, width: int = 64):
        super().__init__()
        self.num_classes = None if num_classes is None else positive_int("num_classes",
                                                                          num_classes)
        positive_int("width", width)
        channels = 1
        if num_classes is not None:
            self.embed = nn.Embedding(num_classes, SIDE * SIDE)
            channels = 2
        self.net = nn.Sequential(_encoder(channels, width), nn.Linear(2 * width * 49, 1))
        init_weights(self)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_images(x, 1)
        _check_side(x)
        _check_labels(labels, self.num_classes, len(x))
        if self.num_classes is not None:
            x = torch.cat([x, self.embed(labels).view(-1, 1, SIDE, SIDE)], dim=1)
        return self.net(x).squeeze(1)


class PatchDiscriminator(nn.Module):
    """PatchGAN: (N, in_channels, H, W) -> logits (N, 1, H / 2**depth, W / 2**depth).

    Each output logit judges one overlapping patch of the input as real or generated
    (pix2pix, Isola et al. 2017), so the discriminator looks at texture and local structure
    while a pixel loss (L1) takes care of the low frequencies. For conditional translation
    pass the source image and the (real or generated) target stacked on the channel axis:
    ``in_channels = source channels + target channels``. ``depth`` stride-2 4x4 convolutions
    (``width * 2**i`` channels, BatchNorm after all but the first) are followed by a 3x3
    convolution to one channel; H and W must be multiples of ``2**depth``.
    """

    def __init__(self, in_channels: int, width: int = 32, depth: int = 3):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        positive_int("width", width)
        self.depth = positive_int("depth", depth)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c_out = width * 2**i
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        multiple = 2**self.depth
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(f"x must have H and W that are multiples of {multiple} "
                             f"(2**depth), got {tuple(x.shape[-2:])}")
        return self.net(x)
