"""Are the synthetic cells cheap to make next to training on them? ``python benchmarks/data.py``.

``synthetic_cells()`` (its defaults: 256 images of 64x64) is drawn afresh by every chapter and
test that uses it, so it should cost a small fraction of one training epoch of the U-Net the
course trains on it (``UNet(1, 1, depth=3, width=8)``, batch 16, AdamW, one CPU thread, as in
tests/test_accuracy.py). Prints the medians of interleaved rounds (each round times both
once, so load from other processes hits both alike) and their ratio. Target: at most 0.1, a
tenth of an epoch (measured 0.016 on 2026-11-30, on the shared 2-core machine). This replaces a
wall-clock assertion that used to sit in tests/test_data.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from dlcc.data import make_loader, synthetic_cells
from dlcc.models import UNet

TARGET = 0.1


def one_epoch_contender():
    data = synthetic_cells(seed=0)
    loader = make_loader(data, 16, shuffle=True, seed=0)
    model = UNet(1, 1, depth=3, width=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def epoch():
        for images, masks in loader:
            optimizer.zero_grad(set_to_none=True)
            F.binary_cross_entropy_with_logits(model(images), masks).backward()
            optimizer.step()

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    contenders = {"synthetic_cells()": lambda: synthetic_cells(seed=0),
                  "one U-Net epoch": one_epoch_contender()}
    times = {name: [] for name in contenders}
    for fn in contenders.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"{name:>20}: {seconds * 1e3:8.1f} ms (median of {args.rounds})")
    ratio = medians["synthetic_cells()"] / medians["one U-Net epoch"]
    verdict = "ok" if ratio <= TARGET else f"above the target {TARGET}"
    print(f"{'ratio':>20}: {ratio:8.3f} of an epoch ({verdict})")


if __name__ == "__main__":
    main()
