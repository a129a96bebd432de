"""Denoising diffusion (DDPM, Ho et al. 2020): noise schedules, the forward process in closed
form, the noise-prediction loss, and one sampler for DDPM's ancestral steps and DDIM's
deterministic ones. Chapter L11, "Diffusion models".

Timesteps are indices ``t = 0, ..., T-1`` into ``alpha_bar`` (the paper's ``t = 1, ..., T``):
``alpha_bar[t]`` is the signal fraction left after ``t + 1`` noising steps. A noise predictor
is any module ``model(x_t, t)`` returning a tensor shaped like ``x_t``, such as
:class:`dlcc.models.NoiseUNet` or :class:`dlcc.models.NoiseMLP`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dlcc.models._common import positive_int

__all__ = ["linear_betas", "cosine_betas", "alpha_bar", "q_sample", "noise_loss",
           "NoisePrediction", "returned_loss", "reverse_steps", "sample", "ddim_sample",
           "denoise"]


def linear_betas(steps: int, start: float | None = None, end: float | None = None) -> torch.Tensor:
    """Ho et al.'s schedule: ``steps`` betas evenly spaced from ``start`` to ``end`` (float64).

    The defaults, ``0.1 / steps`` and ``20 / steps`` (at most 0.999), are the paper's 1e-4 and
    0.02 for T = 1000 scaled so that a shorter schedule destroys the signal just as completely.
    """
    positive_int("steps", steps)
    start = 0.1 / steps if start is None else start
    end = min(20 / steps, 0.999) if end is None else end
    if not 0 < start <= end < 1:
        raise ValueError(f"need 0 < start <= end < 1, got start={start}, end={end}")
    return torch.linspace(start, end, steps, dtype=torch.float64)


def cosine_betas(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol and Dhariwal's schedule (float64): ``alpha_bar`` follows
    ``cos^2((t/T + s) / (1 + s) * pi/2)``, so the signal fades slowly at both ends; each beta is
    capped at ``max_beta`` to avoid the singularity at ``t = T``."""
    positive_int("steps", steps)
    if not 0 <= s < 1 or not 0 < max_beta < 1:
        raise ValueError(f"need 0 <= s < 1 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
    u = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """The cumulative signal fractions, ``alpha_bar[t] = prod_{s <= t} (1 - betas[s])``."""
    if not isinstance(betas, torch.Tensor) or betas.ndim != 1 or len(betas) == 0:
        got = tuple(betas.shape) if isinstance(betas, torch.Tensor) else type(betas).__name__
        raise ValueError(f"betas must be a non-empty 1-D tensor, got {got}")
    if not ((betas > 0) & (betas < 1)).all():
        raise ValueError(f"betas must lie in (0, 1); got values from {betas.min().item():.3g} "
                         f"to {betas.max().item():.3g}")
    return torch.cumprod(1 - betas, dim=0)


def _check_schedule(alpha_bar: object) -> torch.Tensor:
    if not isinstance(alpha_bar, torch.Tensor) or alpha_bar.ndim != 1 or len(alpha_bar) == 0:
        got = (tuple(alpha_bar.shape) if isinstance(alpha_bar, torch.Tensor)
               else type(alpha_bar).__name__)
        raise ValueError(f"alpha_bar must be a non-empty 1-D tensor (see alpha_bar()), got {got}")
    if not ((alpha_bar > 0) & (alpha_bar < 1)).all() or (alpha_bar[1:] >= alpha_bar[:-1]).any():
        raise ValueError("alpha_bar must decrease strictly and lie in (0, 1)")
    return alpha_bar


def _at(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``values[t]`` in ``x``'s dtype and device, shaped (N, 1, ..., 1) to broadcast over x."""
    return values.to(x.device)[t].to(x.dtype).view(-1, *[1] * (x.ndim - 1))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
             alpha_bar: torch.Tensor) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise``: t forward steps at once."""
    _check_schedule(alpha_bar)
    if noise.shape != x0.shape:
        raise ValueError(f"noise has shape {tuple(noise.shape)} but x0 has {tuple(x0.shape)}")
    if t.shape != (x0.shape[0],) or t.dtype.is_floating_point:
        raise ValueError(f"t must be integer timesteps of shape ({x0.shape[0]},), one per "
                         f"example; got {t.dtype} of shape {tuple(t.shape)}")
    if len(t) and (t.min() < 0 or t.max() >= len(alpha_bar)):
        raise ValueError(f"t must lie in [0, {len(alpha_bar) - 1}]; got {t.min().item()} to "
                         f"{t.max().item()}")
    a = _at(alpha_bar, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_loss(model: nn.Module, x0: torch.Tensor, alpha_bar: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Ho et al.'s simplified objective: the mean squared error between the noise drawn and
    the noise the model finds in ``x_t``, at a uniformly random step per example. The draws
    come from ``generator`` (a CPU one) if given, else from torch's generator of ``x0``'s
    device, so that training on a GPU draws there."""
    if generator is None:
        t = torch.randint(len(alpha_bar), (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
    else:
        t = torch.randint(len(alpha_bar), (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    return F.mse_loss(model(q_sample(x0, t, noise, alpha_bar), t), noise)


class NoisePrediction(nn.Module):
    """A noise predictor seen by :func:`dlcc.train.fit`: ``forward(x0)`` returns
    :func:`noise_loss` (steps and noise from torch's global generator, which fit's checkpoints
    save). Train with ``fit(NoisePrediction(model, alpha_bar), loader, loss_fn=returned_loss,
    ...)``, the loader giving ``(x0, anything)`` batches."""

    def __init__(self, model: nn.Module, alpha_bar: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("alpha_bar", _check_schedule(alpha_bar).float())

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return noise_loss(self.model, x0, self.alpha_bar)


def returned_loss(loss: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``loss_fn`` for :class:`NoisePrediction`, whose output already is the loss."""
    return loss


def _timesteps(total: int, steps: int | None) -> list[int]:
    """``steps`` indices spread evenly over 0..total-1, both ends included (all by default)."""
    steps = total if steps is None else positive_int("steps", steps)
    if steps > total:
        raise ValueError(f"steps must be at most the schedule's {total} steps, got {steps}")
    if steps == 1:
        return [total - 1]
    return [round(i * (total - 1) / (steps - 1)) for i in range(steps)]


@torch.no_grad()
def reverse_steps(model: nn.Module, x: torch.Tensor, alpha_bar: torch.Tensor,
                  taus: list[int], eta: float = 1.0, generator: torch.Generator | None = None,
                  clip: float | None = None) -> torch.Tensor:
    """Run the reverse process from ``x`` at training step ``taus[-1]`` down through the
    increasing steps ``taus`` to a clean sample.

    Each step estimates ``x0`` from the predicted noise (clamped to ``[-clip, clip]`` if
    given), then moves to the previous visited step with DDIM's update, whose fresh noise is
    scaled by ``eta``: ``eta=1`` is DDPM's ancestral step (the posterior ``q(x_prev | x_t,
    x0)``), ``eta=0`` the deterministic DDIM step. The noise comes from ``generator`` (CPU).
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must lie in [0, 1] (0: DDIM, 1: DDPM), got {eta}")
    if clip is not None and clip <= 0:
        raise ValueError(f"clip must be positive or None, got {clip}")
    was_training = model.training
    model.eval()
    for i in reversed(range(len(taus))):
        a = alpha_bar[taus[i]].item()
        a_prev = alpha_bar[taus[i - 1]].item() if i > 0 else 1.0
        eps = model(x, torch.full((x.shape[0],), taus[i], device=x.device))
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        # The posterior's variance for this (possibly skipped-over) stretch, times eta^2.
        var = eta ** 2 * (1 - a_prev) / (1 - a) * (1 - a / a_prev)
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - var) * eps
        if var > 0:
            x = x + math.sqrt(var) * torch.randn(x.shape, generator=generator).to(x)
    model.train(was_training)
    return x


def sample(model: nn.Module, shape: tuple[int, ...], alpha_bar: torch.Tensor,
           steps: int | None = None, *, eta: float = 1.0,
           generator: torch.Generator | None = None, clip: float | None = None) -> torch.Tensor:
    """Draw ``shape`` samples: pure noise ``x_T``, then :func:`reverse_steps` over ``steps``
    evenly spaced training steps (all T by default); ``eta=1`` is DDPM, ``eta=0`` DDIM.
    All randomness comes from ``generator`` (on the CPU, in float32 whatever the model, so
    a seed gives the same samples everywhere)."""
    _check_schedule(alpha_bar)
    taus = _timesteps(len(alpha_bar), steps)
    weight = next(model.parameters())
    x = torch.randn(shape, generator=generator).to(weight)  # x_T
    return reverse_steps(model, x, alpha_bar, taus, eta, generator, clip)


def denoise(model: nn.Module, y: torch.Tensor, noise_std: float, alpha_bar: torch.Tensor,
            steps: int | None = None, *, eta: float = 1.0,
            generator: torch.Generator | None = None, clip: float | None = None) -> torch.Tensor:
    """Samples of the clean signal given measurements ``y = x0 + noise_std * noise``, one per
    row of ``y``: a posterior sample, not an average.

    ``sqrt(alpha_bar_t) y`` is distributed as ``x_t`` at the step whose noise-to-signal
    ratio ``(1 - alpha_bar_t) / alpha_bar_t`` is nearest ``noise_std^2``; the reverse process
    runs from there with ``steps`` steps (all by default, and never more than the training
    steps up to there). ``steps=1`` returns Tweedie's posterior mean E[x0 | y] instead, the
    model's one-shot denoising.
    """
    _check_schedule(alpha_bar)
    ratio = (1 - alpha_bar) / alpha_bar
    if not 0 < noise_std <= ratio[-1].sqrt().item():
        raise ValueError(f"noise_std must lie in (0, {ratio[-1].sqrt().item():.3g}], the "
                         f"schedule's noise levels; got {noise_std}")
    t = int((ratio - noise_std ** 2).abs().argmin())
    x = math.sqrt(alpha_bar[t].item()) * y
    steps = t + 1 if steps is None else min(positive_int("steps", steps), t + 1)
    return reverse_steps(model, x, alpha_bar, _timesteps(t + 1, steps), eta, generator, clip)


def ddim_sample(model: nn.Module, shape: tuple[int, ...], alpha_bar: torch.Tensor,
                steps: int, *, generator: torch.Generator | None = None,
                clip: float | None = None) -> torch.Tensor:
    """Song et al.'s deterministic sampler in ``steps`` steps: :func:`sample` with ``eta=0``;
    the only randomness is the starting noise."""
    return sample(model, shape, alpha_bar, steps, eta=0.0, generator=generator, clip=clip)
