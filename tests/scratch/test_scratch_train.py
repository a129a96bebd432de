import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from dlcc.scratch import data, optim, train
from dlcc.scratch.mlp import MLP


@pytest.fixture(scope="module")
def digits():
    return data.load_digits(dtype=np.float32)


def test_fit_history_and_determinism(digits):
    def run():
        model = MLP([64, 32, 10], dtype=np.float32, seed=3)
        return train.fit(model, optim.SGD(0.1), digits.x_train, digits.y_train, epochs=3,
                         batch_size=100, x_val=digits.x_val, y_val=digits.y_val, seed=5)

    history = run()
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                               "seconds"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_acc"] > 0.8 and history[-1]["lr"] == 0.1
    again = run()
    assert [h["train_loss"] for h in again] == [h["train_loss"] for h in history]


def test_fit_applies_the_schedule_every_step_and_skips_val_when_absent(digits):
    model = MLP([64, 10], dtype=np.float32)
    seen = []

    def schedule(step):
        seen.append(step)
        return 0.1 / (1 + step)

    x, y = digits.x_train[:250], digits.y_train[:250]
    history = train.fit(model, optim.SGD(1.0), x, y, epochs=2, batch_size=100,
                        lr_schedule=schedule)
    assert seen == list(range(6))  # 3 batches (100, 100, 50) per epoch
    assert history[-1]["lr"] == pytest.approx(0.1 / 6)
    assert "val_loss" not in history[0] and "val_acc" not in history[0]


def test_fit_verbose_prints_one_line_per_epoch(digits, capsys):
    model = MLP([64, 10], dtype=np.float32)
    train.fit(model, optim.SGD(0.1), digits.x_val, digits.y_val, epochs=2, batch_size=64,
              verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2 train_loss ")


def test_overfit_one_batch_reaches_full_accuracy(digits):
    model = MLP([64, 64, 10], seed=0)
    x, y = digits.x_train[:20].astype(np.float64), digits.y_train[:20]
    losses = train.overfit_one_batch(model, optim.Adam(1e-2), x, y, steps=200)
    assert len(losses) == 200 and losses[-1] < 0.01 * losses[0]
    assert model.accuracy(x, y) == 1.0


@pytest.fixture
def one_blas_thread():
    # On shared cores OpenBLAS threads spin-wait for each other (several times slower), and
    # one thread fixes the summation order, so the run is reproducible to the last bit.
    with threadpool_limits(1):
        yield


def test_mlp_learns_mnist_small(one_blas_thread):
    split = data.load_mnist_small(dtype=np.float32)
    model = MLP([784, 256, 128, 10], l2=1e-3, dtype=np.float32, seed=0)
    epochs, batch_size = 12, 64
    total = epochs * -(-len(split.x_train) // batch_size)
    train.fit(model, optim.Momentum(0.05), split.x_train, split.y_train, epochs=epochs,
              batch_size=batch_size, lr_schedule=partial(optim.cosine_lr, lr0=0.05,
                                                         total_steps=total))
    assert model.accuracy(split.x_test, split.y_test) >= 0.94


def test_mlp_learns_digits(one_blas_thread, digits):
    model = MLP([64, 128, 10], l2=1e-2, dtype=np.float32, seed=0)
    train.fit(model, optim.Momentum(0.05), digits.x_train, digits.y_train, epochs=20,
              batch_size=32)
    assert model.accuracy(digits.x_test, digits.y_test) >= 0.95


def test_scratch_never_imports_torch():
    code = ("import sys, dlcc.scratch\n"
            "from dlcc.scratch import conv, data, gradcheck, layers, mlp, optim, train\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
