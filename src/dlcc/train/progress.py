"""How a run reports itself while it trains: a live bar, one line per epoch, or nothing.

A live bar redraws itself with carriage returns, which is right in a terminal or a notebook
but leaves a smear of half-lines in a log file (``nohup``, ``tmux`` scrollback, CI) and in an
executed book page. So ``"auto"`` picks the bar only where someone is watching live.
"""

from __future__ import annotations

import os
import sys
from typing import Any

PROGRESS_MODES = ("auto", "bar", "epoch", "off")


def _in_live_notebook() -> bool:
    """True inside a Jupyter or Colab kernel, where tqdm draws an HTML widget."""
    if "google.colab" in sys.modules:
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def resolve_progress(progress: str) -> str:
    """Turn ``"auto"`` into a concrete mode.

    Order: the ``DLCC_PROGRESS`` environment variable (the book build sets it to ``epoch``,
    because it executes pages in kernels that look live), then ``"bar"`` when stderr is a
    terminal or inside a notebook, else ``"epoch"``.
    """
    if progress == "auto":
        progress = os.environ.get("DLCC_PROGRESS", "").strip().lower() or "auto"
    if progress == "auto":
        progress = "bar" if sys.stderr.isatty() or _in_live_notebook() else "epoch"
    if progress not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {PROGRESS_MODES}, got {progress!r}")
    return progress


def format_record(record: dict[str, Any], epochs: int) -> str:
    """One readable line for an epoch's record, e.g. ``epoch 3/10  train_loss 0.4123 ...``."""
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key in ("epoch", "seconds", "samples_per_s", "lr"):
            continue
        parts.append(f"{key} {value:.4f}")
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['seconds']:.1f}s")
    parts.append(f"{record['samples_per_s']:,.0f} samples/s")
    return "  ".join(parts)


def _tqdm():
    """tqdm's notebook widget where it can draw (it needs ipywidgets), else the text bar.

    ``tqdm.auto`` alone would warn "IProgress not found" in a notebook without ipywidgets;
    the text bar redraws fine in a live notebook cell.
    """
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm


class Progress:
    """Reports for one run in the chosen mode; every method is a no-op where it does not apply."""

    def __init__(self, mode: str, epochs: int, enabled: bool = True):
        self.mode = resolve_progress(mode) if enabled else "off"
        self.epochs = epochs
        self.bar = None

    def epoch(self, epoch: int, loader, batches: int | None = None):
        """The batches of ``loader`` for one epoch: behind a live bar in ``"bar"`` mode, else
        the loader itself (nothing runs per step). ``batches``: the bar's total, when
        ``len(loader)`` is unknown or not the number of steps."""
        if self.mode != "bar":
            return loader
        if batches is None:
            try:
                batches = len(loader)
            except TypeError:  # an iterable data set of unknown size
                batches = None
        self.bar = _tqdm()(loader, total=batches, desc=f"epoch {epoch}/{self.epochs}",
                           unit="batch", dynamic_ncols=True)
        return self.bar

    def show_loss(self, loss: float) -> None:
        """The latest loss on the bar (fit looks at losses every few dozen steps)."""
        if self.bar is not None:
            # refresh=False: tqdm redraws on its own clock, not on every call.
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def end_epoch(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            shown = {k: f"{v:.4f}" for k, v in record.items() if k.startswith(("train_", "val_"))}
            self.bar.set_postfix(shown, refresh=True)
            self.bar.close()
            self.bar = None
        elif self.mode == "epoch":
            print(format_record(record, self.epochs), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
