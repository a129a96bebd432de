"""The numpy RNN and LSTM against centred differences and torch's nn.RNN / nn.LSTM (float64)."""

import numpy as np
import pytest
import torch

from dlcc.scratch import optim, rnn
from dlcc.scratch.gradcheck import numerical_vjp, rel_error

# (N, T, D, H): batch 1, length 1, and D != H both ways.
SHAPES = [(2, 4, 3, 5), (1, 3, 4, 2), (3, 1, 2, 3), (1, 1, 1, 1)]


def rnn_inputs(shape, gates, seed=0):
    n, t, d, h = shape
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, t, d)), 0.5 * rng.standard_normal((n, h)),
            0.5 * rng.standard_normal((d, gates * h)), 0.5 * rng.standard_normal((h, gates * h)),
            0.5 * rng.standard_normal(gates * h)]


def _lstm_step(x, h_prev, c_prev, Wx, Wh, b):
    h, c, cache = rnn.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
    return np.concatenate([h, c], axis=1), cache


def _lstm_step_backward(dhc, cache):
    dh, dc = np.split(dhc, 2, axis=1)
    return rnn.lstm_step_backward(dh, dc, cache)


def step_inputs(shape, gates, seed=0):
    x, h0, Wx, Wh, b = rnn_inputs(shape, gates, seed)
    extra = [0.5 * np.random.default_rng(seed + 1).standard_normal(h0.shape)] if gates == 4 else []
    return [x[:, 0], h0, *extra, Wx, Wh, b]


# name: (forward, backward, gates, is_sequence)
CASES = {
    "rnn_step": (rnn.rnn_step_forward, rnn.rnn_step_backward, 1, False),
    "rnn": (rnn.rnn_forward, rnn.rnn_backward, 1, True),
    "lstm_step": (_lstm_step, _lstm_step_backward, 4, False),
    "lstm": (rnn.lstm_forward, rnn.lstm_backward, 4, True),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", CASES)
def test_backward_matches_centred_differences(name, shape):
    forward, backward, gates, seq = CASES[name]
    inputs = rnn_inputs(shape, gates) if seq else step_inputs(shape, gates)
    out, cache = forward(*inputs)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    grads = backward(dout, cache)
    assert len(grads) == len(inputs)
    for i, (x, dx) in enumerate(zip(inputs, grads, strict=True)):
        assert dx.shape == x.shape, f"input {i}"
        num = numerical_vjp(lambda _: forward(*inputs)[0], x, dout)
        assert rel_error(dx, num) < 1e-7, f"input {i}"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_sequence_matches_torch(cell, shape):
    n, t, d, h = shape
    forward, backward, gates, _ = CASES[cell]
    x, h0, Wx, Wh, b = rnn_inputs(shape, gates)
    out, cache = forward(x, h0, Wx, Wh, b)
    module = (torch.nn.RNN(d, h, batch_first=True) if cell == "rnn"
              else torch.nn.LSTM(d, h, batch_first=True)).double()
    with torch.no_grad():  # torch computes x W_ih^T + b_ih + h W_hh^T + b_hh
        module.weight_ih_l0.copy_(torch.tensor(Wx.T))
        module.weight_hh_l0.copy_(torch.tensor(Wh.T))
        module.bias_ih_l0.copy_(torch.tensor(b))
        module.bias_hh_l0.zero_()
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0[None], requires_grad=True)
    state = h0t if cell == "rnn" else (h0t, torch.zeros_like(h0t))
    out_t, _ = module(xt, state)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(3).standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    dx, dh0, dWx, dWh, db = backward(dout, cache)
    assert rel_error(dx, xt.grad.numpy()) < 1e-10
    assert rel_error(dh0, h0t.grad.numpy()[0]) < 1e-10
    assert rel_error(dWx, module.weight_ih_l0.grad.numpy().T) < 1e-10
    assert rel_error(dWh, module.weight_hh_l0.grad.numpy().T) < 1e-10
    assert rel_error(db, module.bias_ih_l0.grad.numpy()) < 1e-10


def test_vanishing_gradient_with_small_recurrent_weights():
    # With ||Wh|| < 1 the gradient from the last step shrinks geometrically into the past.
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((1, 30, 2)), np.zeros((1, 4))
    Wx, Wh, b = rng.standard_normal((2, 4)), 0.3 * np.eye(4), np.zeros(4)
    out, cache = rnn.rnn_forward(x, h0, Wx, Wh, b)
    dh = np.zeros_like(out)
    dh[:, -1] = 1.0
    dx = rnn.rnn_backward(dh, cache)[0]
    norms = np.linalg.norm(dx[0], axis=1)
    assert norms[0] < 1e-10 * norms[-1]


def test_bad_inputs_are_named():
    x, h0, Wx, Wh, b = rnn_inputs((2, 3, 4, 5), 1)
    with pytest.raises(ValueError, match="x must be 3-D"):
        rnn.rnn_forward(x[0], h0, Wx, Wh, b)
    with pytest.raises(ValueError, match="Wh has shape"):
        rnn.rnn_forward(x, h0, Wx, Wh[:, :4], b)
    with pytest.raises(ValueError, match="h0 has shape"):
        rnn.rnn_forward(x, h0[:1], Wx, Wh, b)
    with pytest.raises(ValueError, match="b has shape"):
        rnn.lstm_forward(x, h0, *rnn_inputs((2, 3, 4, 5), 4)[2:4], b)
    with pytest.raises(TypeError, match="Wx has dtype float32"):
        rnn.rnn_forward(x, h0, Wx.astype(np.float32), Wh, b)
    with pytest.raises(ValueError, match="at least one time step"):
        rnn.rnn_forward(x[:, :0], h0, Wx, Wh, b)
    _, cache = rnn.rnn_forward(x, h0, Wx, Wh, b)
    with pytest.raises(ValueError, match="dout has shape"):
        rnn.rnn_backward(np.zeros((2, 2, 5)), cache)


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    params = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True),
              torch.zeros(5, dtype=torch.float64, requires_grad=True)]
    for p, g in zip(params, grads.values(), strict=True):
        p.grad = torch.tensor(g)
    norm = optim.clip_grad_norm(grads, 1.0)
    norm_t = torch.nn.utils.clip_grad_norm_(params, 1.0)
    assert norm == pytest.approx(float(norm_t))
    for p, g in zip(params, grads.values(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    after = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    assert after == pytest.approx(1.0, rel=1e-5)
    # Under the threshold nothing changes.
    small = {"a": np.array([0.1, 0.2])}
    assert optim.clip_grad_norm(small, 1.0) == pytest.approx(np.sqrt(0.05))
    np.testing.assert_array_equal(small["a"], [0.1, 0.2])
    with pytest.raises(ValueError, match="max_norm must be positive"):
        optim.clip_grad_norm(grads, 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        optim.clip_grad_norm({"a": np.array([np.inf])}, 1.0)
    with pytest.raises(TypeError, match=r"grads\['a'\] must have a floating dtype"):
        optim.clip_grad_norm({"a": np.array([1, 2])}, 1.0)
