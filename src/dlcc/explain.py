"""Seeing inside a classifier, and fooling it: attributions and adversarial attacks.

Attributions answer "which input pixels made the model say class ``target``?". Each function
takes any ``nn.Module`` classifier that maps images (N, C, H, W) to logits (N, K), a batch
``x`` and ``target`` (one class index for the whole batch, or one per image), and returns a
tensor the shape of ``x`` (Grad-CAM: (N, 1, H, W)). The model must be in eval mode when it
has batch-norm or dropout, because those layers change what is being explained.

Attacks perturb ``x`` inside the L-infinity ball of radius ``eps`` and inside the valid pixel
range ``bounds`` to raise the cross-entropy loss: :func:`fgsm` (one signed-gradient step) and
:func:`pgd` (many steps, projected back onto the ball after each). :func:`adversarial_train`
trains on such examples instead of the clean ones.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from dlcc.scratch._checks import integer

_STOCHASTIC = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training and any(isinstance(m, _STOCHASTIC) for m in model.modules()):
        raise ValueError("model is in training mode and has batch-norm or dropout layers, "
                         "which would change the function being explained or attacked; "
                         "call model.eval() first")
    return model


def _check_x(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        got = (f"a {x.ndim}-D {x.dtype} tensor" if isinstance(x, torch.Tensor)
               else type(x).__name__)
        raise ValueError(f"x must be a 4-D floating-point tensor (N, C, H, W), got {got}")
    return x.detach()


def _scores(logits: torch.Tensor, target) -> torch.Tensor:
    """The logit of class ``target`` for every image: (N,)."""
    n, k = logits.shape
    t = torch.as_tensor(target, device=logits.device)
    if t.is_floating_point() or t.dtype == torch.bool or t.ndim > 1:
        raise ValueError(f"target must be a class index or a 1-D integer tensor, got {target!r}")
    t = t.expand(n) if t.ndim == 0 else t
    if t.shape != (n,) or t.min() < 0 or t.max() >= k:
        raise ValueError(f"target must hold {n} class indices in [0, {k}), got {target!r}")
    return logits.gather(1, t.long().view(-1, 1)).squeeze(1)


def _grad(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """d logit_target / dx, one image at a time (the batch sum separates)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_scores(model(x), target).sum(), x)
    return grad


def saliency(model: nn.Module, x: torch.Tensor, target, abs: bool = True) -> torch.Tensor:
    """The gradient of the target logit with respect to the input (its magnitude by default)."""
    grad = _grad(_check_model(model), _check_x(x), target)
    return grad.abs() if abs else grad


def smoothgrad(model: nn.Module, x: torch.Tensor, target, samples: int = 25,
               sigma: float = 0.15, abs: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Saliency averaged over ``samples`` copies of ``x`` with Gaussian noise of std ``sigma``.

    ``sigma`` is in the units of ``x``; Smilkov et al. suggest 10-20 % of the input's range.
    """
    model, x = _check_model(model), _check_x(x)
    integer("samples", samples)
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    total = torch.zeros_like(x)
    for _ in range(samples):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        grad = _grad(model, x + sigma * noise, target)
        total += grad.abs() if abs else grad
    return total / samples


def integrated_gradients(model: nn.Module, x: torch.Tensor, target, baseline=None,
                         steps: int = 50) -> torch.Tensor:
    """(x - x') times the path integral of the gradient from the baseline x' to x.

    The integral over alpha in [0, 1] is the midpoint Riemann sum with ``steps`` points
    alpha_k = (k + 1/2) / steps. ``baseline`` is a tensor broadcastable to ``x`` or a number;
    the default is zeros (a black image). By completeness the attributions of an image sum to
    f(x) - f(x') up to the error of the sum, which falls like 1 / steps**2 for a smooth f.
    """
    model, x = _check_model(model), _check_x(x)
    integer("steps", steps)
    baseline = torch.zeros_like(x) if baseline is None else torch.as_tensor(
        baseline, dtype=x.dtype, device=x.device).expand_as(x)
    total = torch.zeros_like(x)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += _grad(model, baseline + alpha * (x - baseline), target)
    return (x - baseline) * total / steps


def occlusion(model: nn.Module, x: torch.Tensor, target, window: int | tuple[int, int] = 4,
              stride: int | tuple[int, int] | None = None, baseline: float = 0.0
              ) -> torch.Tensor:
    """How much the target logit drops when a ``window`` of pixels is set to ``baseline``.

    The window (all channels at once) slides with ``stride`` (default: the window, no overlap)
    from the top-left corner; every pixel gets the mean drop f(x) - f(x occluded) over the
    windows that cover it (0 where none does), as in Zeiler and Fergus (2014) and Captum.
    """
    model, x = _check_model(model), _check_x(x)
    h, w = (window, window) if isinstance(window, int) else tuple(window)
    stride = (h, w) if stride is None else stride
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    for name, value in (("window", h), ("window", w), ("stride", sh), ("stride", sw)):
        integer(name, value)
    height, width = x.shape[-2:]
    if h > height or w > width:
        raise ValueError(f"window must fit in the image {height}x{width}, got {(h, w)}")
    total, count = torch.zeros_like(x), torch.zeros_like(x[:1, :1])
    with torch.no_grad():
        reference = _scores(model(x), target)
        for top in range(0, height - h + 1, sh):
            for left in range(0, width - w + 1, sw):
                occluded = x.clone()
                occluded[..., top:top + h, left:left + w] = baseline
                drop = reference - _scores(model(occluded), target)
                total[..., top:top + h, left:left + w] += drop.view(-1, 1, 1, 1)
                count[..., top:top + h, left:left + w] += 1
    return total / count.clamp(min=1)


def _layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("layer is a module that is not part of model")
        return layer
    names = [name for name, _ in model.named_modules() if name]
    if layer not in names:
        raise ValueError(f"layer {layer!r} is not a module of the model; its modules are: "
                         + ", ".join(names))
    return model.get_submodule(layer)


def grad_cam(model: nn.Module, x: torch.Tensor, target, layer: str | nn.Module,
             upsample: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at ``layer`` (its name in the model, or the module).

    With A^k the layer's k-th feature map and alpha_k the mean over its positions of
    d logit_target / d A^k, the map is ReLU(sum_k alpha_k A^k): (N, 1, h, w), upsampled
    bilinearly to the input's H x W unless ``upsample`` is False.
    """
    model, x = _check_model(model), _check_x(x)
    module = _layer(model, layer)
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, out: seen.append(out))
    try:
        scores = _scores(model(x), target)
    finally:
        handle.remove()
    if len(seen) != 1 or not isinstance(seen[0], torch.Tensor) or seen[0].ndim != 4:
        raise ValueError(f"layer {layer!r} must run once per forward pass and output a "
                         f"(N, C, h, w) feature map")
    (grad,) = torch.autograd.grad(scores.sum(), seen[0])
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * seen[0]).sum(dim=1, keepdim=True)).detach()
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear") if upsample else cam


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of two maps, one value per image (ties broken by order)."""
    def ranks(t: torch.Tensor) -> torch.Tensor:
        flat = t.reshape(t.shape[0], -1)
        return flat.argsort(dim=1).argsort(dim=1).to(torch.float64)

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def randomisation_check(model: nn.Module, x: torch.Tensor, target,
                        method: Callable[[nn.Module, torch.Tensor, object], torch.Tensor],
                        seed: int = 0) -> list[tuple[str, float]]:
    """The cascading model-randomisation test of Adebayo et al. (2018).

    Re-initialises the layers that have parameters one at a time from the output down (on a
    copy of ``model``), cumulatively, and after each returns the mean over the batch of the
    rank correlation between ``method(model, x, target)`` before and after. An attribution
    that explains the model should lose its similarity as the weights are destroyed; one that
    keeps it is showing the input, not the model. Returns [(layer name, correlation), ...],
    starting with ("none", 1.0).
    """
    model, x = _check_model(model), _check_x(x)
    original = method(model, x, target).abs()
    layers = [(name, m) for name, m in model.named_modules()
              if name and hasattr(m, "reset_parameters") and any(
                  True for _ in m.parameters(recurse=False))]
    if not layers:
        raise ValueError("model has no layers with reset_parameters() to randomise")
    randomised = copy.deepcopy(model)
    torch.manual_seed(seed)
    result = [("none", 1.0)]
    for name, _ in reversed(layers):
        randomised.get_submodule(name).reset_parameters()
        after = method(randomised, x, target).abs()
        result.append((name, rank_correlation(original, after).mean().item()))
    return result


def _check_attack(model, x, y, eps, bounds) -> tuple[torch.Tensor, float, float]:
    model, x = _check_model(model), _check_x(x)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < math.inf:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    low, high = bounds
    if not low < high:
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    if x.min() < low or x.max() > high:
        raise ValueError(f"x must lie in bounds {bounds}, got values in "
                         f"[{x.min().item():.3g}, {x.max().item():.3g}]")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape[:1] or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor of {x.shape[0]} labels, got "
                         + (f"shape {tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor)
                            else type(y).__name__))
    return x, float(low), float(high)


def _loss_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
         bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """The fast gradient sign method: x + eps * sign(grad_x loss), clipped to ``bounds``.

    The first-order maximiser of the cross-entropy over the L-infinity ball of radius eps
    (Goodfellow et al. 2015). Returns the adversarial batch, detached.
    """
    x, low, high = _check_attack(model, x, y, eps, bounds)
    _, grad = _loss_grad(model, x, y)
    return (x + eps * grad.sign()).clamp(low, high).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float,
        steps: int = 10, generator: torch.Generator | None = None,
        bounds: tuple[float, float] = (0.0, 1.0), random_start: bool = True) -> torch.Tensor:
    """Projected gradient descent on the loss (ascent, really), Madry et al. (2018).

    From a uniform random point of the eps ball (drawn with ``generator``; or x itself if
    ``random_start`` is False), ``steps`` times: move ``step`` along the sign of the gradient,
    project back onto the ball around x and into ``bounds``. Returns, for every image, the
    iterate with the highest loss seen, so that more steps never make the attack weaker.
    """
    x, low, high = _check_attack(model, x, y, eps, bounds)
    integer("steps", steps)
    if not isinstance(step, (int, float)) or not 0 < step < math.inf:
        raise ValueError(f"step must be a finite number > 0, got {step!r}")
    delta = torch.zeros_like(x)
    if random_start:
        delta = eps * (2 * torch.rand(x.shape, generator=generator, dtype=x.dtype) - 1)
    adv = (x + delta.to(x.device)).clamp(low, high)
    best, best_loss = adv.clone(), torch.full_like(y, -math.inf, dtype=x.dtype)
    for _ in range(steps):
        loss, grad = _loss_grad(model, adv, y)
        better = loss > best_loss
        best[better], best_loss[better] = adv[better], loss[better]
        adv = adv + step * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(low, high).detach()
    with torch.no_grad():
        loss = F.cross_entropy(model(adv), y, reduction="none")
    better = loss > best_loss
    best[better] = adv[better]
    return best.detach()


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    attack: Callable[..., torch.Tensor] | None = None, **kwargs) -> float:
    """Accuracy on ``attack(model, x, y, **kwargs)`` (on ``x`` itself if ``attack`` is None)."""
    x_adv = x if attack is None else attack(model, x, y, **kwargs)
    with torch.no_grad():
        return (_check_model(model)(x_adv).argmax(1) == y).float().mean().item()


def adversarial_train(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                      attack: Callable[..., torch.Tensor], epochs: int = 1,
                      **attack_kwargs) -> list[float]:
    """Train on ``attack(model, x, y, **attack_kwargs)`` instead of ``x`` (Madry et al. 2018).

    A plain loop rather than a hook in ``dlcc.train.fit``: each batch needs the model in eval
    mode to craft its attack (batch-norm statistics must not see adversarial batches twice)
    and in training mode to learn from it, and that switch is clearer written out. Returns the
    mean training loss of every epoch.
    """
    integer("epochs", epochs)
    losses = []
    for _ in range(epochs):
        total, n = 0.0, 0
        for x, y in loader:
            model.eval()
            x_adv = attack(model, x, y, **attack_kwargs)
            model.train()
            loss = F.cross_entropy(model(x_adv), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, n = total + loss.item() * len(y), n + len(y)
        losses.append(total / n)
    model.eval()
    return losses
