"""How fast is numpy attention next to PyTorch, and how does it scale with sequence length?

Run: ``python benchmarks/attention.py`` (``--threads 1`` for steadier figures on a busy machine).

Times ``attention_forward`` + ``attention_backward`` of :mod:`dlcc.scratch.attention` against
``torch.nn.functional.scaled_dot_product_attention`` forward + ``backward`` on the CPU, float32,
8 sequences (think batch x heads) of width 64, at several sequence lengths T, in interleaved
rounds (each round times both once, so load from other processes hits both alike). Prints the
medians, their ratio (target: numpy within 3x of torch) and the exponent p of a least-squares
fit time ~ T^p over the longer lengths (attention's two T x T products make p -> 2).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from dlcc.scratch.attention import attention_backward, attention_forward

TARGET = 3.0
LENGTHS = (64, 128, 256, 512, 1024)


def contenders(t: int, batch: int = 8, width: int = 64):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((batch, t, width), dtype=np.float32) for _ in range(3))
    dout = rng.standard_normal((batch, t, width), dtype=np.float32)

    def numpy_step():
        out, cache = attention_forward(q, k, v)
        attention_backward(dout, cache)

    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    dout_t = torch.tensor(dout)

    def torch_step():
        F.scaled_dot_product_attention(qt, kt, vt).backward(dout_t)

    return {"numpy": numpy_step, "torch": torch_step}


def medians(fns: dict, rounds: int) -> dict[str, float]:
    times = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def fitted_exponent(lengths, seconds) -> float:
    """Slope of log(time) against log(T): time ~ T^slope."""
    return float(np.polyfit(np.log(lengths), np.log(seconds), 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="limit numpy's BLAS and torch to this many threads")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"numpy {np.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} thread(s)); medians of {args.rounds} interleaved rounds")
    print("attention forward + backward, float32, 8 sequences of width 64")
    results = {}
    with threadpool_limits(limits=args.threads):
        for t in LENGTHS:
            results[t] = medians(contenders(t), args.rounds)
            ratio = results[t]["numpy"] / results[t]["torch"]
            flag = "ok" if ratio <= TARGET else "OVER TARGET"
            print(f"  T = {t:5d}: numpy {1e3 * results[t]['numpy']:8.2f} ms   "
                  f"torch {1e3 * results[t]['torch']:8.2f} ms   numpy/torch = {ratio:.2f}x "
                  f"(target <= {TARGET:.0f}x) {flag}")
    longer = LENGTHS[2:]
    for name in ("numpy", "torch"):
        p = fitted_exponent(longer, [results[t][name] for t in longer])
        print(f"fitted exponent, time ~ T^p for T >= {longer[0]}: {name} p = {p:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
