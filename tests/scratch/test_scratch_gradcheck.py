import numpy as np
import pytest

from dlcc.scratch.gradcheck import numerical_grad, numerical_vjp, rel_error


def test_numerical_grad_of_a_quadratic():
    x = np.random.default_rng(0).standard_normal((3, 4))
    grad = numerical_grad(lambda v: np.sum(v**2), x)
    assert grad.shape == x.shape
    assert rel_error(grad, 2 * x) < 1e-9


def test_numerical_grad_works_on_an_array_f_closes_over():
    w = np.array([1.0, -2.0, 3.0])
    x = np.array([0.5, 0.25, -1.0])
    grad = numerical_grad(lambda _: float(np.dot(w, x) ** 2), w)  # f reads w, never its argument
    assert rel_error(grad, 2 * np.dot(w, x) * x) < 1e-9


def test_numerical_grad_restores_x_when_f_raises():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = x.copy()
    calls = []

    def explodes_on_third_call(v):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return float(v.sum())

    with pytest.raises(RuntimeError, match="boom"):
        numerical_grad(explodes_on_third_call, x)
    np.testing.assert_array_equal(x, before)


def test_numerical_grad_leaves_x_unchanged():
    x = np.random.default_rng(1).standard_normal(5)
    before = x.copy()
    numerical_grad(lambda v: float(np.sum(np.sin(v))), x)
    np.testing.assert_array_equal(x, before)


def test_numerical_vjp_is_the_gradient_of_the_weighted_sum():
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    assert rel_error(numerical_vjp(np.tanh, x, dout), dout * (1 - np.tanh(x) ** 2)) < 1e-9


def test_rel_error_by_hand():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    a, b = np.array([1.0, 2.0]), np.array([1.0, 2.002])
    assert rel_error(a, b) == pytest.approx(0.002 / 4.002)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    # Normalised by the largest magnitude, so near-zero entries do not dominate.
    assert rel_error(np.array([1.0, 1e-12]), np.array([1.0, -1e-12])) < 1e-11


@pytest.mark.parametrize("call", [
    lambda: numerical_grad(lambda v: float(v.sum()), np.ones(3, dtype=np.float32)),
    lambda: numerical_vjp(lambda v: v, np.ones(3, dtype=np.float32), np.ones(3)),
])
def test_float32_is_refused_with_the_reason(call):
    with pytest.raises(TypeError, match=r"float32 .*1e-7.* h = 1e-5"):
        call()
