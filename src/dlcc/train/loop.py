"""The training loop: :func:`fit` trains for some epochs, :func:`evaluate` measures a model.

One plain loop in the style of nanoGPT's ``train.py``; every extra (mixed precision,
checkpoints, resuming, early stopping, logging, several processes) is a keyword of ``fit``
(the PyTorch primer, section "The same loop in dlcc.train.fit").
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.optim.lr_scheduler import CyclicLR, OneCycleLR, ReduceLROnPlateau

from dlcc.train.checkpoint import (
    load_checkpoint,
    loader_generators,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dlcc.train.device import autocast, get_device, resolve_amp
from dlcc.train.distributed import (
    all_gather,
    all_reduce_sum,
    barrier,
    broadcast,
    get_rank,
    get_world_size,
    is_main_process,
    unwrap_model,
)
from dlcc.train.history import History
from dlcc.train.progress import Progress
from dlcc.train.runlog import RunLog

Metric = Callable[[torch.Tensor, torch.Tensor], "float | torch.Tensor"]

CHECK_EVERY = 50  # steps between looks at the losses: the loop's only host synchronisation
FP16_SKIP_LIMIT = 25  # overflowing float16 steps in a row after which the run has diverged


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; ``history`` holds the epochs completed before."""

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


class _Totals:
    """Sample-weighted sums of the loss and metrics over one pass.

    :meth:`add` only queues the step's tensors, so the GPU never waits for the host;
    :meth:`check` brings the queue to the host in one transfer for the losses (and one for
    the metrics) and folds it into the sums, float64 Python numbers: a handful of tensor
    operations per :data:`CHECK_EVERY` steps, which matters when steps are short. With
    ``watch`` it also finds the first non-finite loss on any process (the flags are
    all-reduced, so every process reaches the same verdict). ``fp16`` forgives what a
    gradient scaler skips: a non-finite loss counts as divergence only after
    :data:`FP16_SKIP_LIMIT` in a row, and skipped steps are left out of the means.
    """

    def __init__(self, metrics: dict[str, Metric], device, watch=False, fp16=False, run=0):
        self.metrics, self.device, self.watch, self.fp16 = metrics, device, watch, fp16
        self.queue: list = []
        self.sums = [0.0] * (2 + len(metrics))  # loss, each metric, samples
        self.batches, self.run, self.last_loss = 0, run, math.nan  # run: non-finite in a row

    def add(self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        if self.metrics:
            with torch.no_grad():
                outputs = outputs.float()
                values = [fn(outputs, targets) for fn in self.metrics.values()]
        else:
            values = ()
        self.queue.append((loss.detach(), len(targets), values))

    def check(self) -> tuple[int, float] | None:
        """Fold the queue into the sums; ``(batch, loss)`` if the run diverged there."""
        if not self.queue:
            return None
        f64 = {"dtype": torch.float64, "device": self.device}
        losses, sizes, values = zip(*self.queue, strict=True)
        columns = [torch.stack(losses).tolist()]  # one transfer (one synchronisation)
        if self.metrics:  # and one for the metrics (floats or tensors), a row each
            columns += torch.stack([torch.stack([torch.as_tensor(v, **f64) for v in column])
                                    for column in zip(*values, strict=True)]).tolist()
        losses = columns[0]
        bad = [not math.isfinite(loss) for loss in losses]
        weights = [0 if self.fp16 and skipped else n for n, skipped in zip(sizes, bad, strict=True)]
        for i, column in enumerate(columns):
            self.sums[i] += sum(w * v for w, v in zip(weights, column, strict=True) if w > 0)
        self.sums[-1] += sum(weights)
        start, self.queue = self.batches, []
        self.batches += len(losses)
        if not self.watch:
            return None
        flags, last = bad, losses[-1] if math.isfinite(losses[-1]) else 0.0
        if get_world_size() > 1:  # the one collective
            *flags, last = all_reduce_sum(torch.tensor([*flags, last], **f64)).tolist()
        self.last_loss = last / get_world_size()  # the mean over processes, for the bar
        for i, flag in enumerate(flags):
            self.run = self.run + 1 if flag else 0
            if self.run >= (FP16_SKIP_LIMIT if self.fp16 else 1):
                return start + i + 1, losses[i]
        return None

    def means(self, prefix: str) -> tuple[dict[str, float], float]:
        """Averages over every sample seen by every process, and that number of samples."""
        *totals, count = self.sums
        if get_world_size() > 1:
            *totals, count = all_reduce_sum(torch.tensor(self.sums, dtype=torch.float64,
                                                         device=self.device)).tolist()
        names = ["loss", *self.metrics]
        means = {f"{prefix}{n}": t / max(count, 1) for n, t in zip(names, totals, strict=True)}
        return means, count


@torch.no_grad()
def _evaluate(model, loader, loss_fn, metrics, device, dtype) -> _Totals:
    # The plain module: DDP's wrapper has nothing to do in evaluation, and processes may
    # hold different numbers of batches (shard_sampler does not pad).
    model = unwrap_model(model).eval()
    totals = _Totals(metrics, device)
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, dtype):
            outputs = model(x)
            loss = loss_fn(outputs, y)
        totals.add(loss, outputs, y)
        if len(totals.queue) >= CHECK_EVERY:
            totals.check()
    totals.check()
    return totals


def evaluate(model: nn.Module, loader, *, loss_fn, metrics: dict[str, Metric] | None = None,
             device=None, amp: str = "auto") -> dict[str, float]:
    """Mean loss and metrics of ``model`` over ``loader``, e.g. ``{"loss": .., "accuracy": ..}``.

    Means are over samples, and over all processes when run under ``torchrun`` (give each
    process its part with :func:`dlcc.train.distributed.shard_sampler`).
    """
    device = get_device(device)
    metrics = dict(metrics or {})
    model.to(device)
    return _evaluate(model, loader, loss_fn, metrics, device, resolve_amp(amp, device)).means("")[0]


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


def _to_device(model: nn.Module, device: torch.device) -> None:
    """``model.to(device)``, skipped when every tensor is already there (it walks them all)."""
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.device != device for t in tensors):
        model.to(device)


def _length(loader) -> int | None:
    """Batches per epoch, or None for a loader over an iterable data set of unknown size."""
    try:
        return len(loader)
    except TypeError:
        return None


def _set_epoch(loader, epoch: int) -> None:
    """Tell the sampler (a new shard order) and the data set (new augmentations) the epoch."""
    for owner in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if hasattr(owner, "set_epoch"):
            owner.set_epoch(epoch)


def _restore(state, path, model, optimizer, scheduler, scaler, device, generators,
             steps_per_epoch) -> None:
    """Put the state saved in ``path`` back into the training objects and generators."""
    written = (state.get("world_size"), state.get("steps_per_epoch"))
    if written != (get_world_size(), steps_per_epoch):
        raise ValueError(
            f"{path} was written by {written[0]} process(es) taking {written[1]} steps per "
            f"epoch; this run has {get_world_size()} taking {steps_per_epoch}: resume with "
            "the same number of processes and batch size, or use a new checkpoint_dir")
    unwrap_model(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler.is_enabled() and state["scaler"]:  # {} from a run without float16
        scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"][get_rank()], device, generators)


def fit(model: nn.Module, train_loader, val_loader=None, *, loss_fn, optimizer, epochs: int,
        scheduler=None, scheduler_step: str | None = None,
        metrics: dict[str, Metric] | None = None, device=None, amp: str = "auto",
        grad_clip: float | None = None, checkpoint_dir=None, resume: bool = False,
        monitor: str | None = None, monitor_mode: str | None = None,
        early_stopping: int | None = None, progress: str = "auto", log_dir=None,
        config: dict | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs and return the :class:`History`.

    - ``metrics``: name -> ``fn(outputs, targets)``, a batch mean as a float or a 0-d tensor
      (a tensor spares the GPU a synchronisation); reported as ``train_<name>`` and
      ``val_<name>``, averaged over samples.
    - ``scheduler`` steps once per epoch, or once per batch when ``scheduler_step="batch"``.
      The default (``None``) picks per batch for ``OneCycleLR`` and ``CyclicLR``, whose
      schedules are laid out in batches, and per epoch otherwise. ``ReduceLROnPlateau`` is
      stepped each epoch with the monitored value.
    - ``amp``: ``"auto"`` (bfloat16 on GPUs that compute it natively, else float16 with a
      gradient scaler, on CUDA; float32 elsewhere), ``"off"``, ``"bf16"`` or ``"fp16"``.
    - ``grad_clip``: clip the gradients' global norm to this value before each step.
    - ``checkpoint_dir``: save ``last.pt`` after every epoch and ``best.pt`` whenever
      ``monitor`` improves. ``resume=True`` continues from ``last.pt`` (or starts afresh if
      there is none) with the same number of processes and steps per epoch; on a CPU the
      result is bit-for-bit the run that was never interrupted.
    - ``monitor``: the record key that picks the best epoch (default ``val_loss``, or
      ``train_loss`` without a validation loader); ``monitor_mode`` is ``"min"`` or
      ``"max"``, by default ``"min"`` for names ending in ``loss`` and ``"max"`` otherwise.
    - ``early_stopping``: stop after this many epochs in a row without improvement.
    - ``progress``: ``"auto"``, ``"bar"``, ``"epoch"`` or ``"off"`` (see
      :func:`dlcc.train.progress.resolve_progress`).
    - ``log_dir``: where ``metrics.csv``, ``history.json`` and TensorBoard events go
      (default: ``checkpoint_dir``). ``config``: JSON-like dict stored in checkpoints.

    Resuming is exact because nothing random escapes the checkpoint: it holds the global
    generators (Python, numpy, torch) and the loader's own, as they stand at the end of an
    epoch; ``fit`` calls ``set_epoch(epoch)`` on the loader's sampler and data set, so a
    :class:`dlcc.data.Augmented` draws from ``(seed, epoch, index)``. A data set of your own
    may draw from torch's global generator in ``__getitem__``, also in worker processes, as
    long as the workers are not persistent: with ``persistent_workers=True`` their
    generators run on across epochs, out of the checkpoint's sight, and the loader's own
    generator is drawn from once more in the first epoch after a resume.

    Ctrl-C, or any exception, stops training; ``last.pt`` keeps the last completed epoch,
    and a resume redoes the interrupted epoch exactly. Ctrl-C returns the history so far.
    A NaN or infinite loss raises :class:`NonFiniteLossError` and saves nothing; under
    float16 a gradient scaler skips overflowing steps, and only :data:`FP16_SKIP_LIMIT` in
    a row raise. Losses are looked at every :data:`CHECK_EVERY` steps, so a GPU never waits.

    Under ``torchrun`` (an initialised process group) pass a DDP model and a loader with a
    ``DistributedSampler`` (:mod:`dlcc.train.distributed`): ``fit`` sums metrics over
    processes, resumes every process from rank 0's ``last.pt`` and lets only rank 0 print
    and write files.
    """
    metrics = dict(metrics or {})
    history = _new_history(epochs, scheduler_step, resume, checkpoint_dir, config, metrics,
                           val_loader is not None, monitor, monitor_mode)
    per_batch = scheduler_step == "batch" or (
        scheduler_step is None and isinstance(scheduler, (OneCycleLR, CyclicLR)))
    device = get_device(device)
    dtype = resolve_amp(amp, device)
    cast = autocast(device, dtype)  # one context, entered every step
    _to_device(model, device)
    # A disabled scaler passes every call straight through, so one code path serves all dtypes.
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    main = is_main_process()
    generators = loader_generators(train_loader)
    steps_per_epoch = _length(train_loader)

    step = 0
    if resume:  # rank 0 decides and sends its checkpoint: other machines need no copy
        last = checkpoint_dir / "last.pt"
        state = broadcast(load_checkpoint(last) if main and last.is_file() else None)
        if state is not None:
            _restore(state, last, model, optimizer, scheduler, scaler, device, generators,
                     steps_per_epoch)
            history.epochs, step = state["history"], state["step"]

    report = Progress(progress, epochs, enabled=main)
    log = RunLog((log_dir or checkpoint_dir) if main else None, len(history))
    totals = None  # a float16 overflow count carries over from one epoch to the next
    saved = len(history)  # the epoch last.pt holds
    try:
        for epoch in range(len(history) + 1, epochs + 1):
            if early_stopping is not None and history.epochs_since_best() >= early_stopping:
                break
            _set_epoch(train_loader, epoch)
            model.train()
            started = time.perf_counter()
            totals = _Totals(metrics, device, watch=True, fp16=scaler.is_enabled(),
                             run=totals.run if totals is not None else 0)
            for x, y in report.epoch(epoch, train_loader, steps_per_epoch):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with cast:
                    outputs = model(x)
                    loss = loss_fn(outputs, y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)  # skipped by the scaler if float16 overflowed
                scaler.update()
                if scheduler is not None and per_batch:
                    scheduler.step()
                step += 1
                totals.add(loss, outputs, y)
                if len(totals.queue) >= CHECK_EVERY:
                    _stop_if_diverged(totals, epoch, step, history, checkpoint_dir)
                    report.show_loss(totals.last_loss)
            _stop_if_diverged(totals, epoch, step, history, checkpoint_dir)
            train_seconds = time.perf_counter() - started

            train_means, samples = totals.means("train_")
            record = {"epoch": epoch, **train_means}
            if val_loader is not None:
                val = _evaluate(model, val_loader, loss_fn, metrics, device, dtype)
                record.update(val.means("val_")[0])
            record["lr"] = optimizer.param_groups[0]["lr"]
            record["seconds"] = time.perf_counter() - started
            record["samples_per_s"] = samples / max(train_seconds, 1e-9)  # all processes
            history.epochs.append(record)
            if scheduler is not None and not per_batch:
                if isinstance(scheduler, ReduceLROnPlateau):
                    scheduler.step(record[history.monitor])
                else:
                    scheduler.step()
            if checkpoint_dir is not None:
                state = {"model": unwrap_model(model).state_dict(),
                         "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict() if scheduler is not None else None,
                         "scaler": scaler.state_dict(), "epoch": epoch, "step": step,
                         "history": history.epochs, "config": config,
                         "world_size": get_world_size(), "steps_per_epoch": steps_per_epoch,
                         "rng": all_gather(rng_state(device, generators))}  # one per process
                if main:
                    save_checkpoint(state, checkpoint_dir / "last.pt")
                    if history.best is record:
                        save_checkpoint(state, checkpoint_dir / "best.pt")
                barrier()  # no process reads a checkpoint before rank 0 has finished it
                saved = epoch
            report.end_epoch(record)
            log.write(history)
    except KeyboardInterrupt:
        report.close()
        if main:
            kept = (f"; {checkpoint_dir / 'last.pt'} holds epoch {saved} and "
                    "fit(..., resume=True) carries on from there"
                    if checkpoint_dir is not None and saved else "")
            print(f"Interrupted after epoch {len(history)}{kept}.", flush=True)
    finally:
        report.close()
        log.close()
    return history


def _stop_if_diverged(totals: _Totals, epoch: int, step: int, history: History,
                      checkpoint_dir) -> None:
    """Raise :class:`NonFiniteLossError` if the losses queued in ``totals`` say so."""
    diverged = totals.check()
    if diverged is None:
        return
    batch, value = diverged
    where = f"step {step - totals.batches + batch} (batch {batch} of the epoch)"
    what = f"loss is {value}" if not math.isfinite(value) else "another rank's loss is not finite"
    if totals.fp16:
        where += f", the last of {FP16_SKIP_LIMIT} float16 steps in a row that overflowed"
    kept = f"; {checkpoint_dir / 'last.pt'} still holds epoch {epoch - 1}" if (
        checkpoint_dir is not None and epoch > 1) else ""
    raise NonFiniteLossError(f"{what} at epoch {epoch}, {where}; training stopped{kept}", history)
