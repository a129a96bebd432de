"""Exact resume when the data pipeline draws random numbers of its own (issue 18).

A run of 3 epochs straight must equal, bit for bit, the same run stopped and resumed: after
epoch 1, by Ctrl-C in the middle of epoch 2, and by a crash in the middle of epoch 2. The
pipelines: dlcc's ``Augmented`` and a user's data set drawing from torch's global generator
in ``__getitem__``, each with the loader in the process and with two worker processes.
"""

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dlcc.data import Augmented, make_loader, random_crop
from dlcc.train import fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS, STEPS = 3, 4  # 64 samples, batch 16


def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 4, (64,), generator=g)


class GlobalNoise(Dataset):
    """A user's data set: noise from torch's global generator on every item."""

    def __init__(self):
        self.x, self.y = images()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index] + 0.3 * torch.randn(self.x[index].shape), self.y[index]


def pipeline(kind, workers):
    if kind == "global":
        return make_loader(GlobalNoise(), 16, shuffle=True, seed=0, num_workers=workers)
    data = Augmented(TensorDataset(*images()), functools.partial(random_crop, padding=2), seed=0)
    return make_loader(data, 16, shuffle=True, seed=0, num_workers=workers)


def stop_at(step, error):
    calls = []

    def loss_fn(outputs, targets):
        calls.append(1)
        if len(calls) == step:
            raise error
        return F.cross_entropy(outputs, targets)

    return loss_fn


def run(kind, workers, epochs=EPOCHS, checkpoint_dir=None, resume=False,
        loss_fn=F.cross_entropy):
    torch.manual_seed(1)  # the model's weights and dropout draw from the global generator
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, 4))
    history = fit(model, pipeline(kind, workers), loss_fn=loss_fn, epochs=epochs,
                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress="off",
                  checkpoint_dir=checkpoint_dir, resume=resume)
    return model.state_dict(), history.column("train_loss")


CASES = [("augmented", 0), ("augmented", 2), ("global", 0), ("global", 2)]


@pytest.mark.parametrize("kind,workers", CASES)
def test_stopped_and_resumed_equals_straight(tmp_path, kind, workers):
    weights, losses = run(kind, workers)
    assert len(set(losses)) == EPOCHS  # the epochs differ: new draws every epoch

    stops = {"after epoch 1": {"epochs": 1},
             "Ctrl-C mid-epoch 2": {"loss_fn": stop_at(STEPS + 2, KeyboardInterrupt)},
             "crash mid-epoch 2": {"loss_fn": stop_at(STEPS + 2, RuntimeError("crash"))}}
    for name, stop in stops.items():
        directory = tmp_path / name
        try:
            run(kind, workers, checkpoint_dir=directory, **stop)
        except RuntimeError as error:
            assert str(error) == "crash"
        resumed, resumed_losses = run(kind, workers, checkpoint_dir=directory, resume=True)
        assert resumed_losses == losses, name
        for key, value in weights.items():
            assert torch.equal(resumed[key], value), f"{name}: {key} differs"


def test_augmented_epochs_are_a_function_of_seed_epoch_and_index():
    data = Augmented(TensorDataset(*images()), functools.partial(random_crop, padding=2), seed=0)
    first = [data[i][0] for i in range(3)]
    data.set_epoch(2)
    second = [data[i][0] for i in range(3)]
    assert not any(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    other = Augmented(TensorDataset(*images()), functools.partial(random_crop, padding=2),
                      seed=0)
    other.set_epoch(2)
    assert all(torch.equal(other[i][0], second[i]) for i in (2, 0, 1))  # any order
    data.set_epoch(0)
    assert all(torch.equal(data[i][0], first[i]) for i in range(3))


def test_persistent_workers_see_set_epoch():
    data = Augmented(TensorDataset(*images()), functools.partial(random_crop, padding=2), seed=0)
    loader = DataLoader(data, batch_size=16, num_workers=2, persistent_workers=True)
    for epoch in (1, 2):
        data.set_epoch(epoch)
        batches = torch.cat([x for x, _ in loader])
        assert torch.equal(batches, torch.stack([data[i][0] for i in range(len(data))]))
    assert not torch.equal(batches, TensorDataset(*images())[:][0])
