"""Convolution and pooling: the im2col path against the loops, torch and centred differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcc.scratch import conv
from dlcc.scratch.gradcheck import numerical_vjp, rel_error

# (N, C, H, W, F, HH, WW, stride, pad): every one tiles its input exactly.
SHAPES = [
    (2, 3, 5, 5, 4, 3, 3, 1, 0),
    (2, 3, 5, 5, 4, 3, 3, 1, 1),
    (1, 2, 7, 7, 3, 3, 3, 2, 1),
    (2, 1, 6, 8, 2, 2, 4, 2, 0),  # non-square kernel, stride 2
    (1, 3, 5, 7, 2, 3, 1, 1, 2),  # a 3x1 kernel with more padding than it needs
    (3, 2, 4, 4, 5, 1, 1, 1, 0),  # 1x1 convolution
    (2, 2, 9, 7, 3, 5, 3, 2, 1),
    (1, 1, 4, 4, 1, 4, 4, 1, 0),  # the kernel covers the whole image
    (1, 2, 8, 8, 2, 2, 2, 3, 0),  # stride larger than the kernel skips pixels
]


def make_conv(shape, seed=0):
    n, c, h, w, f, hh, ww, stride, pad = shape
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, hh, ww))
    return x, wt, rng.standard_normal(f), stride, pad


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_im2col_conv_equals_naive_loops(shape):
    x, w, b, stride, pad = make_conv(shape)
    fast, fast_cache = conv.conv2d_forward(x, w, b, stride, pad)
    slow, slow_cache = conv.conv2d_forward_naive(x, w, b, stride, pad)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(fast.shape)
    grads_fast = conv.conv2d_backward(dout, fast_cache)
    grads_slow = conv.conv2d_backward_naive(dout, slow_cache)
    # The caches are interchangeable: the fast backward accepts the loops' cache.
    grads_mixed = conv.conv2d_backward(dout, slow_cache)
    for g_fast, g_slow, g_mixed, a in zip(grads_fast, grads_slow, grads_mixed, (x, w, b),
                                          strict=True):
        assert g_fast.shape == a.shape
        np.testing.assert_allclose(g_fast, g_slow, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g_mixed, g_slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_conv_matches_torch(shape):
    x, w, b, stride, pad = make_conv(shape)
    out, cache = conv.conv2d_forward(x, w, b, stride, pad)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out_t = F.conv2d(*tensors, stride=stride, padding=pad)
    assert rel_error(out, out_t.detach().numpy()) < 1e-12
    dout = np.random.default_rng(1).standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    for mine, t in zip(conv.conv2d_backward(dout, cache), tensors, strict=True):
        assert rel_error(mine, t.grad.numpy()) < 1e-12


@pytest.mark.parametrize("forward, backward", [
    (conv.conv2d_forward, conv.conv2d_backward),
    (conv.conv2d_forward_naive, conv.conv2d_backward_naive),
])
def test_conv_backward_matches_centred_differences(forward, backward):
    x, w, b, stride, pad = make_conv((2, 2, 5, 5, 3, 3, 2, 1, 1))
    out, cache = forward(x, w, b, stride, pad)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    for a, grad in zip((x, w, b), backward(dout, cache), strict=True):
        numeric = numerical_vjp(lambda _: forward(x, w, b, stride, pad)[0], a, dout)
        assert rel_error(grad, numeric) < 1e-7


def test_conv_forward_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out, _ = conv.conv2d_forward(x, np.ones((1, 1, 2, 2)), np.array([1.0]))
    np.testing.assert_array_equal(out, [[[[9.0, 13.0], [21.0, 25.0]]]])


def test_float32_stays_float32():
    x, w, b, stride, pad = make_conv((2, 3, 6, 6, 4, 3, 3, 1, 1))
    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    out, cache = conv.conv2d_forward(x, w, b, stride, pad)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in conv.conv2d_backward(np.ones_like(out), cache))


def test_im2col_by_hand_and_col2im_is_its_adjoint():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    cols = conv.im2col(x, 2, 2, stride=2)
    np.testing.assert_array_equal(cols[:, 0], [0, 1, 4, 5])  # the top-left 2x2 window
    np.testing.assert_array_equal(cols[:, 3], [10, 11, 14, 15])
    np.testing.assert_array_equal(conv.col2im(cols, x.shape, 2, 2, stride=2), x)
    # With overlapping, padded windows col2im is the transpose: <im2col(x), c> = <x, col2im(c)>.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 5, 7))
    cols = conv.im2col(x, 3, 2, stride=1, pad=1)
    c = rng.standard_normal(cols.shape)
    assert np.sum(cols * c) == pytest.approx(np.sum(x * conv.col2im(c, x.shape, 3, 2, 1, 1)))


@pytest.mark.parametrize("args, expected", [
    ((28, 3, 1, 1), 28), ((32, 5, 2, 0), 14), ((7, 3, 2, 1), 4), ((10, 3, 1, 0, 2), 6),
    ((224, 7, 2, 3), 112), ((5, 2, 2, 0), 2),
])
def test_conv2d_output_size_matches_torch(args, expected):
    assert conv.conv2d_output_size(*args) == expected
    size, kernel, stride, pad, *dilation = args
    out = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel),
                   stride=stride, padding=pad, dilation=dilation[0] if dilation else 1)
    assert out.shape[-1] == expected


def test_maxpool_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, cache = conv.maxpool2d_forward(x)
    np.testing.assert_array_equal(out, [[[[5.0, 7.0], [13.0, 15.0]]]])
    dx = conv.maxpool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, 0], expected)


def distinct_values(shape, seed):
    """Values 0.1 apart, shuffled: no ties, and far from each other compared with h = 1e-5."""
    rng = np.random.default_rng(seed)
    return 0.1 * rng.permutation(int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("size, stride, h, w", [(2, 2, 6, 8), (3, 2, 7, 9), (2, 1, 5, 5),
                                                (3, 3, 6, 9)])
def test_maxpool_matches_torch_and_centred_differences(size, stride, h, w):
    x = distinct_values((2, 3, h, w), seed=size + stride)
    out, cache = conv.maxpool2d_forward(x, size, stride)
    x_t = torch.tensor(x, requires_grad=True)
    out_t = F.max_pool2d(x_t, size, stride)
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    dout = np.random.default_rng(1).standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    dx = conv.maxpool2d_backward(dout, cache)
    assert rel_error(dx, x_t.grad.numpy()) < 1e-14
    numeric = numerical_vjp(lambda x_: conv.maxpool2d_forward(x_, size, stride)[0], x, dout)
    assert rel_error(dx, numeric) < 1e-7


def test_maxpool_ties_send_the_gradient_to_one_element_like_torch():
    x = np.zeros((1, 1, 4, 4))
    out, cache = conv.maxpool2d_forward(x)
    x_t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(x_t, 2, 2).backward(torch.ones(1, 1, 2, 2, dtype=torch.float64))
    dx = conv.maxpool2d_backward(np.ones_like(out), cache)
    assert dx.sum() == 4
    np.testing.assert_array_equal(dx, x_t.grad.numpy())
