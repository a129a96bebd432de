"""What a training run measured, epoch by epoch: plain data that saves to JSON and plots."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class History:
    """Per-epoch records of a run, in order.

    ``epochs[i]`` is a dict with ``epoch`` (counting from 1), ``train_loss``, ``val_loss``
    (with a validation loader), ``train_<metric>`` and ``val_<metric>`` for each metric,
    ``lr``, ``seconds`` and ``samples_per_s``. ``monitor`` names the key that decides the
    best epoch; ``mode`` says whether smaller (``"min"``) or larger (``"max"``) is better.
    """

    epochs: list[dict[str, Any]] = field(default_factory=list)
    monitor: str = "val_loss"
    mode: str = "min"

    def __len__(self) -> int:
        return len(self.epochs)

    def column(self, key: str) -> list:
        """One value per epoch for ``key`` (``None`` where an epoch lacks it)."""
        return [record.get(key) for record in self.epochs]

    def is_better(self, value: float, than: float | None) -> bool:
        if than is None or math.isnan(than):
            return not math.isnan(value)
        return value < than if self.mode == "min" else value > than

    @property
    def best(self) -> dict[str, Any] | None:
        """The record of the epoch with the best ``monitor`` value (earliest on ties)."""
        best = None
        for record in self.epochs:
            value = record.get(self.monitor)
            if value is not None and self.is_better(value, best and best[self.monitor]):
                best = record
        return best

    def epochs_since_best(self) -> int:
        """Epochs recorded after the best one (all of them if none has a valid value)."""
        best = self.best
        return len(self.epochs) - (self.epochs.index(best) + 1 if best is not None else 0)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The history as JSON text; also written to ``path`` when one is given."""
        text = json.dumps({"monitor": self.monitor, "mode": self.mode, "epochs": self.epochs},
                          indent=1)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        """Read the file that :meth:`to_json` wrote (e.g. a run's ``history.json``)."""
        data = json.loads(Path(path).read_text())
        return cls(epochs=data["epochs"], monitor=data["monitor"], mode=data["mode"])

    def to_csv(self, path: str | os.PathLike) -> None:
        """One row per epoch; the header is every key seen, in first-seen order."""
        keys = list(dict.fromkeys(key for record in self.epochs for key in record))
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.epochs)

    def plot(self, metrics: list[str] | None = None):
        """A matplotlib Figure with one panel per metric, training and validation curves.

        ``metrics`` are names without the ``train_``/``val_`` prefix, e.g.
        ``["loss", "accuracy"]``; the default is the loss followed by every metric recorded.
        The figure is built without pyplot, so a notebook shows it once (as the cell's value)
        and a script saves it with ``fig.savefig(...)``.
        """
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        if metrics is None:
            names = [key.split("_", 1)[1] for key in (self.epochs[0] if self.epochs else {})
                     if key.startswith(("train_", "val_"))]
            metrics = list(dict.fromkeys(names)) or ["loss"]
        fig = Figure(figsize=(4.5 * len(metrics), 3.4), layout="constrained")
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        epochs = self.column("epoch")
        for ax, name in zip(axes, metrics, strict=True):
            for split in ("train", "val"):
                values = self.column(f"{split}_{name}")
                if any(v is not None for v in values):
                    ax.plot(epochs, values, marker="o", markersize=3, label=split)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            ax.set_title(f"{name} per epoch")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            if ax.lines:
                ax.legend()
        return fig
