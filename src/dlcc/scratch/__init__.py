"""Part 1 of the course: neural networks from scratch in numpy.

This package never imports torch, so that the first lectures run with numpy alone. Modules:
``layers`` and ``conv`` (forward/backward functions), ``gradcheck`` (numerical gradients),
``mlp`` (a fully connected network), ``optim`` (optimisers and schedules), ``train`` (the loop)
and ``data`` (small data sets).
"""

from . import conv, data, gradcheck, layers, mlp, optim, train
from .mlp import MLP

__all__ = ["MLP", "conv", "data", "gradcheck", "layers", "mlp", "optim", "train"]
