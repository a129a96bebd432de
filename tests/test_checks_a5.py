"""dlcc.checks.a5 accepts a correct Assignment 5 and names each realistic mistake."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dlcc.checks import a5

# --- reference solutions ---------------------------------------------------------------------


def bce(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def call(net, x, labels):
    return net(x) if labels is None else net(x, labels)


def discriminator_step(D, G, x_real, z, optimizer, labels=None):
    D.train()
    optimizer.zero_grad()
    fake = call(G, z, labels).detach()
    loss = bce(call(D, x_real, labels), 1.0) + bce(call(D, fake, labels), 0.0)
    loss.backward()
    optimizer.step()
    return loss.item()


def generator_step(G, D, z, optimizer, labels=None):
    G.train()
    optimizer.zero_grad()
    loss = bce(call(D, call(G, z, labels), labels), 1.0)
    loss.backward()
    optimizer.step()
    return loss.item()


def make_generator(use_label=True, tanh=True):
    class ConditionalGenerator(nn.Module):
        def __init__(self, latent_dim=16, num_classes=10):
            super().__init__()
            self.embed = nn.Embedding(num_classes, 8)
            self.net = nn.Sequential(nn.Linear(latent_dim + 8, 64), nn.ReLU(),
                                     nn.Linear(64, 784))

        def forward(self, z, labels):
            e = self.embed(labels) if use_label else torch.zeros(len(z), 8)
            out = self.net(torch.cat([z, e], dim=1)).view(-1, 1, 28, 28)
            return torch.tanh(out) if tanh else out
    return ConditionalGenerator


def reparameterise(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def negative_elbo(x, x_hat, mu, logvar):
    rec = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(1)
    return (rec + kl).mean()


def input_grad(model, x, y):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return grad


def fgsm(model, x, y, eps):
    return (x + eps * input_grad(model, x, y).sign()).clamp(0, 1).detach()


def pgd(model, x, y, eps, step, steps):
    adv = x.clone()
    for _ in range(steps):
        adv = adv + step * input_grad(model, adv, y).sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def saliency(model, x, region):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[region].sum(), x)
    return grad.abs()


def smoothgrad(model, x, region, samples=25, sigma=0.15, generator=None):
    total = torch.zeros_like(x)
    for _ in range(samples):
        total += saliency(model, x + sigma * torch.randn(x.shape, generator=generator), region)
    return total / samples


def load_for_inference(model_cls, path, **kwargs):
    model = model_cls(**kwargs)
    model.load_state_dict(torch.load(path))
    return model.eval()


def export_torchscript(model, example, path):
    model.eval()
    torch.jit.trace(model, example).save(str(path))


REFERENCES = [
    (a5.check_discriminator_step, discriminator_step), (a5.check_generator_step, generator_step),
    (a5.check_conditional_generator, make_generator()),
    (a5.check_reparameterise, reparameterise), (a5.check_negative_elbo, negative_elbo),
    (a5.check_fgsm, fgsm), (a5.check_pgd, pgd), (a5.check_saliency, saliency),
    (a5.check_smoothgrad, smoothgrad), (a5.check_load_for_inference, load_for_inference),
    (a5.check_export_torchscript, export_torchscript),
]


def test_every_check_has_a_reference():
    assert {check.__name__ for check, _ in REFERENCES} == set(a5.__all__)


@pytest.mark.parametrize("check, fn", REFERENCES, ids=lambda v: getattr(v, "__name__", ""))
def test_reference_passes(check, fn, capsys):
    result = check(fn)
    assert result.passed, "\n".join(result.messages)
    assert f"All {result.checks} checks passed." in capsys.readouterr().out
    assert result.checks >= 2


def test_d_step_averaging_the_two_halves_passes():
    def averaged(D, G, x_real, z, optimizer, labels=None):
        D.train()
        optimizer.zero_grad()
        fake = call(G, z, labels).detach()
        loss = (bce(call(D, x_real, labels), 1.0) + bce(call(D, fake, labels), 0.0)) / 2
        loss.backward()
        optimizer.step()
        return loss.item()
    assert a5.check_discriminator_step(averaged, quiet=True).passed


# --- realistic mistakes ------------------------------------------------------------------------

def d_step(detach=True, train=True, swapped=False, zero=True, sigmoid=False, labels_used=True):
    def step(D, G, x_real, z, optimizer, labels=None):
        if train:
            D.train()
        else:
            D.eval()
        if zero:
            optimizer.zero_grad()
        use = labels if labels_used else None
        fake = call(G, z, use)
        fake = fake.detach() if detach else fake
        real_out, fake_out = call(D, x_real, use), call(D, fake, use)
        if sigmoid:
            real_out, fake_out = torch.sigmoid(real_out), torch.sigmoid(fake_out)
        t_real, t_fake = (0.0, 1.0) if swapped else (1.0, 0.0)
        loss = bce(real_out, t_real) + bce(fake_out, t_fake)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def g_step(detach=False, train=True, loss="right", zero=True, item=True):
    def step(G, D, z, optimizer, labels=None):
        G.train(train)
        if zero:
            optimizer.zero_grad()
        fake = call(G, z, labels)
        if detach:
            fake = fake.detach()
        out = call(D, fake, labels)
        value = {"right": bce(out, 1.0), "saturating": -bce(out, 0.0),
                 "target 0": bce(out, 0.0)}[loss]
        value.backward()
        optimizer.step()
        return value.item() if item else value
    return step


def reparam_variance(mu, logvar, eps):
    return mu + torch.sqrt(logvar) * eps


def reparam_std(mu, logvar, eps):
    return mu + logvar * eps


def reparam_exp(mu, logvar, eps):
    return mu + torch.exp(logvar) * eps


def reparam_detached(mu, logvar, eps):
    return (mu + torch.exp(0.5 * logvar) * eps).detach()


def reparam_normal(mu, logvar, eps):
    return torch.normal(mu, torch.exp(0.5 * logvar))


def elbo(kl_sign=1.0, variance=False, pixel_mean=False, batch_sum=False):
    def negative_elbo_(x, x_hat, mu, logvar):
        bce_ = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1)
        rec = bce_.mean(1) if pixel_mean else bce_.sum(1)
        var, log_var = (logvar, torch.log(logvar)) if variance else (logvar.exp(), logvar)
        kl = 0.5 * (var + mu ** 2 - 1 - log_var).sum(1)
        total = rec + kl_sign * kl
        return total.sum() if batch_sum else total.mean()
    return negative_elbo_


def elbo_item(x, x_hat, mu, logvar):
    return negative_elbo(x, x_hat, mu, logvar).item()


def elbo_with_logits(x, x_hat, mu, logvar):
    rec = F.binary_cross_entropy_with_logits(x_hat, x, reduction="none").flatten(1).sum(1)
    return (rec + 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(1)).mean()


def fgsm_no_sign(model, x, y, eps):
    return (x + eps * input_grad(model, x, y)).clamp(0, 1)


def fgsm_no_clamp(model, x, y, eps):
    return x + eps * input_grad(model, x, y).sign()


def fgsm_descent(model, x, y, eps):
    return (x - eps * input_grad(model, x, y).sign()).clamp(0, 1)


def fgsm_predicted(model, x, y, eps):
    with torch.no_grad():
        guess = model(x).argmax(1)
    return fgsm(model, x, guess, eps)


def fgsm_in_place(model, x, y, eps):
    grad = input_grad(model, x, y)
    x += eps * grad.sign()
    return x.clamp_(0, 1)


def pgd_variant(ball="linf", around="x", clamp=True, sign=True):
    def attack(model, x, y, eps, step, steps):
        adv = x.clone()
        for _ in range(steps):
            grad = input_grad(model, adv, y)
            previous = adv
            adv = adv + step * (grad.sign() if sign else grad)
            centre = x if around == "x" else previous
            if ball == "linf":
                adv = torch.min(torch.max(adv, centre - eps), centre + eps)
            else:
                delta = adv - centre
                norm = delta.flatten(1).norm(dim=1).clamp(min=eps).view(-1, 1, 1, 1)
                adv = centre + delta * eps / norm
            if clamp:
                adv = adv.clamp(0, 1)
        return adv.detach()
    return attack


def saliency_weights(model, x, region):
    model.zero_grad()
    model(x)[region].sum().backward()
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return first.weight.grad.abs()


def saliency_train(model, x, region):
    model.train()
    return saliency(model, x, region)


def saliency_signed(model, x, region):
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x)[region].sum(), x)
    return grad


def saliency_everywhere(model, x, region):
    return saliency(model, x, torch.ones_like(region))


def smoothgrad_abs_of_mean(model, x, region, samples=25, sigma=0.15, generator=None):
    total = torch.zeros_like(x)
    for _ in range(samples):
        noisy = (x + sigma * torch.randn(x.shape, generator=generator)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(noisy)[region].sum(), noisy)
        total += grad
    return (total / samples).abs()


def smoothgrad_same_noise(model, x, region, samples=25, sigma=0.15, generator=None):
    noise = torch.randn(x.shape, generator=generator)
    return sum(saliency(model, x + sigma * noise, region) for _ in range(samples)) / samples


def smoothgrad_variance(model, x, region, samples=25, sigma=0.15, generator=None):
    return smoothgrad(model, x, region, samples, sigma ** 0.5, generator)


def smoothgrad_no_noise(model, x, region, samples=25, sigma=0.15, generator=None):
    return saliency(model, x, region)


def load_train_mode(model_cls, path, **kwargs):
    model = model_cls(**kwargs)
    model.load_state_dict(torch.load(path))
    return model


def load_not_loaded(model_cls, path, **kwargs):
    return model_cls(**kwargs).eval()


def load_dict(model_cls, path, **kwargs):
    return torch.load(path)


def export_train_mode(model, example, path):
    torch.jit.trace(model, example).save(str(path))


def export_pickle(model, example, path):
    model.eval()
    torch.save(model, path)


MISTAKES = [
    (a5.check_discriminator_step, d_step(detach=False), "use G(z).detach()"),
    (a5.check_discriminator_step, d_step(train=False), "call D.train()"),
    (a5.check_discriminator_step, d_step(swapped=True), "the targets are swapped"),
    (a5.check_discriminator_step, d_step(zero=False), "call optimizer.zero_grad()"),
    (a5.check_discriminator_step, d_step(sigmoid=True), "a sigmoid was applied"),
    (a5.check_discriminator_step, d_step(labels_used=False), "call G(z, labels)"),
    (a5.check_generator_step, g_step(detach=True), "its output was detached"),
    (a5.check_generator_step, g_step(train=False), "call G.train()"),
    (a5.check_generator_step, g_step(loss="saturating"), "the saturating loss"),
    (a5.check_generator_step, g_step(loss="target 0"), "target 1"),
    (a5.check_generator_step, g_step(zero=False), "call optimizer.zero_grad()"),
    (a5.check_generator_step, g_step(item=False), "return loss.item()"),
    (a5.check_conditional_generator, make_generator(use_label=False), "the label is ignored"),
    (a5.check_conditional_generator, make_generator(tanh=False), "end the generator with tanh"),
    (a5.check_reparameterise, reparam_variance, "LOG of the variance"),
    (a5.check_reparameterise, reparam_std, "logvar was used as the standard deviation"),
    (a5.check_reparameterise, reparam_exp, "exp(logvar), the variance, was used"),
    (a5.check_reparameterise, reparam_detached, "z is a differentiable function"),
    (a5.check_reparameterise, reparam_normal, "use the eps passed in"),
    (a5.check_negative_elbo, elbo(kl_sign=-1.0), "the KL term has the wrong sign"),
    (a5.check_negative_elbo, elbo(kl_sign=0.0), "the KL term is missing"),
    (a5.check_negative_elbo, elbo(variance=True), "log(logvar)"),
    (a5.check_negative_elbo, elbo(pixel_mean=True), "averaged over pixels"),
    (a5.check_negative_elbo, elbo(batch_sum=True), "average it over the images"),
    (a5.check_negative_elbo, elbo_item, "return the tensor"),
    (a5.check_negative_elbo, elbo_with_logits, "x_hat already holds probabilities"),
    (a5.check_fgsm, fgsm_no_sign, "eps times its sign"),
    (a5.check_fgsm, fgsm_no_clamp, "clamp them to the valid range"),
    (a5.check_fgsm, fgsm_descent, "lowers the loss"),
    (a5.check_fgsm, fgsm_predicted, "use the true labels y"),
    (a5.check_fgsm, fgsm_in_place, "changed x in place"),
    (a5.check_pgd, pgd_variant(ball="l2"), "projected onto the L2 ball"),
    (a5.check_pgd, pgd_variant(around="previous"), "around the ORIGINAL x"),
    (a5.check_pgd, pgd_variant(clamp=False), "clamp to the valid range"),
    (a5.check_pgd, pgd_variant(sign=False), "along its sign"),
    (a5.check_saliency, saliency_weights, "gradient with respect to the weights"),
    (a5.check_saliency, saliency_train, "the model ran in training mode"),
    (a5.check_saliency, saliency_signed, "its magnitude"),
    (a5.check_saliency, saliency_everywhere, "sum only those inside region"),
    (a5.check_smoothgrad, smoothgrad_abs_of_mean, "signs cancel"),
    (a5.check_smoothgrad, smoothgrad_same_noise, "draw new noise for each sample"),
    (a5.check_smoothgrad, smoothgrad_variance, "sigma is the standard deviation"),
    (a5.check_smoothgrad, smoothgrad_no_noise, "plain saliency map"),
    (a5.check_load_for_inference, load_train_mode, "left in training mode"),
    (a5.check_load_for_inference, load_not_loaded, "the weights were not loaded"),
    (a5.check_load_for_inference, load_dict, "returned the state dict itself"),
    (a5.check_export_torchscript, export_train_mode, "call model.eval() before torch.jit.trace"),
    (a5.check_export_torchscript, export_pickle, "not torch.save(model)"),
]


@pytest.mark.parametrize("check, fn, expected", MISTAKES,
                         ids=[f"{c.__name__}-{getattr(f, '__name__', '')}-{i}"
                              for i, (c, f, _) in enumerate(MISTAKES)])
def test_mistake_is_named(check, fn, expected):
    result = check(fn, quiet=True)
    assert not result.passed
    assert any(expected in m for m in result.messages), result.messages


def test_every_check_catches_a_mistake():
    assert {check.__name__ for check, _, _ in MISTAKES} == set(a5.__all__)


def test_misuse_raises_a_clear_error():
    with pytest.raises(TypeError, match="pass the class"):
        a5.check_conditional_generator(make_generator()())
    with pytest.raises(TypeError, match="expects your function itself"):
        a5.check_fgsm(None)


def test_not_implemented_is_reported_in_words():
    def fgsm_todo(model, x, y, eps):
        raise NotImplementedError

    result = a5.check_fgsm(fgsm_todo, quiet=True)
    assert not result.passed and "not implemented yet" in result.messages[0]
