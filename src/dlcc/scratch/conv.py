"""Convolution and max pooling in numpy (Lecture 7), NCHW layout.

x (N, C, H, W) images, w (F, C, HH, WW) filters, b (F,) biases, out (N, F, Ho, Wo).
Two convolutions with one signature and one cache: ``conv2d_*_naive`` are the loops from the
lecture, ``conv2d_forward``/``conv2d_backward`` unroll every receptive field into a column
(``im2col``) so that the whole layer is one matrix product.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import _checks


def conv2d_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0,
                       dilation: int = 1) -> int:
    """Output height (or width) of a convolution or pooling layer (PyTorch's formula).

    floor((size + 2 pad - dilation (kernel - 1) - 1) / stride) + 1
    """
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("pad", pad, 0), ("dilation", dilation, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    span = dilation * (kernel - 1) + 1  # input pixels one (dilated) kernel covers
    if span > size + 2 * pad:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) spans {span} pixels but the "
                         f"padded input has only {size + 2 * pad}")
    return (size + 2 * pad - span) // stride + 1


def _output_hw(x_shape, kernel_h: int, kernel_w: int, stride: int, pad: int) -> tuple[int, int]:
    """Output size, refusing a stride that leaves part of the padded input unused."""
    for name, value, low in (("stride", stride, 1), ("pad", pad, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    sizes = []
    for dim, size, kernel in (("height", x_shape[2], kernel_h), ("width", x_shape[3], kernel_w)):
        if kernel > size + 2 * pad or (size + 2 * pad - kernel) % stride:
            raise ValueError(f"stride {stride} with pad {pad} and kernel {dim} {kernel} does not "
                             f"tile input {dim} {size}: ({size} + 2*{pad} - {kernel}) must be a "
                             f"non-negative multiple of {stride}")
        sizes.append((size + 2 * pad - kernel) // stride + 1)
    return sizes[0], sizes[1]


def _check_conv_args(x, w, b) -> None:
    _checks.ndim("x", _checks.float_array("x", x), 4, "(N, C, H, W)")
    _checks.ndim("w", _checks.float_array("w", w), 4, "(F, C, HH, WW)")
    _checks.ndim("b", _checks.float_array("b", b), 1, "(F,)")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has shape {x.shape} with {x.shape[1]} channels but w has shape "
                         f"{w.shape} and expects {w.shape[1]}")
    if b.shape[0] != w.shape[0]:
        raise ValueError(f"b has shape {b.shape} but w has {w.shape[0]} filters")
    _checks.same_dtype("w", w, "x", x)
    _checks.same_dtype("b", b, "x", x)


def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    return xp


class ConvCache(NamedTuple):
    """What both conv backward passes need; ``cols`` is im2col(x) if the forward built it."""

    x: np.ndarray
    w: np.ndarray
    stride: int
    pad: int
    cols: np.ndarray | None


# --- the loops --------------------------------------------------------------------------------

def conv2d_forward_naive(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1,
                         pad: int = 0):
    """Convolution as loops: out[n, f, i, j] = sum(window(n, i, j) * w[f]) + b[f]."""
    _check_conv_args(x, w, b)
    ho, wo = _output_hw(x.shape, w.shape[2], w.shape[3], stride, pad)
    n_images, n_filters, hh, ww = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    xp = _pad(x, pad)
    out = np.empty((n_images, n_filters, ho, wo), dtype=x.dtype)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(ho):
                for j in range(wo):
                    window = xp[n, :, i * stride:i * stride + hh, j * stride:j * stride + ww]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, ConvCache(x, w, stride, pad, None)


def conv2d_backward_naive(dout: np.ndarray, cache: ConvCache):
    """Loops again: each output pixel sends dout * w[f] to its window and dout * window to w."""
    x, w, stride, pad, _ = cache
    n_images, n_filters, hh, ww = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    ho, wo = _output_hw(x.shape, hh, ww, stride, pad)
    _checks.dout(dout, (n_images, n_filters, ho, wo))
    xp = _pad(x, pad)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(n_images):
        for f in range(n_filters):
            for i in range(ho):
                for j in range(wo):
                    rows = slice(i * stride, i * stride + hh)
                    cols = slice(j * stride, j * stride + ww)
                    dw[f] += xp[n, :, rows, cols] * dout[n, f, i, j]
                    dxp[n, :, rows, cols] += w[f] * dout[n, f, i, j]
    dx = dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


# --- im2col -----------------------------------------------------------------------------------

def im2col(x: np.ndarray, kernel_h: int, kernel_w: int, stride: int = 1, pad: int = 0):
    """Unroll every receptive field of x (N, C, H, W) into a column.

    Returns cols (C * kernel_h * kernel_w, N * Ho * Wo): rows ordered (c, i, j) like
    ``w.reshape(F, -1)``, columns ordered (n, ho, wo), so that ``w.reshape(F, -1) @ cols`` is
    the convolution with shape (F, N * Ho * Wo).
    """
    _checks.ndim("x", _checks.float_array("x", x), 4, "(N, C, H, W)")
    ho, wo = _output_hw(x.shape, kernel_h, kernel_w, stride, pad)
    n, c = x.shape[:2]
    # A strided view (no copy) of every window: (N, C, Ho, Wo, kh, kw).
    windows = sliding_window_view(_pad(x, pad), (kernel_h, kernel_w), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]
    # The one real copy. Ordering (c, i, j, n, ho, wo) keeps the innermost loop reading
    # consecutive pixels of a row, which is what makes this copy fast.
    cols = np.empty((c, kernel_h, kernel_w, n, ho, wo), dtype=x.dtype)
    cols[...] = windows.transpose(1, 4, 5, 0, 2, 3)
    return cols.reshape(c * kernel_h * kernel_w, n * ho * wo)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_h: int, kernel_w: int,
           stride: int = 1, pad: int = 0) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column back onto the pixels it came from.

    cols (C * kernel_h * kernel_w, N * Ho * Wo) -> (N, C, H, W). Overlapping windows sum.
    """
    _checks.float_array("cols", cols)
    n, c, h, w = x_shape
    ho, wo = _output_hw(x_shape, kernel_h, kernel_w, stride, pad)
    expected = (c * kernel_h * kernel_w, n * ho * wo)
    if cols.shape != expected:
        raise ValueError(f"cols has shape {cols.shape} but x_shape {tuple(x_shape)} with a "
                         f"{kernel_h}x{kernel_w} kernel needs {expected}")
    cols = cols.reshape(c, kernel_h, kernel_w, n, ho, wo)
    # Accumulate in (C, N, H, W) order so that each slice below matches cols' memory order;
    # one strided add per kernel offset (kh * kw of them) instead of np.add.at per pixel.
    xp = np.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, i, j]
    return xp[:, :, pad:pad + h, pad:pad + w].transpose(1, 0, 2, 3)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0):
    """Convolution as one matrix product (im2col); same result and cache as the naive loops."""
    _check_conv_args(x, w, b)
    n_filters, _, hh, ww = w.shape
    cols = im2col(x, hh, ww, stride, pad)
    ho, wo = _output_hw(x.shape, hh, ww, stride, pad)
    out = w.reshape(n_filters, -1) @ cols  # (F, N * Ho * Wo)
    out += b[:, None]
    # (F, N, Ho, Wo) -> (N, F, Ho, Wo) is a view, not a copy.
    out = out.reshape(n_filters, x.shape[0], ho, wo).transpose(1, 0, 2, 3)
    return out, ConvCache(x, w, stride, pad, cols)


def conv2d_backward(dout: np.ndarray, cache: ConvCache):
    """Gradients via im2col: dout (N, F, Ho, Wo) -> dx (N, C, H, W), dw (F, C, HH, WW), db (F,)."""
    x, w, stride, pad, cols = cache
    n_filters, _, hh, ww = w.shape
    ho, wo = _output_hw(x.shape, hh, ww, stride, pad)
    _checks.dout(dout, (x.shape[0], n_filters, ho, wo))
    if cols is None:  # a cache from conv2d_forward_naive
        cols = im2col(x, hh, ww, stride, pad)
    dout_mat = dout.transpose(1, 0, 2, 3).reshape(n_filters, -1)  # (F, N * Ho * Wo)
    dw = (dout_mat @ cols.T).reshape(w.shape)
    dcols = w.reshape(n_filters, -1).T @ dout_mat
    dx = col2im(dcols, x.shape, hh, ww, stride, pad)
    return dx, dw, dout_mat.sum(axis=1)


# --- max pooling ------------------------------------------------------------------------------

def maxpool2d_forward(x: np.ndarray, size: int = 2, stride: int = 2):
    """Max over each size x size window of x (N, C, H, W) -> out (N, C, Ho, Wo).

    Cache keeps the position of the (first) maximum of every window.
    """
    _checks.ndim("x", _checks.float_array("x", x), 4, "(N, C, H, W)")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be an integer >= 1, got {size!r}")
    ho, wo = _output_hw(x.shape, size, size, stride, 0)
    windows = sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
    windows = windows.reshape(*windows.shape[:4], size * size)  # (N, C, Ho, Wo, size * size)
    argmax = windows.argmax(axis=-1)
    out = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    return out, (x.shape, argmax, size, stride)


def maxpool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Each window's gradient goes to its maximum; windows that overlap add up."""
    x_shape, argmax, size, stride = cache
    _checks.dout(dout, argmax.shape)
    ho, wo = argmax.shape[2:]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for k in range(size * size):
        i, j = divmod(k, size)
        hit = np.where(argmax == k, dout, 0)  # windows whose maximum sits at offset (i, j)
        dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += hit
    return dx
