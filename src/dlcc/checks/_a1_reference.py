"""Assignment 1's reference computations, from :mod:`dlcc.scratch.layers`, and test cases."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from dlcc.scratch import layers

# Layer sizes of the test networks: all different, so that a transposed matrix has the wrong
# shape, and small, so that a report can name an index.
SIZES = {1: [7, 3], 2: [7, 5, 3], 3: [7, 5, 4, 3], 4: [7, 6, 5, 4, 3]}


def make_params(sizes: list[int], rng: np.random.Generator, scale: float = 1.0) -> dict:
    """Weights and *non-zero* biases, so that a forgotten or regularised bias shows."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(pairwise(sizes), start=1):
        params[f"W{i}"] = scale * rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        params[f"b{i}"] = 0.5 * rng.standard_normal(fan_out)
    return params


def depth_of(params: dict) -> int:
    return sum(1 for k in params if k.startswith("W"))


def reference_forward(params: dict, x: np.ndarray):
    """Activations [x, h1, ..., logits] and the logits (the output layer has no activation)."""
    acts = [x]
    h = x
    layers_ = depth_of(params)
    for i in range(1, layers_ + 1):
        z, _ = layers.linear_forward(h, params[f"W{i}"], params[f"b{i}"])
        if i < layers_:
            h, _ = layers.sigmoid_forward(z)
            acts.append(h)
    acts.append(z)
    return acts, z


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    return layers.softmax_cross_entropy(logits, y)


def penalty(params: dict, l2: float) -> float:
    return 0.5 * l2 * sum(float(np.sum(params[f"W{i}"] ** 2))
                          for i in range(1, depth_of(params) + 1))


# How a hidden layer's gradient passes back through its sigmoid, written in terms of the layer's
# output h: the right way and the usual slips.
SIGMOID_GRAD = {
    "right": lambda d, h: layers.sigmoid_backward(d, h),
    "skipped": lambda d, h: d,
    "twice": lambda d, h: layers.sigmoid_backward(d, layers.sigmoid_forward(h)[0]),
    "half": lambda d, h: d * (1 - h),
    "other half": lambda d, h: d * h,
}


def reference_grads(params: dict, acts: list, logits: np.ndarray, y: np.ndarray, l2: float,
                    sigmoid_grad: str = "right", softmax: bool = True) -> dict:
    """The gradients; ``softmax=False`` gives those of the slip (logits - onehot(y)) / N."""
    layers_ = depth_of(params)
    if softmax:
        _, dout = cross_entropy(logits, y)
    else:
        dout = logits.copy()
        dout[np.arange(len(y)), y] -= 1
        dout /= len(y)
    grads = {}
    for i in range(layers_, 0, -1):
        dx, dw, db = layers.linear_backward(dout, (acts[i - 1], params[f"W{i}"]))
        grads[f"W{i}"] = dw + l2 * params[f"W{i}"]
        grads[f"b{i}"] = db
        if i > 1:
            dout = SIGMOID_GRAD[sigmoid_grad](dx, acts[i - 1])
    return grads


def make_case(depth: int, seed: int, n: int = 6, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    sizes = SIZES[depth]
    params = make_params(sizes, rng, scale)
    x = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    y[: sizes[-1]] = np.arange(sizes[-1])  # every class present
    return params, x, y
