"""Recurrent cells as pure functions (Lecture 9): the tanh RNN and the LSTM, with BPTT.

Same contract as :mod:`.layers`: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache)`` returns one gradient per input. Shapes: N sequences, T time steps,
D input features, H hidden units. Weights act on the right (``x @ Wx``), as in
:func:`.layers.linear_forward`: ``Wx`` (D, H), ``Wh`` (H, H), ``b`` (H,) for the RNN and four
times as wide for the LSTM, whose gates are stacked in PyTorch's order (input, forget, cell,
output), so that ``Wx`` is ``nn.LSTM``'s ``weight_ih_l0.T``.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .layers import sigmoid_forward


def _check_cell(x, h_prev, Wx, Wh, b, gates: int, c_prev=None):
    """Check one step's arrays: x (N, D), h_prev (N, H), Wx (D, gH), Wh (H, gH), b (gH,)."""
    for name, a, n, layout in (("x", x, 2, "(N, D)"), ("h_prev", h_prev, 2, "(N, H)"),
                               ("Wx", Wx, 2, "(D, H)" if gates == 1 else "(D, 4H)"),
                               ("Wh", Wh, 2, "(H, H)" if gates == 1 else "(H, 4H)"),
                               ("b", b, 1, "(H,)" if gates == 1 else "(4H,)")):
        _checks.ndim(name, _checks.float_array(name, a), n, layout)
        if a is not x:
            _checks.same_dtype(name, a, "x", x)
    n, d = x.shape
    h = h_prev.shape[1]
    expected = {"h_prev": (n, h), "Wx": (d, gates * h), "Wh": (h, gates * h), "b": (gates * h,)}
    for name, a in (("h_prev", h_prev), ("Wx", Wx), ("Wh", Wh), ("b", b)):
        if a.shape != expected[name]:
            raise ValueError(f"{name} has shape {a.shape} but x {x.shape} and h_prev "
                             f"{h_prev.shape} need {expected[name]}")
    if c_prev is not None:
        _checks.float_array("c_prev", c_prev)
        _checks.same_shape("h_prev", h_prev, "c_prev", c_prev)


def _check_sequence(x, h0):
    _checks.ndim("x", _checks.float_array("x", x), 3, "(N, T, D)")
    _checks.ndim("h0", _checks.float_array("h0", h0), 2, "(N, H)")
    if x.shape[1] < 1:
        raise ValueError(f"x must hold at least one time step, got shape {x.shape}")
    if h0.shape[0] != x.shape[0]:
        raise ValueError(f"h0 has shape {h0.shape} but x holds {x.shape[0]} sequences")


# --- tanh RNN ---------------------------------------------------------------------------------

def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """h = tanh(x @ Wx + h_prev @ Wh + b); returns h (N, H) and the cache for the backward."""
    _check_cell(x, h_prev, Wx, Wh, b, gates=1)
    h = np.tanh(x @ Wx + h_prev @ Wh + b)
    return h, (x, h_prev, Wx, Wh, h)


def rnn_step_backward(dh, cache):
    """Gradients of one step: dh (N, H) -> dx, dh_prev, dWx, dWh, db."""
    x, h_prev, Wx, Wh, h = cache
    da = _checks.dout(dh, h.shape) * (1 - h * h)  # through tanh
    return da @ Wx.T, da @ Wh.T, x.T @ da, h_prev.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Run the cell over x (N, T, D) from h0 (N, H); returns every hidden state h (N, T, H)."""
    _check_sequence(x, h0)
    n, t_len, _ = x.shape
    h = np.empty((n, t_len, h0.shape[1]), dtype=x.dtype)
    caches, h_t = [], h0
    for t in range(t_len):
        h_t, cache = rnn_step_forward(x[:, t], h_t, Wx, Wh, b)
        h[:, t] = h_t
        caches.append(cache)
    return h, caches


def rnn_backward(dh, cache):
    """Backpropagation through time: dh (N, T, H), the loss's gradient with respect to every
    hidden state, -> dx (N, T, D), dh0 (N, H), dWx, dWh, db.

    The gradient reaching h_t is its own dh[:, t] plus what flows back from h_{t+1}; the weight
    gradients add up over the steps because every step shares the same weights.
    """
    caches = cache
    x0, h0, Wx, Wh, _ = caches[0]
    n, h_size = h0.shape
    _checks.dout(dh, (n, len(caches), h_size))
    dx = np.empty((n, len(caches), x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(h_size, dtype=dh.dtype)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(len(caches))):
        dx[:, t], dh_next, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dh_next, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh_next, dWx, dWh, db


# --- LSTM -------------------------------------------------------------------------------------

def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step; returns h (N, H), c (N, H) and the cache.

    a = x @ Wx + h_prev @ Wh + b is split into four (N, H) blocks: input gate i = sigma(a_i),
    forget gate f = sigma(a_f), candidate g = tanh(a_g), output gate o = sigma(a_o); then
    c = f * c_prev + i * g and h = o * tanh(c).
    """
    _check_cell(x, h_prev, Wx, Wh, b, gates=4, c_prev=c_prev)
    a = x @ Wx + h_prev @ Wh + b
    ai, af, ag, ao = np.split(a, 4, axis=1)
    i, f, o = (sigmoid_forward(z)[0] for z in (ai, af, ao))
    g = np.tanh(ag)
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    return h, c, (x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc)


def lstm_step_backward(dh, dc, cache):
    """Gradients of one LSTM step: dh, dc (N, H) -> dx, dh_prev, dc_prev, dWx, dWh, db."""
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc = cache
    _checks.dout(dh, tc.shape)
    _checks.dout(dc, tc.shape)
    dc = dc + dh * o * (1 - tc * tc)  # c reaches the loss directly and through h
    da = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                         dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, h_prev.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    """Run the LSTM over x (N, T, D) from h0 (N, H) and a zero cell state; returns h (N, T, H)."""
    _check_sequence(x, h0)
    n, t_len, _ = x.shape
    h = np.empty((n, t_len, h0.shape[1]), dtype=x.dtype)
    caches, h_t, c_t = [], h0, np.zeros_like(h0)
    for t in range(t_len):
        h_t, c_t, cache = lstm_step_forward(x[:, t], h_t, c_t, Wx, Wh, b)
        h[:, t] = h_t
        caches.append(cache)
    return h, caches


def lstm_backward(dh, cache):
    """BPTT for the LSTM: dh (N, T, H) -> dx (N, T, D), dh0 (N, H), dWx, dWh, db."""
    caches = cache
    x0, h0, _, Wx, Wh = caches[0][:5]
    n, h_size = h0.shape
    _checks.dout(dh, (n, len(caches), h_size))
    dx = np.empty((n, len(caches), x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * h_size, dtype=dh.dtype)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(h0)
    for t in reversed(range(len(caches))):
        dx[:, t], dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dh_next, dc_next, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh_next, dWx, dWh, db
