"""Denoising diffusion: the schedules, the closed-form forward process, the samplers checked
against a Gaussian toy problem whose optimal noise predictor is known, and the noise
predictors' shapes and errors (dlcc.generative.diffusion, dlcc.models.diffusion)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlcc.generative.diffusion import (
    NoisePrediction,
    alpha_bar,
    cosine_betas,
    ddim_sample,
    denoise,
    linear_betas,
    noise_loss,
    q_sample,
    returned_loss,
    sample,
)
from dlcc.models import NoiseMLP, NoiseUNet, timestep_embedding
from dlcc.train import fit

MEAN, STD = 2.0, 0.5  # the toy data distribution, N(MEAN, STD^2) in one dimension


class GaussianOptimum(nn.Module):
    """The exact minimiser of the noise loss for N(MEAN, STD^2) data:
    E[noise | x_t] = sqrt(1 - a) (x_t - sqrt(a) MEAN) / (a STD^2 + 1 - a)."""

    def __init__(self, schedule: torch.Tensor):
        super().__init__()
        self.schedule = schedule
        self.unused = nn.Parameter(torch.zeros(()))  # gives the sampler a device to read

    def forward(self, x, t):
        a = self.schedule[t].to(x.dtype).view(-1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * MEAN) / (a * STD**2 + 1 - a)


def test_schedules_are_monotone_with_alpha_bar_in_the_open_unit_interval():
    for betas in (linear_betas(1000), linear_betas(50), cosine_betas(1000), cosine_betas(20)):
        assert ((betas > 0) & (betas < 1)).all()
        assert (betas[1:] >= betas[:-1]).all()
        a = alpha_bar(betas)
        assert ((a > 0) & (a < 1)).all()
        assert (a[1:] < a[:-1]).all()
        assert a[-1] < 1e-3  # the signal is gone at the end: x_T is (almost) pure noise
    assert linear_betas(1000)[[0, -1]].tolist() == pytest.approx([1e-4, 0.02])


def test_cosine_alpha_bar_follows_the_squared_cosine():
    steps, s = 100, 0.008
    a = alpha_bar(cosine_betas(steps, s=s))
    f = torch.cos((torch.arange(1, steps + 1, dtype=torch.float64) / steps + s) / (1 + s)
                  * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    # The last beta is capped at 0.999, so compare before it.
    torch.testing.assert_close(a[:-1], f[:-1], rtol=1e-10, atol=1e-12)


def test_q_sample_has_the_closed_form_mean_and_variance():
    a = alpha_bar(linear_betas(100))
    n = 200_000
    g = torch.Generator().manual_seed(0)
    for step, x0_value in ((0, 1.5), (30, -0.7), (99, 2.0)):
        x0 = torch.full((n, 1), x0_value, dtype=torch.float64)
        t = torch.full((n,), step)
        xt = q_sample(x0, t, torch.randn(n, 1, generator=g, dtype=torch.float64), a)
        mean, var = math.sqrt(a[step]) * x0_value, 1 - a[step].item()
        se = math.sqrt(var / n)
        assert abs(xt.mean().item() - mean) < 5 * se
        assert xt.var().item() == pytest.approx(var, rel=5 * math.sqrt(2 / n))


def test_sampler_is_deterministic_for_a_seed_and_gives_the_shape():
    torch.manual_seed(0)
    model = NoiseUNet(1, base=8, time_dim=16)
    a = alpha_bar(linear_betas(20))
    for eta in (1.0, 0.0):
        one, two, other = (sample(model, (3, 1, 8, 12), a, 5, eta=eta,
                                  generator=torch.Generator().manual_seed(seed))
                           for seed in (7, 7, 8))
        assert one.shape == (3, 1, 8, 12)
        assert torch.equal(one, two)
        assert not torch.equal(one, other)
    assert model.training  # the sampler puts the mode back


@pytest.mark.parametrize("eta", [1.0, 0.0])
def test_the_optimal_noise_predictor_reproduces_the_data_distribution(eta):
    a = alpha_bar(cosine_betas(1000))
    x = sample(GaussianOptimum(a), (20_000, 1), a, eta=eta,
               generator=torch.Generator().manual_seed(0))
    assert x.mean().item() == pytest.approx(MEAN, abs=0.02)
    assert x.std().item() == pytest.approx(STD, rel=0.03)


def test_ddim_approaches_the_exact_probability_flow_as_steps_grow():
    """For Gaussian data the deterministic flow keeps each sample's standard score: it maps
    x_T to MEAN + STD (x_T - sqrt(a_T) MEAN) / sqrt(a_T STD^2 + 1 - a_T)."""
    a = alpha_bar(linear_betas(1000))
    model = GaussianOptimum(a)
    shape = (2000, 1)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    a_T = a[-1].item()
    exact = MEAN + STD * (x_T - math.sqrt(a_T) * MEAN) / math.sqrt(a_T * STD**2 + 1 - a_T)
    errors = [(ddim_sample(model, shape, a, steps, generator=torch.Generator().manual_seed(3))
               - exact).abs().max().item() for steps in (5, 20, 100, 1000)]
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.01 < errors[0], errors


def test_ancestral_step_is_the_ddpm_posterior_mean_plus_noise():
    """Two training steps by hand with Ho et al.'s formula
    mu = (x_t - beta_t / sqrt(1 - a_t) eps) / sqrt(1 - beta_t), variance beta~_t."""
    betas = torch.tensor([0.1, 0.3], dtype=torch.float64)
    a = alpha_bar(betas)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.4, dtype=torch.float64))

        def forward(self, x, t):
            return self.w * x + 0.1 * t.view(-1, 1)

    model = Scaled()
    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(4, 1, generator=g), torch.randn(4, 1, generator=g)
    x, z = x.double(), z.double()
    for t, noise in ((1, z), (0, None)):
        eps = model(x, torch.full((4,), t))
        x = (x - betas[t] / (1 - a[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
        if noise is not None:
            x = x + ((1 - a[t - 1]) / (1 - a[t]) * betas[t]).sqrt() * noise
    with torch.no_grad():
        got = sample(model.double(), (4, 1), a, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, x.detach(), rtol=1e-6, atol=1e-6)


def test_denoise_samples_the_exact_gaussian_posterior_and_one_step_gives_its_mean():
    """y = x0 + sigma n with x0 ~ N(MEAN, STD^2): x0 | y is Gaussian with mean
    (STD^2 y + sigma^2 MEAN) / (STD^2 + sigma^2) and variance STD^2 sigma^2 / (STD^2 + sigma^2)."""
    a = alpha_bar(cosine_betas(1000))
    sigma = ((1 - a[400]) / a[400]).sqrt().item()  # a noise level the schedule holds exactly
    y = torch.full((20_000, 1), 3.0)
    mean = (STD**2 * 3.0 + sigma**2 * MEAN) / (STD**2 + sigma**2)
    std = STD * sigma / math.sqrt(STD**2 + sigma**2)
    model = GaussianOptimum(a)
    x = denoise(model, y, sigma, a, generator=torch.Generator().manual_seed(0))
    assert x.mean().item() == pytest.approx(mean, abs=0.01)
    assert x.std().item() == pytest.approx(std, rel=0.03)
    fewer = denoise(model, y[:5], 0.05, a, steps=500, generator=torch.Generator())
    assert fewer.shape == (5, 1)  # steps capped at the few training steps below that noise
    tweedie = denoise(model, y[:5], sigma, a, steps=1)
    torch.testing.assert_close(tweedie, torch.full((5, 1), mean), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="noise_std"):
        denoise(model, y, 1e6, a)


def test_noise_loss_is_one_for_a_zero_predictor_and_lower_for_the_optimum():
    a = alpha_bar(cosine_betas(200))
    x0 = MEAN + STD * torch.randn(50_000, 1, generator=torch.Generator().manual_seed(0))

    def zero(x, t):
        return torch.zeros_like(x)

    g = torch.Generator().manual_seed(1)
    assert noise_loss(zero, x0, a, g).item() == pytest.approx(1.0, abs=0.02)
    assert noise_loss(GaussianOptimum(a), x0, a, g).item() < 0.5


def test_fit_trains_a_noise_mlp_close_to_the_optimum_through_the_adapter():
    torch.manual_seed(0)
    x0 = MEAN + STD * torch.randn(2048, 1)
    loader = DataLoader(TensorDataset(x0, torch.zeros(2048)), batch_size=128, shuffle=True)
    a = alpha_bar(cosine_betas(100))
    # The optimum is linear in x_t: plain coordinates suffice, Fourier features would only
    # add wiggles for 10 epochs to iron out.
    task = NoisePrediction(NoiseMLP(1, hidden=64, time_dim=16, frequencies=()), a)
    history = fit(task, loader, loss_fn=returned_loss, epochs=10, device="cpu", progress="off",
                  optimizer=torch.optim.Adam(task.parameters(), 3e-3))
    losses = [e["train_loss"] for e in history.epochs]
    assert losses[-1] < 0.6 * losses[0], losses
    held_out = MEAN + STD * torch.randn(20_000, 1, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        learned, best = (noise_loss(model, held_out, a, torch.Generator().manual_seed(1)).item()
                         for model in (task.model, GaussianOptimum(a)))
    assert best < learned < 1.1 * best
    x = sample(task.model, (5000, 1), a, generator=torch.Generator().manual_seed(0))
    assert x.mean().item() == pytest.approx(MEAN, abs=0.1)


def test_noise_predictors_keep_the_input_shape_and_read_the_timestep():
    torch.manual_seed(0)
    unet = NoiseUNet(2, base=8, time_dim=16)
    x = torch.randn(3, 2, 12, 16)
    assert torch.equal(unet(x, torch.tensor([0, 5, 9])), torch.zeros_like(x))  # zero-init head
    nn.init.normal_(unet.out[-1].weight)
    early, late = unet(x, torch.zeros(3, dtype=torch.long)), unet(x, torch.full((3,), 50))
    assert early.shape == x.shape and not torch.allclose(early, late)
    for frequencies in ((), (1.0, 3.0)):
        mlp = NoiseMLP(3, hidden=16, time_dim=8, frequencies=frequencies)
        assert mlp(torch.randn(5, 3), torch.arange(5)).shape == (5, 3)
    emb = timestep_embedding(torch.tensor([0, 1, 500]), 16)
    assert emb.shape == (3, 16) and emb.abs().max() <= 1
    assert not torch.allclose(emb[0], emb[1])


@pytest.mark.parametrize("call, match", [
    (lambda: linear_betas(0), "steps"),
    (lambda: linear_betas(10, start=0.5, end=0.1), "start"),
    (lambda: cosine_betas(10, s=-0.1), "s="),
    (lambda: alpha_bar(torch.tensor([0.1, 1.5])), "betas"),
    (lambda: alpha_bar([0.1, 0.2]), "betas"),
    (lambda: q_sample(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 4),
                      alpha_bar(linear_betas(5))), "noise"),
    (lambda: q_sample(torch.zeros(2, 3), torch.tensor([0.0, 1.0]), torch.zeros(2, 3),
                      alpha_bar(linear_betas(5))), "t must"),
    (lambda: q_sample(torch.zeros(2, 3), torch.tensor([0, 5]), torch.zeros(2, 3),
                      alpha_bar(linear_betas(5))), r"\[0, 4\]"),
    (lambda: q_sample(torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(2, 3),
                      torch.tensor([0.5, 0.9])), "alpha_bar"),
    (lambda: sample(NoiseMLP(2), (4, 2), alpha_bar(linear_betas(5)), 6), "steps"),
    (lambda: sample(NoiseMLP(2), (4, 2), alpha_bar(linear_betas(5)), eta=2.0), "eta"),
    (lambda: sample(NoiseMLP(2), (4, 2), alpha_bar(linear_betas(5)), clip=0.0), "clip"),
    (lambda: NoiseUNet(1, base=10), "base"),
    (lambda: NoiseUNet(1, base=8)(torch.zeros(2, 3, 8, 8), torch.zeros(2)), "channels"),
    (lambda: NoiseUNet(1, base=8)(torch.zeros(2, 1, 10, 8), torch.zeros(2)), "divisible by 4"),
    (lambda: NoiseUNet(1, base=8)(torch.zeros(2, 1, 8, 8), torch.zeros(3)), "t must"),
    (lambda: NoiseMLP(2)(torch.zeros(4, 3), torch.zeros(4)), r"\(N, 2\)"),
    (lambda: timestep_embedding(torch.zeros(3), 7), "dim must be even"),
])
def test_bad_inputs_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
