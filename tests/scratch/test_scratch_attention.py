"""Numpy attention against centred differences and torch's scaled_dot_product_attention."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcc.scratch import attention
from dlcc.scratch.gradcheck import numerical_vjp, rel_error


def random_mask(shape, seed):
    mask = np.random.default_rng(seed).random(shape) < 0.6
    mask[..., 0] = True  # every query keeps at least one key
    return mask


# (N, Tq, Tk, d, dv, mask): Tq != Tk, d != dv, batch 1, length 1, 2-D and 3-D masks.
SHAPES = [
    (2, 3, 5, 4, 6, None),
    (1, 4, 4, 3, 3, "causal"),
    (3, 1, 1, 2, 5, None),
    (1, 1, 6, 4, 2, "random"),
    (2, 5, 3, 6, 4, "random"),
    (2, 4, 4, 2, 3, "causal"),
]


def make(shape, seed=0):
    n, tq, tk, d, dv, kind = shape
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s) for s in ((n, tq, d), (n, tk, d), (n, tk, dv)))
    mask = {None: None, "causal": attention.causal_mask(tq) if tq == tk else None,
            "random": random_mask((n, tq, tk), seed + 1)}[kind]
    return q, k, v, mask


@pytest.mark.parametrize("shape", SHAPES)
def test_attention_backward_matches_centred_differences(shape):
    q, k, v, mask = make(shape)
    out, cache = attention.attention_forward(q, k, v, mask)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    grads = attention.attention_backward(dout, cache)
    for i, (x, dx) in enumerate(zip((q, k, v), grads, strict=True)):
        num = numerical_vjp(lambda _: attention.attention_forward(q, k, v, mask)[0], x, dout)
        assert dx.shape == x.shape and rel_error(dx, num) < 1e-7, f"input {i}"


@pytest.mark.parametrize("shape", SHAPES)
def test_attention_matches_torch_sdpa(shape):
    q, k, v, mask = make(shape)
    out, cache = attention.attention_forward(q, k, v, mask)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out_t = F.scaled_dot_product_attention(
        qt, kt, vt, attn_mask=None if mask is None else torch.tensor(mask))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert np.allclose(cache[3].sum(axis=-1), 1.0)
    if mask is not None:
        assert np.all(cache[3][~np.broadcast_to(mask, cache[3].shape)] == 0)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    for mine, t in zip(attention.attention_backward(dout, cache), (qt, kt, vt), strict=True):
        assert rel_error(mine, t.grad.numpy()) < 1e-10


def torch_multihead(x_q, x_kv, Wq, Wk, Wv, Wo, heads, mask):
    def split(a):
        n, t, e = a.shape
        return a.reshape(n, t, heads, e // heads).transpose(1, 2)
    q, k, v = split(x_q @ Wq), split(x_kv @ Wk), split(x_kv @ Wv)
    m = None if mask is None else torch.tensor(mask)[:, None] if mask.ndim == 3 \
        else torch.tensor(mask)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    n, _, tq, dh = out.shape
    return out.transpose(1, 2).reshape(n, tq, heads * dh) @ Wo


# (N, Tq, Tk, Dq, Dkv, E, Dout, heads, mask)
MH_SHAPES = [
    (2, 3, 5, 4, 6, 6, 3, 2, None),
    (1, 4, 4, 5, 5, 8, 5, 4, "causal"),
    (2, 1, 3, 3, 2, 4, 4, 1, "random"),
    (1, 1, 1, 2, 2, 6, 2, 3, None),
]


def make_mh(shape, seed=0):
    n, tq, tk, dq, dkv, e, dout, heads, kind = shape
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in ((n, tq, dq), (n, tk, dkv), (dq, e), (dkv, e),
                                               (dkv, e), (e, dout))]
    mask = {None: None, "causal": attention.causal_mask(tq),
            "random": random_mask((n, tq, tk), seed + 1)}[kind]
    return arrays, heads, mask


@pytest.mark.parametrize("shape", MH_SHAPES)
def test_multihead_backward_matches_centred_differences_and_torch(shape):
    arrays, heads, mask = make_mh(shape)
    out, cache = attention.multihead_forward(*arrays, heads, mask)
    assert cache[-1].shape == (shape[0], heads, shape[1], shape[2])
    dout = np.random.default_rng(6).standard_normal(out.shape)
    grads = attention.multihead_backward(dout, cache)
    assert len(grads) == len(arrays)
    for i, (x, dx) in enumerate(zip(arrays, grads, strict=True)):
        num = numerical_vjp(lambda _: attention.multihead_forward(*arrays, heads, mask)[0], x,
                            dout)
        assert dx.shape == x.shape and rel_error(dx, num) < 1e-7, f"input {i}"
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_t = torch_multihead(*tensors, heads, mask)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    out_t.backward(torch.tensor(dout))
    for mine, t in zip(grads, tensors, strict=True):
        assert rel_error(mine, t.grad.numpy()) < 1e-10


def test_self_attention_gradient_is_the_sum_of_both_roles():
    arrays, heads, mask = make_mh((2, 4, 4, 5, 5, 4, 3, 2, "causal"))
    x = arrays[0]
    out, cache = attention.multihead_forward(x, x, *arrays[2:], heads, mask)
    dout = np.ones_like(out)
    dx_q, dx_kv = attention.multihead_backward(dout, cache)[:2]
    num = numerical_vjp(lambda _: attention.multihead_forward(x, x, *arrays[2:], heads, mask)[0],
                        x, dout)
    assert rel_error(dx_q + dx_kv, num) < 1e-7


def test_causal_mask_and_attention_by_hand():
    np.testing.assert_array_equal(attention.causal_mask(3),
                                  [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # Equal keys: uniform weights, so the output is the mean of the values.
    q = np.ones((1, 1, 2))
    k = np.zeros((1, 3, 2))
    v = np.array([[[1.0], [2.0], [6.0]]])
    out, cache = attention.attention_forward(q, k, v)
    np.testing.assert_allclose(out, [[[3.0]]])
    # A causal first query sees only the first value; huge scores stay finite.
    out, _ = attention.attention_forward(1e6 * np.ones((1, 3, 2)), np.ones((1, 3, 2)),
                                         v, attention.causal_mask(3))
    np.testing.assert_allclose(out[0, :, 0], [1.0, 1.5, 3.0])


def test_bad_inputs_are_named():
    q, k, v, _ = make((2, 3, 4, 5, 6, None))
    with pytest.raises(ValueError, match="all-False"):
        mask = np.ones((3, 4), dtype=bool)
        mask[1] = False
        attention.attention_forward(q, k, v, mask)
    with pytest.raises(TypeError, match="mask must be a boolean"):
        attention.attention_forward(q, k, v, np.ones((3, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        attention.attention_forward(q, k, v, np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="k has shape"):
        attention.attention_forward(q, k[..., :2], v)
    with pytest.raises(ValueError, match="v has shape"):
        attention.attention_forward(q, k, v[:, :2])
    with pytest.raises(ValueError, match="q must be 3-D"):
        attention.attention_forward(q[0], k, v)
    with pytest.raises(ValueError, match="t must be a positive integer"):
        attention.causal_mask(0)
    arrays, _, _ = make_mh(MH_SHAPES[0])
    with pytest.raises(ValueError, match="does not divide"):
        attention.multihead_forward(*arrays, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        attention.multihead_forward(*arrays, 0)
    with pytest.raises(ValueError, match="Wk has shape"):
        attention.multihead_forward(arrays[0], arrays[1], arrays[2], arrays[2], arrays[4],
                                    arrays[5], 2)
    _, cache = attention.attention_forward(q, k, v)
    with pytest.raises(ValueError, match="dout has shape"):
        attention.attention_backward(np.zeros((2, 3, 5)), cache)
