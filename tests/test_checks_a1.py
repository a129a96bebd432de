"""dlcc.checks.a1 accepts a correct Assignment 1 and names each realistic mistake.

The reference implementations live here, not in the library: students can import dlcc, so it
must not ship the answers.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlcc.checks import CheckResult, a1

# --- reference solutions ---------------------------------------------------------------------


def sigmoid(z):
    return np.exp(-np.logaddexp(0, -z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(params, x):
    layers = len(params) // 2
    acts = [x]
    for i in range(1, layers + 1):
        z = acts[-1] @ params[f"W{i}"] + params[f"b{i}"]
        acts.append(sigmoid(z) if i < layers else z)
    return acts


def penalty(params, l2):
    return 0.5 * l2 * sum(np.sum(w * w) for k, w in params.items() if k[0] == "W")


def loss(logits, y, params, l2):
    n = len(y)
    m = logits.max(axis=1)
    log_sum = m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
    return np.mean(log_sum - logits[np.arange(n), y]) + penalty(params, l2)


def backward(params, acts, y, l2):
    layers = len(params) // 2
    n = len(y)
    delta = softmax(acts[-1])
    delta[np.arange(n), y] -= 1
    delta /= n
    grads = {}
    for i in range(layers, 0, -1):
        grads[f"W{i}"] = acts[i - 1].T @ delta + l2 * params[f"W{i}"]
        grads[f"b{i}"] = delta.sum(axis=0)
        if i > 1:
            h = acts[i - 1]
            delta = (delta @ params[f"W{i}"].T) * h * (1 - h)
    return grads


def update(params, grads, lr):
    for key in params:
        params[key] -= lr * grads[key]


def make_train(forward=forward, backward=backward, update=update, shuffle=True,
               per_batch=False, drop_last=False, same_rows=True):
    def train(params, x, y, *, lr, l2, epochs, batch_size, seed=0):
        rng = np.random.default_rng(seed)
        history = []
        n = len(x)
        for _ in range(epochs):
            order = rng.permutation(n) if shuffle else np.arange(n)
            losses = []
            stop = n - n % batch_size if drop_last else n
            for start in range(0, stop, batch_size):
                idx = order[start:start + batch_size]
                xb = x[idx]
                yb = y[idx] if same_rows else y[rng.permutation(n)[:len(idx)]]
                acts = forward(params, xb)
                losses.append(loss(acts[-1], yb, params, l2))
                update(params, backward(params, acts, yb, l2), lr)
            history.extend(losses) if per_batch else history.append(np.mean(losses))
        return history
    return train


train = make_train()


def failures(result: CheckResult) -> str:
    assert isinstance(result, CheckResult)
    return "\n".join(result.messages)


# --- the reference passes ----------------------------------------------------------------------

@pytest.mark.parametrize("check, fn", [
    (a1.check_sigmoid, sigmoid), (a1.check_softmax, softmax), (a1.check_forward, forward),
    (a1.check_forward_n, forward), (a1.check_loss, loss), (a1.check_backward, backward),
    (a1.check_backward_n, backward), (a1.check_update, update), (a1.check_training, train),
])
def test_reference_passes(check, fn, capsys):
    result = check(fn)
    assert result.passed, failures(result)
    assert not result.messages and result.checks >= 1
    assert f"All {result.checks} checks passed." in capsys.readouterr().out


# --- realistic mistakes, each with its diagnosis -------------------------------------------------

def naive_softmax(z):
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_axis0(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def softmax_in_place(z):
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def forward_with(hidden=sigmoid, out=lambda z: z, bias=True, keep_x=True):
    def fwd(params, x):
        layers = len(params) // 2
        acts = [x]
        for i in range(1, layers + 1):
            z = acts[-1] @ params[f"W{i}"] + (params[f"b{i}"] if bias else 0)
            acts.append(hidden(z) if i < layers else out(z))
        return acts if keep_x else acts[1:]
    return fwd


def forward_3_only(params, x):
    h1 = sigmoid(x @ params["W1"] + params["b1"])
    h2 = sigmoid(h1 @ params["W2"] + params["b2"])
    return [x, h1, h2, h2 @ params["W3"] + params["b3"]]


def backward_with(transpose=False, keep_batch=False, mean=True, l2_factor=1.0,
                  sigmoid_grad=lambda h: h * (1 - h), sign=1.0, l2_bias=False, out=softmax):
    def bwd(params, acts, y, l2):
        layers = len(params) // 2
        n = len(y)
        delta = out(acts[-1].copy())
        delta[np.arange(n), y] -= 1
        if mean:
            delta /= n
        grads = {}
        for i in range(layers, 0, -1):
            dw = delta.T @ acts[i - 1] if transpose else acts[i - 1].T @ delta
            w = params[f"W{i}"].T if transpose else params[f"W{i}"]
            grads[f"W{i}"] = sign * (dw + l2_factor * l2 * w)
            db = delta if keep_batch else delta.sum(axis=0)
            grads[f"b{i}"] = sign * (db + (l2 * params[f"b{i}"] if l2_bias else 0))
            if i > 1:
                delta = (delta @ params[f"W{i}"].T) * sigmoid_grad(acts[i - 1])
        return grads
    return bwd


def loss_of(softmax, floor=0.0):
    """The loss as minus the log of the softmax's true-class probability."""
    def loss_from_probs(z, y, params, l2):
        p_true = softmax(z)[np.arange(len(y)), y]
        return -np.mean(np.log(np.maximum(p_true, floor))) + penalty(params, l2)
    return loss_from_probs


def loss_naive_logsumexp(z, y, params, l2):
    log_sum = np.log(np.exp(z).sum(axis=1))
    return np.mean(log_sum - z[np.arange(len(y)), y]) + penalty(params, l2)


def loss_log_of_logits(z, y, params, l2):
    return -np.mean(np.log(z[np.arange(len(y)), y])) + penalty(params, l2)


def loss_shifts_in_place(z, y, params, l2):
    z -= z.max(axis=1, keepdims=True)
    return loss(z, y, params, l2)


def update_rebind(params, grads, lr):
    for key, p in params.items():
        p = p - lr * grads[key]  # noqa: F841 (the bug: rebinding a local name)


def update_returns_new(params, grads, lr):
    return {k: params[k] - lr * grads[k] for k in params}


def update_ascent(params, grads, lr):
    for key in params:
        params[key] += lr * grads[key]


def update_weights_only(params, grads, lr):
    for key in params:
        if key.startswith("W"):
            params[key] -= lr * grads[key]


def train_shuffles_in_place(params, x, y, *, lr, l2, epochs, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(epochs):
        rng.shuffle(x)
        rng.shuffle(y)
        losses = []
        for start in range(0, len(x), batch_size):
            acts = forward(params, x[start:start + batch_size])
            yb = y[start:start + batch_size]
            losses.append(loss(acts[-1], yb, params, l2))
            update(params, backward(params, acts, yb, l2), lr)
        history.append(np.mean(losses))
    return history


def train_returns_none(params, x, y, **kwargs):
    train(params, x, y, **kwargs)


def not_done(*args):
    raise NotImplementedError


MISTAKES = [
    # (check, student's function, a phrase the report must contain)
    (a1.check_sigmoid, lambda z: 1 / (1 + np.exp(z)), "sign inside exp"),
    (a1.check_sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z)), "derivative"),
    (a1.check_sigmoid, not_done, "not implemented yet"),
    (a1.check_softmax, naive_softmax, "not numerically stable"),
    (a1.check_softmax, softmax_axis0, "down each column (axis 0)"),
    (a1.check_softmax, lambda z: np.exp(z) / np.exp(z).sum(), "the whole array sums to 1"),
    (a1.check_softmax, softmax_in_place, "modified its input z in place"),
    (a1.check_forward, forward_with(hidden=lambda z: np.maximum(z, 0)), "uses ReLU"),
    (a1.check_forward, forward_with(hidden=lambda z: z), "has no activation"),
    (a1.check_forward, forward_with(bias=False), "leaves out the bias b1"),
    (a1.check_forward, forward_with(out=softmax), "the output is the softmax probabilities"),
    (a1.check_forward, forward_with(out=sigmoid), "output layer applies the sigmoid"),
    (a1.check_forward, forward_with(keep_x=False), "leave out x itself"),
    (a1.check_forward, lambda p, x: forward(p, x)[-1], "return the list of activations"),
    (a1.check_forward_n, forward_3_only, "loop over the layers"),
    (a1.check_loss, lambda z, y, params, l2: loss(z, y, params, 0.0),
     "the L2 penalty is missing"),
    (a1.check_loss, lambda z, y, params, l2: loss(z, y, params, 2 * l2), "twice too large"),
    (a1.check_loss, lambda z, y, params, l2: len(y) * loss(z, y, params, 0) +
     penalty(params, l2), "summed over the batch"),
    (a1.check_loss, lambda z, y, params, l2: -loss(z, y, params, l2), "wrong sign"),
    (a1.check_loss, lambda z, y, params, l2: -z[np.arange(len(y)), y] + penalty(params, l2),
     "it must be one number"),
    (a1.check_loss, lambda z, y, params, l2: -np.mean(z[np.arange(len(y)), y]) +
     penalty(params, l2), "the log-sum-exp term is missing"),
    (a1.check_loss, loss_log_of_logits, "np.log(logits) gives NaN"),
    (a1.check_loss, loss_of(naive_softmax), "exp(1000) overflows"),
    (a1.check_loss, loss_naive_logsumexp, "exp(1000) overflows"),
    (a1.check_loss, loss_of(softmax), "log(0) = -inf"),
    (a1.check_loss, loss_of(softmax, floor=1e-12), "a floor or clip on the probability"),
    (a1.check_loss, loss_shifts_in_place, "loss modified logits in place"),
    (a1.check_backward, backward_with(transpose=True), "transposed"),
    (a1.check_backward, backward_with(keep_batch=True), "summed over the examples"),
    (a1.check_backward, backward_with(mean=False), "times too large (N = 6)"),
    (a1.check_backward, backward_with(l2_factor=0.0), "lacks the L2 term"),
    (a1.check_backward, backward_with(l2_factor=0.5), "half the L2 term"),
    (a1.check_backward, backward_with(l2_bias=True), "regularises the bias"),
    (a1.check_backward, backward_with(sign=-1.0), "the wrong sign"),
    (a1.check_backward, backward_with(sigmoid_grad=lambda h: 1.0), "skips the derivative"),
    (a1.check_backward, backward_with(sigmoid_grad=lambda h: sigmoid(h) * (1 - sigmoid(h))),
     "applies the sigmoid to h2 again"),
    (a1.check_backward, backward_with(out=lambda z: z), "formed from the logits themselves"),
    (a1.check_backward, lambda params, acts, y, l2: [backward(params, acts, y, l2)],
     "return a dict of gradients"),
    (a1.check_backward_n, lambda params, acts, y, l2: {
        k: v for k, v in backward(params, acts, y, l2).items() if k in ("W1", "b1", "W2", "b2",
                                                                        "W3", "b3")},
     "grads has no 'W4', 'b4'"),
    (a1.check_update, update_rebind, "does not change the dict"),
    (a1.check_update, update_returns_new, "returned new arrays instead"),
    (a1.check_update, update_ascent, "moved up the gradient"),
    (a1.check_update, update_weights_only, "b1 was not updated"),
    (a1.check_training, train_returns_none, "train returned None"),
    (a1.check_training, make_train(per_batch=True), "one per mini-batch"),
    (a1.check_training, make_train(shuffle=False), "same order every epoch"),
    (a1.check_training, make_train(drop_last=True), "including the last, smaller one"),
    (a1.check_training, make_train(same_rows=False), "indexed with different rows"),
    (a1.check_training, make_train(update=update_ascent), "the update moves up the gradient"),
    (a1.check_training, train_shuffles_in_place, "modified x or y in place"),
]


@pytest.mark.parametrize("check, fn, phrase", MISTAKES,
                         ids=[f"{c.__name__}-{p[:30]}" for c, _, p in MISTAKES])
def test_mistake_is_named(check, fn, phrase, capsys):
    result = check(fn)
    assert not result.passed
    assert phrase in failures(result), failures(result)
    out = " ".join(capsys.readouterr().out.split())  # the report wraps long lines
    assert re.search(r"\d+ of \d+ checks? failed", out) and phrase.split("(")[0] in out


def test_checks_reject_misuse():
    with pytest.raises(TypeError, match="check_forward expects your function"):
        a1.check_forward(42)


def test_quiet_prints_nothing(capsys):
    assert a1.check_softmax(softmax, quiet=True).passed
    assert capsys.readouterr().out == ""


def test_reports_do_not_print_reference_arrays(capsys):
    a1.check_backward(backward_with(sign=-1.0))
    a1.check_forward(forward_with(hidden=lambda z: np.maximum(z, 0)))
    out = capsys.readouterr().out
    assert "[[" not in out and "array(" not in out
