"""Data for the PyTorch half: offline sets, synthetic cells, full downloads, augmentation.

- :mod:`.offline`: ``digits()`` and ``mnist_small()``, no network needed.
- :mod:`.synthetic`: ``synthetic_cells()``, a segmentation set generated from a seed.
- :mod:`.download`: ``load_mnist``, ``load_fashion_mnist``, ``load_cifar10`` (cached, verified).
- :mod:`.prepare`: standardisation with training statistics, ``make_loader``.
- :mod:`.transforms`: augmentations with an explicit generator, and ``Augmented``.
- :mod:`.sequences`: Langevin trajectories, motif-planted DNA, peptides, the book as text.
"""

from .download import DownloadError, cache_root, fetch, load_cifar10, load_fashion_mnist, load_mnist
from .offline import DataSplits, digits, mnist_small
from .prepare import make_loader, normalization_stats, to_dataset
from .sequences import (
    book_corpus,
    dna_motifs,
    group_split,
    langevin_double_well,
    metastable_state,
    peptides,
    similarity_groups,
    windows,
)
from .synthetic import gaussian_blur, synthetic_cells
from .transforms import Augmented, compose, random_crop, random_flip, random_rotate

__all__ = [
    "DataSplits", "digits", "mnist_small", "synthetic_cells", "gaussian_blur",
    "DownloadError", "cache_root", "fetch", "load_mnist", "load_fashion_mnist", "load_cifar10",
    "normalization_stats", "to_dataset", "make_loader",
    "random_flip", "random_crop", "random_rotate", "compose", "Augmented",
    "langevin_double_well", "metastable_state", "windows", "dna_motifs", "peptides",
    "similarity_groups", "group_split", "book_corpus",
]
