"""Transformers of Lecture 10: an encoder classifier, a small GPT and a small ViT.

All three stack the same pre-norm :class:`Block` (Xiong et al. 2020):
x = x + Attention(LayerNorm(x)); x = x + MLP(LayerNorm(x)). Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` (FlashAttention-style kernels where the
hardware has them) unless the weights are asked for, which computes them explicitly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_images, positive_int


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s fixed encoding (length, dim): sin and cos of position / 10000^(2i/dim)
    at the even and odd features."""
    positive_int("length", length)
    positive_int("dim", dim)
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    enc = torch.zeros(length, dim)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq[:dim // 2])
    return enc


class SelfAttention(nn.Module):
    """Multi-head self-attention with one (dim, 3 dim) projection for queries, keys, values."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if positive_int("dim", dim) % positive_int("heads", heads):
            raise ValueError(f"heads={heads} must divide dim={dim}")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False,
                need_weights: bool = False):
        """x (N, T, dim); ``mask`` bool broadcastable to (N, heads, T, T), True = may attend.

        Returns the output (N, T, dim), and the weights (N, heads, T, T) if ``need_weights``.
        """
        n, t, dim = x.shape
        q, k, v = (a.reshape(n, t, self.heads, -1).transpose(1, 2)
                   for a in self.qkv(x).chunk(3, dim=-1))
        if causal:
            tri = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            mask = tri if mask is None else mask & tri
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = F.dropout(weights, p, self.training) @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = self.proj(out.transpose(1, 2).reshape(n, t, dim))
        return (out, weights) if need_weights else out


class Block(nn.Module):
    """Pre-norm transformer block: attention and a GELU MLP (width ``mlp_ratio * dim``), each
    added to the residual stream."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim), nn.Dropout(dropout))

    def forward(self, x, mask=None, causal=False, need_weights=False):
        a = self.attn(self.norm1(x), mask, causal, need_weights)
        a, weights = a if need_weights else (a, None)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if need_weights else x


def _check_tokens(idx: object, vocab_size: int, max_len: int) -> torch.Tensor:
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.ndim != 2:
        raise TypeError(f"tokens must be an int64 tensor (N, T), got "
                        f"{getattr(idx, 'dtype', type(idx).__name__)} of shape "
                        f"{tuple(getattr(idx, 'shape', ()))}")
    if idx.shape[1] > max_len:
        raise ValueError(f"tokens hold {idx.shape[1]} positions but the model has only "
                         f"{max_len} position embeddings")
    if idx.numel() and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(f"tokens must lie in [0, {vocab_size}), got values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return idx


class TransformerClassifier(nn.Module):
    """Encoder classifier for token sequences (N, T) with an optional padding mask (N, T).

    Token and learned position embeddings, ``depth`` blocks, then a class token's final state
    (``pooling="cls"``, a learned token prepended at position 0) or the mean over unpadded
    positions (``pooling="mean"``), LayerNorm and a linear head. With ``pad_index`` set and no
    mask given, tokens equal to ``pad_index`` are padding (so a plain ``model(tokens)`` works
    in a training loop).
    """

    def __init__(self, vocab_size: int, num_classes: int, max_len: int, *, dim: int = 64,
                 depth: int = 2, heads: int = 4, dropout: float = 0.1, pooling: str = "cls",
                 pad_index: int | None = None):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes),
                            ("max_len", max_len), ("depth", depth)):
            positive_int(name, value)
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.vocab_size, self.max_len, self.pooling = vocab_size, max_len, pooling
        self.pad_index = pad_index
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len + 1, dim))
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False):
        """Logits (N, num_classes); with ``return_attention`` also each block's attention
        weights (N, heads, T', T'), T' = T + 1 with the class token first."""
        tokens = _check_tokens(tokens, self.vocab_size, self.max_len)
        n, t = tokens.shape
        if mask is None and self.pad_index is not None:
            mask = tokens != self.pad_index
        elif mask is None:
            mask = torch.ones(n, t, dtype=torch.bool, device=tokens.device)
        if mask.shape != tokens.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of the tokens' shape {(n, t)}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        x = torch.cat([self.cls.expand(n, -1, -1), self.tok(tokens)], dim=1) + self.pos[:t + 1]
        keep = torch.cat([torch.ones(n, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        attn_mask = keep[:, None, None, :]  # every query may attend to every real token
        weights = []
        for block in self.blocks:
            x = block(x, attn_mask, need_weights=return_attention)
            if return_attention:
                x, w = x
                weights.append(w)
        x = self.norm(x)
        if self.pooling == "cls":
            pooled = x[:, 0]
        else:
            m = mask[..., None].to(x.dtype)
            pooled = (x[:, 1:] * m).sum(1) / m.sum(1).clamp(min=1)
        logits = self.head(pooled)
        return (logits, weights) if return_attention else logits


class GPT(nn.Module):
    """A small decoder-only language model (Radford et al. 2018, after Karpathy's minGPT).

    Token and learned position embeddings, ``depth`` pre-norm blocks with causal
    self-attention, a final LayerNorm, and an output layer that shares the token embedding's
    weights (weight tying, Press and Wolf 2017). Input tokens (N, T) with T <= block_size;
    output logits (N, T, vocab_size), position t predicting token t + 1.
    """

    def __init__(self, vocab_size: int, block_size: int, *, dim: int = 64, depth: int = 2,
                 heads: int = 4, dropout: float = 0.0):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                            ("depth", depth)):
            positive_int(name, value)
        self.vocab_size, self.block_size = vocab_size, block_size
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(block_size, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.apply(self._init)
        self.head.weight = self.tok.weight  # tied: one matrix embeds and un-embeds

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = _check_tokens(idx, self.vocab_size, self.block_size).shape[1]
        x = self.drop(self.tok(idx) + self.pos(torch.arange(t, device=idx.device)))
        for block in self.blocks:
            x = block(x, causal=True)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None):
        """Append ``max_new_tokens`` sampled tokens to idx (N, T); returns (N, T + new).

        Each step feeds the last ``block_size`` tokens, divides the last logits by
        ``temperature``, keeps the ``top_k`` largest if given, and samples from the softmax
        with ``generator`` (reproducible when seeded).
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
                or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative integer, got "
                             f"{max_new_tokens!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.vocab_size:
            raise ValueError(f"top_k must lie in [1, {self.vocab_size}], got {top_k}")
        _check_tokens(idx[:, -self.block_size:], self.vocab_size, self.block_size)
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size:])[:, -1] / temperature
            if top_k is not None:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        self.train(was_training)
        return idx


class ViT(nn.Module):
    """A small Vision Transformer (Dosovitskiy et al. 2021): the image is cut into
    ``patch_size`` squares, each embedded linearly (a strided convolution), a class token is
    prepended, learned positions are added, ``depth`` pre-norm blocks follow, and the class
    token's final state is classified."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, *,
                 patch_size: int = 7, dim: int = 64, depth: int = 4, heads: int = 4,
                 dropout: float = 0.0):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes),
                            ("image_size", image_size), ("patch_size", patch_size),
                            ("depth", depth)):
            positive_int(name, value)
        if image_size % patch_size:
            raise ValueError(f"patch_size={patch_size} must divide image_size={image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        self.patches = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        n_patches = (image_size // patch_size) ** 2
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"x has {tuple(x.shape[-2:])} pixels but the ViT was built for "
                             f"{self.image_size}x{self.image_size}")
        x = self.patches(x).flatten(2).transpose(1, 2)  # (N, patches, dim)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])
