"""How fast is the numpy core next to PyTorch on the CPU?  Run: ``python benchmarks/scratch.py``.

Prints medians of interleaved rounds (each round times every contender once, so load from
other processes hits all of them alike) and the ratios the course promises:

- one MLP training step (784-256-128-10, batch 256, float32) within 1.5x of PyTorch;
- conv2d forward + backward (batch 32, 16 -> 32 channels, 3x3, pad 1, 28x28, float32) within
  6x of ``torch.nn.functional.conv2d``, and at least 50x faster than the naive loops.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from dlcc.scratch import conv, optim
from dlcc.scratch.mlp import MLP


def interleaved_medians(contenders: dict, rounds: int, number: int) -> dict[str, float]:
    """Median seconds per call of each contender over ``rounds`` rounds of ``number`` calls."""
    times = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up: allocator, BLAS threads, torch's kernels
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(t) for name, t in times.items()}


def mlp_step_contenders(batch: int = 256) -> dict:
    sizes = [784, 256, 128, 10]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    model, sgd = MLP(sizes, dtype=np.float32, seed=0), optim.SGD(1e-3)

    def numpy_step():
        _, grads = model.loss(x, y)
        sgd.step(model.params, grads)

    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 128), torch.nn.ReLU(),
                              torch.nn.Linear(128, 10))
    torch_sgd = torch.optim.SGD(net.parameters(), lr=1e-3)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        torch_sgd.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x_t), y_t).backward()
        torch_sgd.step()

    return {"numpy": numpy_step, "torch": torch_step}


def conv_contenders(batch: int = 32, naive_batch: int = 1) -> dict:
    rng = np.random.default_rng(0)

    def arrays(n):
        x = rng.standard_normal((n, 16, 28, 28)).astype(np.float32)
        dout = rng.standard_normal((n, 32, 28, 28)).astype(np.float32)
        return x, dout

    x, dout = arrays(batch)
    x_small, dout_small = arrays(naive_batch)
    w = (0.1 * rng.standard_normal((32, 16, 3, 3))).astype(np.float32)
    b = np.zeros(32, dtype=np.float32)

    def im2col_conv():
        _, cache = conv.conv2d_forward(x, w, b, stride=1, pad=1)
        conv.conv2d_backward(dout, cache)

    def naive_conv():
        _, cache = conv.conv2d_forward_naive(x_small, w, b, stride=1, pad=1)
        conv.conv2d_backward_naive(dout_small, cache)

    x_t = torch.from_numpy(x).requires_grad_()
    w_t, b_t = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
    dout_t = torch.from_numpy(dout)

    def torch_conv():
        x_t.grad = w_t.grad = b_t.grad = None
        torch.nn.functional.conv2d(x_t, w_t, b_t, padding=1).backward(dout_t)

    return {"numpy": im2col_conv, "torch": torch_conv, "naive": naive_conv}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per table")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit numpy's BLAS and torch to this many threads (default: "
                             "as many as numpy's BLAS uses)")
    args = parser.parse_args()
    if args.threads is not None:
        threadpool_limits(args.threads, user_api="blas")

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    blas_threads = blas[0]["num_threads"] if blas else 1
    torch.set_num_threads(blas_threads)  # the same number of threads on both sides
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    blas_name = f"{blas[0]['internal_api']} {blas[0]['version']}" if blas else "none found"
    print(f"numpy {np.__version__} (BLAS: {blas_name}, {blas_threads} thread(s)); "
          f"torch {torch.__version__} with torch.set_num_threads({blas_threads})")
    print(f"medians of {args.rounds} interleaved rounds\n")

    t = interleaved_medians(mlp_step_contenders(), args.rounds, number=10)
    print("MLP training step 784-256-128-10, batch 256, float32 (forward + backward + SGD)")
    print(f"  numpy {t['numpy'] * 1e3:7.2f} ms   torch {t['torch'] * 1e3:7.2f} ms   "
          f"numpy/torch = {t['numpy'] / t['torch']:.2f}x (target <= 1.5x)\n")

    naive_batch, batch = 1, 32
    t = interleaved_medians(conv_contenders(batch, naive_batch), max(3, args.rounds // 3),
                            number=1)
    naive = t["naive"] * batch / naive_batch  # the loops cost the same per image
    print(f"conv2d forward + backward, batch {batch}, 16->32 channels, 3x3, pad 1, 28x28, "
          f"float32")
    print(f"  im2col {t['numpy'] * 1e3:7.2f} ms   torch {t['torch'] * 1e3:7.2f} ms   "
          f"im2col/torch = {t['numpy'] / t['torch']:.2f}x (target <= 6x)")
    print(f"  naive loops {naive:7.2f} s (timed on batch {naive_batch}, scaled x{batch})   "
          f"naive/im2col = {naive / t['numpy']:.0f}x (target >= 50x)")


if __name__ == "__main__":
    main()
