"""The training loop: :func:`fit` trains for some epochs, :func:`evaluate` measures a model.

One plain loop in the style of nanoGPT's ``train.py``; every extra (mixed precision,
checkpoints, resuming, early stopping, logging, several processes) is a keyword of ``fit``
(chapter "The training loop").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import torch
from torch import nn
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

from dlcc.distributed import all_reduce_sum, barrier, is_distributed, is_main_process, unwrap_model
from dlcc.train.checkpoint import (
    load_checkpoint,
    loader_generators,
    rng_state,
    save_checkpoint,
    set_rng_state,
    torch_rng_state,
)
from dlcc.train.device import autocast, get_device, resolve_amp
from dlcc.train.history import History
from dlcc.train.progress import Progress
from dlcc.train.runlog import RunLog

Metric = Callable[[torch.Tensor, torch.Tensor], float]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; ``history`` holds the epochs completed before."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


@dataclass
class _Sums:
    """Sample-weighted running totals for one pass over a loader."""

    names: list[str]
    values: list[float] = field(default_factory=list)
    count: int = 0

    def __post_init__(self):
        self.values = self.values or [0.0] * (1 + len(self.names))

    def add(self, loss: float, outputs, targets, metrics: dict[str, Metric], n: int) -> None:
        self.values[0] += loss * n
        for i, fn in enumerate(metrics.values(), start=1):
            self.values[i] += float(fn(outputs, targets)) * n
        self.count += n

    def means(self, device: torch.device, prefix: str = "") -> dict[str, float]:
        """Averages over every sample seen by every process (one all-reduce when distributed)."""
        # float64 sums: exact sample counts; on the training device only when NCCL needs it.
        totals = torch.tensor([*self.values, self.count], dtype=torch.float64,
                              device=device if is_distributed() else "cpu")
        totals = all_reduce_sum(totals).tolist()
        count = max(totals[-1], 1)
        return {f"{prefix}{name}": total / count
                for name, total in zip(["loss", *self.names], totals[:-1], strict=True)}


@torch.no_grad()
def _evaluate(model, loader, loss_fn, metrics, device, dtype) -> _Sums:
    model.eval()
    sums = _Sums(list(metrics))
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, dtype):
            outputs = model(x)
            loss = loss_fn(outputs, y)
        sums.add(loss.item(), outputs.float(), y, metrics, len(x))
    return sums


def evaluate(model: nn.Module, loader, *, loss_fn, metrics: dict[str, Metric] | None = None,
             device=None, amp: str = "auto") -> dict[str, float]:
    """Mean loss and metrics of ``model`` over ``loader``, e.g. ``{"loss": .., "accuracy": ..}``.

    Means are over samples, and over all processes when run under ``torchrun``.
    """
    device = get_device(device)
    metrics = dict(metrics or {})
    model.to(device)
    sums = _evaluate(model, loader, loss_fn, metrics, device, resolve_amp(amp, device))
    return sums.means(device)


def _new_history(epochs, scheduler_step, resume, checkpoint_dir, config, metrics,
                 has_val, monitor, monitor_mode) -> History:
    """Check fit's arguments; an empty History that knows which key it monitors."""
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if scheduler_step not in (None, "epoch", "batch"):
        raise ValueError(f"scheduler_step must be 'epoch', 'batch' or None, got {scheduler_step!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir, the directory holding last.pt")
    try:
        json.dumps(config)
    except TypeError as error:
        raise TypeError("config must hold only JSON types (dict, list, str, number): "
                        f"{error}") from None
    names = ["train_loss", *(f"train_{m}" for m in metrics)]
    if has_val:
        names += ["val_loss", *(f"val_{m}" for m in metrics)]
    monitor = monitor or ("val_loss" if has_val else "train_loss")
    if monitor not in names:
        raise ValueError(f"monitor {monitor!r} is not recorded; choose one of {names}")
    if monitor_mode not in (None, "min", "max"):
        raise ValueError(f"monitor_mode must be 'min', 'max' or None, got {monitor_mode!r}")
    return History(monitor=monitor,
                   mode=monitor_mode or ("min" if monitor.endswith("loss") else "max"))


def _length(loader) -> int | None:
    """Batches per epoch, or None for a loader over an iterable data set of unknown size."""
    try:
        return len(loader)
    except TypeError:
        return None


def _restore(path, model, optimizer, scheduler, scaler, generators) -> dict:
    """Load ``path`` into the training objects and the random generators; return it."""
    state = load_checkpoint(path)
    unwrap_model(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    # strict=False: a loader rebuilt without a generator simply reshuffles from global RNG.
    for generator, generator_state in zip(generators, state["loader_rng"], strict=False):
        generator.set_state(generator_state)
    return state


def fit(model: nn.Module, train_loader, val_loader=None, *, loss_fn, optimizer, epochs: int,
        scheduler=None, scheduler_step: str | None = None,
        metrics: dict[str, Metric] | None = None, device=None, amp: str = "auto",
        grad_clip: float | None = None, checkpoint_dir=None, resume: bool = False,
        monitor: str | None = None, monitor_mode: str | None = None,
        early_stopping: int | None = None, progress: str = "auto", log_dir=None,
        config: dict | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs and return the :class:`History`.

    - ``metrics``: name -> ``fn(outputs, targets) -> float`` (a batch mean); reported as
      ``train_<name>`` and ``val_<name>``, averaged over samples.
    - ``scheduler`` steps once per epoch, or once per batch when ``scheduler_step="batch"``.
      The default (``None``) picks per batch for ``OneCycleLR`` and ``CyclicLR``, whose
      schedules are laid out in batches, and per epoch otherwise. ``ReduceLROnPlateau`` is
      stepped each epoch with the monitored value.
    - ``amp``: ``"auto"`` (bfloat16, or float16 with a gradient scaler, on CUDA; float32
      elsewhere), ``"off"``, ``"bf16"`` (also on CPU) or ``"fp16"`` (CUDA only).
    - ``grad_clip``: clip the gradients' global norm to this value before each step.
    - ``checkpoint_dir``: save ``last.pt`` every epoch and ``best.pt`` whenever ``monitor``
      improves. ``resume=True`` continues from ``last.pt`` (or starts afresh if there is
      none); on a CPU the result is bit-for-bit the run that was never interrupted.
    - ``monitor``: the record key that picks the best epoch (default ``val_loss``, or
      ``train_loss`` without a validation loader); ``monitor_mode`` is ``"min"`` or
      ``"max"``, by default ``"min"`` for names ending in ``loss`` and ``"max"`` otherwise.
    - ``early_stopping``: stop after this many epochs in a row without improvement.
    - ``progress``: ``"auto"``, ``"bar"``, ``"epoch"`` or ``"off"`` (see
      :func:`dlcc.train.progress.resolve_progress`).
    - ``log_dir``: where ``metrics.csv``, ``history.json`` and TensorBoard events go
      (default: ``checkpoint_dir``). ``config``: JSON-like dict stored in checkpoints.

    Ctrl-C stops training cleanly: the state is saved to ``last.pt`` (mid-epoch, so a resume
    carries on from the very next batch) and the history of completed epochs is returned.
    A NaN or infinite loss raises :class:`NonFiniteLossError` and saves nothing.

    Under ``torchrun`` (an initialised process group) pass a DDP model and a loader with a
    ``DistributedSampler``: ``fit`` sets the sampler's epoch, sums metrics over processes and
    lets only rank 0 print and write files.
    """
    metrics = dict(metrics or {})
    history = _new_history(epochs, scheduler_step, resume, checkpoint_dir, config, metrics,
                           val_loader is not None, monitor, monitor_mode)
    monitor = history.monitor
    per_batch = scheduler_step == "batch" or (
        scheduler_step is None and isinstance(scheduler, (OneCycleLR, CyclicLR)))

    device = get_device(device)
    dtype = resolve_amp(amp, device)
    model.to(device)
    # A disabled scaler passes every call straight through, so one code path serves all dtypes.
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    main = is_main_process()
    generators = loader_generators(train_loader)
    cuda = device.type == "cuda"

    # Where the loop starts: fresh, or the exact point where last.pt was written.
    start_epoch, step, best, bad_epochs, resumed = 0, 0, None, 0, None
    if resume and (checkpoint_dir / "last.pt").is_file():
        resumed = _restore(checkpoint_dir / "last.pt", model, optimizer, scheduler, scaler,
                           generators)
        history.epochs = list(resumed["history"])
        start_epoch, step = resumed["epoch"], resumed["step"]
        best, bad_epochs = resumed["best"], resumed["bad_epochs"]

    def checkpoint(epoch, sums=None, done=0, step_rng=None, epoch_rng=None):
        """The whole training state; mid-epoch when ``done`` batches of ``epoch + 1`` ran."""
        rng, loader_rng = epoch_rng or (rng_state(), [g.get_state() for g in generators])
        return {"model": unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict(), "epoch": epoch, "step": step,
                "batches_done": done, "sums": sums and (sums.values, sums.count),
                "step_rng": step_rng, "rng": rng, "loader_rng": loader_rng,
                "history": history.epochs[:epoch], "best": best, "bad_epochs": bad_epochs,
                "config": config}

    report = Progress(progress, epochs, enabled=main)
    log = RunLog((log_dir or checkpoint_dir) if main else None, start_epoch)
    sums, done, step_rng, epoch_rng = None, 0, None, None
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            if early_stopping is not None and bad_epochs >= early_stopping:
                break
            sampler = getattr(train_loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shard order per epoch
                sampler.set_epoch(epoch)
            epoch_rng = (rng_state(), [g.get_state() for g in generators])
            started = time.perf_counter()
            sums, done = _Sums(list(metrics)), 0
            batches = iter(train_loader)
            if resumed is not None and resumed["batches_done"]:
                # Replay the interrupted epoch's data order up to where Ctrl-C stopped it.
                done = resumed["batches_done"]
                values, count = resumed["sums"]
                sums.values, sums.count = list(values), count
                for _ in islice(batches, done):
                    pass
                step_rng = resumed["step_rng"]
                set_rng_state(step_rng)
            resumed = None
            report.start_epoch(epoch, _length(train_loader), done)

            model.train()
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with autocast(device, dtype):
                    outputs = model(x)
                    loss = loss_fn(outputs, y)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    kept = f"; {checkpoint_dir / 'last.pt'} still holds epoch {epoch - 1}" if (
                        checkpoint_dir is not None and epoch > 1) else ""
                    raise NonFiniteLossError(
                        f"loss is {loss_value} at epoch {epoch}, step {step + 1} (batch "
                        f"{done + 1} of the epoch); training stopped{kept}", history)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None and per_batch:
                    scheduler.step()
                step, done = step + 1, done + 1
                with torch.no_grad():
                    sums.add(loss_value, outputs.float(), y, metrics, len(x))
                step_rng = torch_rng_state(cuda)
                report.step(loss_value)
            train_seconds = time.perf_counter() - started

            record = {"epoch": epoch, **sums.means(device, "train_")}
            if val_loader is not None:
                val = _evaluate(model, val_loader, loss_fn, metrics, device, dtype)
                record.update(val.means(device, "val_"))
            record["lr"] = optimizer.param_groups[0]["lr"]
            record["seconds"] = time.perf_counter() - started
            record["samples_per_s"] = sums.count / max(train_seconds, 1e-9)
            history.epochs.append(record)
            if scheduler is not None and not per_batch:
                if isinstance(scheduler, ReduceLROnPlateau):
                    scheduler.step(record[monitor])
                else:
                    scheduler.step()
            improved = history.is_better(record[monitor], best)
            best, bad_epochs = (record[monitor], 0) if improved else (best, bad_epochs + 1)
            # From here on the epoch counts as done: Ctrl-C saves an end-of-epoch checkpoint.
            epoch_rng, sums, done = None, None, 0
            if checkpoint_dir is not None:
                if main:
                    state = checkpoint(epoch)
                    save_checkpoint(state, checkpoint_dir / "last.pt")
                    if improved:
                        save_checkpoint(state, checkpoint_dir / "best.pt")
                barrier()  # no process reads a checkpoint before rank 0 has finished it
            report.end_epoch(record)
            log.write(history)
    except KeyboardInterrupt:
        report.close()
        completed = len(history.epochs) if epoch_rng is None else epoch - 1
        del history.epochs[completed:]
        if checkpoint_dir is not None and main:
            state = checkpoint(completed, sums, done, step_rng, epoch_rng)
            save_checkpoint(state, checkpoint_dir / "last.pt")
            print(f"Interrupted at epoch {completed + 1}, step {step}: saved "
                  f"{checkpoint_dir / 'last.pt'}; fit(..., resume=True) carries on.", flush=True)
    finally:
        report.close()
        log.close()
    return history
