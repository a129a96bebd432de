"""check_batchnorm_backward accepts the library's batch-norm backward and names mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcc.checks import a2
from dlcc.scratch import layers


def library(dout, x, gamma, eps=1e-5):
    """The reference: dlcc.scratch.layers' forward (train mode) and backward."""
    _, cache = layers.batchnorm_forward(x, gamma, np.zeros_like(gamma), {}, train=True,
                                        eps=eps)
    return layers.batchnorm_backward(dout, cache)


def by_autograd(dout, x, gamma, eps=1e-5):
    x, gamma = (torch.tensor(a, requires_grad=True) for a in (x, gamma))
    beta = torch.zeros_like(gamma, requires_grad=True)
    mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    y = gamma * (x - mean) / torch.sqrt(var + eps) + beta
    y.backward(torch.tensor(dout))
    return x.grad, gamma.grad, beta.grad


def written_with(*, var_ddof=0, eps_inside=True, mean_path=True, var_path=True,
                 use_gamma=True, reduce=np.sum, gamma_from_x=False, in_place=False,
                 means=True, beta_axis=0):
    """A by-hand backward with one of the usual mistakes switched on."""
    def backward(dout, x, gamma, eps=1e-5):
        mu = x.mean(axis=0)
        var = x.var(axis=0, ddof=var_ddof)
        std = np.sqrt(var + eps) if eps_inside else np.sqrt(var) + eps
        x_hat = (x - mu) / std
        g = dout * gamma if use_gamma else dout
        average = np.mean if means else np.sum
        dx = g.copy()
        if mean_path:
            dx -= average(g, axis=0)
        if var_path:
            dx -= x_hat * average(g * x_hat, axis=0)
        dx /= std
        dgamma = reduce((dout * (x if gamma_from_x else x_hat)), axis=0)
        dbeta = reduce(dout, axis=beta_axis)
        if in_place:
            x -= mu
        return dx, dgamma, dbeta
    return backward


@pytest.mark.parametrize("fn", [library, by_autograd, written_with()],
                         ids=["library", "autograd", "by hand"])
def test_correct_implementations_pass(fn, capsys):
    result = a2.check_batchnorm_backward(fn)
    assert result.passed, "\n".join(result.messages)
    assert f"All {result.checks} checks passed." in capsys.readouterr().out


MISTAKES = [
    (written_with(mean_path=False, var_path=False), "as constants"),
    (written_with(var_path=False), "path through the batch variance"),
    (written_with(mean_path=False), "path through the batch mean"),
    (written_with(use_gamma=False), "missing the factor gamma"),
    (written_with(var_ddof=1), "biased batch"),
    (written_with(eps_inside=False), "outside the square root"),
    (written_with(means=False), "sums over the batch where it needs means"),
    (written_with(reduce=np.mean), "dbeta is averaged"),
    (written_with(gamma_from_x=True), "dgamma uses x"),
    (written_with(beta_axis=1), "sum over the batch (axis 0)"),
    (written_with(in_place=True), "in place"),
    (lambda dout, x, gamma, eps: library(dout, x, gamma, eps)[:2], "return three arrays"),
]


@pytest.mark.parametrize("fn, phrase", MISTAKES, ids=[p for _, p in MISTAKES])
def test_mistake_is_named(fn, phrase):
    result = a2.check_batchnorm_backward(fn, quiet=True)
    assert not result.passed
    assert phrase in "\n".join(result.messages), "\n".join(result.messages)


def test_not_implemented_is_reported():
    def starter(dout, x, gamma, eps=1e-5):
        raise NotImplementedError
    result = a2.check_batchnorm_backward(starter, quiet=True)
    assert not result.passed
    assert "not implemented yet" in result.messages[0]


def test_rejects_a_non_function():
    with pytest.raises(TypeError, match="check_batchnorm_backward expects"):
        a2.check_batchnorm_backward(np.zeros(3))
