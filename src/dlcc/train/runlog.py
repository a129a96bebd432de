"""Where a run's numbers go on disk: ``metrics.csv``, ``history.json`` and TensorBoard."""

from __future__ import annotations

from pathlib import Path

from dlcc.train.history import History


class RunLog:
    """Writes the history to ``directory`` after every epoch; ``directory=None`` writes nothing.

    The CSV and JSON files are rewritten whole from the history rather than appended to: they
    stay small, and a run resumed from an older ``last.pt`` then cannot leave duplicate rows.
    TensorBoard gets one scalar per key (``loss/train``, ``loss/val``, ``accuracy/val``, ...)
    when the ``tensorboard`` package is installed.
    """

    def __init__(self, directory, start_epoch: int = 0):
        self.directory = Path(directory) if directory is not None else None
        self.writer = None
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra: dlcc[tensorboard]
            return
        # purge_step drops events a crashed run logged after its last checkpoint.
        self.writer = SummaryWriter(log_dir=str(self.directory),
                                    purge_step=start_epoch + 1 if start_epoch else None)

    def write(self, history: History) -> None:
        if self.directory is None:
            return
        history.to_csv(self.directory / "metrics.csv")
        history.to_json(self.directory / "history.json")
        if self.writer is not None:
            record = history.epochs[-1]
            for key, value in record.items():
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "val") else f"run/{key}"
                if key != "epoch":
                    self.writer.add_scalar(tag, value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
