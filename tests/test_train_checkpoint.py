"""dlcc.train checkpoints: atomic saves, exact resuming, Ctrl-C and a NaN loss."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcc.metrics import accuracy
from dlcc.train import NonFiniteLossError, fit, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def setup(seed=0):
    """A fresh model with dropout, Adam, a scheduler and a seeded shuffling loader.

    Everything random is seeded here, so two calls give two identical starting points.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(120, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x[:96], y[:96]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[96:], y[96:]), batch_size=12)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.8)
    return model, train, val, optimizer, scheduler


def train(epochs, checkpoint_dir=None, resume=False, loss_fn=F.cross_entropy, seed=0):
    model, train_loader, val, optimizer, scheduler = setup(seed)
    history = fit(model, train_loader, val, loss_fn=loss_fn, optimizer=optimizer,
                  scheduler=scheduler, epochs=epochs, metrics={"accuracy": accuracy},
                  checkpoint_dir=checkpoint_dir, resume=resume, progress="off",
                  config={"run": "test", "width": 32})
    return model, history


def assert_same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), f"{name} differs"


def without_time(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")}
            for r in history.epochs]


def interrupt_at(step):
    """A loss function that raises KeyboardInterrupt on the ``step``-th training batch."""
    calls = {"train": 0}

    def loss_fn(outputs, targets):
        if torch.is_grad_enabled():  # training, not validation
            calls["train"] += 1
            if calls["train"] == step:
                raise KeyboardInterrupt
        return F.cross_entropy(outputs, targets)

    return loss_fn


def test_checkpoint_holds_the_whole_training_state(tmp_path):
    model, history = train(3, tmp_path)
    state = load_checkpoint(tmp_path / "last.pt")  # weights_only=True: plain data only
    assert set(state) == {"model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng",
                          "history", "config", "world_size", "steps_per_epoch"}
    assert state["epoch"] == 3 and state["step"] == 3 * 6
    assert (state["world_size"], state["steps_per_epoch"]) == (1, 6)
    assert len(state["rng"]) == 1 and state["rng"][0]["cuda"] is None  # one per process
    assert state["config"] == {"run": "test", "width": 32}
    assert state["history"] == history.epochs
    assert state["scheduler"]["last_epoch"] == 3
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value)


def test_best_checkpoint_is_the_best_epoch(tmp_path):
    _, history = train(4, tmp_path)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == history.best["epoch"]


def test_missing_checkpoint_is_named():
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*nothere.pt"):
        load_checkpoint("nothere.pt")


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, tmp_path / "last.pt")

    def dies_halfway(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint, then the power went")
        raise OSError("disk vanished")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="disk vanished"):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, tmp_path / "last.pt")
    monkeypatch.undo()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_crash_while_saving_during_fit_keeps_last_good_epoch(tmp_path, monkeypatch):
    train(1, tmp_path)
    real_save = torch.save

    def garbage(obj, file, *args, **kwargs):
        file.write(b"\x00garbage")
        raise RuntimeError("killed while saving")

    monkeypatch.setattr(torch, "save", garbage)
    with pytest.raises(RuntimeError, match="killed while saving"):
        train(3, tmp_path, resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_resume_is_bit_for_bit(tmp_path):
    straight, straight_history = train(4)
    train(2, tmp_path)
    resumed, resumed_history = train(4, tmp_path, resume=True)
    assert_same_weights(straight, resumed)
    assert without_time(resumed_history) == without_time(straight_history)
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 1 + 4


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    straight, _ = train(2)
    fresh, history = train(2, tmp_path / "new", resume=True)
    assert_same_weights(straight, fresh)
    assert len(history) == 2


def test_resume_of_a_finished_run_trains_no_more(tmp_path):
    model, _ = train(2, tmp_path)
    again, history = train(2, tmp_path, resume=True)
    assert_same_weights(model, again)
    assert len(history) == 2


def test_ctrl_c_returns_history_and_resume_redoes_the_epoch_exactly(tmp_path, capsys):
    straight, straight_history = train(4)
    # Batch 3 of epoch 2 (6 batches per epoch): last.pt keeps the end of epoch 1.
    _, history = train(4, tmp_path, loss_fn=interrupt_at(6 + 3))
    assert len(history) == 1
    out = capsys.readouterr().out
    assert "Interrupted after epoch 1; " in out and "last.pt holds epoch 1 and fit(" in out
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step"]) == (1, 6)
    resumed, resumed_history = train(4, tmp_path, resume=True)
    assert_same_weights(straight, resumed)
    assert without_time(resumed_history) == without_time(straight_history)


def test_a_crash_mid_epoch_resumes_exactly(tmp_path):
    straight, straight_history = train(3)

    calls = []

    def crash_at_step_10(outputs, targets):
        if torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 10:
                raise RuntimeError("the machine went away")
        return F.cross_entropy(outputs, targets)

    with pytest.raises(RuntimeError, match="the machine went away"):
        train(3, tmp_path, loss_fn=crash_at_step_10)
    resumed, resumed_history = train(3, tmp_path, resume=True)
    assert_same_weights(straight, resumed)
    assert without_time(resumed_history) == without_time(straight_history)


def test_resume_refuses_another_batch_size(tmp_path):
    train(1, tmp_path)
    model, loader, val, optimizer, scheduler = setup()
    loader = DataLoader(loader.dataset, batch_size=32, shuffle=True)
    with pytest.raises(ValueError, match=r"written by 1 process\(es\) taking 6 steps per epoch; "
                                         r"this run has 1 taking 3"):
        fit(model, loader, val, loss_fn=F.cross_entropy, optimizer=optimizer, epochs=2,
            checkpoint_dir=tmp_path, resume=True, progress="off")


def test_fp16_run_resumes_from_a_float32_checkpoint(tmp_path):
    """CPU autocast in float16 with a CPU GradScaler: the path a CUDA fp16 run takes."""
    train(1, tmp_path)  # float32: its scaler state is {}
    model, loader, val, optimizer, scheduler = setup()
    history = fit(model, loader, val, loss_fn=F.cross_entropy, optimizer=optimizer,
                  scheduler=scheduler, epochs=2, amp="fp16", checkpoint_dir=tmp_path,
                  resume=True, progress="off")
    assert [r["epoch"] for r in history.epochs] == [1, 2]
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["scaler"]["scale"] > 0  # the scaler's state is saved from now on
    assert history.epochs[1]["train_loss"] < history.epochs[0]["train_loss"]


def test_ctrl_c_without_checkpoint_dir_returns_history(tmp_path):
    _, history = train(4, loss_fn=interrupt_at(2 * 6 + 1))
    assert [r["epoch"] for r in history.epochs] == [1, 2]
    assert not list(tmp_path.iterdir())


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    calls = {"train": 0}

    def nan_on_step_9(outputs, targets):
        loss = F.cross_entropy(outputs, targets)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if calls["train"] == 9:
                return loss * float("nan")
        return loss

    with pytest.raises(NonFiniteLossError,
                       match=r"loss is nan at epoch 2, step 9 \(batch 3 of the epoch\)") as caught:
        train(4, tmp_path, loss_fn=nan_on_step_9)
    assert isinstance(caught.value, FloatingPointError)
    assert "last.pt still holds epoch 1" in str(caught.value)
    assert len(caught.value.history) == 1
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(w).all() for w in state["model"].values())
