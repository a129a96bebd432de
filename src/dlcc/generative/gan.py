"""Generative adversarial networks: the losses, one training step, and a plain training loop.

A discriminator D (logits; D's probability is ``sigmoid(logit)``) learns to tell real images
from generated ones, a generator G learns to fool it (Goodfellow et al. 2014):

- D minimises ``-log D(x) - log(1 - D(G(z)))`` (:func:`discriminator_loss`);
- G minimises ``-log D(G(z))`` (:func:`generator_loss`, the *non-saturating* loss) instead of
  the minimax game's ``log(1 - D(G(z)))`` (:func:`minimax_generator_loss`), whose gradient
  vanishes exactly when D confidently rejects G's samples, i.e. early in training.

:func:`gan_step` makes one update of D, then one of G, on a batch of noise (and labels, for a
conditional GAN); :func:`translation_step` is the same for image-to-image translation (pix2pix:
a patch discriminator plus an L1 term); :func:`train_gan` loops over a loader with either,
using :mod:`dlcc.train`'s device, mixed-precision and checkpoint helpers.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from dlcc.scratch._checks import integer
from dlcc.train.checkpoint import (
    load_checkpoint,
    loader_generators,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dlcc.train.device import autocast, get_device, resolve_amp
from dlcc.train.history import History
from dlcc.train.progress import Progress


def _check_smoothing(smoothing) -> float:
    if not isinstance(smoothing, (int, float)) or isinstance(smoothing, bool) or not (
            0 <= smoothing < 0.5):
        raise ValueError(f"smoothing must be a number in [0, 0.5), got {smoothing!r}")
    return float(smoothing)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       smoothing: float = 0.0) -> torch.Tensor:
    """``-log D(x) - log(1 - D(G(z)))``, each term a mean over its logits.

    ``smoothing`` > 0 is one-sided label smoothing (Salimans et al. 2016): real images get the
    target ``1 - smoothing`` instead of 1, fakes keep 0, which stops D from growing
    over-confident on real images. Logits of any shape (one per image, or per patch).
    """
    smoothing = _check_smoothing(smoothing)
    real = F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, 1.0 - smoothing))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``-log D(G(z))``, a mean over the logits."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The minimax game's generator loss ``log(1 - D(G(z)))`` (saturates; for comparison)."""
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def _call(model: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return model(x) if labels is None else model(x, labels)


def _noise(generator: nn.Module, n: int, device) -> torch.Tensor:
    latent_dim = getattr(generator, "latent_dim", None)
    if latent_dim is None:
        raise ValueError("z is needed: the generator has no latent_dim attribute to draw "
                         "noise for")
    return torch.randn(n, latent_dim, device=device)


def gan_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, real: torch.Tensor,
             labels: torch.Tensor | None = None, *, z: torch.Tensor | None = None,
             smoothing: float = 0.0, dtype: torch.dtype | None = None,
             scaler: torch.amp.GradScaler | None = None) -> dict[str, torch.Tensor]:
    """One discriminator update, then one generator update, on the batch ``real``.

    - ``labels``: class labels of ``real`` for a conditional GAN; the fakes get the same
      labels, so G learns each class and D judges image and label together.
    - ``z``: the noise, (N, latent_dim); drawn from torch's global generator if not given.
    - ``dtype``, ``scaler``: autocast dtype and gradient scaler (float16) from
      :func:`dlcc.train.device.resolve_amp`, as ``train_gan`` passes them.

    Returns detached 0-d tensors: ``d_loss``, ``g_loss`` (non-saturating), and ``d_real``,
    ``d_fake``, D's mean probability of "real" for the real and the generated batch (before
    G's update).
    """
    if not isinstance(real, torch.Tensor):
        raise TypeError(f"real must be a torch.Tensor of images, got {type(real).__name__}")
    n = len(real)
    z = _noise(generator, n, real.device) if z is None else z
    if not isinstance(z, torch.Tensor) or len(z) != n:
        raise ValueError(f"z must be a tensor with one row per real image ({n}), got "
                         f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    scaler = scaler if scaler is not None else torch.amp.GradScaler(real.device.type,
                                                                    enabled=False)
    cast = autocast(real.device, dtype)

    # D: push D(x) up on real images, down on generated ones (G held fixed by detach).
    with cast:
        fake = _call(generator, z, labels)
        real_logits = _call(discriminator, real, labels)
        fake_logits = _call(discriminator, fake.detach(), labels)
        d_loss = discriminator_loss(real_logits, fake_logits, smoothing)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(d_loss).backward()
    scaler.step(opt_d)

    # G: make the updated D call its samples real (the non-saturating loss).
    with cast:
        g_loss = generator_loss(_call(discriminator, fake, labels))
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(g_loss).backward()
    scaler.step(opt_g)
    scaler.update()
    with torch.no_grad():
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": torch.sigmoid(real_logits.float()).mean(),
                "d_fake": torch.sigmoid(fake_logits.float()).mean()}


def translation_step(generator: nn.Module, discriminator: nn.Module,
                     opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                     source: torch.Tensor, target: torch.Tensor, *, l1_weight: float = 100.0,
                     smoothing: float = 0.0, dtype: torch.dtype | None = None,
                     scaler: torch.amp.GradScaler | None = None) -> dict[str, torch.Tensor]:
    """One pix2pix update (Isola et al. 2017): D on (source, target) pairs, then G.

    D sees the source stacked with the true target (real) or with G's translation (fake), so
    it judges whether the output fits *this* input. G minimises the non-saturating loss plus
    ``l1_weight`` times the mean absolute error to the target. Returns detached 0-d tensors
    ``d_loss``, ``g_loss`` (the adversarial part), ``l1``, ``d_real`` and ``d_fake``.
    """
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, torch.Tensor) or value.ndim != 4:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{name} must be images (N, C, H, W), got {got}")
    if len(source) != len(target) or source.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} must "
                         "be pairs: the same number of images of the same size")
    if not isinstance(l1_weight, (int, float)) or not l1_weight >= 0:
        raise ValueError(f"l1_weight must be a number >= 0, got {l1_weight!r}")
    scaler = scaler if scaler is not None else torch.amp.GradScaler(source.device.type,
                                                                    enabled=False)
    cast = autocast(source.device, dtype)
    with cast:
        fake = generator(source)
        real_logits = discriminator(torch.cat([source, target], dim=1))
        fake_logits = discriminator(torch.cat([source, fake.detach()], dim=1))
        d_loss = discriminator_loss(real_logits, fake_logits, smoothing)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(d_loss).backward()
    scaler.step(opt_d)

    with cast:
        g_loss = generator_loss(discriminator(torch.cat([source, fake], dim=1)))
        l1 = F.l1_loss(fake, target)
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(g_loss + l1_weight * l1).backward()
    scaler.step(opt_g)
    scaler.update()
    with torch.no_grad():
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "l1": l1.detach(),
                "d_real": torch.sigmoid(real_logits.float()).mean(),
                "d_fake": torch.sigmoid(fake_logits.float()).mean()}


def train_gan(generator: nn.Module, discriminator: nn.Module, loader, *, epochs: int,
              lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
              smoothing: float = 0.0, l1_weight: float | None = None, device=None,
              amp: str = "auto", checkpoint_dir=None, resume: bool = False,
              progress: str = "auto") -> History:
    """Train a GAN for ``epochs`` passes over ``loader``; return the per-epoch History.

    - Batches are ``(images, labels)``; the labels are used when the generator is conditional
      (``generator.num_classes`` set) and ignored otherwise. With ``l1_weight`` the batches
      are ``(source, target)`` pairs and each step is a :func:`translation_step`.
    - Adam with DCGAN's settings (``lr`` 2e-4, ``betas`` (0.5, 0.999)) for both networks.
    - ``device``, ``amp``: as in :func:`dlcc.train.fit` (same helpers).
    - ``checkpoint_dir``: ``last.pt`` after every epoch (both networks, both optimisers, the
      history and the random states); ``resume=True`` continues from it.

    Each record holds ``train_d_loss``, ``train_g_loss``, ``train_d_real``,
    ``train_d_fake`` (and ``train_l1``), means over the epoch's batches, with ``lr``,
    ``seconds`` and ``samples_per_s``; ``history.plot(["d_loss", "g_loss"])`` draws them.
    """
    epochs = integer("epochs", epochs, low=0)
    smoothing = _check_smoothing(smoothing)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir, the directory holding last.pt")
    device = get_device(device)
    dtype = resolve_amp(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    generator.to(device)
    discriminator.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    conditional = getattr(generator, "num_classes", None) is not None
    history = History(monitor="train_g_loss", mode="min")
    last = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    generators = loader_generators(loader)
    if resume and last.is_file():
        state = load_checkpoint(last)
        for obj, key in ((generator, "generator"), (discriminator, "discriminator"),
                         (opt_g, "opt_g"), (opt_d, "opt_d")):
            obj.load_state_dict(state[key])
        history.epochs = state["history"]
        set_rng_state(state["rng"], device, generators)

    report = Progress(progress, epochs)
    try:
        for epoch in range(len(history) + 1, epochs + 1):
            generator.train()
            discriminator.train()
            started, sums, count = time.perf_counter(), {}, 0
            for a, b in report.epoch(epoch, loader):
                a, b = a.to(device, non_blocking=True), b.to(device, non_blocking=True)
                if l1_weight is not None:
                    out = translation_step(generator, discriminator, opt_g, opt_d, a, b,
                                           l1_weight=l1_weight, smoothing=smoothing,
                                           dtype=dtype, scaler=scaler)
                else:
                    out = gan_step(generator, discriminator, opt_g, opt_d, a,
                                   b if conditional else None, smoothing=smoothing,
                                   dtype=dtype, scaler=scaler)
                for key, value in out.items():
                    sums[key] = sums.get(key, 0.0) + value.float()
                count += 1
            seconds = time.perf_counter() - started
            record = {"epoch": epoch,
                      **{f"train_{k}": (v / max(count, 1)).item() for k, v in sums.items()},
                      "lr": lr, "seconds": seconds,
                      "samples_per_s": len(loader.dataset) / max(seconds, 1e-9)}
            history.epochs.append(record)
            if last is not None:
                save_checkpoint({"generator": generator.state_dict(),
                                 "discriminator": discriminator.state_dict(),
                                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                 "history": history.epochs,
                                 "rng": rng_state(device, generators)}, last)
            report.end_epoch(record)
    finally:
        report.close()
    return history
