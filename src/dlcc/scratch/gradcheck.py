"""Numerical gradients by centred differences, to check hand-written backward passes (Lecture 3).

``(f(x + h) - f(x - h)) / 2h`` has error O(h^2) against O(h) for a one-sided difference, so
with h = 1e-5 in float64 a correct backward pass agrees to about 1e-8 relative error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _checks


def _check_float64(x: object) -> np.ndarray:
    _checks.float_array("x", x)
    if x.dtype != np.float64:
        raise TypeError(f"x has dtype {x.dtype}, but gradient checks need float64: float32 "
                        f"keeps only ~1e-7 relative precision, which swamps the difference "
                        f"f(x + h) - f(x - h) for h = 1e-5; use x.astype(np.float64)")
    return x


def numerical_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient (shape of x) of the scalar ``f(x)`` by centred differences.

    ``x`` is nudged in place one element at a time, so that ``f`` may close over it (as a
    layer's parameters are); it is always restored, even if ``f`` raises.
    """
    _check_float64(x)
    _checks.positive("h", h)

    def scalar_f() -> float:
        value = f(x)
        if np.ndim(value) != 0:
            raise ValueError(f"f must return a scalar, got shape {np.shape(value)}; "
                             f"use numerical_vjp for array-valued functions")
        return float(value)

    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        try:
            x[idx] = old + h
            f_plus = scalar_f()
            x[idx] = old - h
            f_minus = scalar_f()
        finally:
            x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_vjp(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray,
                  h: float = 1e-5) -> np.ndarray:
    """Vector-Jacobian product: the gradient of ``sum(f(x) * dout)`` w.r.t. x (shape of x).

    This is what a backward function must return given upstream gradient ``dout``
    (shape of f(x)).
    """
    _check_float64(x)
    _checks.float_array("dout", dout)

    def weighted(x_: np.ndarray) -> float:
        out = f(x_)
        if np.shape(out) != dout.shape:
            raise ValueError(f"dout has shape {dout.shape} but f(x) has shape {np.shape(out)}")
        return float(np.sum(out * dout))

    return numerical_grad(weighted, x, h)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a| + |b|): 0 for equal arrays, about 1e-8 for a good float64 check.

    Normalising by the largest magnitude (not element by element) keeps entries that are
    nearly zero in both arrays from reporting huge relative errors.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a has shape {a.shape} but b has shape {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a) + np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b))) / scale
