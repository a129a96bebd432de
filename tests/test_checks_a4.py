"""dlcc.checks.a4 accepts a correct Assignment 4 and names each realistic mistake."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dlcc.checks import a4

# --- reference solutions, with switches that plant the usual mistakes ------------------------


def make_rnn_forward(carry=True, squash=True, transpose=False, shifted=False, last=False):
    def rnn_forward(x, h0, Wx, Wh, b):
        h, states = h0, []
        for t in range(x.shape[1]):
            before = h
            a = x[:, t] @ Wx + (h if carry else h0) @ (Wh.T if transpose else Wh) + b
            h = np.tanh(a) if squash else a
            states.append(before if shifted else h)
        return h if last else np.stack(states, axis=1)
    return rnn_forward


rnn_forward = make_rnn_forward()


def make_rnn_backward(carry=True, accumulate=True, own=True, derivative="h"):
    def rnn_backward(dh, x, h0, Wx, Wh, b):
        h = rnn_forward(x, h0, Wx, Wh, b)
        hs = np.concatenate([h0[:, None], h], axis=1)
        dx = np.zeros_like(x)
        dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
        dnext = np.zeros_like(h0)
        for t in reversed(range(x.shape[1])):
            g = (dh[:, t] if own or t == x.shape[1] - 1 else 0) + (dnext if carry else 0)
            out = h[:, t] if derivative == "h" else x[:, t] @ Wx + hs[:, t] @ Wh + b
            da = g * (1 - out ** 2)
            dx[:, t] = da @ Wx.T
            if accumulate:
                dWx += x[:, t].T @ da
                dWh += hs[:, t].T @ da
                db += da.sum(0)
            else:
                dWx, dWh, db = x[:, t].T @ da, hs[:, t].T @ da, da.sum(0)
            dnext = da @ Wh.T
        return dx, dnext, dWx, dWh, db
    return rnn_backward


def make_causal_mask(kind="right"):
    def causal_mask(t):
        ones = torch.ones(t, t, dtype=torch.bool)
        return {"right": ones.tril(), "no diagonal": ones.tril(-1), "upper": ones.triu(),
                "inverted": ~ones.tril(),
                "float": ones.tril().float()}[kind]
    return causal_mask


def make_attention(scale="sqrt", mask_after=False, fill=float("-inf"), inverted=False,
                   dim=-1, transpose_k=True):
    def attention(q, k, v, mask=None):
        d = q.shape[-1]
        s = q @ (k.transpose(-2, -1) if transpose_k else k)
        s = s * {"sqrt": 1 / math.sqrt(d), "none": 1.0, "d": 1 / d}[scale]
        if mask is not None and not mask_after:
            s = s.masked_fill(mask if inverted else ~mask, fill)
        w = s.softmax(dim)
        if mask is not None and mask_after:
            w = w * mask
        return w @ v, w
    return attention


def make_mha(split="right", scale="head", transpose_back=True, project=True, causal_ok=True):
    class MultiHeadSelfAttention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x, causal=False):
            n, t, dim = x.shape
            h = self.heads
            if split == "right":
                q, k, v = (a.reshape(n, t, h, -1).transpose(1, 2)
                           for a in self.qkv(x).chunk(3, dim=-1))
            else:
                q, k, v = (a.reshape(n, h, t, -1) for a in self.qkv(x).chunk(3, dim=-1))
            s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1] if scale == "head" else dim)
            if causal and causal_ok:
                s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
            out = s.softmax(-1) @ v
            out = (out.transpose(1, 2) if transpose_back else out).reshape(n, t, dim)
            return self.proj(out) if project else out
    return MultiHeadSelfAttention


def make_get_batch(shift=1, single=False, dtype=torch.long):
    def get_batch(text, starts, block):
        idx = starts[:, None] + torch.arange(block)
        if single:
            return text[idx], text[starts + block]
        return text[idx].to(dtype), text[idx + shift].to(dtype)
    return get_batch


def make_sample_next(mode="right", keep=0):
    def sample_next(logits, temperature=1.0, top_k=None, generator=None):
        if mode == "argmax":
            return logits.argmax(-1)
        z = logits * temperature if mode == "multiply" else logits / temperature
        if mode == "no temperature":
            z = logits
        if top_k is not None and mode != "no top-k":
            k = top_k + keep
            kth = torch.topk(z, k, dim=-1).values[:, -1:]
            z = z.masked_fill(z < kth, float("-inf"))
        seeded = None if mode == "no generator" else generator
        return torch.multinomial(z.softmax(-1), 1, generator=seeded)[:, 0]
    return sample_next


def make_clip(mode="right"):
    def clip_grad_norm(parameters, max_norm):
        if mode == "two passes":  # the second pass finds the generator used up
            total = torch.sqrt(sum((p.grad ** 2).sum() for p in parameters)).item()
            for p in parameters:
                p.grad.mul_(min(1.0, max_norm / total))
            return total
        grads = [p.grad for p in parameters]
        total = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
        if mode == "per tensor":
            for g in grads:
                if g.norm() > max_norm:
                    g.mul_(max_norm / g.norm())
        elif mode == "clamp":
            for g in grads:
                g.clamp_(-max_norm, max_norm)
        elif mode == "copy":
            grads = [g * min(1.0, max_norm / total) for g in grads]
        elif mode == "always":
            for g in grads:
                g.mul_(max_norm / total)
        else:
            for g in grads:
                g.mul_(min(1.0, max_norm / (total + 1e-12)))
        if mode == "after":
            return math.sqrt(sum((g ** 2).sum().item() for g in grads))
        return total
    return clip_grad_norm


def make_events(mode="right"):
    def event_precision_recall(predicted, true, tolerance):
        if mode == "pooled":
            predicted, true = [np.concatenate(predicted)], [np.concatenate(true)]
        hits = found = 0
        for pred, events in zip(predicted, true, strict=True):
            used = set()
            for f in pred:
                near = [j for j, e in enumerate(events)
                        if (abs(f - e) < tolerance if mode == "strict" else
                            abs(f - e) <= tolerance)
                        and (mode == "double" or j not in used)]
                if near:
                    used.add(near[0])
                    hits += 1
            found += len(used)
        n_pred = sum(len(p) for p in predicted)
        n_true = sum(len(t) for t in true)
        precision = hits / n_pred if n_pred else 0.0
        recall = found / n_true if n_true else 0.0
        return (recall, precision) if mode == "swapped" else (precision, recall)
    return event_precision_recall


# --- each check accepts the reference ------------------------------------------------------

REFERENCE = [
    (a4.check_rnn_forward, rnn_forward),
    (a4.check_rnn_backward, make_rnn_backward()),
    (a4.check_causal_mask, make_causal_mask()),
    (a4.check_attention, make_attention()),
    (a4.check_multihead, make_mha()),
    (a4.check_get_batch, make_get_batch()),
    (a4.check_sample_next, make_sample_next()),
    (a4.check_clip_grad_norm, make_clip()),
    (a4.check_event_precision_recall, make_events()),
]


@pytest.mark.parametrize("check, solution", REFERENCE, ids=lambda v: getattr(v, "__name__", ""))
def test_reference_passes(check, solution):
    result = check(solution, quiet=True)
    assert result.passed, result.messages
    assert result.checks >= 2


def test_every_check_has_a_reference_case():
    assert {check.__name__ for check, _ in REFERENCE} == set(a4.__all__)


# --- each check names each planted mistake -------------------------------------------------

MISTAKES = [
    (a4.check_rnn_forward, make_rnn_forward(carry=False), "hidden state is not carried"),
    (a4.check_rnn_forward, make_rnn_forward(squash=False), "no tanh"),
    (a4.check_rnn_forward, make_rnn_forward(transpose=True), "applied transposed"),
    (a4.check_rnn_forward, make_rnn_forward(shifted=True), "off by one step"),
    (a4.check_rnn_forward, make_rnn_forward(last=True), "only the last state"),
    (a4.check_rnn_backward, make_rnn_backward(carry=False), "does not flow back through time"),
    (a4.check_rnn_backward, make_rnn_backward(accumulate=False), "add up their gradients"),
    (a4.check_rnn_backward, make_rnn_backward(own=False), "only the last step's dh"),
    (a4.check_rnn_backward, make_rnn_backward(derivative="a"), "1 - a^2"),
    (a4.check_causal_mask, make_causal_mask("no diagonal"), "off by one"),
    (a4.check_causal_mask, make_causal_mask("upper"), "upper-triangular"),
    (a4.check_causal_mask, make_causal_mask("inverted"), "the mask is inverted"),
    (a4.check_causal_mask, make_causal_mask("float"), "return booleans"),
    (a4.check_attention, make_attention(scale="none"), "divide q k^T by sqrt(d)"),
    (a4.check_attention, make_attention(scale="d"), "the scale is 1/sqrt(d)"),
    (a4.check_attention, make_attention(mask_after=True), "mask was applied after the softmax"),
    (a4.check_attention, make_attention(fill=0.0), "instead of -inf"),
    (a4.check_attention, make_attention(inverted=True), "used inverted"),
    (a4.check_attention, make_attention(dim=1), "softmax runs over the queries"),
    (a4.check_attention, make_attention(transpose_k=False), "transpose the last two"),
    (a4.check_multihead, make_mha(split="wrong"), "heads are cut wrongly"),
    (a4.check_multihead, make_mha(scale="dim"), "1 / sqrt(dim / heads)"),
    (a4.check_multihead, make_mha(transpose_back=False), "without transposing back"),
    (a4.check_multihead, make_mha(project=False), "projection self.proj"),
    (a4.check_multihead, make_mha(causal_ok=False), "positions still attend to later"),
    (a4.check_get_batch, make_get_batch(shift=0), "y equals x"),
    (a4.check_get_batch, make_get_batch(shift=2), "shifted by two"),
    (a4.check_get_batch, make_get_batch(single=True), "only the one character"),
    (a4.check_get_batch, make_get_batch(dtype=torch.float32), "must be int64"),
    (a4.check_sample_next, make_sample_next("argmax"), "greedy decoding"),
    (a4.check_sample_next, make_sample_next("multiply"), "multiplied by the temperature"),
    (a4.check_sample_next, make_sample_next("no temperature"), "temperature was not applied"),
    (a4.check_sample_next, make_sample_next(keep=-1), "off by one"),
    (a4.check_sample_next, make_sample_next(keep=1), "keep exactly the k"),
    (a4.check_sample_next, make_sample_next("no top-k"), "top_k was ignored"),
    (a4.check_sample_next, make_sample_next("no generator"), "pass generator"),
    (a4.check_clip_grad_norm, make_clip("per tensor"), "global norm of all gradients"),
    (a4.check_clip_grad_norm, make_clip("clamp"), "clipping by value"),
    (a4.check_clip_grad_norm, make_clip("copy"), "not a copy"),
    (a4.check_clip_grad_norm, make_clip("always"), "must be left unchanged"),
    (a4.check_clip_grad_norm, make_clip("after"), "norm after clipping"),
    (a4.check_clip_grad_norm, make_clip("two passes"), "can be iterated only once"),
    (a4.check_event_precision_recall, make_events("swapped"), "swapped"),
    (a4.check_event_precision_recall, make_events("double"), "only one detection"),
    (a4.check_event_precision_recall, make_events("strict"), "tolerance is inclusive"),
    (a4.check_event_precision_recall, make_events("pooled"), "sequence by sequence"),
]


@pytest.mark.parametrize("check, solution, diagnosis", MISTAKES,
                         ids=[f"{c.__name__}-{d[:24]}" for c, _, d in MISTAKES])
def test_mistake_is_named(check, solution, diagnosis):
    result = check(solution, quiet=True)
    assert not result.passed
    assert any(diagnosis in m for m in result.messages), result.messages


def test_not_implemented_is_reported_in_words():
    def rnn_forward(x, h0, Wx, Wh, b):
        raise NotImplementedError

    result = a4.check_rnn_forward(rnn_forward, quiet=True)
    assert not result.passed and "not implemented yet" in result.messages[0]


def test_misuse_raises_with_instructions():
    with pytest.raises(TypeError, match="pass the class"):
        a4.check_multihead(make_mha()(8, 2))
    with pytest.raises(TypeError, match="expects your function itself"):
        a4.check_attention(None)
