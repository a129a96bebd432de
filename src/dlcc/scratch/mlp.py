"""A multi-layer perceptron built from the layer functions (Lectures 1-3).

``MLP([D, H1, ..., C])`` stacks linear layers with a nonlinearity between them. With C > 1
outputs it is a softmax classifier over C classes; with C == 1 a binary classifier whose single
logit goes through a sigmoid.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from . import _checks, layers

ACTIVATIONS = {
    "relu": (layers.relu_forward, layers.relu_backward),
    "sigmoid": (layers.sigmoid_forward, layers.sigmoid_backward),
    "tanh": (layers.tanh_forward, layers.tanh_backward),
}


def _init_std(init: str | float, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the initial weights of one layer."""
    if init == "he":  # keeps the variance of ReLU activations constant through the layers
        return np.sqrt(2.0 / fan_in)
    if init == "xavier":  # Glorot & Bengio's compromise between the forward and backward pass
        return np.sqrt(2.0 / (fan_in + fan_out))
    if isinstance(init, (int, float)) and not isinstance(init, bool) and init > 0:
        return float(init)
    raise ValueError(f"init must be 'he', 'xavier' or a positive float std, got {init!r}")


class MLP:
    """Fully connected network. ``params`` holds W1 (D, H1), b1 (H1,), W2 (H1, H2), ...

    ``l2`` adds ``0.5 * l2 * sum(W ** 2)`` over the weights (not the biases) to the loss.
    Weights are drawn from N(0, std^2) with ``np.random.default_rng(seed)``; biases start at 0.
    """

    def __init__(self, sizes: list[int], activation: str = "relu", init: str | float = "he",
                 l2: float = 0.0, seed: int = 0, dtype=np.float64):
        if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in sizes):
            raise ValueError(f"sizes must list at least two positive integers [D, ..., C], "
                             f"got {sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"dtype must be a floating type, got {np.dtype(dtype)}")
        self.sizes, self.activation, self.l2 = list(sizes), activation, l2
        self.num_layers = len(sizes) - 1
        rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
        for i, (fan_in, fan_out) in enumerate(pairwise(sizes), start=1):
            std = _init_std(init, fan_in, fan_out)
            self.params[f"W{i}"] = (std * rng.standard_normal((fan_in, fan_out))).astype(dtype)
            self.params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)

    @property
    def binary(self) -> bool:
        return self.sizes[-1] == 1

    def _forward(self, x: np.ndarray):
        """Logits (N, C) and, per layer, the (linear cache, activation cache or None) pair."""
        act_forward, _ = ACTIVATIONS[self.activation]
        caches = []
        out = x
        for i in range(1, self.num_layers + 1):
            out, linear_cache = layers.linear_forward(out, self.params[f"W{i}"],
                                                      self.params[f"b{i}"])
            act_cache = None
            if i < self.num_layers:  # no nonlinearity after the last layer: those are logits
                out, act_cache = act_forward(out)
            caches.append((linear_cache, act_cache))
        return out, caches

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, C) for inputs x (N, D)."""
        return self._forward(x)[0]

    def _check_labels(self, n: int, y: np.ndarray) -> None:
        if not self.binary:
            _checks.labels(y, n, self.sizes[-1])
            return
        if isinstance(y, np.ndarray) and y.size and (y.min() < 0 or y.max() > 1):
            bad = y.min() if y.min() < 0 else y.max()
            raise ValueError(f"y contains label {bad} but a binary MLP (one output) expects "
                             f"labels 0 and 1")
        _checks.labels(y, n, 2)

    def loss(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss over the batch x (N, D), y (N,) plus the L2 penalty, and its gradients."""
        logits, caches = self._forward(x)
        self._check_labels(len(logits), y)
        if self.binary:
            loss, dlogits = layers.binary_cross_entropy_with_logits(logits[:, 0], y)
            dout = dlogits[:, None]  # (N,) -> (N, 1), the shape of the logits
        else:
            loss, dout = layers.softmax_cross_entropy(logits, y)
        if self.l2:
            weights = [self.params[f"W{i}"] for i in range(1, self.num_layers + 1)]
            loss += 0.5 * self.l2 * sum(float(np.sum(w * w)) for w in weights)

        # --- backward pass ---
        _, act_backward = ACTIVATIONS[self.activation]
        grads = {}
        for i in reversed(range(1, self.num_layers + 1)):
            linear_cache, act_cache = caches[i - 1]
            if act_cache is not None:
                # Through the nonlinearity: multiply by its local derivative.
                dout = act_backward(dout, act_cache)
            # Through out = h @ W + b: dW = h^T dout, db = sum of dout, dh = dout W^T
            # (not needed for layer 1, whose input h is the data).
            dout, dw, db = layers.linear_backward(dout, linear_cache, need_dx=i > 1)
            # The penalty 0.5 * l2 * ||W||^2 adds l2 * W to the weight gradient.
            grads[f"W{i}"] = dw + self.l2 * self.params[f"W{i}"]
            grads[f"b{i}"] = db
        # --- end backward pass ---
        return loss, grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class labels, int64 (N,): argmax of the logits, or logit > 0 if binary."""
        logits = self.forward(x)
        if self.binary:
            return (logits[:, 0] > 0).astype(np.int64)
        return logits.argmax(axis=1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of the examples in x (N, D) whose predicted label equals y (N,)."""
        predictions = self.predict(x)
        self._check_labels(len(predictions), y)
        return float(np.mean(predictions == y))
