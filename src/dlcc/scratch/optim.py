"""Optimisers and learning-rate schedules (Lecture 5).

An optimiser's ``step(params, grads)`` updates every array of ``params`` in place; its state
(velocities, squared-gradient averages) is a dict keyed like ``params``. The update rules follow
PyTorch's ``torch.optim`` so that the book can compare the two step by step. ``lr`` is a plain
attribute: a training loop sets it each step from a schedule function below.
"""

from __future__ import annotations

import math

import numpy as np

from . import _checks


class Optimizer:
    """Shared bookkeeping: the learning rate, per-parameter state and the step count."""

    def __init__(self, lr: float):
        _checks.positive("lr", lr)
        self.lr = lr
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update each ``params[key]`` in place from ``grads[key]`` (same keys and shapes)."""
        for key in params:
            if key not in grads:
                raise ValueError(f"grads is missing {key!r}, which is in params")
            if grads[key].shape != params[key].shape:
                raise ValueError(f"grads[{key!r}] has shape {grads[key].shape} but "
                                 f"params[{key!r}] has shape {params[key].shape}")
        for key in grads:
            if key not in params:
                raise ValueError(f"grads has {key!r}, which is not in params")
        self.steps += 1
        for key, p in params.items():
            self._update(p, grads[key], self.state.setdefault(key, {}))

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g"""

    def _update(self, p, g, state):
        p -= self.lr * g


class Momentum(Optimizer):
    """v = beta * v + g; p -= lr * v. Nesterov looks ahead: p -= lr * (g + beta * v)."""

    def __init__(self, lr: float, beta: float = 0.9, nesterov: bool = False):
        super().__init__(lr)
        _checks.fraction("beta", beta, closed_low=True)
        self.beta, self.nesterov = beta, nesterov

    def _update(self, p, g, state):
        v = state.setdefault("velocity", np.zeros_like(p))
        v *= self.beta
        v += g
        p -= self.lr * (g + self.beta * v if self.nesterov else v)


class AdaGrad(Optimizer):
    """s += g^2; p -= lr * g / (sqrt(s) + eps): steps shrink for often-updated parameters."""

    def __init__(self, lr: float, eps: float = 1e-8):
        super().__init__(lr)
        _checks.positive("eps", eps)
        self.eps = eps

    def _update(self, p, g, state):
        s = state.setdefault("sum_sq", np.zeros_like(p))
        s += g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    """s = beta * s + (1 - beta) g^2; p -= lr * g / (sqrt(s) + eps): AdaGrad that forgets."""

    def __init__(self, lr: float, beta: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        _checks.fraction("beta", beta, closed_low=True)
        _checks.positive("eps", eps)
        self.beta, self.eps = beta, eps

    def _update(self, p, g, state):
        s = state.setdefault("mean_sq", np.zeros_like(p))
        s *= self.beta
        s += (1 - self.beta) * g * g
        p -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(Optimizer):
    """Momentum (m) plus RMSProp (v), both bias-corrected for their start at zero."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _checks.fraction("betas[0]", betas[0], closed_low=True)
        _checks.fraction("betas[1]", betas[1], closed_low=True)
        _checks.positive("eps", eps)
        self.betas, self.eps = betas, eps

    def _update(self, p, g, state):
        beta1, beta2 = self.betas
        m = state.setdefault("m", np.zeros_like(p))
        v = state.setdefault("v", np.zeros_like(p))
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        # m and v start at 0, so early on they underestimate; dividing by 1 - beta^t undoes it.
        m_hat = m / (1 - beta1 ** self.steps)
        v_hat = v / (1 - beta2 ** self.steps)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# --- learning-rate schedules: plain functions of the step number (0, 1, 2, ...) ---------------

def _check_step(step: int, total_steps: int | None = None) -> None:
    _checks.integer("step", step, low=0)
    if total_steps is not None:
        _checks.integer("total_steps", total_steps)


def step_lr(step: int, lr0: float, step_size: int, gamma: float = 0.1) -> float:
    """lr0 * gamma ** (step // step_size): drop by gamma every step_size steps (``StepLR``)."""
    _check_step(step)
    _checks.integer("step_size", step_size)
    return lr0 * gamma ** (step // step_size)


def cosine_lr(step: int, lr0: float, total_steps: int, lr_min: float = 0.0,
              warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps, then half a cosine from lr0 down to lr_min.

    With warmup=0 this is ``CosineAnnealingLR(T_max=total_steps, eta_min=lr_min)``; after
    total_steps it stays at lr_min.
    """
    _check_step(step, total_steps)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) \
            or not 0 <= warmup < total_steps:
        raise ValueError(f"warmup must be an integer in [0, total_steps={total_steps}), "
                         f"got {warmup!r}")
    if step < warmup:  # ramp up from lr0 / warmup so that the first step is not a zero step
        return lr0 * (step + 1) / warmup
    progress = min((step - warmup) / (total_steps - warmup), 1.0)
    return lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * progress))


def one_cycle_lr(step: int, lr_max: float, total_steps: int, pct_start: float = 0.3,
                 div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """Smith's one-cycle policy, as PyTorch's ``OneCycleLR`` (cosine annealing, two phases).

    Rises from lr_max / div_factor to lr_max over the first pct_start of the steps, then falls
    to lr_max / div_factor / final_div_factor at step total_steps - 1.
    """
    _check_step(step, total_steps)
    if step >= total_steps:
        raise ValueError(f"step {step} is past the schedule's last step {total_steps - 1}")
    _checks.fraction("pct_start", pct_start)
    if pct_start * total_steps <= 1:
        raise ValueError(f"pct_start * total_steps must exceed 1 so that the warm-up phase has a "
                         f"step, got {pct_start} * {total_steps}")
    lr_start = lr_max / div_factor
    lr_end = lr_start / final_div_factor
    peak = pct_start * total_steps - 1  # the step at which lr reaches lr_max
    if step <= peak:
        start, end, pct = lr_start, lr_max, step / peak
    else:
        start, end, pct = lr_max, lr_end, (step - peak) / (total_steps - 1 - peak)
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Rescale every array of ``grads`` in place so that their global L2 norm is <= max_norm.

    The global norm is sqrt(sum of squares over all arrays) (Lecture 9), as in PyTorch's
    ``clip_grad_norm_``: one factor for all arrays keeps the update's direction. Returns the
    norm before clipping.
    """
    if not isinstance(grads, dict) or not grads:
        raise ValueError(f"grads must be a non-empty dict of gradient arrays, got {grads!r:.60}")
    for key, g in grads.items():
        _checks.float_array(f"grads[{key!r}]", g)
    _checks.positive("max_norm", max_norm)
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    if not math.isfinite(norm):
        raise ValueError(f"grads have a non-finite global norm ({norm}); training has diverged")
    if norm > max_norm:
        for g in grads.values():
            g *= max_norm / (norm + 1e-6)
    return norm
