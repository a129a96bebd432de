"""Scaled dot-product and multi-head attention as pure functions (Lecture 10).

Same contract as :mod:`.layers`: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache)`` returns one gradient per array input. Shapes: N sequences, Tq
queries, Tk keys, d the query/key width, dv the value width. A boolean ``mask`` broadcastable
to (N, Tq, Tk) says which keys each query may attend to (True = may attend), as in
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import numpy as np

from . import _checks


def causal_mask(t: int) -> np.ndarray:
    """(t, t) boolean mask, True on and below the diagonal: position i sees positions <= i."""
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise ValueError(f"t must be a positive integer sequence length, got {t!r}")
    return np.tril(np.ones((t, t), dtype=bool))


def _check_mask(mask, shape):
    if not isinstance(mask, np.ndarray) or mask.dtype != bool:
        got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise TypeError(f"mask must be a boolean numpy array (True = may attend), got {got}")
    try:
        full = np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"mask has shape {mask.shape}, which does not broadcast to the "
                         f"scores' shape {shape} (N, Tq, Tk)") from None
    empty = ~full.any(axis=-1)
    if empty.any():
        n, q = np.argwhere(empty)[0]
        raise ValueError(f"mask lets query {q} of sequence {n} attend to no key (an all-False "
                         f"row); its softmax would be 0/0")
    return full


def attention_forward(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d), masked) v for q (N, Tq, d), k (N, Tk, d), v (N, Tk, dv).

    Returns out (N, Tq, dv) and the cache ``(q, k, v, weights)``; ``weights`` (N, Tq, Tk) are
    the attention probabilities, each row summing to 1.
    """
    for name, a, layout in (("q", q, "(N, Tq, d)"), ("k", k, "(N, Tk, d)"),
                            ("v", v, "(N, Tk, dv)")):
        _checks.ndim(name, _checks.float_array(name, a), 3, layout)
        _checks.same_dtype(name, a, "q", q)
    if k.shape[0] != q.shape[0] or k.shape[2] != q.shape[2]:
        raise ValueError(f"k has shape {k.shape} but q has shape {q.shape}; expected "
                         f"({q.shape[0]}, Tk, {q.shape[2]})")
    if v.shape[:2] != k.shape[:2]:
        raise ValueError(f"v has shape {v.shape} but k has shape {k.shape}; expected "
                         f"({k.shape[0]}, {k.shape[1]}, dv)")
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = (q @ k.transpose(0, 2, 1)) * scale
    if mask is not None:
        scores = np.where(_check_mask(mask, scores.shape), scores, -np.inf)
    # Stable softmax: subtract each row's maximum (finite, since every row has a True entry).
    # In place: at long sequence lengths these (N, Tq, Tk) arrays dominate time and memory.
    weights = scores
    weights -= scores.max(axis=-1, keepdims=True)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=-1, keepdims=True)
    return weights @ v, (q, k, v, weights)


def attention_backward(dout, cache):
    """Gradients of attention: dout (N, Tq, dv) -> dq, dk, dv.

    With P the weights and S the scaled scores: dV = P^T dout, dP = dout V^T, and through the
    softmax dS = P * (dP - rowsum(dP * P)); masked entries have P = 0 and get no gradient.
    """
    q, k, v, weights = cache
    _checks.dout(dout, (q.shape[0], q.shape[1], v.shape[2]))
    scale = 1.0 / np.sqrt(q.shape[-1])
    dscores = dout @ v.transpose(0, 2, 1)  # dP, turned into dS in place below
    dscores -= np.einsum("nqk,nqk->nq", dscores, weights)[..., None]
    dscores *= weights
    dscores *= scale
    return dscores @ k, dscores.transpose(0, 2, 1) @ q, weights.transpose(0, 2, 1) @ dout


# --- multi-head attention ---------------------------------------------------------------------

def _split_heads(x, heads):
    """(N, T, E) -> (N * heads, T, E / heads): each head attends on its own slice."""
    n, t, e = x.shape
    return x.reshape(n, t, heads, e // heads).transpose(0, 2, 1, 3).reshape(n * heads, t, -1)


def _merge_heads(x, heads):
    """(N * heads, T, dh) -> (N, T, heads * dh), the inverse of :func:`_split_heads`."""
    nh, t, dh = x.shape
    return x.reshape(nh // heads, heads, t, dh).transpose(0, 2, 1, 3).reshape(nh // heads, t, -1)


def multihead_forward(x_q, x_kv, Wq, Wk, Wv, Wo, num_heads, mask=None):
    """Multi-head attention of queries from x_q (N, Tq, Dq) over x_kv (N, Tk, Dkv).

    Q = x_q Wq, K = x_kv Wk, V = x_kv Wv with Wq (Dq, E), Wk, Wv (Dkv, E); each is cut into
    ``num_heads`` heads of width E / num_heads that attend separately (scaled by their own
    width); the heads are concatenated and projected by Wo (E, Dout). Self-attention passes
    the same array as x_q and x_kv. ``mask`` broadcasts to (N, Tq, Tk), shared by all heads.
    Returns out (N, Tq, Dout) and the cache; ``cache[-1]`` holds the weights (N, heads, Tq, Tk).
    """
    num_heads = _checks.integer("num_heads", num_heads)
    for name, a, n, layout in (("x_q", x_q, 3, "(N, Tq, Dq)"), ("x_kv", x_kv, 3, "(N, Tk, Dkv)"),
                               ("Wq", Wq, 2, "(Dq, E)"), ("Wk", Wk, 2, "(Dkv, E)"),
                               ("Wv", Wv, 2, "(Dkv, E)"), ("Wo", Wo, 2, "(E, Dout)")):
        _checks.ndim(name, _checks.float_array(name, a), n, layout)
        _checks.same_dtype(name, a, "x_q", x_q)
    e = Wq.shape[1]
    expected = {"Wq": (x_q.shape[2], e), "Wk": (x_kv.shape[2], e), "Wv": (x_kv.shape[2], e)}
    for name, a in (("Wq", Wq), ("Wk", Wk), ("Wv", Wv)):
        if a.shape != expected[name]:
            raise ValueError(f"{name} has shape {a.shape} but expected {expected[name]} from "
                             f"x_q {x_q.shape}, x_kv {x_kv.shape} and Wq {Wq.shape}")
    if Wo.shape[0] != e:
        raise ValueError(f"Wo has shape {Wo.shape} but the heads concatenate to width {e}")
    if e % num_heads:
        raise ValueError(f"num_heads={num_heads} does not divide the projection width E={e}")
    if x_kv.shape[0] != x_q.shape[0]:
        raise ValueError(f"x_kv holds {x_kv.shape[0]} sequences but x_q holds {x_q.shape[0]}")
    h = num_heads
    q, k, v = (_split_heads(a, h) for a in (x_q @ Wq, x_kv @ Wk, x_kv @ Wv))
    if mask is not None:
        n, tq, tk = x_q.shape[0], x_q.shape[1], x_kv.shape[1]
        mask = np.repeat(_check_mask(mask, (n, tq, tk)), h, axis=0)
    heads, attn_cache = attention_forward(q, k, v, mask)
    concat = _merge_heads(heads, h)
    weights = attn_cache[3].reshape(x_q.shape[0], h, x_q.shape[1], x_kv.shape[1])
    return concat @ Wo, (x_q, x_kv, Wq, Wk, Wv, Wo, h, concat, attn_cache, weights)


def multihead_backward(dout, cache):
    """Gradients of :func:`multihead_forward`: dout (N, Tq, Dout) -> dx_q, dx_kv, dWq, dWk, dWv,
    dWo. For self-attention the gradient of the shared input is dx_q + dx_kv."""
    x_q, x_kv, Wq, Wk, Wv, Wo, h, concat, attn_cache, _ = cache
    _checks.dout(dout, (x_q.shape[0], x_q.shape[1], Wo.shape[1]))
    dWo = np.einsum("nti,ntj->ij", concat, dout)
    dq, dk, dv = attention_backward(_split_heads(dout @ Wo.T, h), attn_cache)
    dq, dk, dv = (_merge_heads(a, h) for a in (dq, dk, dv))
    dWq = np.einsum("nti,ntj->ij", x_q, dq)
    dWk = np.einsum("nti,ntj->ij", x_kv, dk)
    dWv = np.einsum("nti,ntj->ij", x_kv, dv)
    return dq @ Wq.T, dk @ Wk.T + dv @ Wv.T, dWq, dWk, dWv, dWo
