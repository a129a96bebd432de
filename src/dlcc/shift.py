"""Has the data changed? A two-sample test on features: maximum mean discrepancy (MMD).

Given features of a reference sample ``x`` (the data the model was validated on) and of new
data ``y``, :func:`mmd_test` asks whether both come from one distribution (Gretton et al.
2012). With a Gaussian kernel k, the squared MMD estimated from the samples is

    MMD^2 = mean k(x_i, x_j) + mean k(y_i, y_j) - 2 mean k(x_i, y_j),

large when the samples differ. Its p-value comes from permutations: if both samples come from
one distribution, every relabelling of the pooled features into two groups of the same sizes
is equally likely, so the rank of the observed statistic among ``permutations`` relabelled ones
gives p = (1 + #{permuted >= observed}) / (1 + permutations), a valid p-value whatever the
distribution (it rejects an unchanged distribution with probability at most ``alpha``). The
kernel width is the median distance between pooled points (the median heuristic), which
relabelling does not change.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from dlcc.scratch._checks import integer


class ShiftTest(NamedTuple):
    """``statistic`` (the squared MMD), ``p_value`` and ``bandwidth`` (the kernel's width)."""

    statistic: float
    p_value: float
    bandwidth: float


def _features(name: str, a: object) -> torch.Tensor:
    if not isinstance(a, torch.Tensor) or not a.is_floating_point() or a.ndim != 2 or len(a) < 2:
        got = (f"shape {tuple(a.shape)} of {a.dtype}" if isinstance(a, torch.Tensor)
               else type(a).__name__)
        raise ValueError(f"{name} must be a floating-point tensor (n, features) with n >= 2, "
                         f"got {got}")
    if not torch.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a.detach().double()


def mmd_test(x: torch.Tensor, y: torch.Tensor, permutations: int = 500,
             generator: torch.Generator | None = None) -> ShiftTest:
    """Permutation test of "x and y come from one distribution" on features (n, d), (m, d).

    Compare the p-value with a level chosen before looking (for example 0.05): below it,
    flag a shift. Cost: one (n + m)^2 kernel matrix and ``permutations`` weighted sums of it.
    """
    x, y = _features("x", x), _features("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y has {y.shape[1]} features per row but x has {x.shape[1]}")
    permutations = integer("permutations", permutations, 1)
    z = torch.cat([x, y])
    n, total = len(x), len(z)
    distances = torch.cdist(z, z).square()
    off_diagonal = distances[~torch.eye(total, dtype=torch.bool)]
    bandwidth = float(off_diagonal.median().sqrt()) or 1.0  # all points equal: any width
    kernel = torch.exp(-distances / (2 * bandwidth**2))

    def statistic(in_x: torch.Tensor) -> torch.Tensor:
        """MMD^2 (the biased, V-statistic form) for each row of group memberships."""
        w = torch.where(in_x, 1.0 / n, -1.0 / (total - n)).double()
        return ((w @ kernel) * w).sum(-1)

    observed = torch.zeros(total, dtype=torch.bool)
    observed[:n] = True
    order = torch.stack([torch.randperm(total, generator=generator)
                         for _ in range(permutations)])
    permuted = statistic(order < n)  # each row puts n randomly chosen points into x
    value = statistic(observed[None])[0]
    p = (1 + int((permuted >= value - 1e-12).sum())) / (1 + permutations)
    return ShiftTest(float(value), p, bandwidth)
