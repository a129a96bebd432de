"""Readers for the two file formats of the full data sets, without torchvision.

- IDX (MNIST, Fashion-MNIST): gzip of a big-endian header (magic number, then one uint32 per
  dimension) followed by the raw unsigned bytes.
- CIFAR-10 "python version": a tar.gz of pickled batches, each a dict with ``b"data"``
  (10000, 3072) uint8, rows being the R, G, B planes of a 32x32 image, and ``b"labels"``.
"""

from __future__ import annotations

import gzip
import math
import pickle
import struct
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

IDX_UBYTE = 0x08  # the type code of unsigned bytes, the only one these data sets use

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """An ``ndim``-dimensional uint8 array from a gzipped IDX file (e.g. (N, 28, 28) images).

    The magic number is ``0x0000_08_<ndim>``: two zero bytes, the type code, the rank.
    """
    with gzip.open(path, "rb") as f:
        data = bytearray(f.read())  # bytearray, not bytes: numpy can then share it writably
    header = 4 + 4 * ndim
    expected = (IDX_UBYTE << 8) | ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != expected:
        got = "a file shorter than 4 bytes" if magic is None else f"{magic:#010x}"
        raise ValueError(f"{path} is not an IDX file of {ndim}-D unsigned bytes: magic number "
                         f"{got}, expected {expected:#010x}")
    if len(data) < header:
        raise ValueError(f"{path} ends inside its IDX header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != math.prod(shape):
        raise ValueError(f"{path}: the header promises shape {shape} ({math.prod(shape)} "
                         f"bytes) but {body.size} bytes follow it")
    return body.reshape(shape)


def read_cifar10(path: str | Path, members: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels int64 (N,) of the named batches, in that order.

    Unpickling can run code from the file: call this only on an archive whose sha256 has been
    verified (:func:`dlcc.data.download.fetch` does).
    """
    batches = {}
    # One sequential pass: seeking backwards in a gzip stream means decompressing again.
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = PurePosixPath(member.name).name
            if member.isfile() and name in members:
                batches[name] = pickle.load(tar.extractfile(member), encoding="bytes")
    missing = [m for m in members if m not in batches]
    if missing:
        raise ValueError(f"{path} has no CIFAR-10 batch named {', '.join(missing)}")

    images, labels = [], []
    for name in members:
        data = np.asarray(batches[name][b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: batch {name} holds {data.dtype} data of shape "
                             f"{data.shape}, expected uint8 (N, 3072)")
        y = np.asarray(batches[name][b"labels"], dtype=np.int64)
        if y.shape != (len(data),):
            raise ValueError(f"{path}: batch {name} has {len(data)} images but {y.size} labels")
        images.append(data.reshape(-1, 3, 32, 32))  # each row: R plane, G plane, B plane
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)
