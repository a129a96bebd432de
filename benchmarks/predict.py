"""Tiled prediction: bounded memory on a large image, and its speed against one whole forward.

``python benchmarks/predict.py [--size 8192] [--tile 256] [--overlap 64] [--batch-size 8]
[--device cpu] [--threads 1]``

1. Memory. In a fresh process each: (a) one forward of one batch of tiles, (b)
   :func:`dlcc.predict.predict_tiled` on a ``size`` x ``size`` image. Each reports its peak
   resident memory above what the process held just before (the image already made). The
   ratio (b) / (a) says whether predict's memory is set by the tile batch; (b) also holds
   the full-size output and weight sums, printed apart ("output"), which any prediction of
   that image must hold. On a GPU the peak of GPU memory is compared too. A whole-image
   forward of the same image would need about
   (a) x image pixels / batch pixels, printed for scale.
2. Throughput (pixels/s) of predict_tiled against one whole-image forward, on an image
   small enough for the whole forward (``--whole``, default 1024), medians of interleaved
   rounds. Tiling recomputes the overlaps, so expect a ratio below 1; it is the price of
   bounded memory.

The model is the course's U-Net as ``python -m dlcc train --data FOLDER`` builds it (width
16); ``--width 4`` makes it 16 times cheaper to run on a CPU without changing what is
measured: memory set by the tile batch or by the image.

Measured on 2026-11-30 on the shared 2-core machine (torch 2.13.0+cpu, one thread),
``python benchmarks/predict.py --width 4``: one tile batch (8 x 256 x 256) peaks at 108 MiB;
predict on 8192 x 8192 at 650 MiB, of which 512 MiB are the full-size output and weight sums,
so 6.0 x the tile batch with the output and 1.27 x without; a whole-image forward would need
about 14 GiB. Throughput on 1024 x 1024: tiled 0.53 Mpixel/s against 0.90 for one whole
forward, ratio 0.59 (the overlap is computed twice).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import torch

from dlcc.models import UNet
from dlcc.predict import predict_tiled


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def reset_peak() -> None:
    """Make VmHWM (peak resident memory) equal the current resident memory (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_bytes() -> int:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def measure(kind: str, args, queue) -> None:
    torch.set_num_threads(args.threads)
    model = UNet(1, 1, width=args.width).eval().to(args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated()
    if kind == "batch":
        x = torch.rand(args.batch_size, 1, args.tile, args.tile)
        reset_peak()
        before = rss_bytes()
        with torch.no_grad():
            model(x.to(args.device)).cpu()
    else:
        x = torch.rand(1, args.size, args.size)
        reset_peak()
        before = rss_bytes()
        predict_tiled(model, x, tile=args.tile, overlap=args.overlap,
                      batch_size=args.batch_size, device=args.device)
    gpu = torch.cuda.max_memory_allocated() - gpu_before if cuda else 0
    queue.put((peak_bytes() - before, gpu))


def in_child(kind: str, args) -> int:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(kind, args, queue))
    process.start()
    value = queue.get()
    process.join()
    return value


def throughput(args) -> tuple[float, float]:
    torch.set_num_threads(args.threads)
    model = UNet(1, 1, width=args.width).eval().to(args.device)
    image = torch.rand(1, args.whole, args.whole)
    times = {"tiled": [], "whole": []}
    for _ in range(args.rounds):
        for name in times:
            start = time.perf_counter()
            if name == "tiled":
                predict_tiled(model, image, tile=args.tile, overlap=args.overlap,
                              batch_size=args.batch_size, device=args.device)
            else:
                with torch.no_grad():
                    model(image[None].to(args.device)).cpu()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    pixels = args.whole**2
    return (pixels / statistics.median(times["tiled"]),
            pixels / statistics.median(times["whole"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--whole", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    mib = 2**20
    print(f"U-Net (width {args.width}, depth 3), tile {args.tile}, overlap {args.overlap}, batch "
          f"{args.batch_size}, device {args.device}, {args.threads} thread(s)")
    batch, gpu_batch = in_child("batch", args)
    start = time.perf_counter()
    tiled, gpu_tiled = in_child("predict", args)
    seconds = time.perf_counter() - start
    output = 2 * args.size**2 * 4  # float32 logits and weight sums
    whole_estimate = batch * args.size**2 / (args.batch_size * args.tile**2)
    print(f"peak memory above the input, one tile batch forward: {batch / mib:,.0f} MiB")
    print(f"peak memory above the input, predict {args.size} x {args.size}: "
          f"{tiled / mib:,.0f} MiB (of which output {output / mib:,.0f} MiB); "
          f"{seconds:.0f} s")
    print(f"ratio predict / tile batch: {tiled / batch:.2f}; without the output: "
          f"{(tiled - output) / batch:.2f}")
    if gpu_batch:
        print(f"GPU memory peak: tile batch {gpu_batch / mib:,.0f} MiB, predict "
              f"{gpu_tiled / mib:,.0f} MiB, ratio {gpu_tiled / gpu_batch:.2f}")
    print(f"a whole-image forward would need about {whole_estimate / 2**30:,.0f} GiB "
          f"({whole_estimate / batch:,.0f} x the tile batch)")
    tiled_rate, whole_rate = throughput(args)
    print(f"throughput on {args.whole} x {args.whole}, median of {args.rounds}: tiled "
          f"{tiled_rate / 1e6:.2f} Mpixel/s, whole forward {whole_rate / 1e6:.2f} Mpixel/s, "
          f"ratio {tiled_rate / whole_rate:.2f}")


if __name__ == "__main__":
    main()
