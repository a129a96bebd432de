"""Checks for Assignment 4: recurrent networks, attention, a character-level language model
and event detection in sequences.

What the assignment asks for, and what each check gives it::

    rnn_forward(x, h0, Wx, Wh, b) -> h (N, T, H)                      check_rnn_forward
    rnn_backward(dh, x, h0, Wx, Wh, b) -> (dx, dh0, dWx, dWh, db)      check_rnn_backward
    causal_mask(t) -> bool (t, t)                                      check_causal_mask
    attention(q, k, v, mask=None) -> (out, weights)                    check_attention
    MyMultiHeadSelfAttention(dim, heads), forward(x, causal=False)     check_multihead
    get_batch(text, starts, block) -> (x, y)                           check_get_batch
    sample_next(logits, temperature=1.0, top_k=None, generator=None)   check_sample_next
    clip_grad_norm(parameters, max_norm) -> total norm                 check_clip_grad_norm
    event_precision_recall(predicted, true, tolerance) -> (p, r)       check_event_precision_recall

The RNN checks compare with :mod:`dlcc.scratch.rnn`, the attention checks (in
``_a4_attention``) with :mod:`dlcc.scratch.attention` and :class:`dlcc.models.transformer.
SelfAttention`, clipping with ``torch.nn.utils.clip_grad_norm_``.
"""

from __future__ import annotations

import math
from contextlib import suppress

import numpy as np
import torch

from ..scratch import rnn as scratch_rnn
from ._a4_attention import check_attention, check_causal_mask, check_multihead
from ._report import Report, as_array, close, mismatch, shape_of, student_check

__all__ = ["check_rnn_forward", "check_rnn_backward", "check_causal_mask", "check_attention",
           "check_multihead", "check_get_batch", "check_sample_next", "check_clip_grad_norm",
           "check_event_precision_recall"]

TOL = {"rtol": 1e-6, "atol": 1e-9}


# --- the RNN: forward and BPTT ---------------------------------------------------------------

def _rnn_case(seed: int = 0, n: int = 3, t: int = 5, d: int = 4, h: int = 6):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, t, d)), 0.5 * rng.standard_normal((n, h)),
            rng.standard_normal((d, h)) / math.sqrt(d), rng.standard_normal((h, h)) / math.sqrt(h),
            0.1 * rng.standard_normal(h))


def _forward_variants(x, h0, Wx, Wh, b) -> dict[str, np.ndarray]:
    right, _ = scratch_rnn.rnn_forward(x, h0, Wx, Wh, b)
    n, t, _ = x.shape
    no_carry = np.tanh(x @ Wx + (h0 @ Wh)[:, None] + b)
    linear, transposed, h_l, h_t = [], [], h0, h0
    for s in range(t):
        h_l = x[:, s] @ Wx + h_l @ Wh + b
        h_t = np.tanh(x[:, s] @ Wx + h_t @ Wh.T + b)
        linear.append(h_l)
        transposed.append(h_t)
    return {"right": right, "no carry": no_carry, "no tanh": np.stack(linear, 1),
            "Wh transposed": np.stack(transposed, 1),
            "shifted": np.concatenate([h0[:, None], right[:, :-1]], axis=1)}


FORWARD_MISTAKES = {
    "no carry": "the hidden state is not carried: every step starts again from h0; use the "
                "previous step's h in the update for the next step",
    "no tanh": "no tanh: h_t = tanh(x_t Wx + h_(t-1) Wh + b)",
    "Wh transposed": "the recurrent weights are applied transposed: with row vectors the "
                     "update is h_prev @ Wh, with Wh of shape (H, H) as given",
    "shifted": "off by one step: h[:, t] holds the state before step t; store the state "
               "after reading x[:, t] (h[:, 0] is already the first new state, not h0)",
}


@student_check()
def check_rnn_forward(report: Report, rnn_forward) -> None:
    """Check ``rnn_forward(x, h0, Wx, Wh, b) -> h``: x (N, T, D), h0 (N, H), every hidden
    state h (N, T, H) of h_t = tanh(x_t Wx + h_(t-1) Wh + b)."""
    case = _rnn_case()
    kept = [a.copy() for a in case]
    got = report.run("rnn_forward", rnn_forward, *case)
    variants = _forward_variants(*case)
    right = variants["right"]
    got = as_array(got[0] if isinstance(got, tuple) and len(got) == 2 else got)
    if got is None or got.shape != right.shape:
        extra = (" (only the last state? return every step's state)"
                 if got is not None and got.shape == right[:, -1].shape else "")
        report.fail(f"rnn_forward returned shape {shape_of(got)}, expected {right.shape} = "
                    f"(N, T, H){extra}")
        return
    if close(got, right, **TOL):
        report.ok("every hidden state matches dlcc.scratch.rnn.rnn_forward")
    else:
        name = next((k for k, v in variants.items() if k != "right" and close(got, v, **TOL)),
                    None)
        report.fail(FORWARD_MISTAKES[name] if name else
                    f"the hidden states differ: {mismatch(got, right)}")
        return
    report.check(all(np.array_equal(a, b) for a, b in zip(case, kept, strict=True)),
                 "the inputs are left unchanged",
                 "rnn_forward changed one of its inputs in place")
    one = _rnn_case(seed=1, t=1)
    got = as_array(report.run("rnn_forward on one time step", rnn_forward, *one))
    report.check(got is not None and close(got, _forward_variants(*one)["right"], **TOL),
                 "a sequence of one step works",
                 "with T = 1, rnn_forward gives the wrong result (check the loop's range)")


def _backward_variants(dh, x, h0, Wx, Wh, b) -> dict[str, tuple[np.ndarray, ...]]:
    h, caches = scratch_rnn.rnn_forward(x, h0, Wx, Wh, b)
    out = {"right": scratch_rnn.rnn_backward(dh, caches)}
    n, t, d = x.shape
    hs = np.concatenate([h0[:, None], h], axis=1)  # hs[:, s] is h_(s-1)

    def walk(carry=True, accumulate=True, own=True, derivative="h"):
        dx = np.zeros_like(x)
        dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
        dnext = np.zeros_like(h0)
        for s in reversed(range(t)):
            g = (dh[:, s] if own or s == t - 1 else 0) + (dnext if carry else 0)
            a = x[:, s] @ Wx + hs[:, s] @ Wh + b
            da = g * (1 - (h[:, s] if derivative == "h" else a) ** 2)
            dx[:, s] = da @ Wx.T
            parts = (x[:, s].T @ da, hs[:, s].T @ da, da.sum(0))
            if accumulate:
                dWx, dWh, db = dWx + parts[0], dWh + parts[1], db + parts[2]
            elif s == 0:
                dWx, dWh, db = parts
            dnext = da @ Wh.T
        return dx, dnext, dWx, dWh, db

    out["no carry"] = walk(carry=False)
    out["overwritten"] = walk(accumulate=False)
    out["last only"] = walk(own=False)
    out["tanh of a"] = walk(derivative="a")
    return out


BACKWARD_MISTAKES = {
    "no carry": "the gradient does not flow back through time: the gradient reaching h_t is "
                "dh[:, t] plus what comes back from step t+1 (dh_prev of the step after it)",
    "overwritten": "the weight gradients hold only one step's contribution: Wx, Wh and b are "
                   "shared by every step, so add up their gradients over all steps",
    "last only": "only the last step's dh was used: every hidden state reaches the loss, so "
                 "add dh[:, t] at every step on the way back",
    "tanh of a": "the tanh derivative was taken as 1 - a^2 of the pre-activation a; it is "
                 "1 - tanh(a)^2 = 1 - h^2, with h the step's output",
}
GRADIENTS = ("dx", "dh0", "dWx", "dWh", "db")


@student_check()
def check_rnn_backward(report: Report, rnn_backward) -> None:
    """Check ``rnn_backward(dh, x, h0, Wx, Wh, b) -> (dx, dh0, dWx, dWh, db)``, BPTT given the
    gradient dh (N, T, H) of the loss with respect to every hidden state."""
    for t, what in ((5, "a sequence of 5 steps"), (1, "a sequence of 1 step")):
        case = _rnn_case(seed=2, t=t)
        dh = np.random.default_rng(3).standard_normal((3, t, 6))
        got = report.run(f"rnn_backward on {what}", rnn_backward, dh, *case)
        if not isinstance(got, (tuple, list)) or len(got) != 5:
            report.fail(f"rnn_backward returned {shape_of(got)}; return the five gradients "
                        f"(dx, dh0, dWx, dWh, db)")
            return
        got = [as_array(g) for g in got]
        variants = _backward_variants(dh, *case)
        right = variants["right"]
        wrong = [name for name, g, r in zip(GRADIENTS, got, right, strict=True)
                 if g is None or not close(g, r, **TOL)]
        if not wrong:
            report.ok(f"{what}: dx, dh0, dWx, dWh and db match dlcc.scratch.rnn.rnn_backward")
            continue
        for name, grads in variants.items():
            if name != "right" and all(g is not None and close(g, v, **TOL)
                                       for g, v in zip(got, grads, strict=True)):
                report.fail(BACKWARD_MISTAKES[name])
                return
        for name in wrong:
            i = GRADIENTS.index(name)
            g = got[i]
            report.fail(f"{what}, {name}: " + ("not an array" if g is None
                                               else mismatch(g, right[i])))
        return


# --- the language model's batches ------------------------------------------------------------

@student_check()
def check_get_batch(report: Report, get_batch) -> None:
    """Check ``get_batch(text, starts, block) -> (x, y)``: for text (L,) int64 and starts (B,),
    x[i] = text[s : s + block] and y[i] = text[s + 1 : s + block + 1], both int64 (B, block)."""
    text = torch.arange(100, 180, dtype=torch.long)
    starts = torch.tensor([0, 7, 30, 51])
    block = 8
    got = report.run("get_batch", get_batch, text, starts, block)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        report.fail(f"get_batch returned {shape_of(got)}; return (x, y)")
        return
    x, y = (torch.as_tensor(a) for a in got)
    idx = starts[:, None] + torch.arange(block)
    right_x, right_y = text[idx], text[idx + 1]
    if tuple(x.shape) != (4, block) or tuple(y.shape[:1]) != (4,):
        report.fail(f"get_batch returned x {tuple(x.shape)} and y {tuple(y.shape)}, expected "
                    f"both (4, {block}) for 4 starts and block = {block}")
        return
    report.check(torch.equal(x.long(), right_x), "x[i] is the window text[s : s + block]",
                 "x is not the windows text[s : s + block] of the given starts")
    if tuple(y.shape) == (4,) and torch.equal(y.long(), text[starts + block]):
        report.fail("y holds only the one character after each window; a causal language "
                    "model predicts at every position: y = text[s + 1 : s + block + 1]")
    elif tuple(y.shape) != (4, block):
        report.fail(f"y has shape {tuple(y.shape)}, expected (4, {block})")
    elif torch.equal(y.long(), right_y):
        report.ok("y is x shifted by one: position t predicts character t + 1")
    elif torch.equal(y.long(), right_x):
        report.fail("y equals x: the targets must be the next characters, "
                    "y = text[s + 1 : s + block + 1]; otherwise the causal model only "
                    "learns to copy its input")
    elif torch.equal(y.long(), text[idx + 2]):
        report.fail("y is shifted by two: position t must predict character t + 1 "
                    "(y = text[s + 1 : s + block + 1])")
    elif torch.equal(x.long(), right_y) or torch.equal(y.long(), text[(idx - 1).clamp(min=0)]):
        report.fail("x and y are misaligned: y must be x shifted one step to the left "
                    "(x = text[s : s + block], y = text[s + 1 : s + block + 1])")
    else:
        report.fail("y is not text[s + 1 : s + block + 1]")
    report.check(x.dtype == torch.long and y.dtype == torch.long, "x and y are int64",
                 f"x and y must be int64 (torch.long) token indices, got {x.dtype} and "
                 f"{y.dtype}")


# --- sampling with temperature and top-k ----------------------------------------------------

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
DRAWS = 40_000


def _probabilities(temperature: float, top_k: int | None, *, multiply: bool = False,
                   keep: int | None = None) -> np.ndarray:
    z = LOGITS * temperature if multiply else LOGITS / temperature
    k = keep if keep is not None else top_k
    if k is not None:
        z = z.masked_fill(z < torch.topk(z, k).values[-1], float("-inf"))
    return z.softmax(-1).numpy()


@student_check()
def check_sample_next(report: Report, sample_next) -> None:
    """Check ``sample_next(logits, temperature=1.0, top_k=None, generator=None) -> (N,)``
    int64: one index per row of logits (N, V), drawn from softmax(logits / temperature)
    restricted to the top_k largest logits, using ``generator``."""
    logits = LOGITS.repeat(DRAWS, 1)
    for temperature, top_k in ((1.0, None), (0.5, None), (2.0, 3)):
        what = f"temperature {temperature}, top_k {top_k}"
        got = report.run(f"sample_next with {what}", sample_next, logits.clone(),
                         temperature=temperature, top_k=top_k,
                         generator=torch.Generator().manual_seed(0))
        got = torch.as_tensor(got)
        if got.numel() != DRAWS or got.is_floating_point():
            report.fail(f"sample_next returned {got.dtype} of shape {tuple(got.shape)}; "
                        f"return one int64 index per row, shape (N,)")
            return
        got = got.reshape(-1).long()
        if got.min() < 0 or got.max() >= len(LOGITS):
            report.fail(f"sample_next returned indices outside [0, {len(LOGITS)})")
            return
        freq = np.bincount(got.numpy(), minlength=len(LOGITS)) / DRAWS
        right = _probabilities(temperature, top_k)
        if np.abs(freq - right).max() < 0.015:
            report.ok(f"{what}: the frequencies of 40,000 draws match the probabilities")
            continue
        variants = {"argmax": np.eye(len(LOGITS))[0],
                    "multiply": _probabilities(temperature, top_k, multiply=True),
                    "no temperature": _probabilities(1.0, top_k)}
        if top_k is not None:
            variants["k - 1"] = _probabilities(temperature, top_k, keep=top_k - 1)
            variants["k + 1"] = _probabilities(temperature, top_k, keep=top_k + 1)
            variants["no top-k"] = _probabilities(temperature, None)
        found = next((k for k, p in variants.items() if np.abs(freq - p).max() < 0.015), None)
        k = top_k or 0
        messages = {
            "argmax": "always the most likely index: that is greedy decoding; draw from the "
                      "probabilities with torch.multinomial",
            "multiply": "the logits were multiplied by the temperature; divide them (a low "
                        "temperature must sharpen the distribution)",
            "no temperature": "the temperature was not applied: divide the logits by it "
                              "before the softmax",
            "k - 1": f"only {k - 1} indices are drawn for top_k = {k}: keep logits >= the "
                     f"k-th largest (off by one)",
            "k + 1": f"{k + 1} indices are drawn for top_k = {k}: keep exactly the k largest "
                     f"logits",
            "no top-k": "top_k was ignored: set every logit below the k-th largest to -inf "
                        "before the softmax"}
        report.fail(f"{what}: " + messages.get(
            found, "the frequencies of the draws do not match softmax(logits / temperature) "
                   f"(largest difference {np.abs(freq - right).max():.3f})"))
        return
    small = LOGITS.repeat(50, 1)
    a, b = (torch.as_tensor(report.run("sample_next with a seeded generator", sample_next,
                                       small, temperature=1.0, top_k=None,
                                       generator=torch.Generator().manual_seed(7)))
            for _ in range(2))
    report.check(torch.equal(a, b), "the same seeded generator gives the same draws",
                 "two calls with generators seeded alike gave different draws: pass "
                 "generator to torch.multinomial")


# --- clipping the global gradient norm ---------------------------------------------------------

def _grads(seed: int, scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (3, 2), (2,)]
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    for p, s in zip(params, (1.0, 0.2, 3.0, 0.5), strict=True):
        p.grad = scale * s * torch.randn(p.shape, generator=g)
    return params


@student_check()
def check_clip_grad_norm(report: Report, clip_grad_norm) -> None:
    """Check ``clip_grad_norm(parameters, max_norm) -> total_norm``: the norm of all gradients
    together, ||g|| = sqrt(sum of every squared entry); if it exceeds max_norm, every gradient
    is scaled in place by max_norm / ||g||. Returns the norm before clipping, as a float."""
    for scale, what in ((1.0, "gradients above max_norm"), (0.05, "gradients below max_norm")):
        params, expected = _grads(0, scale), _grads(0, scale)
        before = [p.grad.clone() for p in params]
        norm = torch.nn.utils.clip_grad_norm_(expected, 1.0).item()
        # As in a training loop, the parameters come as a generator (model.parameters()).
        got = report.run(f"clip_grad_norm with {what}", clip_grad_norm, iter(params), 1.0)
        grads = [p.grad.numpy() for p in params]
        right = [p.grad.numpy() for p in expected]
        if all(close(g, r, rtol=1e-5, atol=1e-7) for g, r in zip(grads, right, strict=True)):
            report.ok(f"{what}: the gradients after clipping match")
        elif all(torch.equal(p.grad, b) for p, b in zip(params, before, strict=True)):
            again = _grads(0, scale)
            with suppress(Exception):
                clip_grad_norm(again, 1.0)
            if all(close(p.grad.numpy(), r, rtol=1e-5, atol=1e-7)
                   for p, r in zip(again, right, strict=True)):
                report.fail(f"{what}: the gradients were not changed when the parameters came "
                            f"as a generator (model.parameters()), which can be iterated only "
                            f"once: make a list of them first")
            else:
                report.fail(f"{what}: the gradients were not changed: scale each p.grad in "
                            f"place (p.grad.mul_(...)), not a copy")
            return
        elif all(close(g, b.numpy() * 1.0 / max(b.norm().item(), 1e-12) if
                       b.norm() > 1.0 else b.numpy(), rtol=1e-5)
                 for g, b in zip(grads, before, strict=True)):
            report.fail("each tensor was clipped to its own norm: clip by the global norm of "
                        "all gradients together, so that their direction is kept")
            return
        elif all(close(g, b.clamp(-1.0, 1.0).numpy(), rtol=1e-5)
                 for g, b in zip(grads, before, strict=True)):
            report.fail("the entries were clamped to [-max_norm, max_norm] (clipping by "
                        "value): scale all gradients by max_norm / ||g|| instead")
            return
        elif scale < 1.0:
            report.fail(f"{what}: gradients whose norm is already below max_norm must be left "
                        f"unchanged (scale by min(1, max_norm / ||g||))")
            return
        else:
            report.fail(f"{what}: {mismatch(grads[0], right[0])} in the first gradient")
            return
        value = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            report.fail(f"clip_grad_norm returned {type(got).__name__}; return the total norm "
                        f"before clipping, as a float")
            return
        if scale == 1.0 and math.isclose(value, 1.0, rel_tol=1e-4):
            report.fail("clip_grad_norm returned the norm after clipping; return the norm "
                        "before clipping (it is what you log to watch for explosions)")
            return
        report.check(math.isclose(value, norm, rel_tol=1e-4),
                     f"{what}: returns the total norm {norm:.4f}",
                     f"{what}: returned {value:.5g}, expected the total norm {norm:.5g}")


# --- precision and recall of detected events --------------------------------------------------

#: Two sequences of events (frame indices), what a detector found in them, and the answers
#: with a tolerance of 3 frames: sequence 0 matches 10~11, 42~45 (distance exactly 3) and
#: finds 12 (a second detection of the event at 10: a false positive) and 70 (nothing
#: there); sequence 1 matches 5~4 and misses 30. 3 of 6 detections are right, 3 of 5 events
#: are found.
EVENTS_TRUE = [np.array([10, 42, 90]), np.array([4, 30])]
EVENTS_FOUND = [np.array([11, 12, 45, 70]), np.array([5, 34])]
EVENT_ANSWERS = {
    "right": (3 / 6, 3 / 5),
    "swapped": (3 / 5, 3 / 6),
    "double": (4 / 6, 3 / 5),
    "double, counted twice": (4 / 6, 4 / 5),
    "strict": (2 / 6, 2 / 5),
}


@student_check()
def check_event_precision_recall(report: Report, event_precision_recall) -> None:
    """Check ``event_precision_recall(predicted, true, tolerance) -> (precision, recall)``
    for lists (one entry per sequence) of arrays of event frames. A detection is right if it
    lies within ``tolerance`` frames (inclusive) of a true event of the same sequence that no
    other detection has claimed; a fraction whose denominator is 0 is 0.0."""
    got = report.run("event_precision_recall", event_precision_recall,
                     [a.copy() for a in EVENTS_FOUND], [a.copy() for a in EVENTS_TRUE], 3)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        report.fail(f"event_precision_recall returned {shape_of(got)}; return (precision, "
                    f"recall)")
        return
    p, r = (float(v) for v in got)
    found = next((k for k, v in EVENT_ANSWERS.items()
                  if math.isclose(p, v[0], abs_tol=1e-9) and math.isclose(r, v[1], abs_tol=1e-9)),
                 None)
    messages = {
        "swapped": "precision and recall are swapped: precision is the fraction of detections "
                   "that are right, recall the fraction of true events that were found",
        "double": "one true event was counted for two detections: each true event may match "
                  "only one detection (the other is a false positive)",
        "double, counted twice": "one true event was counted for two detections: each true "
                                 "event may match only one detection (the other is a false "
                                 "positive)",
        "strict": "a detection exactly `tolerance` frames away was not counted: the "
                  "tolerance is inclusive (|found - true| <= tolerance)",
    }
    if found == "right":
        report.ok("precision 3/6 and recall 3/5 on the worked case")
    else:
        report.fail(messages.get(found, f"returned ({p:.4g}, {r:.4g}), expected precision "
                                        f"{EVENT_ANSWERS['right'][0]:.4g} and recall "
                                        f"{EVENT_ANSWERS['right'][1]:.4g}"))
        return
    across = [np.array([50]), np.array([])]
    got = report.run("event_precision_recall across sequences", event_precision_recall,
                     across, [np.array([]), np.array([49])], 3)
    report.check(tuple(float(v) for v in got) == (0.0, 0.0),
                 "a detection never matches an event of another sequence",
                 "a detection in sequence 0 matched an event in sequence 1: match events "
                 "sequence by sequence")
    got = report.run("event_precision_recall with nothing detected", event_precision_recall,
                     [np.array([]), np.array([])], EVENTS_TRUE, 3)
    report.check(tuple(float(v) for v in got) == (0.0, 0.0),
                 "nothing detected gives precision 0 and recall 0",
                 f"with no detections, expected (0.0, 0.0), got {got}")
