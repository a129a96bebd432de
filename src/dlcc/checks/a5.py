"""Checks for Assignment 5: generative models, adversarial attacks, saliency, saving models.

What the assignment asks for, and what each check gives it::

    discriminator_step(D, G, x_real, z, optimizer, labels=None) -> float
                                                              check_discriminator_step
    generator_step(G, D, z, optimizer, labels=None) -> float  check_generator_step
    ConditionalGenerator(latent_dim=16, num_classes=10)        check_conditional_generator
    reparameterise(mu, logvar, eps) -> z                       check_reparameterise
    negative_elbo(x, x_hat, mu, logvar) -> scalar tensor       check_negative_elbo
    fgsm(model, x, y, eps) -> x_adv                            check_fgsm
    pgd(model, x, y, eps, step, steps) -> x_adv                check_pgd
    saliency(model, x, region) -> map the shape of x           check_saliency
    smoothgrad(model, x, region, samples, sigma, generator)    check_smoothgrad
    load_for_inference(model_cls, path, **kwargs) -> model     check_load_for_inference
    export_torchscript(model, example, path)                   check_export_torchscript

Each check runs the student's code on a small seeded case, compares with the right answer
and with the answers that realistic mistakes give, and names the mistake in plain words. The
generative checks live in ``_a5_generative``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ._a5_generative import (
    check_conditional_generator,
    check_discriminator_step,
    check_generator_step,
    check_negative_elbo,
    check_reparameterise,
)
from ._report import Report, student_check

__all__ = ["check_discriminator_step", "check_generator_step", "check_conditional_generator",
           "check_reparameterise", "check_negative_elbo", "check_fgsm", "check_pgd",
           "check_saliency", "check_smoothgrad", "check_load_for_inference",
           "check_export_torchscript"]


def _same(a, b, tol: float = 1e-5) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.detach().double(), b.detach().double(), atol=tol, rtol=1e-4))


def _tensor(report: Report, name: str, got, shape) -> torch.Tensor | None:
    """``got`` if it is a tensor of ``shape``; otherwise record why not and return None."""
    if not isinstance(got, torch.Tensor):
        report.fail(f"{name} returned {type(got).__name__}; return a tensor of shape "
                    f"{tuple(shape)}")
        return None
    if got.shape != shape:
        report.fail(f"{name} returned shape {tuple(got.shape)}, expected {tuple(shape)} (the "
                    f"shape of x)")
        return None
    return got


# --- attacks --------------------------------------------------------------------------------

def _attack_case():
    """A small classifier in eval mode, 6 images in [0, 1] (some pixels at 0 and 1), labels
    of which some differ from the model's prediction."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 4, 4, generator=g)
    x[:, :, 0, :2], x[:, :, 3, 2:] = 0.0, 1.0
    with torch.no_grad():
        y = (model(x).argmax(1) + torch.tensor([0, 1, 0, 2, 0, 1])) % 3
    return model, x, y


def _loss_grad(model, x, y, labels=None):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y if labels is None else labels)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def _fgsm_variants(model, x, y, eps):
    grad = _loss_grad(model, x, y)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    per_image = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return {
        "right": (x + eps * grad.sign()).clamp(0, 1),
        "no sign": (x + eps * grad).clamp(0, 1),
        "no clamp": x + eps * grad.sign(),
        "descent": (x - eps * grad.sign()).clamp(0, 1),
        "predicted": (x + eps * _loss_grad(model, x, y, predicted).sign()).clamp(0, 1),
        "l2": (x + eps * grad / per_image).clamp(0, 1),
    }


def _run_attack(report: Report, name: str, attack, *args):
    model, x = args[0], args[1]
    kept = x.clone()
    got = report.run(name, attack, *args)
    if not torch.equal(x, kept):
        report.fail(f"{name} changed x in place: build the adversarial batch in a new tensor "
                    f"(x.clone() or x + ...), the clean images are needed afterwards")
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
        report.note(f"{name} left gradients in the model's .grad: torch.autograd.grad(loss, "
                    f"x) takes the gradient with respect to x alone")
    return _tensor(report, name, got, x.shape)


@student_check()
def check_fgsm(report: Report, fgsm) -> None:
    """Check ``fgsm(model, x, y, eps)``: x + eps * sign(grad_x cross-entropy(model(x), y)),
    clipped to the valid range [0, 1]."""
    model, x, y = _attack_case()
    eps = 0.1
    got = _run_attack(report, "fgsm", fgsm, model, x, y, eps)
    if got is None:
        return
    variants = _fgsm_variants(model, x, y, eps)
    if got.requires_grad:
        report.note("the adversarial batch still requires grad: return x_adv.detach()")
    got = got.detach()
    report.check(got.min() >= 0 and got.max() <= 1, "the adversarial images stay in [0, 1]",
                 f"the adversarial images have values in [{got.min():.3f}, {got.max():.3f}]: "
                 f"clamp them to the valid range [0, 1] (x_adv.clamp(0, 1)); pixels already at "
                 f"0 or 1 cannot go further")
    report.check((got - x).abs().max() <= eps + 1e-6, f"no pixel moves more than eps = {eps}",
                 f"a pixel moved by {(got - x).abs().max():.3f}, more than eps = {eps}")
    messages = {
        "no sign": "the step is eps times the gradient itself: FGSM steps eps times its sign "
                   "(grad.sign()), the corner of the L-infinity ball that raises the loss most "
                   "to first order",
        "no clamp": "the adversarial images leave [0, 1]: clamp x_adv to the valid range",
        "descent": "the step goes against the gradient and lowers the loss: an attack adds "
                   "eps * sign(grad) to raise it",
        "predicted": "the gradient was taken for the model's own predictions: use the true "
                     "labels y (the attack raises the loss of the right answer)",
        "l2": "the step is the gradient divided by its L2 norm (the L2 fast gradient method): "
              "FGSM, for the L-infinity ball, steps eps * sign(grad)",
    }
    if _same(got, variants["right"]):
        report.ok("matches x + eps * sign(grad), clamped to [0, 1]")
    else:
        found = next((m for k, m in messages.items() if _same(got, variants[k])), None)
        report.fail(found or "the adversarial batch differs from x + eps * sign(grad_x loss) "
                             "clamped to [0, 1] (loss: the cross-entropy of model(x) and y)")


def _pgd_reference(model, x, y, eps, step, steps, variant="right"):
    adv = x.clone()
    for _ in range(steps):
        grad = _loss_grad(model, adv, y)
        adv = adv + step * (grad if variant == "no sign" else grad.sign())
        if variant == "l2":
            delta = adv - x
            norm = delta.flatten(1).norm(dim=1).clamp(min=eps).view(-1, 1, 1, 1)
            adv = x + delta * eps / norm
        elif variant not in ("no projection", "no clamp"):
            adv = torch.min(torch.max(adv, x - eps), x + eps)
        if variant != "no clamp":
            adv = adv.clamp(0, 1)
    return adv


@student_check()
def check_pgd(report: Report, pgd) -> None:
    """Check ``pgd(model, x, y, eps, step, steps)``: from x itself, ``steps`` times move
    ``step`` along sign(grad), then project onto the L-infinity ball of radius eps around the
    original x and into [0, 1]; return the last iterate."""
    model, x, y = _attack_case()
    eps, step, steps = 0.1, 0.04, 6
    got = _run_attack(report, "pgd", pgd, model, x, y, eps, step, steps)
    if got is None:
        return
    got = got.detach()
    delta = got - x
    linf = delta.abs().max().item()
    l2 = delta.flatten(1).norm(dim=1).max().item()
    if linf <= eps + 1e-6:
        report.ok(f"every pixel stays within eps = {eps} of the original image")
    elif l2 <= eps + 1e-6:
        report.fail(f"the perturbation was projected onto the L2 ball (its L2 norm is at most "
                    f"eps, but single pixels move by up to {linf:.3f}): this attack's ball is "
                    f"the L-infinity ball, so clamp every pixel to [x - eps, x + eps]")
    else:
        report.fail(f"pixels moved by up to {linf:.3f}, more than eps = {eps}: after every step "
                    f"project onto the ball around the ORIGINAL x, torch.min(torch.max(adv, "
                    f"x - eps), x + eps), not around the previous iterate (and not only once "
                    f"before the last step)")
    report.check(got.min() >= 0 and got.max() <= 1, "the adversarial images stay in [0, 1]",
                 f"the adversarial images have values in [{got.min():.3f}, {got.max():.3f}]: "
                 f"after the projection, clamp to the valid range [0, 1]")
    if _same(got, _pgd_reference(model, x, y, eps, step, steps)):
        report.ok(f"matches {steps} projected signed-gradient steps")
    elif _same(got, _pgd_reference(model, x, y, eps, step, steps, "l2")):
        report.fail("the perturbation was projected onto the L2 ball of radius eps (scaled "
                    "down to L2 norm eps): this attack's ball is the L-infinity ball, so clamp "
                    "every pixel to [x - eps, x + eps]")
    elif _same(got, _pgd_reference(model, x, y, eps, step, steps, "no sign")):
        report.fail("each step moves along the gradient itself: PGD in the L-infinity ball "
                    "steps along its sign, step * grad.sign()")
    elif _same(got, _pgd_reference(model, x, y, eps, step, 1)):
        report.fail("only one step was taken: loop `steps` times, recomputing the gradient "
                    "at the current iterate")
    elif linf <= eps + 1e-6 and got.min() >= 0 and got.max() <= 1:
        report.fail("the result stays in the ball but differs from the reference: start from "
                    "x itself (no random start), take the gradient of the cross-entropy at the "
                    "current iterate each step, and return the last iterate")


# --- saliency ---------------------------------------------------------------------------------

class _Segmenter(nn.Module):
    """A small fully convolutional net with batch norm (running statistics set), recording
    its mode at every call."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.Conv2d(4, 1, 3, padding=1))
        self.net[1].running_mean.uniform_(-0.5, 0.5)
        self.net[1].running_var.uniform_(0.5, 2.0)
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.net(x)


def _saliency_case():
    model = _Segmenter().eval()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 8, 8, generator=g)
    region = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    region[0, :, 2:5, 2:5], region[1, :, 4:7, 1:4] = True, True
    return model, x, region


def _input_grad(model, x, region, score="logits"):
    x = x.detach().requires_grad_(True)
    out = model(x)
    if score == "sigmoid":
        out = torch.sigmoid(out)
    total = out.sum() if score == "all" else out[region].sum()
    (grad,) = torch.autograd.grad(total, x)
    return grad


def _saliency_variants(x, region):
    model = _Segmenter().eval()
    train = _Segmenter().train()
    return {
        "right": _input_grad(model, x, region).abs(),
        "signed": _input_grad(model, x, region),
        "all": _input_grad(model, x, region, "all").abs(),
        "sigmoid": _input_grad(model, x, region, "sigmoid").abs(),
        "train": _input_grad(train, x, region).abs(),
    }


@student_check()
def check_saliency(report: Report, saliency) -> None:
    """Check ``saliency(model, x, region)``: |d (sum of the logits inside ``region``) / d x|,
    a map the shape of x, with the model left in eval mode."""
    model, x, region = _saliency_case()
    kept = x.clone()
    got = report.run("saliency", saliency, model, x, region)
    if isinstance(got, torch.Tensor) and got.shape != x.shape:
        shapes = {tuple(p.shape) for p in model.parameters()}
        if tuple(got.shape) in shapes:
            report.fail(f"saliency returned a map of shape {tuple(got.shape)}, the shape of a "
                        f"layer's weights: that is the gradient with respect to the weights "
                        f"(what training uses). A saliency map is the gradient with respect to "
                        f"the INPUT: torch.autograd.grad(score, x) with x.requires_grad_(True)")
            return
    got = _tensor(report, "saliency", got, x.shape)
    if got is None:
        return
    if not torch.equal(x.detach(), kept):
        report.fail("saliency changed x: work on x.detach().clone().requires_grad_(True)")
    if x.requires_grad:
        report.note("saliency switched on requires_grad on the caller's x: use a detached copy")
    if any(p.grad is not None for p in model.parameters()):
        report.note("the model's .grad was filled as well: torch.autograd.grad(score, x) "
                    "computes the gradient with respect to x alone, which is all a map needs")
    if not model.modes:
        report.fail("the model was never called on x")
        return
    report.check(True not in model.modes, "the model stays in eval mode",
                 "the model ran in training mode: batch norm then uses the batch's "
                 "statistics, so the map explains a different function from the one that "
                 "predicts; keep (or put) the model in eval mode")
    variants = _saliency_variants(x, region)
    if not got.abs().sum() > 0:
        report.fail("the map is all zeros: set requires_grad on the input x before the "
                    "forward pass and take the gradient of the region's summed logits")
        return
    messages = {
        "signed": "the map is the signed gradient: a saliency map is its magnitude, .abs()",
        "all": "the score summed the logits of every pixel: sum only those inside region "
               "(out[region].sum()), the object being explained",
        "sigmoid": "the score used sigmoid probabilities, which saturate near 0 and 1 and hide "
                   "the gradient: sum the logits inside region",
    }
    if _same(got.detach(), variants["right"]):
        report.ok("matches |d (sum of the region's logits) / dx|")
    elif True in model.modes:
        return
    else:
        found = next((m for k, m in messages.items() if _same(got.detach(), variants[k])), None)
        report.fail(found or "the map differs from |d (sum of the logits inside region) / dx|")


def _smoothgrad_reference(x, region, samples, sigma, seed, variant="right"):
    model = _Segmenter().eval()
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros_like(x)
    noise = torch.randn(x.shape, generator=g)
    current = x
    for k in range(samples):
        if k and variant != "same noise":
            noise = torch.randn(x.shape, generator=g)
        scale = sigma ** 0.5 if variant == "variance" else sigma
        if variant == "walk":
            current = current + scale * noise
            noisy = current
        else:
            noisy = x + scale * noise
        grad = _input_grad(model, noisy, region)
        total += grad if variant == "abs of mean" else grad.abs()
    if variant == "abs of mean":
        return (total / samples).abs()
    return total if variant == "sum" else total / samples

@student_check()
def check_smoothgrad(report: Report, smoothgrad) -> None:
    """Check ``smoothgrad(model, x, region, samples, sigma, generator)``: the mean over
    ``samples`` noisy copies x + sigma * torch.randn(x.shape, generator=generator) of the
    saliency map (the magnitude of the gradient)."""
    model, x, region = _saliency_case()
    samples, sigma, seed = 4, 0.3, 7
    got = report.run("smoothgrad", smoothgrad, model, x, region, samples, sigma,
                     torch.Generator().manual_seed(seed))
    got = _tensor(report, "smoothgrad", got, x.shape)
    if got is None:
        return
    got = got.detach()
    report.check(True not in model.modes, "the model stays in eval mode",
                 "the model ran in training mode: keep it in eval mode")
    calls = len(model.modes)
    report.check(calls >= samples, f"the model was called for each of the {samples} samples",
                 f"the model was called {calls} times for {samples} samples: compute one "
                 f"gradient per noisy copy")
    right = _smoothgrad_reference(x, region, samples, sigma, seed)
    messages = {
        "abs of mean": "the signed gradients were averaged and the magnitude taken at the end: "
                       "take each sample's |gradient|, then average (signs cancel otherwise)",
        "variance": "the noise was scaled by sqrt(sigma): sigma is the standard deviation, so "
                    "the noise is sigma * torch.randn(...)",
        "same noise": "every sample used the same noise: draw new noise for each sample",
        "walk": "the noise accumulated from sample to sample: add fresh noise to the original "
                "x each time, not to the previous noisy copy",
        "sum": "the maps were summed: divide by the number of samples",
    }
    if _same(got, right):
        report.ok(f"matches the mean of {samples} noisy saliency maps")
    elif _same(got, _input_grad(_Segmenter().eval(), x, region).abs()):
        report.fail("the result is the plain saliency map of x: add sigma * torch.randn(x.shape,"
                    " generator=generator) to x for each sample")
    else:
        found = next((m for k, m in messages.items()
                      if _same(got, _smoothgrad_reference(x, region, samples, sigma, seed, k))),
                     None)
        report.fail(found or "the result differs from the mean over samples of |grad| at "
                             "x + sigma * torch.randn(x.shape, generator=generator), one draw "
                             "per sample, in order")


# --- saving and loading -----------------------------------------------------------------------

class _Net(nn.Module):
    """A classifier whose train and eval outputs differ (batch norm and dropout)."""

    def __init__(self, hidden: int = 6):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Dropout(0.5), nn.Linear(hidden, 3))

    def forward(self, x):
        return self.net(x)


def _trained_net() -> _Net:
    torch.manual_seed(0)
    model = _Net()
    bn = model.net[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2.0)
    return model


@student_check()
def check_load_for_inference(report: Report, load_for_inference) -> None:
    """Check ``load_for_inference(model_cls, path, **kwargs)``: build ``model_cls(**kwargs)``,
    load the state dict saved at ``path`` and return the model ready for inference."""
    saved = _trained_net()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = saved.eval()(x)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        torch.save(saved.state_dict(), path)
        torch.manual_seed(1)  # a fresh model's weights differ from the saved ones
        model = report.run("load_for_inference", load_for_inference, _Net, path, hidden=6,
                           hints={"weights_only": " -- the file holds a state dict: "
                                  "torch.load(path) gives it, and load_state_dict puts it "
                                  "into a model built from the class"})
    if isinstance(model, dict):
        report.fail("load_for_inference returned the state dict itself: build the model "
                    "(model_cls(**kwargs)) and call model.load_state_dict(...) on it")
        return
    if not isinstance(model, nn.Module):
        report.fail(f"load_for_inference returned {type(model).__name__}; return the model")
        return
    if not isinstance(model, _Net):
        report.fail("the model is not an instance of model_cls: build it with "
                    "model_cls(**kwargs)")
        return
    report.check(not model.training, "the model is in eval mode",
                 "the model is left in training mode: call model.eval() after loading, or "
                 "batch norm uses each batch's statistics and dropout drops units at random, "
                 "so predictions change from call to call")
    model.eval()
    with torch.no_grad():
        got = model(x)
    if torch.allclose(got, expected, atol=1e-6):
        report.ok("in eval mode its outputs match the saved model's")
    else:
        report.fail("its outputs differ from the saved model's: the weights were not loaded "
                    "(model.load_state_dict(torch.load(path)))")


@student_check()
def check_export_torchscript(report: Report, export_torchscript) -> None:
    """Check ``export_torchscript(model, example, path)``: write a TorchScript file that
    torch.jit.load reads back and that computes what the model computes in eval mode, for
    other inputs and batch sizes too. The model arrives in training mode, as after training."""
    model = _trained_net().train()
    example = torch.randn(4, 4, generator=torch.Generator().manual_seed(5))
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(6))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.ts"
        report.run("export_torchscript", export_torchscript, model, example, path)
        if not path.exists():
            report.fail(f"no file was written at path ({path.name})")
            return
        try:
            with warnings.catch_warnings():  # torch 2.10+ deprecates TorchScript, still reads it
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded = torch.jit.load(str(path))
        except Exception as error:  # noqa: BLE001 - any failure means "not TorchScript"
            report.fail(f"torch.jit.load could not read the file ({type(error).__name__}): "
                        f"write it with torch.jit.trace(model, example).save(path) (or "
                        f"torch.jit.script), not torch.save(model)")
            return
    report.ok("torch.jit.load reads the file")
    reference = _trained_net().eval()
    with torch.no_grad():
        expected = reference(x)
        try:
            got = loaded(x)
        except Exception as error:  # noqa: BLE001
            report.fail(f"the exported module fails on a batch of 7 ({type(error).__name__})")
            return
    if torch.allclose(got, expected, atol=1e-5):
        report.ok("parity: on new inputs it matches the model in eval mode")
    else:
        report.fail("the exported module's outputs differ from the model's in eval mode: it "
                    "was traced in training mode (batch statistics and dropout are baked in); "
                    "call model.eval() before torch.jit.trace")

