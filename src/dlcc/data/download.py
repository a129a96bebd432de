"""Fetch the full data sets (MNIST, Fashion-MNIST, CIFAR-10) once, verified, into a cache.

A ``pooch.create`` registry holds each file's sha256. Where files go: the ``cache_dir``
argument, else the ``DLCC_DATA`` environment variable, else ``pooch.os_cache("dlcc")`` (e.g.
``~/.cache/dlcc``); each data set has its own sub-folder, because MNIST and Fashion-MNIST use
the same file names. Where they come from: the ``base_url`` argument (the folder holding that
data set's files), else ``$DLCC_DATA_URL/<data set>/`` (one local mirror for all three), else
the public mirrors below.

pooch checks every file against its sha256: a cached copy that fails (truncated, corrupted) is
downloaded again, and a download is streamed into a temporary file and moved into place only
once its hash matches, so an interrupted download never leaves a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .formats import CIFAR10_TEST, CIFAR10_TRAIN, read_cifar10, read_idx

if TYPE_CHECKING:
    import pooch

ENV_CACHE = "DLCC_DATA"
ENV_URL = "DLCC_DATA_URL"
TIMEOUT_S = 60  # a stalled connection fails after a minute instead of hanging a notebook

DEFAULT_URLS = {
    # yann.lecun.com now often refuses downloads; PyTorch's S3 mirror serves the same bytes.
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}

# file name -> sha256, per data set.
REGISTRY: dict[str, dict[str, str]] = {
    # tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt (commit 31f1255e),
    # the same values that many independent downloaders of the ossci mirror pin.
    "mnist": {
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    # tensorflow/datasets, tensorflow_datasets/url_checksums/fashion_mnist.txt (commit
    # 333639b3), hashed from the eu-central-1 S3 site above.
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    # pytorch/vision, torchvision/prototype/datasets/_builtin/cifar.py (commit 0b02d420);
    # Keras' cifar10.load_data pins the same file_hash.
    "cifar10": {
        "cifar-10-python.tar.gz":
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
}


class DownloadError(RuntimeError):
    """A data file could not be downloaded (or arrived with the wrong checksum)."""


def _pooch(cache_dir: str | os.PathLike | None = None, dataset: str | None = None,
           base_url: str | None = None) -> pooch.Pooch:
    """Every file as ``<data set>/<file name>``; ``base_url`` is where ``dataset``'s are."""
    # Imported here: pooch imports tqdm.auto, which warns in a notebook without ipywidgets
    # ("IProgress not found") as soon as any chapter imports dlcc.data.
    import pooch

    registry, urls = {}, {}
    for name, files in REGISTRY.items():
        folder = source_url(name, base_url if name == dataset else None)
        for file, sha256 in files.items():
            registry[f"{name}/{file}"], urls[f"{name}/{file}"] = sha256, folder + file
    return pooch.create(path=pooch.os_cache("dlcc") if cache_dir is None else cache_dir,
                        env=ENV_CACHE if cache_dir is None else None,  # the argument wins
                        base_url="", registry=registry, urls=urls)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds one sub-folder per data set (see the module docstring)."""
    return Path(_pooch(cache_dir).abspath)


def source_url(dataset: str, base_url: str | None = None) -> str:
    """The folder URL (ending in '/') that the files of ``dataset`` are fetched from."""
    if base_url is None and os.environ.get(ENV_URL):
        base_url = f"{os.environ[ENV_URL].rstrip('/')}/{dataset}"
    return (base_url or DEFAULT_URLS[dataset]).rstrip("/") + "/"


def fetch(dataset: str, filename: str, *, cache_dir: str | os.PathLike | None = None,
          base_url: str | None = None, progress: bool = False) -> Path:
    """Path to a verified local copy of ``filename`` of ``dataset``, downloading it if needed.

    Raises :class:`DownloadError` naming the URL and the cache path when the download fails
    or its sha256 does not match.
    """
    if dataset not in REGISTRY:
        raise ValueError(f"dataset must be one of {sorted(REGISTRY)}, got {dataset!r}")
    if filename not in REGISTRY[dataset]:
        raise ValueError(f"{dataset} has no file {filename!r}; files: "
                         f"{', '.join(REGISTRY[dataset])}")
    store = _pooch(cache_dir, dataset, base_url)
    key = f"{dataset}/{filename}"
    url, path = store.get_url(key), Path(store.abspath) / key

    import pooch
    import requests  # pooch's own dependency; imported late to keep `import dlcc.data` light

    downloader = pooch.HTTPDownloader(progressbar=progress, chunk_size=2**20,
                                      timeout=TIMEOUT_S)
    try:
        return Path(store.fetch(key, downloader=downloader))
    except requests.exceptions.RequestException as err:
        raise DownloadError(
            f"could not download {url} to {path} ({type(err).__name__}: {err}). If this "
            f"machine cannot reach the internet (a firewall or proxy), download the file "
            f"elsewhere and copy it to {path}, or set {ENV_CACHE} to a folder that holds "
            f"{dataset}/{filename}."
        ) from err
    except ValueError as err:  # pooch's hash mismatch: the mirror served other bytes
        raise DownloadError(
            f"{url} was downloaded but its sha256 is not {REGISTRY[dataset][filename]}, so "
            f"nothing was saved to {path}. The mirror may have changed; try another base_url "
            f"or {ENV_URL}."
        ) from err


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _load_idx_pair(dataset: str, split: str, cache_dir, base_url
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    _check_split(split)
    prefix = "train" if split == "train" else "t10k"
    kw = dict(cache_dir=cache_dir, base_url=base_url)
    images = read_idx(fetch(dataset, f"{prefix}-images-idx3-ubyte.gz", **kw), ndim=3)
    labels = read_idx(fetch(dataset, f"{prefix}-labels-idx1-ubyte.gz", **kw), ndim=1)
    if len(images) != len(labels):
        raise ValueError(f"{dataset} {split}: {len(images)} images but {len(labels)} labels")
    # (N, 28, 28) -> (N, 1, 28, 28): one grey channel, the layout every conv layer expects
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long()


def load_mnist(split: str = "train", cache_dir: str | os.PathLike | None = None, *,
               base_url: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits: images uint8 (N, 1, 28, 28), labels int64 (N,); N = 60,000 or 10,000."""
    return _load_idx_pair("mnist", split, cache_dir, base_url)


def load_fashion_mnist(split: str = "train", cache_dir: str | os.PathLike | None = None, *,
                       base_url: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST (Zalando): as :func:`load_mnist`, ten classes of clothing."""
    return _load_idx_pair("fashion-mnist", split, cache_dir, base_url)


def load_cifar10(split: str = "train", cache_dir: str | os.PathLike | None = None, *,
                 base_url: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10: images uint8 (N, 3, 32, 32), labels int64 (N,); N = 50,000 or 10,000."""
    _check_split(split)
    path = fetch("cifar10", "cifar-10-python.tar.gz", cache_dir=cache_dir, base_url=base_url)
    images, labels = read_cifar10(path, CIFAR10_TRAIN if split == "train" else CIFAR10_TEST)
    return torch.from_numpy(images), torch.from_numpy(labels)
