"""Assignment 1: checks of the backward pass, with a diagnosis for each usual mistake."""

from __future__ import annotations

import numpy as np

from ._a1_reference import SIGMOID_GRAD, make_case, reference_forward, reference_grads
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

# --- backward pass ---------------------------------------------------------------------------

def _grad_problem(key: str, got, exp: np.ndarray, *, n: int, l2: float, params: dict,
                  variants: dict) -> str | None:
    """Why grads[key] is wrong, as a phrase to follow "key:", or None if it is right."""
    arr = as_array(got)
    if arr is None:
        return f"{shape_of(got)}, not an array"
    if close(arr, exp):
        return None
    weight = key.startswith("W")
    if arr.shape != exp.shape:
        if arr.shape == exp.shape[::-1] and close(arr.T, exp):
            return (f"transposed, shape {arr.shape} instead of {exp.shape} (the shape of the "
                    f"weights): multiply the layer's input, transposed, by the gradient at its "
                    f"output, not the other way round")
        if not weight and arr.shape == (n, exp.shape[0]):
            return (f"shape {arr.shape} is (N, M): the bias gradient must be summed over the "
                    f"examples of the batch (axis 0), giving shape {exp.shape}")
        if not weight and arr.shape == (n,):
            return (f"shape {arr.shape}, summed over the wrong axis: sum over the batch "
                    f"(axis 0) to get shape {exp.shape}")
        return f"shape {arr.shape}, expected {exp.shape}"
    param = params[key]
    tests = [
        (exp * n, f"{n} times too large (N = {n}): the loss is a mean over the batch, so its "
                  f"gradient carries a factor 1/N"),
        (exp / n, f"{n} times too small (N = {n}): divided by N twice"),
        (-exp, "the wrong sign: minus the gradient"),
    ]
    if weight and l2:
        tests += [(exp - l2 * param, "lacks the L2 term: the penalty (l2 / 2) * sum(W**2) "
                                     "adds l2 * W to the gradient of W"),
                  (exp - 0.5 * l2 * param, "half the L2 term: the derivative of "
                                           "(l2 / 2) * W**2 is l2 * W"),
                  (exp + l2 * param, "twice the L2 term: the derivative of "
                                     "(l2 / 2) * W**2 is l2 * W")]
    if not weight and l2:
        tests.append((exp + l2 * param, "regularises the bias: L2 applies to the weights only"))
    layer = int(key[1:])
    reasons = {
        "skipped": f"skips the derivative of the sigmoid of hidden layer {layer}: multiply the "
                   f"gradient by the sigmoid's derivative, written with the layer's output h",
        "twice": f"applies the sigmoid to h{layer} again in its derivative: h{layer} is already "
                 f"the sigmoid's output, so the derivative is h * (1 - h) on h itself",
        "half": f"incomplete sigmoid derivative for hidden layer {layer} (only the 1 - h "
                f"factor)",
        "other half": f"incomplete sigmoid derivative for hidden layer {layer} (only the h "
                      f"factor)",
        "no softmax": "the output gradient was formed from the logits themselves: "
                      "activations[-1] holds the logits z, so apply the softmax first; the "
                      "gradient at the logits is (softmax(z) - onehot(y)) / N",
    }
    for name, grads in variants.items():
        tests.append((grads[key], reasons[name]))
    for candidate, reason in tests:
        if not close(candidate, exp) and close(arr, candidate):
            return reason
    return f"wrong ({worst(arr, exp)})"


def _where_wrong(key: str, depth: int, wrong: set[str]) -> str:
    """Where to look when no known mistake explains a wrong gradient."""
    layer = int(key[1:])
    if layer == depth:
        return ("; start with the output layer: the gradient of the mean cross-entropy with "
                "respect to the logits (derived in the note on softmax and cross-entropy)")
    if key.startswith("W") and f"b{layer}" not in wrong:
        return (f"; b{layer} is right, so the gradient at layer {layer}'s output is right: "
                f"the error is in how W{layer}'s gradient is formed from it and the layer's "
                f"input")
    return (f"; the layers above are right, so look at how the gradient passes back through "
            f"W{layer + 1} and the sigmoid of hidden layer {layer}")


def _check_backward_case(report: Report, backward, depth: int, l2: float, seed: int,
                         label: str) -> bool:
    """One network; True if every gradient matched."""
    params, x, y = make_case(depth, seed)
    acts, logits = reference_forward(params, x)
    expected = reference_grads(params, acts, logits, y, l2)
    variants = {name: reference_grads(params, acts, logits, y, l2, name)
                for name in SIGMOID_GRAD if name != "right"} if depth > 1 else {}
    variants["no softmax"] = reference_grads(params, acts, logits, y, l2, softmax=False)
    before, acts_in, params_in = snapshot(params), [a.copy() for a in acts], snapshot(params)
    try:
        got = report.run(f"{label}: backward", backward, params_in, acts_in, y.copy(), l2,
                         hints={"KeyError: 'W": ": loop over the layers instead of naming W1, "
                                               "W2, W3"})
    except Stop:  # reported; the next case still runs
        return False
    if not isinstance(got, dict):
        report.fail(f"{label}: backward returned {shape_of(got)}; return a dict of gradients "
                    f"with the keys of params ({', '.join(params)})")
        return False
    missing = [k for k in params if k not in got]
    if missing:
        report.fail(f"{label}: grads has no {', '.join(repr(k) for k in missing)}: return a "
                    f"gradient for every parameter")
    problems: dict[str, list[str]] = {}
    order = [f"{p}{i}" for i in range(depth, 0, -1) for p in "Wb"]
    for key in order:
        if key in got:
            reason = _grad_problem(key, got[key], expected[key], n=len(y), l2=l2,
                                   params=params, variants=variants)
            if reason:
                problems.setdefault(reason, []).append(key)
    wrong = {key for keys in problems.values() for key in keys}
    for reason, keys in problems.items():
        where = _where_wrong(keys[0], depth, wrong) if reason.startswith("wrong (") else ""
        report.fail(f"{label}: {', '.join(keys)}: {reason}{where}")
    if not problems and not missing:
        report.ok(f"{label}: all {len(order)} gradients match")
    mutated = changed(before, params_in) + [f"activations[{i}]" for i, (a, b) in
                                            enumerate(zip(acts_in, acts, strict=True)) if not
                                            np.array_equal(a, b)]
    report.check(not mutated, f"{label}: params and activations are left unchanged",
                 f"{label}: backward modified {', '.join(mutated)} in place")
    return not problems and not missing


@student_check()
def check_backward(report: Report, backward) -> None:
    """Check ``backward(params, activations, y, l2)`` on a 3-layer network, then with L2.

    ``activations`` is the list [x, h1, h2, logits] of a correct forward pass, so that mistakes
    in the backward pass are found on their own. The case with L2 runs once the case without
    it passes, so that one mistake is not reported twice.
    """
    if _check_backward_case(report, backward, 3, 0.0, 5, "3-layer network, l2 = 0"):
        _check_backward_case(report, backward, 3, 0.1, 6, "3-layer network, l2 = 0.1")
    else:
        report.note("the case with l2 = 0.1 runs once the case without L2 passes")


@student_check()
def check_backward_n(report: Report, backward) -> None:
    """Check the N-layer ``backward`` on networks of 1, 2, 3 and 4 layers (l2 = 0.05)."""
    for depth in (1, 2, 3, 4):
        _check_backward_case(report, backward, depth, 0.05, 20 + depth,
                             f"{depth}-layer network")
