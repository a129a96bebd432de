import inspect

import numpy as np
import pytest
import torch

from dlcc.scratch import mlp
from dlcc.scratch.gradcheck import numerical_grad, rel_error
from dlcc.scratch.mlp import MLP


def batch(num_outputs, seed=0, n=6, d=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, max(num_outputs, 2), n)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("num_outputs", [3, 1], ids=["multiclass", "binary"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_whole_network_gradient_check(activation, num_outputs, l2):
    model = MLP([4, 5, 3, num_outputs], activation=activation, l2=l2, seed=1)
    x, y = batch(num_outputs)
    _, grads = model.loss(x, y)
    assert grads.keys() == model.params.keys()
    for key, p in model.params.items():
        numeric = numerical_grad(lambda _: model.loss(x, y)[0], p)  # nudges p in place
        assert rel_error(grads[key], numeric) < 1e-5, key


@pytest.mark.parametrize("num_outputs", [3, 1], ids=["multiclass", "binary"])
def test_loss_and_gradients_match_torch(num_outputs):
    model = MLP([4, 6, 5, num_outputs], activation="tanh", l2=0.05, seed=2)
    x, y = batch(num_outputs, seed=3)
    loss, grads = model.loss(x, y)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    h = torch.tanh(torch.tanh(torch.tensor(x) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"])
    logits = h @ p["W3"] + p["b3"]
    if num_outputs == 1:
        loss_t = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[:, 0], torch.tensor(y, dtype=torch.float64))
    else:
        loss_t = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss_t = loss_t + 0.5 * 0.05 * sum((p[f"W{i}"] ** 2).sum() for i in (1, 2, 3))
    loss_t.backward()
    assert loss == pytest.approx(loss_t.item(), rel=1e-12)
    for key in p:
        assert rel_error(grads[key], p[key].grad.numpy()) < 1e-12, key


def test_l2_penalty_is_added_to_the_loss_for_weights_only():
    x, y = batch(3)
    plain, regularised = MLP([4, 5, 3], seed=4), MLP([4, 5, 3], l2=0.1, seed=4)
    penalty = 0.05 * sum(np.sum(plain.params[k] ** 2) for k in ("W1", "W2"))
    assert regularised.loss(x, y)[0] == pytest.approx(plain.loss(x, y)[0] + penalty)
    g_plain, g_reg = plain.loss(x, y)[1], regularised.loss(x, y)[1]
    np.testing.assert_allclose(g_reg["W1"], g_plain["W1"] + 0.1 * plain.params["W1"])
    np.testing.assert_array_equal(g_reg["b1"], g_plain["b1"])


def test_params_shapes_init_and_seed():
    model = MLP([300, 200, 10], seed=5)
    assert {k: v.shape for k, v in model.params.items()} == {
        "W1": (300, 200), "b1": (200,), "W2": (200, 10), "b2": (10,)}
    assert model.params["W1"].std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)  # He
    xavier = MLP([300, 200, 10], init="xavier", seed=5)
    assert xavier.params["W1"].std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    fixed = MLP([300, 200, 10], init=0.01, seed=5, dtype=np.float32)
    assert fixed.params["W1"].std() == pytest.approx(0.01, rel=0.02)
    assert fixed.params["W1"].dtype == np.float32 and np.all(fixed.params["b2"] == 0)
    np.testing.assert_array_equal(MLP([300, 200, 10], seed=5).params["W2"], model.params["W2"])
    assert not np.array_equal(MLP([300, 200, 10], seed=6).params["W2"], model.params["W2"])


def test_forward_predict_accuracy():
    x, y = batch(3, n=10)
    model = MLP([4, 8, 3], seed=0)
    logits = model.forward(x)
    assert logits.shape == (10, 3)
    np.testing.assert_array_equal(model.predict(x), logits.argmax(axis=1))
    assert model.accuracy(x, y) == np.mean(logits.argmax(axis=1) == y)
    binary = MLP([4, 8, 1], seed=0)
    x, y = batch(1, n=10)
    assert set(binary.predict(x)) <= {0, 1} and binary.predict(x).dtype == np.int64
    np.testing.assert_array_equal(binary.predict(x), binary.forward(x)[:, 0] > 0)


def test_float32_network_stays_float32():
    model = MLP([4, 5, 3], dtype=np.float32)
    x, y = batch(3)
    loss, grads = model.loss(x.astype(np.float32), y)
    assert isinstance(loss, float) and all(g.dtype == np.float32 for g in grads.values())


def test_backward_pass_is_marked_for_the_book():
    # The book shows this region with {literalinclude} :start-after: / :end-before:.
    source = inspect.getsource(mlp.MLP.loss)
    start = source.index("# --- backward pass ---")
    end = source.index("# --- end backward pass ---")
    region = source[start:end]
    assert "for i in reversed(" in region and "linear_backward" in region
