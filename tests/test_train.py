"""dlcc.train: the loop, its keywords, History, progress and run logs, on tiny models."""

import json
import random
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcc.metrics import accuracy
from dlcc.train import History, evaluate, fit, get_device, seed_everything
from dlcc.train.device import resolve_amp
from dlcc.train.progress import resolve_progress

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def blobs(n=192, seed=0):
    """Three well separated Gaussian clusters in 8 dimensions: (x, y) tensors."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.eye(3, 8) * 4
    return centres[y] + torch.randn(n, 8, generator=g), y


def loaders(batch_size=32, seed=0):
    x, y = blobs(seed=seed)
    train = DataLoader(TensorDataset(x[:128], y[:128]), batch_size=batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[128:], y[128:]), batch_size=64)
    return train, val


def tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


def run(epochs=3, lr=0.1, **kwargs):
    model = tiny()
    train, val = loaders()
    optimizer = kwargs.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=lr)
    kwargs.setdefault("progress", "off")
    history = fit(model, train, val, loss_fn=F.cross_entropy, optimizer=optimizer,
                  epochs=epochs, metrics={"accuracy": accuracy}, **kwargs)
    return model, history


def test_get_device_rules():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert get_device() == torch.device("cpu") or get_device().type == "mps"
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")
    with pytest.raises(ValueError, match="not a device name"):
        get_device("gpu7")


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), torch.rand(1).item()

    seed_everything(3)
    first = draw()
    seed_everything(3)
    assert draw() == first
    assert seed_everything(4) is None


def test_fit_learns_and_records_every_key():
    _, history = run(epochs=4)
    assert [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]
    assert list(history.epochs[0]) == ["epoch", "train_loss", "train_accuracy", "val_loss",
                                       "val_accuracy", "lr", "seconds", "samples_per_s"]
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert history.epochs[-1]["val_accuracy"] > 0.9
    assert all(r["lr"] == 0.1 and r["seconds"] > 0 and r["samples_per_s"] > 0
               for r in history.epochs)
    assert history.best == min(history.epochs, key=lambda r: r["val_loss"])


def test_evaluate_averages_over_samples_not_batches():
    x, y = torch.zeros(10, 8), torch.tensor([1] * 4 + [0] * 4 + [1, 1])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)  # batches of 4, 4 and 2
    result = evaluate(nn.Linear(8, 2), loader, loss_fn=F.cross_entropy,
                      metrics={"ones": lambda out, t: t.float().mean().item()})
    assert result["ones"] == pytest.approx(0.6)  # batch means would give (1 + 0 + 1) / 3
    assert set(result) == {"loss", "ones"}


def test_scheduler_steps_per_epoch_by_default():
    model = tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    _, history = run(epochs=3, optimizer=optimizer, scheduler=scheduler)
    # Each record holds the rate the epoch trained with.
    assert history.column("lr") == pytest.approx([0.1, 0.05, 0.025])


def test_onecycle_steps_per_batch():
    model = tiny()
    train, _ = loaders()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5,
                                                    total_steps=3 * len(train))
    # OneCycleLR raises if stepped past total_steps, so 3 epochs of batches must fit exactly.
    _, history = run(epochs=3, optimizer=optimizer, scheduler=scheduler)
    assert scheduler.last_epoch == 3 * len(train)
    assert history.epochs[-1]["lr"] < 0.05 < history.epochs[0]["lr"]  # annealed from the peak


def test_scheduler_step_can_be_forced_per_batch():
    model = tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    train, _ = loaders()
    run(epochs=2, optimizer=optimizer, scheduler=scheduler, scheduler_step="batch")
    assert scheduler.last_epoch == 2 * len(train)


def test_reduce_on_plateau_is_stepped_with_the_monitored_value():
    model = tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # Only a drop of 10 would count as better: every epoch after the first is a plateau.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, patience=0, factor=0.5, threshold=10, threshold_mode="abs")
    _, history = run(epochs=4, optimizer=optimizer, scheduler=scheduler)
    assert history.column("lr") == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_early_stopping_after_patience_epochs_without_improvement():
    # lr = 0: the first epoch sets the best val_loss and no later epoch beats it.
    _, history = run(epochs=10, lr=0.0, early_stopping=2)
    assert len(history) == 3


def test_monitor_picks_best_epoch_and_its_mode():
    _, history = run(epochs=3, monitor="val_accuracy")
    assert (history.monitor, history.mode) == ("val_accuracy", "max")
    assert history.best["val_accuracy"] == max(history.column("val_accuracy"))
    with pytest.raises(ValueError, match="monitor 'val_dice' is not recorded"):
        run(epochs=1, monitor="val_dice")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        run(epochs=-1)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        run(epochs=1, resume=True)
    with pytest.raises(TypeError, match="config must hold only JSON types"):
        run(epochs=1, config={"model": nn.Linear(1, 1)})
    with pytest.raises(ValueError, match="monitor_mode must be"):
        run(epochs=1, monitor_mode="up")
    with pytest.raises(ValueError, match="amp must be one of"):
        run(epochs=1, amp="fp8")


class DtypeSpy(nn.Module):
    """Records the dtype its first layer computes in."""

    def __init__(self):
        super().__init__()
        self.layer, self.seen = nn.Linear(8, 3), set()

    def forward(self, x):
        out = self.layer(x)
        self.seen.add(out.dtype)
        return out


def test_amp_bf16_runs_autocast_on_cpu():
    model = DtypeSpy()
    train, val = loaders()
    history = fit(model, train, val, loss_fn=F.cross_entropy, epochs=2, amp="bf16",
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress="off")
    assert model.seen == {torch.bfloat16}
    assert model.layer.weight.dtype == torch.float32  # the master weights stay float32
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


def test_amp_auto_is_float32_on_cpu_and_fp16_runs_with_a_scaler():
    model = DtypeSpy()
    train, _ = loaders()
    fit(model, train, loss_fn=F.cross_entropy, epochs=1, device="cpu", progress="off",
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert model.seen == {torch.float32}
    model = DtypeSpy()
    history = fit(model, train, loss_fn=F.cross_entropy, epochs=2, device="cpu", amp="fp16",
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress="off")
    assert model.seen == {torch.float16} and model.layer.weight.dtype == torch.float32
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


@pytest.mark.parametrize("capability,dtype", [((7, 5), torch.float16),  # T4: emulated bf16
                                              ((7, 0), torch.float16),  # V100
                                              ((8, 0), torch.bfloat16),  # A100
                                              ((9, 0), torch.bfloat16)])  # H100
def test_amp_auto_picks_bf16_only_where_the_device_computes_it(monkeypatch, capability, dtype):
    asked = []

    def get_device_capability(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", get_device_capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # emulation
    assert resolve_amp("auto", torch.device("cuda", 1)) == dtype
    assert asked == [torch.device("cuda", 1)]  # the target device, not the current one
    assert resolve_amp("bf16", torch.device("cuda", 1)) == torch.bfloat16  # asked for: given
    assert resolve_amp("off", torch.device("cuda", 1)) is None


def test_grad_clip_bounds_the_step():
    model = nn.Linear(8, 3)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = blobs(n=32)
    loader = DataLoader(TensorDataset(x * 100, y), batch_size=32)  # one huge-gradient step
    fit(model, loader, loss_fn=F.cross_entropy, epochs=1, grad_clip=1e-3, progress="off",
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before,
                                                                  strict=True)])
    assert 0 < moved.norm().item() <= 1e-3 * (1 + 1e-5)


def test_epoch_progress_prints_one_clean_line_per_epoch(capsys):
    run(epochs=2, progress="epoch")
    out, err = capsys.readouterr()
    assert "\r" not in out + err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2")
    assert "val_accuracy" in lines[1] and "samples/s" in lines[1]


def test_off_progress_prints_nothing(capsys):
    run(epochs=1, progress="off")
    assert capsys.readouterr() == ("", "")


def test_bar_progress_draws_a_bar_per_epoch(capsys):
    run(epochs=2, progress="bar")
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "batch" in err


def test_auto_progress_follows_environment(monkeypatch):
    monkeypatch.setenv("DLCC_PROGRESS", "epoch")
    assert resolve_progress("auto") == "epoch"
    monkeypatch.setenv("DLCC_PROGRESS", "off")
    assert resolve_progress("auto") == "off"
    monkeypatch.setenv("DLCC_PROGRESS", "auto")  # same as unset
    assert resolve_progress("auto") == "epoch"
    monkeypatch.delenv("DLCC_PROGRESS")
    # pytest captures stderr, so it is not a terminal: a log file gets clean lines.
    assert resolve_progress("auto") == "epoch"
    assert resolve_progress("bar") == "bar"
    with pytest.raises(ValueError, match="progress must be one of"):
        resolve_progress("verbose")


def test_history_json_round_trip(tmp_path):
    _, history = run(epochs=2)
    text = history.to_json(tmp_path / "h.json")
    assert json.loads(text)["epochs"] == history.epochs
    assert History.from_json(tmp_path / "h.json") == history
    assert History.from_json(str(tmp_path / "h.json")).best == history.best
    with pytest.raises(OSError):
        History.from_json(text)  # a path, not JSON text


def test_history_plot_has_titled_labelled_panels():
    _, history = run(epochs=2)
    fig = history.plot()
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss per epoch", "accuracy per epoch"]
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel()
        assert [line.get_label() for line in ax.lines] == ["train", "val"]
    assert len(history.plot(metrics=["accuracy"]).axes) == 1


def test_run_directory_gets_csv_json_and_tensorboard(tmp_path):
    _, history = run(epochs=3, log_dir=tmp_path / "logs")
    rows = (tmp_path / "logs" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,train_accuracy,val_loss")
    assert len(rows) == 1 + 3
    saved = json.loads((tmp_path / "logs" / "history.json").read_text())
    assert saved["epochs"] == history.epochs
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))


class Stream(torch.utils.data.IterableDataset):
    """A data set without a length, as from a generator or a web stream."""

    def __iter__(self):
        x, y = blobs(n=64)
        yield from zip(x, y, strict=True)


def test_fit_accepts_a_loader_of_unknown_length(capsys):
    model = tiny()
    history = fit(model, DataLoader(Stream(), batch_size=16), loss_fn=F.cross_entropy,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=2,
                  progress="bar")
    assert len(history) == 2 and "epoch 2/2" in capsys.readouterr().err


def test_losses_reach_the_host_once_per_check_not_once_per_step(monkeypatch):
    """On a GPU every .item() or .tolist() waits for the GPU; fit batches them."""
    from dlcc.train.loop import CHECK_EVERY

    x, y = blobs(n=4 * CHECK_EVERY)
    loader = DataLoader(TensorDataset(x, y), batch_size=2)  # 2 * CHECK_EVERY steps an epoch
    model = nn.Linear(8, 3)
    syncs = []

    def counted(name):
        real = getattr(torch.Tensor, name)

        def call(self, *args):
            if sys._getframe(1).f_globals["__name__"].startswith("dlcc."):  # not the loader
                syncs.append(name)
            return real(self, *args)
        return call

    for name in ("item", "tolist", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    fit(model, loader, loss_fn=F.cross_entropy, epochs=2, progress="off",
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    # Per epoch: two checks of CHECK_EVERY losses (the means are summed on the host by then),
    # 200 steps in all.
    assert syncs == ["tolist"] * 4
