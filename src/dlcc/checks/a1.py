"""Checks for Assignment 1: a multilayer perceptron in numpy (sigmoid hidden layers, softmax).

The functions the assignment asks for, and what each check gives them::

    sigmoid(z) -> array like z                      check_sigmoid
    softmax(z) -> (N, C) probabilities               check_softmax
    forward(params, x) -> [x, h1, ..., logits]       check_forward, check_forward_n
    loss(logits, y, params, l2) -> float             check_loss
    backward(params, activations, y, l2) -> grads    check_backward, check_backward_n
    update(params, grads, lr) -> None (in place)     check_update
    train(params, x, y, *, lr, l2, epochs, batch_size, seed) -> [loss per epoch]
                                                      check_training

``params`` is a dict ``{"W1": (D, H1), "b1": (H1,), ..., "WL": (H, C), "bL": (C,)}``. The
expected values come from :mod:`dlcc.scratch.layers`, which the assignment's core tasks ask
students not to call; nothing here prints reference code or whole reference arrays.
"""

from __future__ import annotations

from contextlib import suppress

import numpy as np

from dlcc.scratch import layers

from ._a1_backward import check_backward, check_backward_n
from ._a1_reference import (
    SIZES,
    cross_entropy,
    depth_of,
    make_case,
    make_params,
    penalty,
    reference_forward,
)
from ._a1_training import check_training
from ._report import (
    Report,
    Stop,
    as_array,
    changed,
    close,
    shape_of,
    snapshot,
    student_check,
    worst,
)

__all__ = ["check_sigmoid", "check_softmax", "check_forward", "check_forward_n", "check_loss",
           "check_backward", "check_backward_n", "check_update", "check_training"]

# --- sigmoid and softmax ---------------------------------------------------------------------

@student_check()
def check_sigmoid(report: Report, sigmoid) -> None:
    """Check ``sigmoid(z)``: values, shape, huge inputs, and that ``z`` is left unchanged."""
    z = np.array([[-3.0, -0.5, 0.0], [0.5, 2.0, 6.0]])
    expected, _ = layers.sigmoid_forward(z)
    z_in = z.copy()
    got = report.run("sigmoid", sigmoid, z_in)
    arr = as_array(got)
    if arr is None:
        report.fail(f"sigmoid returned {shape_of(got)}, not an array: return the sigmoid of "
                    f"every element of z")
        return
    if report.check(arr.shape == z.shape, f"output has the shape of z, {z.shape}",
                    f"output has shape {arr.shape} but z has shape {z.shape}: the sigmoid works "
                    f"element by element, so the shape must not change"):
        if close(arr, expected):
            report.ok("values match 1 / (1 + exp(-z))")
        elif close(arr, np.exp(-z) / (1 + np.exp(-z))):
            report.fail("values equal 1 - sigmoid(z) = sigmoid(-z): check the sign inside exp")
        elif close(arr, expected * (1 - expected)):
            report.fail("values are the sigmoid's derivative, sigmoid(z) * (1 - sigmoid(z)), "
                        "not the sigmoid itself")
        else:
            report.fail(f"values are wrong ({worst(arr, expected)})")
    report.check(np.array_equal(z_in, z), "z is left unchanged",
                 "sigmoid modified its input z in place: compute a new array instead")
    big = np.array([-1000.0, -50.0, 50.0, 1000.0])
    arr_big = as_array(report.run("for inputs of size 1000, sigmoid", sigmoid, big.copy()))
    if arr_big is None or not np.all(np.isfinite(arr_big)):
        report.fail("sigmoid gives NaN or inf for inputs of size 1000: exp(1000) "
                    "overflows; rewrite it so that exp never sees a large positive number "
                    "(treat negative and positive z separately, or use np.logaddexp)")
    elif not close(arr_big, layers.sigmoid_forward(big)[0], atol=1e-12):
        expected_big = layers.sigmoid_forward(big)[0]
        report.fail(f"sigmoid is wrong for large |z| ({worst(arr_big, expected_big)})")
    else:
        report.ok("large inputs (|z| = 1000) give 0 and 1 without NaN")
        if report.warned:
            report.note("numpy warned about overflow for z = -1000 (the answer is still "
                        "right); a form that never computes exp of a large positive "
                        "number avoids the warning")


def _softmax_diagnosis(arr: np.ndarray, z: np.ndarray) -> str:
    if close(arr, layers.softmax(z.T).T):
        return ("values are normalised down each column (axis 0) instead of along each row: "
                "each example's C probabilities must sum to 1 (sum over axis=1, keepdims=True)")
    e = np.exp(z - z.max())
    if close(arr, e / e.sum()):
        return ("the whole array sums to 1: normalise each row (example) separately, with "
                "sum(axis=1, keepdims=True)")
    if close(arr, np.exp(z)):
        return "values are exp(z) without the division by each row's sum"
    if close(arr, layers.sigmoid_forward(z)[0]):
        return "values are the sigmoid of z, not the softmax"
    return f"values are wrong ({worst(arr, layers.softmax(z))})"


@student_check()
def check_softmax(report: Report, softmax) -> None:
    """Check ``softmax(z)`` for z (N, C): rows of probabilities, stable for large logits."""
    z = np.array([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 3.0, 1.0], [-2.0, 1.0, 1.0, 0.0]])
    z_in = z.copy()
    got = report.run("softmax", softmax, z_in)
    arr = as_array(got)
    if arr is None:
        report.fail(f"softmax returned {shape_of(got)}: return an array of probabilities")
        return
    if report.check(arr.shape == z.shape, f"output shape {z.shape} (N, C)",
                    f"output has shape {arr.shape}, expected {z.shape}: one probability per "
                    f"class for each example (keep the row sums with keepdims=True)"):
        if close(arr, layers.softmax(z)):
            report.ok("values match and every row sums to 1")
        else:
            report.fail(_softmax_diagnosis(arr, z))
    report.check(np.array_equal(z_in, z), "z is left unchanged",
                 "softmax modified its input z in place (e.g. z -= z.max(...)): write "
                 "z = z - z.max(...) so that the caller's logits stay as they were")
    big = np.array([[1000.0, 0.0, -1000.0], [800.0, 801.0, 799.0]])
    arr_big = as_array(report.run("for logits of about 1000, softmax", softmax, big.copy()))
    if arr_big is None or arr_big.shape != big.shape or not np.all(np.isfinite(arr_big)):
        report.fail("softmax is not numerically stable: logits of about 1000 give NaN or "
                    "inf because exp(1000) overflows; subtract each row's maximum before "
                    "exp (it cancels in the ratio)")
    elif close(arr_big, layers.softmax(big)):
        report.ok("large logits (about 1000) give finite, correct probabilities")
    else:
        report.fail(f"wrong probabilities for large logits "
                    f"({worst(arr_big, layers.softmax(big))})")


# --- forward pass ----------------------------------------------------------------------------

def _hidden_diagnosis(h: np.ndarray, prev: np.ndarray, w: np.ndarray, b: np.ndarray,
                      layer: int) -> str:
    z = prev @ w + b
    name = f"h{layer} (hidden layer {layer})"
    if close(h, z):
        return f"{name} has no activation: apply the sigmoid to h{layer - 1} @ W{layer} + b{layer}"
    if close(h, np.maximum(z, 0)):
        return f"{name} uses ReLU; Assignment 1's hidden layers use the sigmoid"
    if close(h, np.tanh(z)):
        return f"{name} uses tanh; Assignment 1's hidden layers use the sigmoid"
    if close(h, layers.sigmoid_forward(prev @ w)[0]):
        return f"{name} leaves out the bias b{layer}"
    if close(h, layers.softmax(z)):
        return f"{name} uses the softmax; hidden layers use the sigmoid"
    return f"{name} is wrong ({worst(h, layers.sigmoid_forward(z)[0])})"


def _output_diagnosis(out: np.ndarray, prev: np.ndarray, w: np.ndarray, b: np.ndarray) -> str:
    z = prev @ w + b
    if close(out, layers.softmax(z)):
        return ("the output is the softmax probabilities: return the logits themselves; the "
                "loss takes them with log-sum-exp and backward applies the softmax")
    if close(out, layers.sigmoid_forward(z)[0]):
        return "the output layer applies the sigmoid: it has no activation, return its logits"
    if close(out, prev @ w):
        return "the output layer leaves out the bias"
    return f"the logits are wrong ({worst(out, z)})"


def _check_forward_case(report: Report, forward, params: dict, x: np.ndarray,
                        label: str) -> bool:
    """One network; returns False if the output was unusable (later cases would only repeat)."""
    depth = depth_of(params)
    expected, _ = reference_forward(params, x)
    names = ["x", *[f"h{i}" for i in range(1, depth)], "logits"]
    before, x_in = snapshot(params), x.copy()
    params_in = snapshot(params)
    got = report.run(f"{label}: forward", forward, params_in, x_in, hints={
        "KeyError: 'W": ": loop over the layers (for i in range(1, L + 1)) instead of naming "
                        "W1, W2, W3"})
    if isinstance(got, np.ndarray) and got.ndim == 2:
        report.fail(f"{label}: forward returned one array of shape {got.shape}; return the "
                    f"list of activations [{', '.join(names)}] so that backward can use them")
        return False
    if not isinstance(got, (list, tuple)):
        report.fail(f"{label}: forward returned {shape_of(got)}; return the list "
                    f"[{', '.join(names)}]")
        return False
    if len(got) != len(expected):
        extra = ""
        if len(got) == len(expected) - 1:
            extra = " (did you leave out x itself, or the output?)"
        report.fail(f"{label}: forward returned {len(got)} arrays, expected {len(expected)}: "
                    f"[{', '.join(names)}]{extra}")
        return False
    arrays = [as_array(a) for a in got]
    bad = next((i for i, a in enumerate(arrays) if a is None
                or a.shape != expected[i].shape), None)
    if bad is not None:
        report.fail(f"{label}: {names[bad]} has shape {shape_of(got[bad])}, expected "
                    f"{expected[bad].shape}")
        return False
    report.ok(f"{label}: returns [{', '.join(names)}] with the right shapes")
    if not close(arrays[0], x):
        report.fail(f"{label}: the first activation must be the input x itself")
    wrong = None
    for i in range(1, depth + 1):
        prev = arrays[i - 1]
        w, b = params[f"W{i}"], params[f"b{i}"]
        if i < depth:
            if not close(arrays[i], layers.sigmoid_forward(prev @ w + b)[0]):
                wrong = _hidden_diagnosis(arrays[i], prev, w, b, i)
                break
        elif not close(arrays[i], prev @ w + b):
            wrong = _output_diagnosis(arrays[i], prev, w, b)
    if wrong:
        report.fail(f"{label}: {wrong}")
    else:
        report.ok(f"{label}: hidden activations and logits are right")
    mutated = changed(before, params_in) + (["x"] if not np.array_equal(x_in, x) else [])
    report.check(not mutated, f"{label}: params and x are left unchanged",
                 f"{label}: forward modified {', '.join(mutated)} in place")
    return True


@student_check()
def check_forward(report: Report, forward) -> None:
    """Check ``forward(params, x)`` on a network with two sigmoid hidden layers (W1, W2, W3)."""
    params, x, _ = make_case(3, seed=1)
    _check_forward_case(report, forward, params, x, "3-layer network")


@student_check()
def check_forward_n(report: Report, forward) -> None:
    """Check the N-layer ``forward(params, x)`` on networks of 1, 2, 3 and 4 layers."""
    for depth in (1, 2, 3, 4):
        params, x, _ = make_case(depth, seed=10 + depth)
        with suppress(Stop):  # a depth that raises is reported; the others still run
            _check_forward_case(report, forward, params, x, f"{depth}-layer network")


# --- loss ------------------------------------------------------------------------------------

def _loss_case(seed: int):
    params, x, y = make_case(2, seed)
    _, logits = reference_forward(params, x)
    return params, logits, y


def _loss_candidates(logits: np.ndarray, y: np.ndarray, params: dict, l2: float,
                     expected: float) -> list[tuple[float, str]]:
    """The values that the usual mistakes give, each with its diagnosis."""
    n = len(y)
    rows = np.arange(n)
    ce = cross_entropy(logits, y)[0]
    l2_term = penalty(params, l2)
    biases = 0.5 * l2 * sum(float(np.sum(params[k] ** 2)) for k in params if k[0] == "b")
    log_probs = np.log(layers.softmax(logits))
    return [
        (ce, "the L2 penalty is missing: add (l2 / 2) times the sum of the squared weights"),
        (ce + 2 * l2_term, "the L2 penalty is twice too large: it is (l2 / 2) * sum(W**2), "
                           "with the factor 1/2"),
        (ce + l2_term + biases, "the L2 penalty includes the biases: regularise the weights W "
                                "only"),
        (n * ce + l2_term, f"the cross-entropy is summed over the batch, {n} times too large: "
                           f"take the mean over the N = {n} examples"),
        (-expected, "the loss has the wrong sign: cross-entropy is minus the mean log "
                    "probability of the true class (a positive number)"),
        (float(-logits[rows, y].mean()) + l2_term,
         "the loss is minus the mean true-class logit: -log p_y = -z_y + log(sum_k exp(z_k)), "
         "the log-sum-exp term is missing"),
        (float(-log_probs.sum(axis=1).mean()) + l2_term,
         "the loss adds up the log probabilities of all classes; use only the probability of "
         "each example's true class"),
        (float(-log_probs[rows, y].mean() / logits.shape[1]) + l2_term,
         "the loss divides by the number of classes as well: average over the N examples only"),
    ]


def _check_loss_value(report: Report, loss, logits: np.ndarray, y: np.ndarray, params: dict,
                      l2: float, label: str) -> bool:
    """One case; True if the value matched and nothing was modified."""
    expected = cross_entropy(logits, y)[0] + penalty(params, l2)
    before, logits_in, y_in = snapshot(params), logits.copy(), y.copy()
    try:
        got = report.run(f"{label}: loss", loss, logits_in, y_in, params, l2)
    except Stop:
        return False
    value = as_array(got)
    if value is None or value.size != 1:
        report.fail(f"{label}: loss returned {shape_of(got)}; it must be one number: average "
                    f"the per-example losses over the batch")
        return False
    value = float(value.reshape(()))
    right = close(value, expected)
    if right:
        report.ok(f"{label}: value matches")
    elif not np.isfinite(value):
        report.fail(f"{label}: the loss is {value}: loss receives the logits, which can be "
                    f"negative, so np.log(logits) gives NaN; compute -log p_y from them as "
                    f"-z_y + log(sum_k exp(z_k))")
    else:
        for candidate, message in _loss_candidates(logits, y, params, l2, expected):
            if not np.isclose(candidate, expected) and np.isclose(value, candidate):
                report.fail(f"{label}: {message}")
                break
        else:
            report.fail(f"{label}: loss is {value:.6g}, expected {expected:.6g}")
    mutated = changed(before, params) + [name for name, a, b in
                                         (("logits", logits_in, logits), ("y", y_in, y))
                                         if not np.array_equal(a, b)]
    if mutated:
        report.fail(f"{label}: loss modified {', '.join(mutated)} in place (e.g. "
                    f"z -= z.max(...)): write z = z - z.max(...) instead")
    return right and not mutated


# Logits of about 1000. The true classes of LARGE_TOP hold the largest logit, so that only exp
# of a large positive number can go wrong; those of LARGE_LOW lie 1000 or more below the row's
# largest, so that their probability underflows to 0 and only log(0) can go wrong.
LARGE = np.array([[1000.0, 999.0, 0.0], [-500.0, 800.0, 790.0], [0.0, -1000.0, 1000.0]])
LARGE_TOP = np.array([0, 1, 2])
LARGE_LOW = np.array([2, 0, 1])


def _check_loss_large(report: Report, loss, params: dict) -> None:
    for y, label in ((LARGE_TOP, "true class largest"), (LARGE_LOW, "true class far below")):
        expected = cross_entropy(LARGE, y)[0]
        what = f"for logits of about 1000 ({label}), loss"
        try:
            got = report.run(what, loss, LARGE.copy(), y.copy(), params, 0.0)
        except Stop:
            continue
        value = as_array(got)
        if value is None or value.size != 1:
            report.fail(f"{what} returned {shape_of(got)}, not one number")
            continue
        value = float(value.reshape(()))
        if close(value, expected):
            report.ok(f"logits of about 1000, {label}: finite and right")
        elif not np.isfinite(value) and label == "true class largest":
            report.fail("the loss is not numerically stable: for logits of about 1000 it is "
                        f"{value}, because exp(1000) overflows to inf; subtract each row's "
                        "largest logit m before exp: log(sum_k exp(z_k)) = m + "
                        "log(sum_k exp(z_k - m))")
        elif not np.isfinite(value):
            report.fail(f"the loss is {value} when the true class's logit lies 1000 below the "
                        f"largest: its probability, about exp(-1000), rounds to 0 in float64 "
                        f"and log(0) = -inf. Taking the log of the softmax fails here even "
                        f"with a stable softmax; compute log p_y = z_y - m - "
                        f"log(sum_k exp(z_k - m)) directly from the logits (m: the row's "
                        f"largest logit)")
        elif value < expected:
            report.fail(f"the loss is {value:.4g} for logits of about 1000, expected "
                        f"{expected:.4g}: a floor or clip on the probability (before its "
                        f"log) caps each example's loss and hides how wrong the model is; "
                        f"compute -log p_y from the logits with log-sum-exp instead")
        else:
            report.fail(f"the loss is {value:.4g} for logits of about 1000, expected "
                        f"{expected:.4g}")


@student_check()
def check_loss(report: Report, loss) -> None:
    """Check ``loss(logits, y, params, l2)``: mean cross-entropy from the logits with
    log-sum-exp, plus (l2 / 2) * sum of W**2; stable for logits of about 1000."""
    right = True
    for l2 in (0.0, 0.1):
        params, logits, y = _loss_case(seed=3)
        label = "without L2 (l2 = 0)" if l2 == 0 else f"with l2 = {l2}"
        right &= _check_loss_value(report, loss, logits, y, params, l2, label)
    if right:  # so that one mistake is not reported twice
        _check_loss_large(report, loss, _loss_case(seed=3)[0])
    else:
        report.note("the cases with logits of about 1000 run once these pass")


# --- update step -----------------------------------------------------------------------------

@student_check()
def check_update(report: Report, update) -> None:
    """Check ``update(params, grads, lr)``: one gradient-descent step on every array, in place."""
    rng = np.random.default_rng(7)
    params = make_params(SIZES[2], rng)
    grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    lr = 0.1
    expected = {k: params[k] - lr * grads[k] for k in params}
    start, grads_before = snapshot(params), snapshot(grads)
    returned = report.run("update", update, params, grads, lr)
    moved = changed(start, params)
    if not moved:
        if isinstance(returned, dict) and all(k in returned for k in params):
            report.fail("params is unchanged; your update returned new arrays instead. The "
                        "training loop keeps using params, so change its arrays in place: "
                        "params[key] -= lr * grads[key] (or params[key] = ...)")
        else:
            report.fail("params is unchanged: assigning to a loop variable (p = p - lr * g) "
                        "does not change the dict; write params[key] -= lr * grads[key]")
        return
    wrong = []
    for key in params:
        got = params[key]
        if close(got, expected[key]):
            continue
        step = got - start[key]
        if close(step, lr * grads[key]):
            wrong.append(f"{key} moved up the gradient (+ lr * grad): descend with minus")
        elif close(step, np.zeros_like(step)):
            wrong.append(f"{key} was not updated")
        elif close(step, -grads[key]):
            wrong.append(f"{key} moved by the whole gradient: multiply it by the learning "
                         f"rate lr")
        else:
            wrong.append(f"{key} is wrong after the step ({worst(got, expected[key])})")
    if wrong:
        report.fail("; ".join(wrong))
    else:
        report.ok("every parameter moved by -lr * gradient")
    report.check(not changed(grads_before, grads), "grads is left unchanged",
                 "update modified grads in place: change params only")
    if returned is not None and not isinstance(returned, dict):
        report.note(f"update returned {shape_of(returned)}; it only needs to change params")
