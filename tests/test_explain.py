"""dlcc.explain against Captum (the reference implementation) and against its definitions."""

import pytest
import torch
from captum import attr as captum_attr
from torch import nn

from dlcc import explain
from dlcc.data.clever_hans import clever_hans, scale_bar

# float64 so that agreement is limited by the methods, not by rounding.
TOL = dict(rtol=1e-6, atol=1e-8)


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.Tanh(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3))
    return model.double().eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 12, 12, generator=g, dtype=torch.float64)
    return x, torch.tensor([0, 1, 2, 1])


def test_saliency_matches_captum(batch):
    model, (x, t) = small_cnn(), batch
    ours = explain.saliency(model, x, t)
    theirs = captum_attr.Saliency(model).attribute(x.clone().requires_grad_(), target=t)
    torch.testing.assert_close(ours, theirs, **TOL)
    assert ours.shape == x.shape and ours.abs().sum() > 0


def test_integrated_gradients_matches_captum(batch):
    model, (x, t) = small_cnn(), batch
    baseline = torch.full_like(x, 0.5)
    ours = explain.integrated_gradients(model, x, t, baseline=baseline, steps=16)
    theirs = captum_attr.IntegratedGradients(model).attribute(
        x, baselines=baseline, target=t, n_steps=16, method="riemann_middle")
    torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("window,stride", [(3, 3), (4, 2)])
def test_occlusion_matches_captum(batch, window, stride):
    model, (x, t) = small_cnn(), batch
    ours = explain.occlusion(model, x, t, window=window, stride=stride, baseline=0.0)
    theirs = captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=(1, window, window), strides=(1, stride, stride),
        baselines=0.0, target=t)
    # Captum accumulates occlusion in float32 whatever the input's dtype.
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["4", "5"])
def test_grad_cam_matches_captum(batch, layer):
    model, (x, t) = small_cnn(), batch
    ours = explain.grad_cam(model, x, t, layer=layer)
    cam = captum_attr.LayerGradCam(model, model.get_submodule(layer)).attribute(
        x, target=t, relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear")
    torch.testing.assert_close(ours, theirs, **TOL)
    assert ours.shape == (4, 1, 12, 12)
    small = explain.grad_cam(model, x, t, layer=model.get_submodule(layer), upsample=False)
    torch.testing.assert_close(small, cam, **TOL)


def test_smoothgrad_matches_captum_noise_tunnel_on_a_linear_model(batch):
    # A linear model has the same gradient everywhere, so the noise cannot matter.
    x, t = batch
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 3)).double().eval()
    ours = explain.smoothgrad(model, x, t, samples=5, sigma=0.3)
    tunnel = captum_attr.NoiseTunnel(captum_attr.Saliency(model))
    theirs = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=5, stdevs=0.3, target=t)
    torch.testing.assert_close(ours, theirs, **TOL)
    torch.testing.assert_close(ours, explain.saliency(model, x, t), **TOL)


def test_smoothgrad_is_the_mean_of_noisy_saliencies_and_seeded(batch):
    model, (x, t) = small_cnn(), batch
    a = explain.smoothgrad(model, x, t, samples=3, sigma=0.2,
                           generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    by_hand = sum(explain.saliency(model, x + 0.2 * torch.randn(x.shape, generator=g,
                                                                dtype=x.dtype), t)
                  for _ in range(3)) / 3
    torch.testing.assert_close(a, by_hand, **TOL)
    assert not torch.allclose(a, explain.saliency(model, x, t))


def test_integrated_gradients_completeness_error_shrinks_with_steps(batch):
    model, (x, t) = small_cnn(), batch
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, t.view(-1, 1)).squeeze(1)
    errors = [(explain.integrated_gradients(model, x, t, steps=s).sum(dim=(1, 2, 3)) - gap)
              .abs().max().item() for s in (2, 8, 32, 128, 512)]
    # ReLU and max-pool make f only piecewise smooth, so the error falls more slowly than
    # 1 / steps**2, but it falls: below 0.1 % of the largest f(x) - f(0) at 512 steps.
    assert errors[-1] < 1e-3 * gap.abs().max().item()
    assert errors[-1] < errors[0] / 10 and errors == sorted(errors, reverse=True)


def test_randomisation_check_falls_for_gradients_and_leaves_model_alone(batch):
    model, (x, t) = small_cnn(), batch
    before = [p.clone() for p in model.parameters()]
    result = explain.randomisation_check(model, x, t, explain.saliency)
    names = [name for name, _ in result]
    assert names == ["none", "8", "4", "1", "0"]
    assert result[0][1] == 1.0 and result[-1][1] < 0.9
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # the identity map is perfectly correlated with itself, whatever the weights
    same = explain.randomisation_check(model, x, t, lambda m, x, t: x)
    assert all(abs(c - 1) < 1e-12 for _, c in same)


def test_rank_correlation_extremes():
    a = torch.arange(10.0).view(1, 1, 2, 5)
    assert explain.rank_correlation(a, 2 * a + 1).item() == pytest.approx(1.0)
    assert explain.rank_correlation(a, -a).item() == pytest.approx(-1.0)


# ----------------------------------------------------------------------------- attacks


@pytest.fixture(scope="module")
def trained():
    """A small float32 CNN trained for a few steps on the Clever Hans images, eval mode."""
    x, y, _ = clever_hans(n=128, size=16, seed=3).tensors
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 64, 2))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


def loss(model, x, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


@pytest.mark.parametrize("eps", [0.0, 0.03, 0.3])
def test_attacks_stay_in_the_ball_and_the_valid_range(trained, eps):
    model, x, y = trained
    for adv in (explain.fgsm(model, x, y, eps),
                explain.pgd(model, x, y, eps, step=eps / 4 + 1e-3, steps=5,
                            generator=torch.Generator().manual_seed(0))):
        assert adv.shape == x.shape
        assert (adv - x).abs().max().item() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1


def test_fgsm_is_the_clipped_signed_gradient_step(trained):
    model, x, y = trained
    xg = x.clone().requires_grad_()
    nn.functional.cross_entropy(model(xg), y, reduction="sum").backward()
    expected = (x + 0.1 * xg.grad.sign()).clamp(0, 1)
    torch.testing.assert_close(explain.fgsm(model, x, y, 0.1), expected)


def test_attacks_raise_the_loss_and_pgd_beats_fgsm(trained):
    model, x, y = trained
    eps = 0.05
    clean = loss(model, x, y)
    fgsm_loss = loss(model, explain.fgsm(model, x, y, eps), y)
    pgd_loss = loss(model, explain.pgd(model, x, y, eps, step=eps / 4, steps=20,
                                       generator=torch.Generator().manual_seed(0)), y)
    assert clean < fgsm_loss <= pgd_loss
    assert explain.robust_accuracy(model, x, y, explain.pgd, eps=eps, step=eps / 4,
                                   steps=20) < explain.robust_accuracy(model, x, y)


def test_pgd_is_deterministic_for_a_seed(trained):
    model, x, y = trained

    def run(seed):
        return explain.pgd(model, x, y, 0.05, step=0.01, steps=3,
                           generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))
    assert torch.equal(explain.fgsm(model, x, y, 0.05), explain.fgsm(model, x, y, 0.05))


def test_adversarial_training_makes_a_model_more_robust():
    x, y, _ = clever_hans(n=128, size=16, seed=4).tensors

    def train(adversarial):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.MaxPool2d(4), nn.Flatten(), nn.Linear(64, 2))
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        loader = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)]
        if adversarial:
            losses = explain.adversarial_train(model, loader, opt, explain.fgsm, epochs=10,
                                               eps=0.1)
            assert len(losses) == 10 and losses[-1] < losses[0]
        else:
            explain.adversarial_train(model, loader, opt, explain.fgsm, epochs=10, eps=0.0)
        assert not model.training
        return explain.robust_accuracy(model, x, y, explain.fgsm, eps=0.1)

    assert train(adversarial=True) > train(adversarial=False)


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_get_clear_errors(batch, trained):
    model, (x, t) = small_cnn(), batch
    with pytest.raises(ValueError, match="layer 'nope' is not a module.*0, 1, 2"):
        explain.grad_cam(model, x, t, layer="nope")
    with pytest.raises(ValueError, match="not part of model"):
        explain.grad_cam(model, x, t, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="training mode.*model.eval"):
        explain.saliency(small_cnn().train(), x, t)
    with pytest.raises(ValueError, match="target must hold 4 class indices in \\[0, 3\\)"):
        explain.saliency(model, x, 3)
    with pytest.raises(ValueError, match="x must be a 4-D"):
        explain.saliency(model, x[0], t)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        explain.integrated_gradients(model, x, t, steps=0)
    with pytest.raises(ValueError, match="window must fit"):
        explain.occlusion(model, x, t, window=13)
    m, xs, ys = trained
    with pytest.raises(ValueError, match="eps must be a finite number >= 0, got -0.1"):
        explain.fgsm(m, xs, ys, -0.1)
    with pytest.raises(ValueError, match="x must lie in bounds"):
        explain.pgd(m, xs * 3 - 1, ys, 0.1, step=0.01)
    with pytest.raises(ValueError, match="y must be an integer tensor of 128 labels"):
        explain.fgsm(m, xs, ys.float(), 0.1)
    with pytest.raises(ValueError, match="step must be a finite number > 0"):
        explain.pgd(m, xs, ys, 0.1, step=0)


# ----------------------------------------------------------------------------- data


def test_clever_hans_bar_follows_bar_match():
    x, y, bar = clever_hans(n=400, size=24, bar_match=1.0, seed=0).tensors
    assert torch.equal(bar, y.bool()) and 0.3 < y.float().mean() < 0.7
    rows, cols = scale_bar(24)
    assert (x[bar][:, :, rows, cols] == 1).all() and x.min() >= 0 and x.max() <= 1
    _, y0, bar0 = clever_hans(n=400, size=24, bar_match=0.0, seed=0).tensors
    assert torch.equal(y0, y)
    agreement = (bar0 == y0.bool()).float().mean().item()
    assert 0.4 < agreement < 0.6
    assert torch.equal(clever_hans(n=50, seed=2).tensors[0], clever_hans(n=50, seed=2).tensors[0])
    with pytest.raises(ValueError, match="bar_match must be a probability"):
        clever_hans(bar_match=1.5)
