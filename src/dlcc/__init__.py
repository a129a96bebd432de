"""dlcc: the library behind the Deep Learning Crash Course.

Two halves, imported separately so that the numpy half never needs PyTorch:

- :mod:`dlcc.scratch`: networks written from scratch in numpy (Part 1 of the course).
- :mod:`dlcc.models`, :mod:`dlcc.data`, :mod:`dlcc.train`: the PyTorch half.

``import dlcc`` itself imports neither numpy-heavy code nor torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dlcc")  # the one version string is pyproject.toml's
except PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"
