"""A plain mini-batch training loop for the numpy models (Lectures 2 and 6).

``model`` is anything with ``params`` (dict of arrays), ``loss(x, y) -> (loss, grads)`` and
``accuracy(x, y)``, such as :class:`dlcc.scratch.mlp.MLP`; ``optimizer`` anything with
``step(params, grads)`` and an ``lr`` attribute, such as :class:`dlcc.scratch.optim.Adam`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def _check_xy(x_name: str, x: object, y_name: str, y: object) -> None:
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise TypeError(f"{x_name} and {y_name} must be numpy arrays, got "
                        f"{type(x).__name__} and {type(y).__name__}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{x_name} has {len(x)} examples but {y_name} has {len(y)}; "
                         f"they must match and be non-zero")


def fit(model, optimizer, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
        x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, seed: int = 0,
        lr_schedule: Callable[[int], float] | None = None, verbose: bool = False) -> list[dict]:
    """Train with shuffled mini-batches of x (N, ...), y (N,) for ``epochs`` passes.

    ``lr_schedule(step)``, if given, sets ``optimizer.lr`` before every step (step counts
    batches from 0 across epochs). Returns one dict per epoch: ``epoch`` (from 1),
    ``train_loss`` (mean over the epoch's batches), ``train_acc`` (on all of x after the epoch),
    ``val_loss`` and ``val_acc`` (if x_val is given), ``lr`` (of the last step) and
    ``seconds``.
    """
    _check_xy("x", x, "y", y)
    if (x_val is None) != (y_val is None):
        raise ValueError("pass both x_val and y_val, or neither")
    if x_val is not None:
        _check_xy("x_val", x_val, "y_val", y_val)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    rng = np.random.default_rng(seed)
    history, step = [], 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x))  # a fresh shuffle each epoch
        batch_losses = []
        for first in range(0, len(x), batch_size):
            idx = order[first:first + batch_size]
            if lr_schedule is not None:
                optimizer.lr = lr_schedule(step)
            loss, grads = model.loss(x[idx], y[idx])
            optimizer.step(model.params, grads)
            batch_losses.append(loss)
            step += 1
        record = {"epoch": epoch, "train_loss": float(np.mean(batch_losses)),
                  "train_acc": model.accuracy(x, y)}
        if x_val is not None:
            record["val_loss"] = float(model.loss(x_val, y_val)[0])
            record["val_acc"] = model.accuracy(x_val, y_val)
        record["lr"] = float(optimizer.lr)
        record["seconds"] = time.perf_counter() - start
        history.append(record)
        if verbose:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in record.items()))
    return history


def overfit_one_batch(model, optimizer, x: np.ndarray, y: np.ndarray,
                      steps: int = 200) -> list[float]:
    """Take ``steps`` optimiser steps on the same small batch and return the losses.

    A debugging check: a correct model and backward pass drive the loss of a few examples
    towards zero; if it stalls, look for a bug before tuning anything.
    """
    _check_xy("x", x, "y", y)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    losses = []
    for _ in range(steps):
        loss, grads = model.loss(x, y)
        optimizer.step(model.params, grads)
        losses.append(float(loss))
    return losses
