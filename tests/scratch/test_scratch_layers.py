"""Each layer against hand-computed values, centred differences and torch.autograd (float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcc.scratch import layers
from dlcc.scratch.gradcheck import numerical_grad, numerical_vjp, rel_error


def away_from_zero(a: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Move values at least ``margin`` from 0, where ReLU has its kink."""
    return np.sign(a) * (margin + np.abs(a))


def _bn_train(x, gamma, beta):
    return layers.batchnorm_forward(x, gamma, beta, {}, train=True)


RUNNING = {"running_mean": np.array([0.3, -0.2, 0.1, 0.0]),
           "running_var": np.array([1.5, 0.5, 2.0, 1.0])}


def _bn_eval(x, gamma, beta):
    state = {k: v.copy() for k, v in RUNNING.items()}
    return layers.batchnorm_forward(x, gamma, beta, state, train=False)


def _dropout(x):
    # A fresh generator with the same seed each call: the same mask for every nudge of x.
    return layers.dropout_forward(x, 0.3, True, np.random.default_rng(7))


# name: (forward taking the inputs, backward, input shapes, torch version of the forward)
CASES = {
    "linear": (layers.linear_forward, layers.linear_backward, [(4, 5), (5, 3), (3,)],
               lambda x, w, b: x @ w + b),
    "relu": (layers.relu_forward, layers.relu_backward, [(3, 4)], torch.relu),
    "sigmoid": (layers.sigmoid_forward, layers.sigmoid_backward, [(3, 4)], torch.sigmoid),
    "tanh": (layers.tanh_forward, layers.tanh_backward, [(2, 3, 2)], torch.tanh),
    "dropout": (_dropout, layers.dropout_backward, [(5, 6)], None),
    "batchnorm_train": (_bn_train, layers.batchnorm_backward, [(6, 4), (4,), (4,)],
                        lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True)),
    "batchnorm_train_4d": (_bn_train, layers.batchnorm_backward, [(3, 4, 2, 3), (4,), (4,)],
                           lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True)),
    "batchnorm_eval": (_bn_eval, layers.batchnorm_backward, [(5, 4), (4,), (4,)],
                       lambda x, g, b: F.batch_norm(
                           x, torch.tensor(RUNNING["running_mean"]),
                           torch.tensor(RUNNING["running_var"]), g, b, training=False)),
}


def make_inputs(name, seed=0):
    rng = np.random.default_rng(seed)
    _, _, shapes, _ = CASES[name]
    inputs = [rng.standard_normal(s) for s in shapes]
    if name == "relu":
        inputs[0] = away_from_zero(inputs[0])
    return inputs


def as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


@pytest.mark.parametrize("name", CASES)
def test_backward_matches_centred_differences(name):
    forward, backward, _, _ = CASES[name]
    inputs = make_inputs(name)
    out, cache = forward(*inputs)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    grads = as_tuple(backward(dout, cache))
    assert len(grads) == len(inputs)
    for i, (x, dx) in enumerate(zip(inputs, grads, strict=True)):
        def f(_, i=i):
            return forward(*inputs)[0]  # inputs[i] is x, nudged in place
        assert dx.shape == x.shape
        assert rel_error(dx, numerical_vjp(f, x, dout)) < 1e-7, f"input {i}"


@pytest.mark.parametrize("name", [n for n in CASES if CASES[n][3] is not None] + ["dropout"])
def test_backward_matches_torch_autograd(name):
    forward, backward, _, torch_forward = CASES[name]
    inputs = make_inputs(name)
    out, cache = forward(*inputs)
    if name == "dropout":  # torch draws its own mask, so replay ours through autograd
        mask = torch.tensor(cache)
        torch_forward = lambda x: x * mask  # noqa: E731
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out_t = torch_forward(*tensors)
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    out_t.backward(torch.tensor(dout))
    for mine, t in zip(as_tuple(backward(dout, cache)), tensors, strict=True):
        assert rel_error(mine, t.grad.numpy()) < 1e-10


def test_linear_forward_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    b = np.array([0.5, 0.0, -0.5])
    out, _ = layers.linear_forward(x, w, b)
    np.testing.assert_array_equal(out, [[5.5, 2.0, -1.5], [11.5, 4.0, -3.5]])


def test_nonlinearities_by_hand():
    x = np.array([-1.0, 0.0, np.log(3.0)])
    np.testing.assert_array_equal(layers.relu_forward(x)[0], [0.0, 0.0, np.log(3.0)])
    np.testing.assert_allclose(layers.sigmoid_forward(x)[0], [1 / (1 + np.e), 0.5, 0.75])
    np.testing.assert_allclose(layers.tanh_forward(np.array([0.0, np.arctanh(0.5)]))[0],
                               [0.0, 0.5])
    # No overflow warnings or NaN at the extremes, and float32 stays float32.
    big = np.array([-1000.0, 1000.0], dtype=np.float32)
    out, _ = layers.sigmoid_forward(big)
    assert out.dtype == np.float32 and out.tolist() == [0.0, 1.0]


def test_softmax_and_cross_entropy_by_hand():
    logits = np.array([[0.0, np.log(2.0), np.log(3.0)]])
    np.testing.assert_allclose(layers.softmax(logits), [[1 / 6, 1 / 3, 1 / 2]])
    loss, dlogits = layers.softmax_cross_entropy(logits, np.array([2]))
    assert loss == pytest.approx(np.log(2.0))
    np.testing.assert_allclose(dlogits, [[1 / 6, 1 / 3, -1 / 2]])
    # Log-sum-exp keeps huge logits finite: the loss is the margin, 1000.
    loss, dlogits = layers.softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    assert loss == pytest.approx(1000.0) and np.all(np.isfinite(dlogits))


def test_binary_cross_entropy_and_mse_by_hand():
    loss, d = layers.binary_cross_entropy_with_logits(np.array([0.0]), np.array([1]))
    assert loss == pytest.approx(np.log(2.0)) and d.tolist() == [-0.5]
    loss, d = layers.binary_cross_entropy_with_logits(np.array([1000.0, -1000.0]),
                                                      np.array([0.0, 0.0]))
    assert loss == pytest.approx(500.0) and np.all(np.isfinite(d))
    loss, d = layers.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    assert loss == 2.5 and d.tolist() == [1.0, 2.0]


LOSSES = {
    "softmax_cross_entropy": (layers.softmax_cross_entropy, (5, 4),
                              lambda rng: rng.integers(0, 4, 5),
                              lambda z, y: F.cross_entropy(z, torch.tensor(y))),
    "binary_cross_entropy_with_logits": (layers.binary_cross_entropy_with_logits, (6,),
                                         lambda rng: rng.integers(0, 2, 6),
                                         lambda z, y: F.binary_cross_entropy_with_logits(
                                             z, torch.tensor(y, dtype=torch.float64))),
    "mse_loss": (layers.mse_loss, (3, 4), lambda rng: rng.standard_normal((3, 4)),
                 lambda z, y: F.mse_loss(z, torch.tensor(y))),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_matches_centred_differences_and_torch(name):
    loss_fn, shape, make_targets, torch_loss = LOSSES[name]
    rng = np.random.default_rng(2)
    z, y = 3 * rng.standard_normal(shape), make_targets(rng)
    loss, dz = loss_fn(z, y)
    assert rel_error(dz, numerical_grad(lambda z_: loss_fn(z_, y)[0], z)) < 1e-7
    z_t = torch.tensor(z, requires_grad=True)
    loss_t = torch_loss(z_t, y)
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    assert rel_error(dz, z_t.grad.numpy()) < 1e-12


def test_softmax_matches_torch_on_any_leading_shape():
    z = np.random.default_rng(3).standard_normal((2, 3, 5))
    np.testing.assert_allclose(layers.softmax(z), torch.softmax(torch.tensor(z), -1).numpy(),
                               rtol=1e-13)


def test_dropout_scales_kept_units_and_is_identity_in_eval():
    x = np.ones((200, 50))
    out, mask = layers.dropout_forward(x, 0.25, True, np.random.default_rng(0))
    assert set(np.unique(out)) == {0.0, 1 / 0.75}
    assert abs((out == 0).mean() - 0.25) < 0.02  # about p of the units dropped
    assert abs(out.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation
    same, cache = layers.dropout_forward(x, 0.25, False, None)
    assert same is x and layers.dropout_backward(x, cache) is x


def test_batchnorm_running_statistics_match_torch():
    rng = np.random.default_rng(4)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    state = {}
    mean_t, var_t = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for _ in range(3):
        x = 2 + 3 * rng.standard_normal((8, 3))
        layers.batchnorm_forward(x, gamma, beta, state, train=True)
        # Our momentum 0.9 keeps 90 % of the old statistic; torch's 0.1 names the new part.
        F.batch_norm(torch.tensor(x), mean_t, var_t, training=True, momentum=0.1)
    np.testing.assert_allclose(state["running_mean"], mean_t.numpy(), rtol=1e-12)
    np.testing.assert_allclose(state["running_var"], var_t.numpy(), rtol=1e-12)


def test_batchnorm_forward_by_hand():
    state = {}
    out, _ = layers.batchnorm_forward(np.array([[1.0], [3.0]]), np.array([2.0]),
                                      np.array([1.0]), state, train=True, eps=0.0)
    np.testing.assert_allclose(out, [[-1.0], [3.0]])  # mean 2, std 1, then 2 * x_hat + 1
    np.testing.assert_allclose(state["running_mean"], [0.2])  # 0.9 * 0 + 0.1 * 2
    np.testing.assert_allclose(state["running_var"], [1.1])  # 0.9 * 1 + 0.1 * 2 (unbiased)


def test_linear_backward_can_skip_the_input_gradient():
    x, w, b = make_inputs("linear")
    _, cache = layers.linear_forward(x, w, b)
    dout = np.ones((4, 3))
    dx, dw, db = layers.linear_backward(dout, cache, need_dx=False)
    full = layers.linear_backward(dout, cache)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])
