"""Few-shot classification with prototypical networks (Snell et al. 2017).

An *episode* imitates the test situation during training: draw ``n_way`` classes, ``k_shot``
labelled examples of each (the *support* set) and ``q_query`` further examples of each (the
*query* set). Each class is represented by its *prototype*, the mean embedding of its support
examples, and a query is classified by a softmax over its negative squared distances to the
prototypes. :func:`episode` draws the indices; :func:`prototypical_logits` and
:func:`prototypical_loss` score the embeddings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from dlcc.scratch._checks import integer

__all__ = ["Episode", "episode", "prototypes", "prototypical_logits", "prototypical_loss"]


class Episode(NamedTuple):
    """Indices into the data set. Row ``i`` of ``support`` (n_way, k_shot) and of ``query``
    (n_way, q_query) holds examples of class ``classes[i]``; ``i`` is the episode's label."""

    classes: torch.Tensor
    support: torch.Tensor
    query: torch.Tensor


def episode(labels: torch.Tensor, n_way: int, k_shot: int, q_query: int,
            generator: torch.Generator) -> Episode:
    """Draw an N-way, K-shot episode with Q queries per class from integer ``labels`` (n,).

    The classes are drawn uniformly among those with at least ``k_shot + q_query`` examples,
    and each class's support and query examples without replacement from its own examples,
    so no example is both in the support and in the query set. ``generator`` makes the
    episode reproducible.
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        got = f"shape {tuple(labels.shape)} of {labels.dtype}" \
            if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a 1-D integer tensor, got {got}")
    n_way, k_shot = integer("n_way", n_way), integer("k_shot", k_shot)
    q_query = integer("q_query", q_query)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    values, counts = labels.unique(return_counts=True)
    eligible = values[counts >= k_shot + q_query]
    if len(eligible) < n_way:
        raise ValueError(f"n_way={n_way} needs {n_way} classes with at least k_shot + q_query "
                         f"= {k_shot + q_query} examples each; labels have {len(eligible)}")
    classes = eligible[torch.randperm(len(eligible), generator=generator)[:n_way]]
    rows = []
    for c in classes:
        members = torch.nonzero(labels == c).view(-1)
        rows.append(members[torch.randperm(len(members), generator=generator)
                            [:k_shot + q_query]])
    drawn = torch.stack(rows)
    return Episode(classes, drawn[:, :k_shot], drawn[:, k_shot:])


def _embeddings(name: str, z: object) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.ndim != 3 or not z.is_floating_point():
        got = f"shape {tuple(z.shape)} of {z.dtype}" if isinstance(z, torch.Tensor) \
            else type(z).__name__
        raise ValueError(f"{name} must be a floating-point tensor (n_way, examples, D), "
                         f"got {got}")
    return z


def prototypes(support: torch.Tensor) -> torch.Tensor:
    """Class prototypes (n_way, D): the mean of each row of ``support`` (n_way, k_shot, D)."""
    return _embeddings("support", support).mean(dim=1)


def prototypical_logits(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Logits (n_way * q_query, n_way) of the queries ``query`` (n_way, q_query, D): minus
    the squared Euclidean distance of each query to each prototype of ``support``. Queries
    are flattened row by row, so the label of query ``j`` is ``j // q_query``."""
    protos = prototypes(support)
    query = _embeddings("query", query)
    if query.shape[0] != protos.shape[0] or query.shape[2] != protos.shape[1]:
        raise ValueError(f"query must have shape ({protos.shape[0]}, q_query, "
                         f"{protos.shape[1]}) to match support, got {tuple(query.shape)}")
    flat = query.reshape(-1, query.shape[2])
    return -torch.cdist(flat, protos) ** 2


def prototypical_loss(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of :func:`prototypical_logits`, the episode's training loss; the label
    of every query in row ``i`` of ``query`` is ``i``."""
    logits = prototypical_logits(support, query)
    labels = torch.arange(query.shape[0], device=logits.device).repeat_interleave(
        query.shape[1])
    return F.cross_entropy(logits, labels)
