"""Part 1 of the course: neural networks from scratch in numpy.

This package never imports torch, so that the first lectures run with numpy alone. Modules:
``layers`` and ``conv`` (forward/backward functions), ``gradcheck`` (numerical gradients),
``mlp`` (a fully connected network), ``optim`` (optimisers and schedules), ``train`` (the loop),
``data`` (small data sets), and for Part 2 ``rnn`` (recurrent cells, BPTT) and ``attention``.
"""

from . import attention, conv, data, gradcheck, layers, mlp, optim, rnn, train
from .mlp import MLP

__all__ = ["MLP", "attention", "conv", "data", "gradcheck", "layers", "mlp", "optim", "rnn",
           "train"]
