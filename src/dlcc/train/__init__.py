"""Training with PyTorch: :func:`fit`, :func:`evaluate` and what they are built from.

``from dlcc.train import fit`` is all a chapter needs; the submodules hold one idea each:

- :mod:`dlcc.train.loop`: ``fit`` and ``evaluate``, the loop itself.
- :mod:`dlcc.train.device`: ``get_device``, ``seed_everything``, mixed precision.
- :mod:`dlcc.train.checkpoint`: atomic checkpoints and RNG states for exact resuming.
- :mod:`dlcc.train.history`: ``History``, the per-epoch record, its JSON and its plot.
- :mod:`dlcc.train.progress`: progress bar or one line per epoch.
- :mod:`dlcc.train.runlog`: ``metrics.csv``, ``history.json`` and TensorBoard files.
- :mod:`dlcc.train.distributed`: several processes with ``torchrun`` (DDP).
"""

from dlcc.train.checkpoint import load_checkpoint, save_checkpoint
from dlcc.train.device import get_device, seed_everything
from dlcc.train.history import History
from dlcc.train.loop import NonFiniteLossError, evaluate, fit

__all__ = [
    "History",
    "NonFiniteLossError",
    "evaluate",
    "fit",
    "get_device",
    "load_checkpoint",
    "save_checkpoint",
    "seed_everything",
]
