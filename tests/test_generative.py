"""Tests for the generative models (dlcc.models.generative) and dlcc.generative's vae, gan and
frechet modules: shapes, the ELBO's terms, the GAN step's order and losses, the Fréchet
distance against closed forms, and errors that name the argument."""

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

from dlcc.generative import frechet
from dlcc.generative.frechet import (
    classifier_features,
    digit_classifier,
    frechet_distance,
    image_frechet_distance,
)
from dlcc.generative.gan import (
    discriminator_loss,
    gan_step,
    generator_loss,
    minimax_generator_loss,
    train_gan,
    translation_step,
)
from dlcc.generative.vae import VAELoss, elbo, kl_to_standard_normal
from dlcc.models import (
    VAE,
    ConvAutoencoder,
    DCGANDiscriminator,
    DCGANGenerator,
    LeNet5,
    PatchDiscriminator,
    UNet,
)
from dlcc.train import fit


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- models -------------------------------------------------------------------------------

def test_autoencoder_and_vae_shapes_and_ranges():
    x = torch.rand(3, 1, 28, 28)
    ae = ConvAutoencoder(latent_dim=5, width=4)
    assert ae.encode(x).shape == (3, 5)
    out = ae(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    vae = VAE(latent_dim=6, width=4)
    x_hat, mu, logvar = vae(x)
    assert x_hat.shape == x.shape and mu.shape == logvar.shape == (3, 6)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert vae.decode(torch.randn(2, 6)).shape == (2, 1, 28, 28)


def test_dcgan_shapes_unconditional_and_conditional():
    g, d = DCGANGenerator(latent_dim=8, width=4), DCGANDiscriminator(width=4)
    fake = g(torch.randn(5, 8))
    assert fake.shape == (5, 1, 28, 28) and fake.abs().max() <= 1  # tanh
    assert d(fake).shape == (5,)
    gc, dc = DCGANGenerator(8, num_classes=10, width=4), DCGANDiscriminator(10, width=4)
    labels = torch.tensor([0, 3, 9, 9, 1])
    fake = gc(torch.randn(5, 8), labels)
    assert fake.shape == (5, 1, 28, 28) and dc(fake, labels).shape == (5,)
    # the label changes the image: same z, two labels
    z = torch.randn(1, 8).repeat(2, 1)
    two = gc(z, torch.tensor([0, 1]))
    assert not torch.allclose(two[0], two[1])


def test_patch_discriminator_gives_a_logit_per_patch():
    d = PatchDiscriminator(in_channels=2, width=4, depth=3)
    assert d(torch.rand(2, 2, 48, 32)).shape == (2, 1, 6, 4)
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.rand(2, 2, 30, 32))
    with pytest.raises(ValueError, match="channels"):
        d(torch.rand(2, 3, 48, 48))


@pytest.mark.parametrize("call, message", [
    (lambda: VAE(width=4)(torch.rand(2, 1, 32, 32)), "x must be 28x28"),
    (lambda: ConvAutoencoder(latent_dim=0), "latent_dim"),
    (lambda: DCGANGenerator(latent_dim=8, width=4)(torch.randn(2, 7)),
     r"z must have shape \(N, 8\)"),
    (lambda: DCGANGenerator(8, num_classes=3, width=4)(torch.randn(2, 8)), "labels must be"),
    (lambda: DCGANGenerator(8, num_classes=3, width=4)(torch.randn(2, 8), torch.tensor([0, 3])),
     r"labels must lie in 0\.\.2"),
    (lambda: DCGANDiscriminator(width=4)(torch.rand(2, 1, 28, 28), torch.tensor([0, 1])),
     "unconditional"),
    (lambda: DCGANDiscriminator(num_classes=0), "num_classes"),
])
def test_model_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the VAE's ELBO -----------------------------------------------------------------------

def test_kl_term_matches_torch_distributions():
    mu, logvar = torch.randn(7, 4), torch.randn(7, 4)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(dim=1)
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), expected)
    assert kl_to_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


def test_elbo_terms_are_per_image_means_and_beta_weighs_the_kl():
    x = torch.rand(4, 1, 28, 28).round()
    x_hat = torch.rand(4, 1, 28, 28).clamp(0.01, 0.99)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    terms = elbo(x, x_hat, mu, logvar)
    assert terms.loss.shape == terms.reconstruction.shape == terms.kl.shape == ()
    bce = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).sum() / 4  # nats per image
    torch.testing.assert_close(terms.reconstruction, bce)
    torch.testing.assert_close(terms.kl, kl_to_standard_normal(mu, logvar).mean())
    torch.testing.assert_close(terms.loss, terms.reconstruction + terms.kl)
    beta4 = elbo(x, x_hat, mu, logvar, beta=4.0)
    torch.testing.assert_close(beta4.loss, terms.reconstruction + 4 * terms.kl)
    torch.testing.assert_close(elbo(x, x_hat, mu, logvar, beta=0).loss, terms.reconstruction)


@pytest.mark.parametrize("kwargs, message", [
    (dict(x_hat=torch.rand(4, 1, 28, 27)), r"x_hat must have shape \(4, 1, 28, 28\)"),
    (dict(x=torch.rand(4, 1, 28, 28) * 255), r"x must hold pixel values in \[0, 1\]"),
    (dict(logvar=torch.zeros(4, 2)), r"logvar must have shape \(4, 3\)"),
    (dict(mu=torch.zeros(5, 3), logvar=torch.zeros(5, 3)), "mu must have shape"),
    (dict(beta=-1.0), "beta must be a number >= 0"),
])
def test_elbo_bad_inputs_name_the_argument(kwargs, message):
    args = dict(x=torch.rand(4, 1, 28, 28), x_hat=torch.rand(4, 1, 28, 28),
                mu=torch.zeros(4, 3), logvar=torch.zeros(4, 3))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        elbo(**args)


def test_reparameterize_samples_the_gaussian_and_passes_gradients():
    mu = torch.tensor([[1.0, -2.0]]).repeat(20000, 1).requires_grad_()
    logvar = torch.tensor([[0.0, math.log(0.25)]]).repeat(20000, 1).requires_grad_()
    z = VAE.reparameterize(mu, logvar)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 0.5]), atol=0.02, rtol=0)
    z.sum().backward()
    assert (mu.grad == 1).all() and logvar.grad.abs().sum() > 0


def test_vae_trains_with_fit_and_the_loss_adapter():
    x = (torch.rand(32, 1, 28, 28) > 0.7).float()
    loader = DataLoader(TensorDataset(x, x), batch_size=16, shuffle=False)
    vae = VAE(latent_dim=4, width=4)
    history = fit(vae, loader, loss_fn=VAELoss(beta=1.0), epochs=4, progress="off",
                  optimizer=torch.optim.Adam(vae.parameters(), lr=3e-3), device="cpu")
    losses = history.column("train_loss")
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="outputs must be the VAE's"):
        VAELoss()(x, x)


# --- GAN losses and steps -----------------------------------------------------------------

def test_non_saturating_loss_keeps_its_gradient_where_minimax_saturates():
    # D rejects the fake with confidence: logit -6, D(G(z)) = 0.0025.
    logit = torch.tensor([-6.0], requires_grad=True)
    generator_loss(logit).backward()
    non_saturating = logit.grad.item()
    logit.grad = None
    minimax_generator_loss(logit).backward()
    minimax = logit.grad.item()
    # Both push the logit up (negative gradient of a loss to minimise) ...
    assert non_saturating < 0 and minimax < 0
    # ... with d/dl = sigmoid(l) - 1 against -sigmoid(l): about 400 times stronger here.
    assert non_saturating == pytest.approx(torch.sigmoid(torch.tensor(-6.0)).item() - 1)
    assert minimax == pytest.approx(-torch.sigmoid(torch.tensor(-6.0)).item())
    assert abs(non_saturating) > 100 * abs(minimax)


def test_discriminator_loss_with_one_sided_label_smoothing():
    real, fake = torch.tensor([0.3, 2.0]), torch.tensor([-1.0, 0.5])
    s = 0.1
    sig = torch.sigmoid
    expected = (-(1 - s) * sig(real).log() - s * (1 - sig(real)).log()).mean() \
        - (1 - sig(fake)).log().mean()
    torch.testing.assert_close(discriminator_loss(real, fake, smoothing=s), expected)
    plain = -sig(real).log().mean() - (1 - sig(fake)).log().mean()
    torch.testing.assert_close(discriminator_loss(real, fake), plain)
    with pytest.raises(ValueError, match="smoothing must be a number in"):
        discriminator_loss(real, fake, smoothing=0.7)


def _tiny_gan(lr_g=0.1, lr_d=0.0):
    """G(z) = b (a constant 'sample'), D(x) = x (real to the right), plain SGD."""
    g, d = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        g.weight.zero_()
        g.bias.fill_(-1.0)
        d.weight.fill_(1.0)
        d.bias.zero_()
    return (g, d, torch.optim.SGD(g.parameters(), lr=lr_g),
            torch.optim.SGD(d.parameters(), lr=lr_d))


def test_gan_step_generator_update_is_the_non_saturating_gradient():
    g, d, opt_g, opt_d = _tiny_gan()
    real, z = torch.full((4, 1), 2.0), torch.randn(4, 1)
    out = gan_step(g, d, opt_g, opt_d, real, z=z)
    # D is frozen (lr 0); loss = softplus(-b), d/db = sigmoid(b) - 1 < 0, so b moves right,
    # toward what D calls real.
    b = torch.tensor(-1.0)
    expected = b - 0.1 * (torch.sigmoid(b) - 1)
    torch.testing.assert_close(g.bias.detach(), expected.reshape(1))
    assert g.bias.item() > -1.0
    torch.testing.assert_close(out["g_loss"], nn.functional.softplus(-b))
    torch.testing.assert_close(out["d_fake"], torch.sigmoid(b))
    torch.testing.assert_close(out["d_real"], torch.sigmoid(torch.tensor(2.0)))


def test_gan_step_updates_the_discriminator_then_the_generator():
    g, d, opt_g, opt_d = _tiny_gan(lr_g=0.1, lr_d=0.5)
    order = []
    opt_d.register_step_post_hook(lambda *a: order.append(("d", d.weight.item())))
    opt_g.register_step_pre_hook(lambda *a: order.append(("g", d.weight.item())))
    gan_step(g, d, opt_g, opt_d, torch.full((4, 1), 2.0), z=torch.randn(4, 1))
    assert [name for name, _ in order] == ["d", "g"]
    # D learned (real at 2 and fake at -1 pull its weight up), and G's step saw that D.
    assert order[0][1] > 1.0 and order[1][1] == order[0][1]


def test_conditional_gan_step_and_label_errors():
    g, d = DCGANGenerator(8, num_classes=3, width=4), DCGANDiscriminator(3, width=4)
    before = [p.detach().clone() for p in (*g.parameters(), *d.parameters())]
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (g, d))
    out = gan_step(g, d, opt_g, opt_d, torch.rand(6, 1, 28, 28) * 2 - 1,
                   torch.tensor([0, 1, 2, 0, 1, 2]))
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(torch.isfinite(v) for v in out.values())
    after = [*g.parameters(), *d.parameters()]
    assert sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True)) > 0
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        gan_step(g, d, opt_g, opt_d, torch.rand(6, 1, 28, 28))
    with pytest.raises(ValueError, match="z must be a tensor with one row per real image"):
        gan_step(g, d, opt_g, opt_d, torch.rand(6, 1, 28, 28), torch.zeros(6, dtype=torch.long),
                 z=torch.randn(5, 8))
    with pytest.raises(ValueError, match="z is needed"):
        gan_step(nn.Linear(1, 1), nn.Linear(1, 1), opt_g, opt_d, torch.rand(4, 1))


def test_translation_step_trains_the_unet_towards_the_target():
    source = torch.rand(4, 1, 16, 16)
    target = 1 - source  # a translation the U-Net can learn
    g, d = UNet(1, 1, depth=2, width=4), PatchDiscriminator(2, width=4, depth=2)
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 3e-3), torch.optim.Adam(d.parameters(), 3e-3)
    first = translation_step(g, d, opt_g, opt_d, source, target)
    for _ in range(30):
        out = translation_step(g, d, opt_g, opt_d, source, target, l1_weight=100.0)
    assert set(out) == {"d_loss", "g_loss", "l1", "d_real", "d_fake"}
    assert out["l1"] < 0.5 * first["l1"]
    with pytest.raises(ValueError, match="must be pairs"):
        translation_step(g, d, opt_g, opt_d, source, target[:3])
    with pytest.raises(ValueError, match="l1_weight must be a number >= 0"):
        translation_step(g, d, opt_g, opt_d, source, target, l1_weight=-1)


def _digit_loader():
    x = torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = torch.arange(24) % 3
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def test_train_gan_records_epochs_and_resumes_exactly(tmp_path):
    def run(epochs, checkpoint_dir, resume=False, models=None):
        torch.manual_seed(1)
        g, d = models or (DCGANGenerator(8, num_classes=3, width=4),
                          DCGANDiscriminator(3, width=4))
        history = train_gan(g, d, loader, epochs=epochs, device="cpu", progress="off",
                            checkpoint_dir=checkpoint_dir, resume=resume)
        return g, history

    loader = _digit_loader()
    g_straight, history = run(2, tmp_path / "a")
    assert [r["epoch"] for r in history.epochs] == [1, 2]
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake"} <= set(
        history.epochs[0])
    loader = _digit_loader()
    run(1, tmp_path / "b")
    torch.manual_seed(123)  # the resume must restore the random state itself
    g_resumed, resumed = run(2, tmp_path / "b", resume=True)
    assert len(resumed) == 2
    for a, b in zip(g_straight.state_dict().values(), g_resumed.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        train_gan(g_resumed, DCGANDiscriminator(3, width=4), loader, epochs=1, resume=True)


# --- the Fréchet distance -----------------------------------------------------------------

def _exact(n, mean, cov, seed):
    """n points whose sample mean and covariance are exactly ``mean`` and ``cov``."""
    x = np.random.default_rng(seed).standard_normal((n, len(mean)))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T  # whiten
    return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_zero_for_identical_and_grows_with_a_shift():
    a = np.random.default_rng(0).standard_normal((200, 5))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    distances = [frechet_distance(a, a + shift) for shift in (0.5, 1.0, 2.0)]
    # a shift s of every feature adds exactly |s|^2 * D
    assert distances == pytest.approx([0.25 * 5, 1.0 * 5, 4.0 * 5])
    assert frechet_distance(torch.from_numpy(a), a + 1) == pytest.approx(5)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    # diagonal covariances: d^2 = |m_a - m_b|^2 + sum (s_a - s_b)^2
    a = _exact(300, np.array([0.0, 1.0]), np.diag([1.0, 4.0]), 1)
    b = _exact(200, np.array([1.0, -1.0]), np.diag([9.0, 0.25]), 2)
    expected = (1 + 4) + (1 - 3) ** 2 + (2 - 0.5) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # general covariances: against scipy's sqrtm of C_a C_b
    rng = np.random.default_rng(3)
    m = rng.standard_normal((4, 4))
    cov_a, cov_b = m @ m.T + np.eye(4), np.diag([1.0, 2.0, 3.0, 4.0])
    a, b = _exact(100, np.zeros(4), cov_a, 4), _exact(100, np.ones(4), cov_b, 5)
    reference = 4 + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)


@pytest.mark.parametrize("a, b, message", [
    (np.zeros(5), np.zeros((5, 2)), r"feats_a must be a 2-D array"),
    (np.zeros((5, 2)), np.zeros((1, 2)), r"feats_b must be a 2-D array .* N >= 2"),
    (np.zeros((5, 2)), np.zeros((5, 3)), "same number of features, got 2 and 3"),
    (np.full((5, 2), np.nan), np.zeros((5, 2)), "feats_a holds NaN"),
])
def test_frechet_distance_bad_inputs(a, b, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)


def test_classifier_features_are_the_penultimate_layer():
    model = LeNet5(1, 10).eval()
    images = torch.rand(7, 1, 28, 28)
    feats = classifier_features(model, images, batch_size=3)
    assert feats.shape == (7, 84)
    expected = model.classifier[:-1](model.features(images))
    torch.testing.assert_close(feats, expected)
    assert not model.training
    with pytest.raises(ValueError, match=r"pixel values in \[0, 1\].*\(x \+ 1\) / 2"):
        classifier_features(model, images * 2 - 1)
    with pytest.raises(ValueError, match=r"images must be a tensor of digit images"):
        classifier_features(model, torch.rand(7, 28, 28))


def test_digit_classifier_tells_digits_from_noise():
    from dlcc.data import mnist_small

    frechet._trained_classifier.cache_clear()
    state = torch.get_rng_state()
    classifier = digit_classifier()
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream untouched
    assert digit_classifier() is classifier  # cached: every caller gets the same network
    split = mnist_small(seed=0, standardize=False)
    test, val = split.test.tensors[0] / 255, split.val.tensors[0] / 255
    accuracy = (classifier(test).argmax(1) == split.test.tensors[1]).float().mean().item()
    assert accuracy > 0.9
    real = image_frechet_distance(test, val, classifier)
    noise = image_frechet_distance(test, torch.rand(500, 1, 28, 28), classifier)
    assert noise > 20 * real


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_paths_run_and_stay_finite(amp):
    """The autocast and gradient-scaler paths a GPU takes, exercised on the CPU."""
    torch.manual_seed(0)
    history = train_gan(DCGANGenerator(8, num_classes=3, width=4), DCGANDiscriminator(3, width=4),
                        _digit_loader(), epochs=1, amp=amp, device="cpu", progress="off")
    assert all(math.isfinite(v) for k, v in history.epochs[0].items() if k.startswith("train_"))
    source = torch.rand(8, 1, 16, 16)
    pairs = DataLoader(TensorDataset(source, 1 - source), batch_size=4)
    history = train_gan(UNet(1, 1, depth=2, width=4), PatchDiscriminator(2, width=4, depth=2),
                        pairs, epochs=1, l1_weight=100.0, amp=amp, device="cpu", progress="off")
    assert math.isfinite(history.epochs[0]["train_l1"])
    x = (torch.rand(16, 1, 28, 28) > 0.7).float()
    vae = VAE(latent_dim=4, width=4)
    history = fit(vae, DataLoader(TensorDataset(x, x), batch_size=8), loss_fn=VAELoss(),
                  epochs=1, amp=amp, device="cpu", progress="off",
                  optimizer=torch.optim.Adam(vae.parameters()))
    assert math.isfinite(history.epochs[0]["train_loss"])
