"""Assignment 1: the check of the training loop, which watches how it reads the data."""

from __future__ import annotations

import numpy as np

from dlcc.scratch import data as scratch_data

from ._a1_reference import make_params, reference_forward
from ._report import Report, as_array, changed, shape_of, snapshot, student_check

# --- training loop ---------------------------------------------------------------------------

class _Watched(np.ndarray):
    """An array that records which rows the student's loop reads from it (root array only)."""

    def __new__(cls, array: np.ndarray, log: list):
        obj = np.asarray(array).view(cls)
        obj._log, obj._root = log, True
        return obj

    def __array_finalize__(self, obj):
        self._log, self._root = getattr(obj, "_log", None), False

    def __getitem__(self, index):
        if self._root and self._log is not None:
            rows = _rows(index, len(self))
            if rows is not None:
                self._log.append(rows)
        return super().__getitem__(index)


def _rows(index, n: int) -> np.ndarray | None:
    if isinstance(index, tuple):
        if not index:
            return None
        index = index[0]
    if isinstance(index, slice):
        return np.arange(n)[index]
    if isinstance(index, (int, np.integer)):
        return np.array([int(index) % n])
    try:
        array = np.asarray(index)
    except (TypeError, ValueError):
        return None
    if array.dtype == bool and array.shape[:1] == (n,):
        return np.flatnonzero(array)
    if np.issubdtype(array.dtype, np.integer):
        return array.ravel() % n
    return None


TRAIN = {"lr": 2.0, "l2": 1e-4, "epochs": 8, "batch_size": 32, "seed": 0}


def _training_data(n: int = 300):
    split = scratch_data.load_digits(seed=0)
    return split.x_train[:n], split.y_train[:n]


def _reference_training(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    """Training accuracy after the same run with the library's MLP (sigmoid, plain SGD)."""
    from dlcc.scratch import optim
    from dlcc.scratch.mlp import MLP
    from dlcc.scratch.train import fit

    model = MLP(SIZES_TRAIN, activation="sigmoid", l2=TRAIN["l2"])
    model.params = snapshot(params)
    fit(model, optim.SGD(TRAIN["lr"]), x, y, epochs=TRAIN["epochs"],
        batch_size=TRAIN["batch_size"], seed=TRAIN["seed"])
    return model.accuracy(x, y)


SIZES_TRAIN = [64, 32, 16, 10]


@student_check()
def check_training(report: Report, train) -> None:
    """Check ``train(params, x, y, *, lr, l2, epochs, batch_size, seed)`` on 300 small digits.

    It must update ``params`` in place with mini-batch gradient descent, shuffling the
    examples each epoch, and return the mean training loss of each epoch.
    """
    x, y = _training_data()
    params = make_params(SIZES_TRAIN, np.random.default_rng(3))
    for key in params:
        if key.startswith("b"):
            params[key] = np.zeros_like(params[key])
    start = snapshot(params)
    log_x: list = []
    log_y: list = []
    x_in, y_in = _Watched(x.copy(), log_x), _Watched(y.copy(), log_y)
    history = report.run("train", train, params, x_in, y_in, **TRAIN)
    epochs, n = TRAIN["epochs"], len(x)
    batches = -(-n // TRAIN["batch_size"])
    values = as_array(history)
    if history is None:
        report.fail("train returned None: return the list of mean training losses, one per "
                    "epoch")
    elif values is None or values.ndim != 1:
        report.fail(f"train returned {shape_of(history)}: return a list of numbers, the mean "
                    f"training loss of each epoch")
        values = None
    elif len(values) == epochs * batches:
        report.fail(f"train returned {len(values)} losses, one per mini-batch: return "
                    f"{epochs}, the mean over each epoch's {batches} batches")
        values = values.reshape(epochs, batches).mean(axis=1)
    elif len(values) != epochs:
        report.fail(f"train returned {len(values)} losses for epochs = {epochs}: return one "
                    f"per epoch")
        values = None
    else:
        report.ok(f"returns one loss per epoch ({epochs})")
    if values is not None:
        if not np.all(np.isfinite(values)):
            first = int(np.argmax(~np.isfinite(values))) + 1
            rising = first > 2 and values[first - 2] > values[0]
            why = (f" after rising from {values[0]:.3g}: the update moves up the gradient "
                   f"(check its sign) or the learning rate is far too large" if rising else
                   ": check that the loss uses log-sum-exp, the sign of the update and the "
                   "learning rate")
            report.fail(f"the loss became NaN or inf in epoch {first}{why}")
        elif values[-1] > 2 * values[0]:
            report.fail(f"the loss rose (epoch 1: {values[0]:.4g}, epoch {epochs}: "
                        f"{values[-1]:.4g}): the update moves up the gradient (check its "
                        f"sign) or the learning rate is far too large")
        elif values[-1] >= values[0]:
            report.fail(f"the loss did not fall (epoch 1: {values[0]:.4g}, epoch {epochs}: "
                        f"{values[-1]:.4g}): check the sign of the update and that each "
                        f"step uses the gradients of the current batch")
        else:
            report.ok(f"the loss falls ({values[0]:.3g} -> {values[-1]:.3g})")
    if not changed(start, params):
        report.fail("params did not change: the loop must update params in place (call your "
                    "update function with this params dict)")
        return
    if not np.array_equal(np.asarray(x_in), x) or not np.array_equal(np.asarray(y_in), y):
        report.fail("train modified x or y in place (e.g. np.random.shuffle): shuffle an "
                    "index array instead and use it for both x and y, so that images and "
                    "labels stay paired and the caller's data is untouched")
    _check_visits(report, log_x, log_y, n, epochs)
    acts, _ = reference_forward(params, x)
    accuracy = float(np.mean(acts[-1].argmax(axis=1) == y))  # logits: same argmax
    reference = _reference_training(start, x, y)
    report.check(accuracy >= reference - 0.1,
                 f"training accuracy {accuracy:.2f} after {epochs} epochs (reference "
                 f"{reference:.2f})",
                 f"training accuracy after {epochs} epochs is {accuracy:.2f}, the reference "
                 f"reaches {reference:.2f} with the same settings: check that every batch "
                 f"takes one step with its own gradients and the learning rate lr")


def _check_visits(report: Report, log_x: list, log_y: list, n: int, epochs: int) -> None:
    """What the recorded row reads say about batching and shuffling (skipped if unobserved)."""
    if not log_x:
        return
    seen = np.concatenate(log_x)
    counts = np.bincount(seen, minlength=n)
    if len(seen) < epochs * n or counts.min() == 0:
        per_epoch = len(seen) / epochs
        report.fail(f"each epoch used about {per_epoch:.0f} of the {n} training examples: "
                    f"loop over all mini-batches, including the last, smaller one")
        return
    if log_y and len(log_y) == len(log_x) and not all(
            np.array_equal(a, b) for a, b in zip(log_x, log_y, strict=True)):
        report.fail("x and y were indexed with different rows: the labels no longer belong "
                    "to their images; index both with the same array")
    if len(seen) == epochs * n and epochs > 1:
        orders = seen.reshape(epochs, n)
        if all(np.array_equal(orders[0], row) for row in orders[1:]):
            report.fail("the examples come in the same order every epoch: shuffle them at the "
                        "start of each epoch (rng.permutation(N) with "
                        "rng = np.random.default_rng(seed))")
            return
    report.ok("every example is used, in a fresh order each epoch")
