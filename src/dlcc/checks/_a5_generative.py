"""Assignment 5: checks of the GAN steps, the conditional generator and the VAE's pieces.

The GAN checks run one step of the student's function on a tiny generator and discriminator
that record how they were called (mode, labels), with SGD so that the step is exactly
reproducible, and compare the weights afterwards with those of the right step and of steps
with realistic mistakes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ._report import Report, Stop, student_check
from .a3 import _same  # parameter lists equal to 1e-6

LATENT = 3


class _Recorder(nn.Module):
    """Records (training, labels given) at every call."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[bool, bool]] = []

    def record(self, labels) -> None:
        self.calls.append((self.training, labels is not None))


class _G(_Recorder):
    def __init__(self):
        super().__init__()
        self.fc, self.embed = nn.Linear(LATENT, 4), nn.Embedding(2, LATENT)

    def forward(self, z, labels=None):
        self.record(labels)
        if labels is not None:
            z = z + self.embed(labels)
        return torch.tanh(self.fc(z)).view(-1, 1, 2, 2)


class _D(_Recorder):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.embed = nn.Linear(4, 5), nn.Linear(5, 1), nn.Embedding(2, 4)

    def forward(self, x, labels=None):
        self.record(labels)
        h = x.flatten(1)
        if labels is not None:
            h = h + self.embed(labels)
        return self.fc2(F.leaky_relu(self.fc1(h), 0.2)).squeeze(1)


def _gan_case(stale: str):
    """Generator, discriminator, real images, latents, labels; stale .grad on one network."""
    torch.manual_seed(0)
    G, D = _G(), _D()
    for p in (G if stale == "G" else D).parameters():
        p.grad = torch.full_like(p, 0.3)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 2, 2, generator=g) * 2 - 1
    z = torch.randn(6, LATENT, generator=g)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    return G, D, x, z, labels


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _d_reference(variant: str = "right"):
    G, D, x, z, _ = _gan_case("D")
    optimizer = torch.optim.SGD(D.parameters(), lr=0.1)
    D.train(variant != "eval")
    if variant != "no zero_grad":
        optimizer.zero_grad()
    real, fake = D(x), D(G(z).detach())
    if variant == "sigmoid":
        real, fake = torch.sigmoid(real), torch.sigmoid(fake)
    loss = (_bce(real, 0.0) + _bce(fake, 1.0) if variant == "swapped"
            else _bce(real, 1.0) + _bce(fake, 0.0))
    if variant == "mean":
        loss = loss / 2
    loss.backward()
    optimizer.step()
    return _params(D), loss.item()


def _float(report: Report, name: str, value) -> float | None:
    if isinstance(value, torch.Tensor):
        report.fail(f"{name} returned a tensor: return loss.item(), a Python float")
        return None
    if not isinstance(value, (float, int)) or isinstance(value, bool):
        report.fail(f"{name} returned {type(value).__name__}; return the loss as a float")
        return None
    return float(value)


def _labels_passed(report: Report, name: str, step, *, generator_first: bool) -> None:
    """Run the step with labels: both networks must be called with them."""
    G, D, x, z, labels = _gan_case("G" if generator_first else "D")
    nets = (G, D) if generator_first else (D, G)
    optimizer = torch.optim.SGD(nets[0].parameters(), lr=0.1)
    args = (G, D, z) if generator_first else (D, G, x, z)
    try:
        report.run(f"{name} with labels", step, *args, optimizer, labels=labels)
    except Stop:
        return
    missing = [who for who, net in (("G", G), ("D", D)) if any(not c[1] for c in net.calls)]
    report.check(G.calls and D.calls and not missing,
                 "with labels, both networks get them (a conditional GAN)",
                 f"with labels given, {' and '.join(missing)} ran without them: call G(z, labels) "
                 f"and D(x, labels) when labels is not None")


@student_check()
def check_discriminator_step(report: Report, discriminator_step) -> None:
    """Check ``discriminator_step(D, G, x_real, z, optimizer, labels=None) -> float``: one
    step of the discriminator on real images (target 1) and generated ones (target 0), with
    binary cross-entropy on the logits that D returns, in training mode, with the generated
    images detached from the generator."""
    G, D, x, z, _ = _gan_case("D")
    optimizer = torch.optim.SGD(D.parameters(), lr=0.1)
    D.eval()  # the generator step or a sampling cell may have left it there
    returned = report.run("discriminator_step", discriminator_step, D, G, x, z, optimizer)
    after = _params(D)
    if not D.calls:
        report.fail("the discriminator was never called")
        return
    report.check(all(c[0] for c in D.calls), "the discriminator runs in training mode",
                 "the discriminator ran in eval mode: call D.train() at the start of the step "
                 "(dropout and batch norm in a real discriminator behave differently in eval "
                 "mode, and the generator step or a sampling cell may have switched it)")
    leaked = [p for p in G.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    report.check(not leaked, "no gradient flows into the generator",
                 "the generator's parameters received gradients in the discriminator step: use "
                 "G(z).detach(), so that this step trains D only (and the generator's .grad is "
                 "not polluted for its own step)")
    expected, loss = _d_reference()
    half, half_loss = _d_reference("mean")
    messages = {
        "swapped": "the targets are swapped: real images are labelled 1 and generated ones 0",
        "no zero_grad": "the step used the new gradients plus stale ones: call "
                        "optimizer.zero_grad() before backward()",
        "sigmoid": "a sigmoid was applied to D's outputs before "
                   "binary_cross_entropy_with_logits, which applies its own: pass the logits",
    }
    wanted = loss
    if _same(after, expected):
        report.ok("the discriminator's weights after the step match the reference")
    elif _same(after, half):
        report.ok("the discriminator's weights match the reference (loss averaged over the "
                  "two halves)")
        wanted = half_loss
    else:
        found = next((m for k, m in messages.items() if _same(after, _d_reference(k)[0])), None)
        report.fail(found or "the discriminator's weights after the step differ from the "
                             "reference: BCE-with-logits of D(x_real) against 1 plus that of "
                             "D(G(z).detach()) against 0, one backward, one optimizer step")
    value = _float(report, "discriminator_step", returned)
    if value is not None:
        report.check(math.isclose(value, wanted, rel_tol=1e-4, abs_tol=1e-6),
                     "returns the step's loss",
                     f"discriminator_step returned {value:.5g}; the loss of this step is "
                     f"{wanted:.5g}")
    _labels_passed(report, "discriminator_step", discriminator_step, generator_first=False)


def _g_reference(variant: str = "right"):
    G, D, _, z, _ = _gan_case("G")
    optimizer = torch.optim.SGD(G.parameters(), lr=0.1)
    G.train()
    if variant != "no zero_grad":
        optimizer.zero_grad()
    logits = D(G(z))
    loss = {"right": _bce(logits, 1.0), "no zero_grad": _bce(logits, 1.0),
            "saturating": -_bce(logits, 0.0), "target 0": _bce(logits, 0.0)}[variant]
    loss.backward()
    optimizer.step()
    return _params(G), loss.item()


@student_check()
def check_generator_step(report: Report, generator_step) -> None:
    """Check ``generator_step(G, D, z, optimizer, labels=None) -> float``: one step of the
    generator with the non-saturating loss, BCE-with-logits of D(G(z)) against 1 ("real"),
    with the gradient flowing through D into G."""
    G, D, _, z, _ = _gan_case("G")
    optimizer = torch.optim.SGD(G.parameters(), lr=0.1)
    before, d_before = _params(G), _params(D)
    G.eval()
    returned = report.run("generator_step", generator_step, G, D, z, optimizer)
    after = _params(G)
    if not G.calls:
        report.fail("the generator was never called")
        return
    report.check(all(c[0] for c in G.calls), "the generator runs in training mode",
                 "the generator ran in eval mode: call G.train() at the start of the step")
    report.check(_same(_params(D), d_before), "the discriminator's weights are left alone",
                 "the discriminator's weights changed in the generator step: only the "
                 "generator's optimizer steps here")
    expected, loss = _g_reference()
    messages = {
        "saturating": "the generator minimises log(1 - D(G(z))), the saturating loss of the "
                      "original minimax game: when D confidently rejects the fakes early in "
                      "training its gradient vanishes. Use the non-saturating loss, "
                      "BCE-with-logits of D(G(z)) against 1",
        "target 0": "the generator's target is 0 ('fake'), which trains it to look fake: the "
                    "generator wants D to say 'real', target 1",
        "no zero_grad": "the step used the new gradients plus stale ones: call "
                        "optimizer.zero_grad() before backward()",
    }
    if _same(after, expected):
        report.ok("the generator's weights after the step match the reference")
    elif _same(after, before):
        report.fail("the generator's weights did not change: its output was detached (or "
                    "made under torch.no_grad()), so no gradient reached it. Detach the fakes "
                    "in the discriminator step only; here the loss must backpropagate through "
                    "D into G")
    else:
        found = next((m for k, m in messages.items() if _same(after, _g_reference(k)[0])), None)
        report.fail(found or "the generator's weights after the step differ from the "
                             "reference: BCE-with-logits of D(G(z)) against 1, one backward, "
                             "one optimizer step")
    value = _float(report, "generator_step", returned)
    if value is not None:
        report.check(math.isclose(value, loss, rel_tol=1e-4, abs_tol=1e-6),
                     "returns the step's loss",
                     f"generator_step returned {value:.5g}; the loss of this step is {loss:.5g}")
    _labels_passed(report, "generator_step", generator_step, generator_first=True)


@student_check("your generator class")
def check_conditional_generator(report: Report, generator_cls) -> None:
    """Check ``ConditionalGenerator(latent_dim=16, num_classes=10)``: ``G(z, labels)`` maps
    latents (N, 16) and class indices (N,) to images (N, 1, 28, 28) in [-1, 1], and the class
    changes the image."""
    torch.manual_seed(0)
    G = report.run("ConditionalGenerator(latent_dim=16, num_classes=10)", generator_cls,
                   latent_dim=16, num_classes=10)
    if not isinstance(G, nn.Module):
        report.fail("the generator is not an nn.Module: subclass torch.nn.Module")
        return
    G.eval()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10, 16, generator=g)
    labels = torch.arange(10)
    with torch.no_grad():
        out = report.run("G(z, labels)", G, z, labels)
        if not isinstance(out, torch.Tensor) or out.shape != (10, 1, 28, 28):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            report.fail(f"G(z, labels) for 10 latents gave {got}, expected (10, 1, 28, 28)")
            return
        report.ok("G(z, labels) gives images (10, 1, 28, 28)")
        big = report.run("G(30 * z, labels)", G, 30 * z, labels)
        report.check(big.abs().max() <= 1 + 1e-6, "outputs stay in [-1, 1], the images' range",
                     f"outputs reach {big.abs().max():.3g} for large latents: the images are "
                     f"scaled to [-1, 1], so end the generator with tanh")
        same_z = z[:1].expand(10, 16)
        per_class = report.run("G(one z, ten labels)", G, same_z, labels)
        spread = (per_class - per_class[:1]).abs().amax(dim=(1, 2, 3))
        report.check(bool((spread[1:] > 1e-4).all()), "the class changes the image",
                     "the same latent gives the same image for every class: the label is "
                     "ignored; embed it (nn.Embedding or one-hot) and concatenate it to z")
        one = report.run("G(z[:1], labels[:1])", G, z[:1], labels[:1])
        report.check(torch.allclose(one, out[:1], atol=1e-5),
                     "an image depends only on its own latent and label",
                     "the first image changes when it is generated alone: in eval mode each "
                     "image must depend on its own latent and label only (check how the label "
                     "is combined with z)")


# --- the VAE --------------------------------------------------------------------------------

def _vae_case():
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(4, 3, generator=g)
    logvar = torch.tensor([[-1.5, 0.3, -0.2], [0.8, -2.0, 0.1],
                           [-0.7, 1.2, -0.4], [0.5, -0.9, 1.6]])
    eps = torch.randn(4, 3, generator=g)
    return mu, logvar, eps


@student_check()
def check_reparameterise(report: Report, reparameterise) -> None:
    """Check ``reparameterise(mu, logvar, eps) -> z = mu + exp(logvar / 2) * eps``, which must
    let gradients reach mu and logvar."""
    mu, logvar, eps = _vae_case()
    mu_, logvar_ = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = report.run("reparameterise", reparameterise, mu_, logvar_, eps.clone())
    if not isinstance(z, torch.Tensor) or z.shape != mu.shape:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        report.fail(f"reparameterise returned {got}, expected a tensor {tuple(mu.shape)}")
        return
    std = torch.exp(0.5 * logvar)
    value = z.detach()
    variants = {
        "logvar was used as the standard deviation: std = exp(logvar / 2)": mu + logvar * eps,
        "exp(logvar), the variance, was used as the standard deviation: std = "
        "exp(logvar / 2)": mu + torch.exp(logvar) * eps,
        "logvar was used as the variance (std = sqrt(logvar)): it is the log of the "
        "variance, std = exp(logvar / 2)": mu + torch.sqrt(logvar.abs()) * eps,
    }
    if torch.isnan(value).any():
        report.fail("the sample has NaNs, from the square root of a negative logvar: logvar is "
                    "the LOG of the variance and can be negative; std = exp(logvar / 2)")
    elif torch.allclose(value, mu + std * eps, atol=1e-5):
        report.ok("z = mu + exp(logvar / 2) * eps")
    else:
        found = next((m for m, v in variants.items() if torch.allclose(value, v, atol=1e-5)),
                     None)
        report.fail(found or "z differs from mu + exp(logvar / 2) * eps: use the eps passed in "
                             "(drawing new noise inside makes the check, and the training "
                             "loop's seeding, useless)")
    if z.grad_fn is None:
        report.fail("z does not depend on mu and logvar in the graph (it was detached, made "
                    "under no_grad or drawn with torch.normal): the trick is that z is a "
                    "differentiable function of mu and logvar, with the randomness in eps")
        return
    z.sum().backward()
    ok = (mu_.grad is not None and logvar_.grad is not None
          and torch.allclose(mu_.grad, torch.ones_like(mu), atol=1e-5)
          and torch.allclose(logvar_.grad, 0.5 * std * eps, atol=1e-5))
    report.check(ok, "gradients reach mu (dz/dmu = 1) and logvar (dz/dlogvar = std * eps / 2)",
                 "the gradients with respect to mu and logvar are wrong: dz/dmu must be 1 and "
                 "dz/dlogvar = exp(logvar / 2) * eps / 2")


def _elbo_case():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(4, 1, 3, 3, generator=g)
    x[0] = (x[0] > 0.5).float()
    x_hat = torch.sigmoid(torch.randn(4, 1, 3, 3, generator=g) * 2)
    mu, logvar, _ = _vae_case()
    return x, x_hat, mu, logvar


def _elbo_variants(x, x_hat, mu, logvar) -> dict[str, torch.Tensor]:
    bce = F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1)
    rec = bce.sum(1)
    terms = torch.exp(logvar) + mu ** 2 - 1 - logvar
    kl = 0.5 * terms.sum(1)
    as_logits = F.binary_cross_entropy_with_logits(x_hat, x, reduction="none").flatten(1).sum(1)
    return {
        "right": (rec + kl).mean(),
        "the KL term has the wrong sign: the loss is reconstruction PLUS KL (the negative "
        "ELBO); minus KL rewards posteriors far from the prior": (rec - kl).mean(),
        "the KL term is missing: without it the model is a plain autoencoder whose latent "
        "space cannot be sampled": rec.mean(),
        "the function returned the ELBO itself; return its negative, the loss to "
        "minimise": -(rec + kl).mean(),
        "logvar was used as the standard deviation in the KL term: with logvar the log of "
        "the variance, KL = 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)":
            (rec + 0.5 * (logvar ** 2 + mu ** 2 - 1 - torch.log(logvar ** 2)).sum(1)).mean(),
        "the KL term lacks its factor 1/2: KL = 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)":
            (rec + 2 * kl).mean(),
        "the reconstruction term is averaged over pixels but the KL summed over latents: "
        "sum both over their dimensions (or the KL dominates and the images blur)":
            (bce.mean(1) + kl).mean(),
        "the KL term is averaged over the latent dimensions: sum it, like the reconstruction "
        "term": (rec + 0.5 * terms.mean(1)).mean(),
        "the loss is summed over the batch: average it over the images": (rec + kl).sum(),
        "x_hat went into binary_cross_entropy_with_logits, which applies a sigmoid first: "
        "x_hat already holds probabilities (the decoder ends in a sigmoid), so use "
        "F.binary_cross_entropy": (as_logits + kl).mean(),
        "the arguments of the cross-entropy are swapped: F.binary_cross_entropy(x_hat, x), "
        "prediction first, target second":
            (F.binary_cross_entropy(x.clamp(1e-6, 1 - 1e-6), x_hat, reduction="none")
             .flatten(1).sum(1) + kl).mean(),
    }


@student_check()
def check_negative_elbo(report: Report, negative_elbo) -> None:
    """Check ``negative_elbo(x, x_hat, mu, logvar)``: per image, the Bernoulli
    reconstruction loss summed over pixels (binary cross-entropy of the decoder's
    probabilities ``x_hat`` against ``x``) plus KL(N(mu, exp(logvar)) || N(0, I)) summed over
    latent dimensions; mean over the batch, as a tensor that can be backpropagated."""
    x, x_hat, mu, logvar = _elbo_case()
    leaves = [t.clone().requires_grad_(True) for t in (x_hat, mu, logvar)]
    got = report.run("negative_elbo", negative_elbo, x, *leaves)
    if isinstance(got, (float, int)) and not isinstance(got, bool):
        report.fail("negative_elbo returned a Python number: return the tensor, so that "
                    "loss.backward() can train the VAE")
        return
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        report.fail(f"negative_elbo returned {shape}; return one number (a 0-d tensor), the "
                    f"mean over the batch")
        return
    variants = _elbo_variants(x, x_hat, mu, logvar)
    value = got.detach().reshape(())
    if torch.isnan(value):
        report.fail("the loss is NaN: the log of a negative number, probably "
                    "log(logvar); logvar is already the log of the variance, so the KL "
                    "term is 0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)")
    elif torch.allclose(value, variants["right"], atol=1e-4):
        report.ok(f"negative ELBO {value.item():.4f}, the mean over 4 images")
    else:
        found = next((m for m, v in variants.items()
                      if m != "right" and torch.allclose(value, v, atol=1e-4)), None)
        report.fail(found or f"negative_elbo returned {value.item():.5g}, expected "
                             f"{variants['right'].item():.5g}")
    report.check(got.grad_fn is not None, "the loss can be backpropagated",
                 "the loss does not depend on x_hat, mu and logvar in the graph (it was "
                 "detached or computed under no_grad)")
