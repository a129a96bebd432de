"""Layers and losses as pure functions (Lectures 1-3 and 6).

The contract: ``*_forward(inputs...) -> (out, cache)`` and ``*_backward(dout, cache)`` returns
the gradient of the loss with respect to each input, where ``dout`` is the gradient with
respect to ``out``. Losses return ``(loss, dinput)`` directly because they end the chain.
Shapes: N examples, D input features, M output features, C classes.
"""

from __future__ import annotations

import numpy as np

from . import _checks

# --- affine layer -----------------------------------------------------------------------------

def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """out = x @ w + b for x (N, D), w (D, M), b (M,); returns out (N, M) and cache (x, w)."""
    for name, a, n, layout in (("x", x, 2, "(N, D)"), ("w", w, 2, "(D, M)"), ("b", b, 1, "(M,)")):
        _checks.ndim(name, _checks.float_array(name, a), n, layout)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x has shape {x.shape} but w expects {w.shape[0]} input features")
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"b has shape {b.shape} but w has {w.shape[1]} output features")
    _checks.same_dtype("w", w, "x", x)
    _checks.same_dtype("b", b, "x", x)
    return x @ w + b, (x, w)


def linear_backward(dout: np.ndarray, cache, need_dx: bool = True):
    """Gradients of out = x @ w + b: dout (N, M) -> dx (N, D), dw (D, M), db (M,).

    ``need_dx=False`` returns None for dx: a network's first layer needs no gradient for its
    input (the data), and skipping that matrix product saves a quarter of an MLP's backward pass.
    """
    x, w = cache
    _checks.dout(dout, (x.shape[0], w.shape[1]))
    dx = dout @ w.T if need_dx else None
    return dx, x.T @ dout, dout.sum(axis=0)


# --- element-wise nonlinearities (any shape) --------------------------------------------------

def relu_forward(x: np.ndarray):
    """max(x, 0) element-wise; cache is x."""
    return np.maximum(_checks.float_array("x", x), 0), x


def relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """The gradient passes where x > 0 (we take the derivative at the kink x = 0 to be 0)."""
    x = cache
    return np.where(x > 0, _checks.dout(dout, x.shape), 0)


def sigmoid_forward(x: np.ndarray):
    """1 / (1 + exp(-x)) element-wise; cache is the output."""
    # exp(-log(1 + exp(-x))) never overflows: logaddexp does the log-sum-exp trick for us.
    out = np.exp(-np.logaddexp(0, -_checks.float_array("x", x)))
    return out, out


def sigmoid_backward(dout: np.ndarray, cache) -> np.ndarray:
    """sigma'(x) = sigma(x) (1 - sigma(x)), written in terms of the cached output."""
    out = cache
    return _checks.dout(dout, out.shape) * out * (1 - out)


def tanh_forward(x: np.ndarray):
    """tanh(x) element-wise; cache is the output."""
    out = np.tanh(_checks.float_array("x", x))
    return out, out


def tanh_backward(dout: np.ndarray, cache) -> np.ndarray:
    """tanh'(x) = 1 - tanh(x)^2, written in terms of the cached output."""
    out = cache
    return _checks.dout(dout, out.shape) * (1 - out * out)


# --- losses -----------------------------------------------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis of ``logits`` (any shape, typically (N, C))."""
    _checks.float_array("logits", logits)
    # Subtracting the row maximum changes nothing mathematically and keeps exp() <= 1.
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray):
    """Mean cross-entropy of softmax(logits) (N, C) against integer labels y (N,).

    Returns ``(loss, dlogits)`` with dlogits (N, C) = (softmax(logits) - onehot(y)) / N.
    """
    _checks.ndim("logits", _checks.float_array("logits", logits), 2, "(N, C)")
    _checks.finite("logits", logits)
    n, c = logits.shape
    _checks.labels(y, n, c)
    # log softmax via log-sum-exp: log p = z - max - log(sum(exp(z - max))).
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, y].mean()
    dlogits = np.exp(log_probs)
    dlogits[rows, y] -= 1
    return float(loss), dlogits / n


def binary_cross_entropy_with_logits(logits: np.ndarray, y: np.ndarray):
    """Mean binary cross-entropy of sigmoid(logits) against targets y of the same shape.

    ``y`` holds 0/1 labels (integers or floats; probabilities in [0, 1] also work).
    Returns ``(loss, dlogits)`` with dlogits = (sigmoid(logits) - y) / logits.size.
    """
    _checks.finite("logits", _checks.float_array("logits", logits))
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.number):
        raise TypeError(f"y must be a numeric numpy array of 0/1 targets, got {type(y).__name__}")
    _checks.same_shape("logits", logits, "y", y)
    if y.size and (y.min() < 0 or y.max() > 1):
        bad = y.min() if y.min() < 0 else y.max()
        raise ValueError(f"y contains {bad} but binary targets must lie in [0, 1]")
    y = y.astype(logits.dtype, copy=False)
    # log(1 + exp(z)) - z y, rewritten with |z| so that exp never overflows.
    losses = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    probs = np.exp(-np.logaddexp(0, -logits))
    return float(losses.mean()), (probs - y) / logits.size


def mse_loss(pred: np.ndarray, target: np.ndarray):
    """Mean squared error over all elements (as ``torch.nn.MSELoss``); returns (loss, dpred)."""
    _checks.float_array("pred", pred)
    _checks.float_array("target", target)
    _checks.same_shape("pred", pred, "target", target)
    _checks.finite("pred", pred)
    _checks.finite("target", target)
    diff = pred - target
    return float(np.mean(diff * diff)), 2 * diff / diff.size


# --- regularisation and normalisation ---------------------------------------------------------

def dropout_forward(x: np.ndarray, p: float, train: bool, rng: np.random.Generator | None):
    """Inverted dropout: zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Scaling at training time means evaluation (``train=False``) is the identity; ``rng`` may
    then be None. Cache is the scaled keep-mask (None when nothing was dropped).
    """
    _checks.float_array("x", x)
    _checks.fraction("p", p, closed_low=True)
    if not train or p == 0:
        return x, None
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator in train mode, got "
                        f"{type(rng).__name__}")
    mask = (rng.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1 - p)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, cache) -> np.ndarray:
    """The gradient flows through the kept elements, scaled like the forward pass."""
    mask = cache
    if mask is None:
        return _checks.float_array("dout", dout)
    return _checks.dout(dout, mask.shape) * mask


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, state: dict,
                      train: bool, momentum: float = 0.9, eps: float = 1e-5):
    """Batch normalisation of x (N, D), or of x (N, C, H, W) per channel, with gamma, beta (D,).

    Train mode normalises with the batch statistics and updates ``state["running_mean"]`` and
    ``state["running_var"]`` in place (created as 0 and 1 if absent) with
    ``running = momentum * running + (1 - momentum) * batch``; like PyTorch (whose momentum is
    our 1 - momentum) the running variance uses the unbiased batch variance. Eval mode
    normalises with the running statistics.
    """
    _checks.float_array("x", x)
    if x.ndim not in (2, 4):
        raise ValueError(f"x must be 2-D (N, D) or 4-D (N, C, H, W) but has shape {x.shape}")
    d = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta)):
        if _checks.float_array(name, a).shape != (d,):
            raise ValueError(f"{name} has shape {a.shape} but x has {d} features, expected ({d},)")
    _checks.fraction("momentum", momentum, closed_low=True)
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict of running statistics, got {type(state).__name__}")
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, d) if x.ndim == 2 else (1, d, 1, 1)  # broadcasts a per-feature vector over x
    running_mean = state.setdefault("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = state.setdefault("running_var", np.ones(d, dtype=x.dtype))
    if train:
        m = x.size // d  # values per feature in this batch
        if m < 2:
            raise ValueError(f"batch norm in train mode needs more than one value per feature, "
                             f"got x of shape {x.shape}")
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        running_mean *= momentum
        running_mean += (1 - momentum) * mean
        running_var *= momentum
        running_var += (1 - momentum) * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
    out = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    return out, (x_hat, gamma, inv_std, axes, shape, train)


def batchnorm_backward(dout: np.ndarray, cache):
    """Gradients of batch norm: dout like x -> dx like x, dgamma (D,), dbeta (D,)."""
    x_hat, gamma, inv_std, axes, shape, train = cache
    _checks.dout(dout, x_hat.shape)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * gamma.reshape(shape)
    if not train:  # running statistics are constants: only the scaling remains
        return dx_hat * inv_std.reshape(shape), dgamma, dbeta
    # The batch mean and variance depend on every x; collecting those paths gives
    # dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
    m = x_hat.size // x_hat.shape[1]
    mean_dx_hat = dx_hat.sum(axis=axes).reshape(shape) / m
    mean_dx_hat_x_hat = (dx_hat * x_hat).sum(axis=axes).reshape(shape) / m
    dx = inv_std.reshape(shape) * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)
    return dx, dgamma, dbeta
