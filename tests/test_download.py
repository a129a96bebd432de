"""Tests for dlcc.data.download and dlcc.data.formats against a local HTTP server.

Tiny stand-ins for the real files (IDX gz files and a CIFAR-10-style tar.gz) are built in the
test, served from 127.0.0.1 in a thread, and the registry's hashes are pointed at them.
"""

import gzip
import hashlib
import io
import pickle
import socket
import struct
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from dlcc.data import (
    DownloadError,
    cache_root,
    download,
    fetch,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
)
from dlcc.data.formats import read_cifar10, read_idx


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def cifar_tar_gz(batches: dict[str, tuple[np.ndarray, list[int]]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, (data, labels) in batches.items():
            # Keys are bytes, as in the real Python-2 pickles read with encoding="bytes".
            blob = pickle.dumps({b"data": data, b"labels": labels}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


RNG = np.random.default_rng(0)
MNIST = {
    "train-images-idx3-ubyte.gz": RNG.integers(0, 256, (6, 28, 28)),
    "train-labels-idx1-ubyte.gz": np.arange(6) % 10,
    "t10k-images-idx3-ubyte.gz": RNG.integers(0, 256, (3, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": np.array([7, 2, 1]),
}
MNIST_FILES = {name: idx_gz(a) for name, a in MNIST.items()}
CIFAR = {f"data_batch_{i}": (RNG.integers(0, 256, (2, 3072), dtype=np.uint8), [i, 9 - i])
         for i in range(1, 6)}
CIFAR["test_batch"] = (RNG.integers(0, 256, (2, 3072), dtype=np.uint8), [3, 4])
CIFAR_FILE = cifar_tar_gz(CIFAR)


class Server:
    """Serves ``files`` (URL path -> bytes) and records every request path."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if self.path.startswith("/truncated/"):  # promise more than is sent
                    self.send_header("Content-Length", str(2 * len(body)))
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def log_message(self, *args):  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def count(self, name: str) -> int:
        return sum(path.endswith("/" + name) for path in self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    files = {f"/mnist/{name}": blob for name, blob in MNIST_FILES.items()}
    files |= {f"/fashion-mnist/{name}": blob for name, blob in MNIST_FILES.items()}
    files["/cifar10/cifar-10-python.tar.gz"] = CIFAR_FILE
    files["/truncated/train-images-idx3-ubyte.gz"] = MNIST_FILES["train-images-idx3-ubyte.gz"]
    files["/wrong/train-images-idx3-ubyte.gz"] = b"not the file the registry knows"
    for dataset in ("mnist", "fashion-mnist"):
        for name, blob in MNIST_FILES.items():
            monkeypatch.setitem(download.REGISTRY[dataset], name,
                                hashlib.sha256(blob).hexdigest())
    monkeypatch.setitem(download.REGISTRY["cifar10"], "cifar-10-python.tar.gz",
                        hashlib.sha256(CIFAR_FILE).hexdigest())
    monkeypatch.delenv("DLCC_DATA", raising=False)
    monkeypatch.delenv("DLCC_DATA_URL", raising=False)
    s = Server(files)
    yield s
    s.close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"  # nothing listens there any more


def test_first_download_parses_and_caches(server, tmp_path):
    images, labels = load_mnist("train", tmp_path, base_url=f"{server.url}/mnist/")
    assert images.shape == (6, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert torch.equal(images[:, 0], torch.from_numpy(MNIST["train-images-idx3-ubyte.gz"])
                       .to(torch.uint8))
    assert labels.tolist() == MNIST["train-labels-idx1-ubyte.gz"].tolist()
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]

    images, labels = load_mnist("test", tmp_path, base_url=f"{server.url}/mnist")
    assert images.shape == (3, 1, 28, 28) and labels.tolist() == [7, 2, 1]


def test_cache_hit_does_not_contact_the_server(server, tmp_path):
    first = load_mnist("train", tmp_path, base_url=f"{server.url}/mnist/")
    assert len(server.requests) == 2
    second = load_mnist("train", tmp_path, base_url=f"{server.url}/mnist/")
    assert len(server.requests) == 2
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_corrupted_cache_is_fetched_again(server, tmp_path):
    url = f"{server.url}/mnist/"
    load_mnist("train", tmp_path, base_url=url)
    cached = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:40])  # a download cut short

    images, _ = load_mnist("train", tmp_path, base_url=url)  # pooch sees the wrong hash
    assert server.count("train-images-idx3-ubyte.gz") == 2
    assert server.count("train-labels-idx1-ubyte.gz") == 1
    assert cached.read_bytes() == MNIST_FILES["train-images-idx3-ubyte.gz"]
    assert torch.equal(images[:, 0], torch.from_numpy(MNIST["train-images-idx3-ubyte.gz"])
                       .to(torch.uint8))


def test_unreachable_host_raises_download_error_naming_url_and_path(server, tmp_path):
    url = closed_port_url()
    with pytest.raises(DownloadError) as info:
        load_mnist("train", tmp_path, base_url=url)
    message = str(info.value)
    assert url + "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "DLCC_DATA" in message and "copy it to" in message
    assert isinstance(info.value, RuntimeError)
    assert list((tmp_path / "mnist").iterdir()) == []  # no partial or temporary file


@pytest.mark.parametrize("folder, reason", [("truncated", "connection closed early"),
                                            ("wrong", "checksum mismatch"),
                                            ("missing", "HTTP 404")])
def test_failed_download_leaves_no_file(server, tmp_path, folder, reason):
    with pytest.raises(DownloadError, match="train-images-idx3-ubyte.gz"):
        fetch("mnist", "train-images-idx3-ubyte.gz", cache_dir=tmp_path,
              base_url=f"{server.url}/{folder}/")
    assert server.count("train-images-idx3-ubyte.gz") == 1
    assert list((tmp_path / "mnist").iterdir()) == []


def test_environment_variables_choose_cache_and_mirror(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DLCC_DATA", str(tmp_path / "env-cache"))
    monkeypatch.setenv("DLCC_DATA_URL", server.url)  # one mirror, one folder per data set
    images, _ = load_fashion_mnist("test")
    assert images.shape == (3, 1, 28, 28)
    assert (tmp_path / "env-cache" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert server.count("t10k-images-idx3-ubyte.gz") == 1
    assert server.requests[0].startswith("/fashion-mnist/")
    # The argument beats the environment.
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_cifar10_download_and_parse(server, tmp_path):
    images, labels = load_cifar10("train", tmp_path, base_url=f"{server.url}/cifar10/")
    assert images.shape == (10, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert labels.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]  # batches 1..5 in order
    row = CIFAR["data_batch_1"][0][0]
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    assert torch.equal(images[0, 0], torch.from_numpy(row[:1024].reshape(32, 32)))
    assert torch.equal(images[0, 2], torch.from_numpy(row[2048:].reshape(32, 32)))
    test_images, test_labels = load_cifar10("test", tmp_path,
                                            base_url=f"{server.url}/cifar10/")
    assert test_images.shape == (2, 3, 32, 32) and test_labels.tolist() == [3, 4]
    assert server.count("cifar-10-python.tar.gz") == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_mnist("val", tmp_path)
    with pytest.raises(ValueError, match="dataset must be one of"):
        fetch("imagenet", "x.tar", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="mnist has no file 'x.gz'"):
        fetch("mnist", "x.gz", cache_dir=tmp_path)


def test_read_idx_validates_header(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(idx_gz(np.arange(5)))
    assert read_idx(path, ndim=1).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="magic number 0x00000801, expected 0x00000803"):
        read_idx(path, ndim=3)
    path.write_bytes(gzip.compress(struct.pack(">II", 0x0801, 9) + bytes(4)))
    with pytest.raises(ValueError, match=r"promises shape \(9,\) \(9 bytes\) but 4 bytes"):
        read_idx(path, ndim=1)
    path.write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path, ndim=1)


def test_read_cifar10_reports_missing_batches(tmp_path):
    path = tmp_path / "c.tar.gz"
    path.write_bytes(cifar_tar_gz({"test_batch": CIFAR["test_batch"]}))
    with pytest.raises(ValueError, match="no CIFAR-10 batch named data_batch_1"):
        read_cifar10(path, ("data_batch_1", "test_batch"))
