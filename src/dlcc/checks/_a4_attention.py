"""Assignment 4's attention checks: the causal mask, scaled dot-product attention and a
multi-head self-attention module.

Expected values come from the course library: :func:`dlcc.scratch.attention.causal_mask` and
:func:`~dlcc.scratch.attention.attention_forward` (numpy) and
:class:`dlcc.models.transformer.SelfAttention`, loaded with the student's weights. The wrong
variants below are the mistakes students make; a check names the one it recognises.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..models.transformer import SelfAttention
from ..scratch import attention as scratch_attention
from ._report import Report, as_array, close, mismatch, shape_of, student_check

TOL = {"rtol": 1e-4, "atol": 1e-6}


def _np(value) -> np.ndarray | None:
    """A tensor or array as float64 numpy (None if it is neither)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy().copy()
    return as_array(value)


# --- the causal mask -------------------------------------------------------------------------

@student_check()
def check_causal_mask(report: Report, causal_mask) -> None:
    """Check ``causal_mask(t) -> bool tensor (t, t)``, True where query i may attend to key j,
    that is j <= i (the convention of ``F.scaled_dot_product_attention``)."""
    t = 5
    got = report.run("causal_mask(5)", causal_mask, t)
    expected = scratch_attention.causal_mask(t)
    if isinstance(got, np.ndarray):
        report.note("causal_mask returned a numpy array; the attention below takes a torch "
                    "tensor (torch.from_numpy turns one into the other)")
        got = torch.from_numpy(got)
    if not isinstance(got, torch.Tensor):
        report.fail(f"causal_mask returned {type(got).__name__}; return a torch.bool tensor "
                    f"of shape (t, t)")
        return
    if tuple(got.shape) != (t, t):
        report.fail(f"causal_mask(5) has shape {tuple(got.shape)}, expected (5, 5): one row "
                    f"per query, one column per key")
        return
    if got.dtype != torch.bool:
        values = set(got.flatten().tolist())
        if values <= {0.0, float("-inf")}:
            report.fail("causal_mask returned an additive mask (0 and -inf); return booleans, "
                        "True where attending is allowed, and let attention turn them into "
                        "-inf scores")
        else:
            report.fail(f"causal_mask returned dtype {got.dtype}; return booleans (torch.bool): "
                        f"a float 0/1 mask would be added to the scores, not used to block them")
        return
    got = got.numpy()
    variants = {
        "no diagonal": np.tril(np.ones((t, t), bool), -1),
        "upper": np.triu(np.ones((t, t), bool)),
        "inverted": ~expected,
        "all": np.ones((t, t), bool),
    }
    messages = {
        "no diagonal": "off by one: the diagonal is False, so a position may not attend to "
                       "itself (and the first query attends to nothing, a 0/0 softmax); "
                       "position i may see keys 0..i, diagonal included",
        "upper": "the mask is upper-triangular: each position sees the future and not the "
                 "past; True belongs on and below the diagonal (torch.tril)",
        "inverted": "the mask is inverted: True marks the keys a query may NOT see; in this "
                    "course (and in F.scaled_dot_product_attention) True means may attend",
        "all": "the mask is all True: nothing is hidden from any position",
    }
    if np.array_equal(got, expected):
        report.ok("True on and below the diagonal: position i sees positions 0..i")
    else:
        name = next((n for n, v in variants.items() if np.array_equal(got, v)), None)
        report.fail(messages[name] if name else
                    f"causal_mask(5) differs from the lower triangle at "
                    f"{int((got != expected).sum())} of 25 entries")
    one = report.run("causal_mask(1)", causal_mask, 1)
    one = torch.as_tensor(one)
    report.check(tuple(one.shape) == (1, 1) and bool(one.flatten()[0]),
                 "causal_mask(1) is [[True]]",
                 f"causal_mask(1) should be [[True]] (one position, seeing itself), got "
                 f"{one.tolist()}")


# --- scaled dot-product attention -------------------------------------------------------------

def _attention_case(tk: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    q = 1.5 * torch.randn(2, 4, d, generator=g, dtype=torch.float64)
    k = 1.5 * torch.randn(2, tk, d, generator=g, dtype=torch.float64)
    v = torch.randn(2, tk, 3, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 4, tk, generator=g) > 0.4
    mask[..., 0] = True  # every query may attend to at least one key
    return q, k, v, mask


def _attention_variants(q, k, v, mask) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(out, weights) of the right attention and of the usual mistakes, as numpy."""
    d = q.shape[-1]
    qn, kn, vn = (a.numpy() for a in (q, k, v))
    m = None if mask is None else mask.numpy()

    def softmax(s, axis=-1):  # NaN where a whole slice is masked: it then matches nothing
        with np.errstate(invalid="ignore"):
            e = np.exp(s - s.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)

    def masked(s, fill=-np.inf, where=m):
        return s if where is None else np.where(where, s, fill)

    scores = qn @ kn.transpose(0, 2, 1)
    out = {}
    right, cache = scratch_attention.attention_forward(qn, kn, vn, m)
    out["right"] = right, cache[3]
    for name, w in (("no scale", softmax(masked(scores))),
                    ("scale 1/d", softmax(masked(scores / d))),
                    ("softmax over queries", softmax(masked(scores / math.sqrt(d)), axis=1))):
        out[name] = w @ vn, w
    if m is not None:
        after = softmax(scores / math.sqrt(d)) * m
        out["mask after softmax"] = after @ vn, after
        zero = softmax(masked(scores / math.sqrt(d), fill=0.0))
        out["filled with 0"] = zero @ vn, zero
        if (~m).any(axis=-1).all():
            inv = softmax(masked(scores / math.sqrt(d), where=~m))
            out["inverted mask"] = inv @ vn, inv
        ignored = softmax(scores / math.sqrt(d))
        out["mask ignored"] = ignored @ vn, ignored
    if kn.shape[1] == d:  # q @ k runs only when Tk == d
        w = softmax(masked(qn @ kn / math.sqrt(d)))
        out["k not transposed"] = w @ vn, w
    return out


ATTENTION_MISTAKES = {
    "no scale": "the scores are not scaled: divide q k^T by sqrt(d), the square root of the "
                "query width, so that their spread does not grow with d and saturate the "
                "softmax",
    "scale 1/d": "the scores are divided by d; the scale is 1/sqrt(d): q k^T is a sum of d "
                 "products, so its standard deviation grows like sqrt(d)",
    "softmax over queries": "the softmax runs over the queries (dim 1); each query's weights "
                            "over the keys must sum to 1: softmax over the last dimension",
    "mask after softmax": "the mask was applied after the softmax: the masked weights are "
                          "zeroed but the rest no longer sum to 1; set masked scores to -inf "
                          "before the softmax",
    "filled with 0": "masked scores were set to 0 instead of -inf: exp(0) = 1, so the "
                     "masked keys still get weight; fill with float('-inf') before the softmax",
    "inverted mask": "the mask is used inverted: True means may attend, so fill the scores "
                     "where the mask is False (masked_fill(~mask, -inf))",
    "mask ignored": "the mask was ignored: masked keys receive weight",
    "k not transposed": "the scores are q @ k, not q @ k^T: transpose the last two dimensions "
                        "of k (k.transpose(-2, -1)); it only ran because Tk equals d here",
}


def _compare_attention(report: Report, got, variants, what: str) -> bool:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        report.fail(f"{what} returned {shape_of(got)}; return (out, weights)")
        return False
    out, weights = (_np(a) for a in got)
    right_out, right_w = variants["right"]
    if out is None or weights is None:
        report.fail(f"{what} returned ({shape_of(got[0])}, {shape_of(got[1])}); return two "
                    f"tensors, out and weights")
        return False
    if close(out, right_out, **TOL) and close(weights, right_w, **TOL):
        report.ok(f"{what}: output and weights match")
        return True
    for name, (_, v_w) in variants.items():
        if name != "right" and close(weights, v_w, **TOL):
            report.fail(f"{what}: {ATTENTION_MISTAKES[name]}")
            return False
    if close(weights, right_w, **TOL):
        report.fail(f"{what}: the weights are right but the output is not "
                    f"({mismatch(out, right_out)}); out = weights @ v")
    elif weights.shape == right_w.shape and not np.allclose(weights.sum(-1), 1, atol=1e-6):
        report.fail(f"{what}: the weights of each query do not sum to 1 "
                    f"({mismatch(weights, right_w)})")
    else:
        report.fail(f"{what}: weights differ from the reference, {mismatch(weights, right_w)}")
    return False


@student_check()
def check_attention(report: Report, attention) -> None:
    """Check ``attention(q, k, v, mask=None) -> (out, weights)`` for q (N, Tq, d), k (N, Tk, d),
    v (N, Tk, dv) and a boolean mask broadcastable to (N, Tq, Tk), True = may attend."""
    hints = {"must match the size": " -- the scores are q @ k^T: transpose the last two "
                                    "dimensions of k (k.transpose(-2, -1))",
             "cannot be multiplied": " -- the scores are q @ k^T: transpose the last two "
                                     "dimensions of k",
             "batch2 tensor": " -- the scores are q @ k^T: transpose the last two dimensions "
                              "of k (k.transpose(-2, -1))"}
    for tk, d, seed, use_mask, what in ((6, 8, 0, False, "without a mask"),
                                        (6, 8, 1, True, "with a mask"),
                                        (8, 8, 2, True, "with Tk = d and a mask")):
        q, k, v, mask = _attention_case(tk, d, seed)
        m = mask if use_mask else None
        kept = [a.clone() for a in (q, k, v)]
        got = report.run(f"attention {what}", attention, q, k, v, m, hints=hints)
        if not _compare_attention(report, got, _attention_variants(q, k, v, m),
                                  f"attention {what}"):
            return
        if not all(torch.equal(a, b) for a, b in zip((q, k, v), kept, strict=True)):
            report.fail("attention changed q, k or v in place")
            return
    q, k, v, _ = _attention_case(6, 8, 3)
    causal = torch.ones(4, 6, dtype=torch.bool).tril()
    got = report.run("attention with a (Tq, Tk) causal mask", attention, q, k, v, causal)
    _compare_attention(report, got, _attention_variants(q, k, v, causal[None].expand(2, -1, -1)),
                       "attention with a (Tq, Tk) mask shared by the batch")


# --- multi-head self-attention ----------------------------------------------------------------

def _mha_variants(reference: SelfAttention, x: torch.Tensor, causal: bool) -> dict:
    """Outputs of the reference module and of the usual mistakes, with its weights."""
    n, t, dim = x.shape
    h = reference.heads
    dh = dim // h
    qkv = reference.qkv(x).chunk(3, dim=-1)
    mask = torch.ones(t, t, dtype=torch.bool).tril() if causal else None

    def attend(q, k, v, scale, mask=mask):
        s = q @ k.transpose(-2, -1) * scale
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        return s.softmax(-1) @ v

    split = [a.reshape(n, t, h, dh).transpose(1, 2) for a in qkv]
    wrong_split = [a.reshape(n, h, t, dh) for a in qkv]
    heads = attend(*split, 1 / math.sqrt(dh))
    merge = heads.transpose(1, 2).reshape(n, t, dim)
    out = {
        "right": reference.proj(merge),
        "wrong split": reference.proj(attend(*wrong_split, 1 / math.sqrt(dh))
                                      .transpose(1, 2).reshape(n, t, dim)),
        "scale dim": reference.proj(attend(*split, 1 / math.sqrt(dim))
                                    .transpose(1, 2).reshape(n, t, dim)),
        "no transpose back": reference.proj(heads.reshape(n, t, dim)),
        "no projection": merge,
        "one head": reference.proj(attend(*qkv, 1 / math.sqrt(dim))),
    }
    if causal:
        out["not causal"] = reference.proj(attend(*split, 1 / math.sqrt(dh), mask=None)
                                           .transpose(1, 2).reshape(n, t, dim))
    return {k: v.detach().double().numpy() for k, v in out.items()}


MHA_MISTAKES = {
    "wrong split": "the heads are cut wrongly: reshape (N, T, dim) to (N, T, heads, dim / "
                   "heads), then transpose to (N, heads, T, dim / heads); reshaping straight "
                   "to (N, heads, T, ...) mixes positions and features",
    "scale dim": "each head's scores are divided by sqrt(dim); a head's queries have width "
                 "dim / heads, so the scale is 1 / sqrt(dim / heads)",
    "no transpose back": "the heads are concatenated without transposing back: (N, heads, T, "
                         "d_h) must become (N, T, heads, d_h) before the reshape to (N, T, dim)",
    "no projection": "the output projection self.proj is not applied to the concatenated "
                     "heads",
    "one head": "the attention runs as a single head over the full width: split q, k and v "
                "into heads",
    "not causal": "with causal=True, positions still attend to later ones: mask the scores "
                  "with the causal mask before the softmax",
}


@student_check("your self-attention class")
def check_multihead(report: Report, MultiHeadSelfAttention) -> None:
    """Check ``MultiHeadSelfAttention(dim, heads)`` with a ``qkv`` = nn.Linear(dim, 3 dim)
    (queries, keys, values in that order) and a ``proj`` = nn.Linear(dim, dim), whose
    ``forward(x, causal=False)`` maps (N, T, dim) to (N, T, dim)."""
    dim, heads = 12, 3
    torch.manual_seed(0)
    model = report.run(f"MultiHeadSelfAttention({dim}, {heads})", MultiHeadSelfAttention,
                       dim, heads)
    if not isinstance(model, nn.Module):
        report.fail("MultiHeadSelfAttention(...) is not an nn.Module: subclass nn.Module and "
                    "call super().__init__()")
        return
    layers = {name: getattr(model, name, None) for name in ("qkv", "proj")}
    shapes = {"qkv": (3 * dim, dim), "proj": (dim, dim)}
    for name, layer in layers.items():
        if not isinstance(layer, nn.Linear) or tuple(layer.weight.shape) != shapes[name] \
                or layer.bias is None:
            report.fail(f"self.{name} should be an nn.Linear({shapes[name][1]}, "
                        f"{shapes[name][0]}) with a bias, got {type(layer).__name__}"
                        + (f" with weight {tuple(layer.weight.shape)}"
                           if isinstance(layer, nn.Linear) else ""))
            return
    count = sum(p.numel() for p in model.parameters())
    expected = 4 * dim * dim + 4 * dim
    report.check(count == expected, f"{expected} parameters (4 dim^2 + 4 dim)",
                 f"{count} parameters, expected {expected} = 4 dim^2 + 4 dim: only qkv and "
                 f"proj hold weights")
    reference = SelfAttention(dim, heads)
    reference.load_state_dict({k: v for k, v in model.state_dict().items()
                               if k.split(".")[0] in ("qkv", "proj")})
    x = torch.randn(2, 5, dim, generator=torch.Generator().manual_seed(1))
    for causal in (False, True):
        what = "with causal=True" if causal else "without a mask"
        got = _np(report.run(f"forward {what}", model, x, causal=causal))
        variants = _mha_variants(reference, x, causal)
        if got is None or got.shape != variants["right"].shape:
            report.fail(f"forward {what} returned shape {shape_of(got)}, expected "
                        f"{variants['right'].shape}")
            return
        if close(got, variants["right"], **TOL):
            report.ok(f"forward {what} matches the reference")
            continue
        name = next((n for n, v in variants.items() if n != "right" and close(got, v, **TOL)),
                    None)
        report.fail(f"forward {what}: " + (MHA_MISTAKES[name] if name else
                                           f"output differs, {mismatch(got, variants['right'])}"))
        return
    later = x.clone()
    later[:, 3:] += 1.0
    with torch.no_grad():
        a = model(x, causal=True)
        b = model(later, causal=True)
    report.check(torch.allclose(a[:, :3], b[:, :3], atol=1e-6),
                 "with causal=True, changing later positions leaves earlier outputs unchanged",
                 "with causal=True, the outputs of positions 0-2 changed when positions 3-4 "
                 "changed: information leaks from the future")
