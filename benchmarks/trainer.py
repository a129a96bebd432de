"""What does dlcc.train.fit cost over a hand-written loop?  Run: ``python benchmarks/trainer.py``.

Times one training epoch of ``fit`` (a fresh call with ``epochs=1``, so its set-up is counted
too) against the minimal PyTorch loop (forward, loss, zero_grad, backward, step) on the same
model, data and loader, alternating the two for several rounds (each contender's round time
is its fastest of three epochs in a row) and printing medians and the overhead ratio (target:
at most 3 %). On a CPU the clock is the process's CPU time, which
other processes on a shared machine barely disturb (one torch thread, loader in-process); on
a GPU it is wall time. Two workloads: SmallCNN on the offline MNIST set (the
course's typical CPU run) and a tiny MLP on 8x8 digits, where each step is so short that the
trainer's fixed per-step cost shows. With CUDA, also ResNet samples/s with and without mixed
precision.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from dlcc.data import digits, make_loader, mnist_small
from dlcc.models import MLP, ResNet, SmallCNN
from dlcc.train import fit, get_device

REPEATS = 3  # epochs per contender and round; the fastest counts


def hand_epoch(model, loader, optimizer, device) -> None:
    """The loop every tutorial writes: nothing measured, nothing saved."""
    model.train()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def fit_epoch(model, loader, optimizer, device, amp="off") -> float:
    history = fit(model, loader, loss_fn=F.cross_entropy, optimizer=optimizer, epochs=1,
                  device=device, amp=amp, progress="off")
    return history.epochs[-1]["samples_per_s"]


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def overhead(name, model, dataset, batch_size, rounds, device) -> None:
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = make_loader(dataset, batch_size, shuffle=True, device=device, seed=0)
    contenders = {"hand": lambda: hand_epoch(model, loader, optimizer, device),
                  "fit": lambda: fit_epoch(model, loader, optimizer, device)}
    for run in contenders.values():  # warm-up: allocator, kernels, lazy imports
        run()
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    times = {key: [] for key in contenders}
    def timed(run) -> float:
        sync(device)
        start = clock()
        run()
        sync(device)
        return clock() - start

    for i in range(rounds):
        # Swap who goes first each round, so neither always inherits the other's warm caches.
        # Each contender's time in a round is the fastest of REPEATS epochs in a row: an
        # interruption (another process, a virtual machine's stolen time) only ever adds time.
        for key in (("hand", "fit") if i % 2 == 0 else ("fit", "hand")):
            times[key].append(min(timed(contenders[key]) for _ in range(REPEATS)))
    hand, trainer = (statistics.median(times[key]) for key in ("hand", "fit"))
    # Ratios within a round compare epochs run seconds apart, under the same outside load.
    ratios = sorted(f / h for f, h in zip(times["fit"], times["hand"], strict=True))
    steps = len(loader)
    print(f"{name}: {len(dataset):,} samples, batch {batch_size}, {steps} steps per epoch")
    print(f"  hand loop {hand * 1e3:8.1f} ms/epoch   fit {trainer * 1e3:8.1f} ms/epoch   "
          f"({(trainer - hand) / steps * 1e6:+.0f} us/step)")
    print(f"  overhead fit/hand - 1: median {100 * (statistics.median(ratios) - 1):+.1f} % "
          f"(rounds from {100 * (ratios[0] - 1):+.1f} to {100 * (ratios[-1] - 1):+.1f} %; "
          f"target <= +3 %)\n")


def amp_speed(rounds, device) -> None:
    if device.type != "cuda":
        print("ResNet AMP vs float32: skipped, no CUDA GPU here (run on a GPU machine).")
        return
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(8192, 3, 32, 32, generator=g),
                         torch.randint(0, 10, (8192,), generator=g))
    loader = make_loader(data, 256, shuffle=True, device=device, seed=0)
    model = ResNet(3, 10).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fit_epoch(model, loader, optimizer, device, amp="off")  # warm-up
    speeds = {"off": [], "auto": []}
    for _ in range(rounds):
        for amp in speeds:
            speeds[amp].append(fit_epoch(model, loader, optimizer, device, amp=amp))
    fp32, mixed = (statistics.median(speeds[amp]) for amp in ("off", "auto"))
    kind = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    print(f"ResNet (default widths) on 32x32x3, batch 256, {torch.cuda.get_device_name(device)}")
    print(f"  float32 {fp32:9,.0f} samples/s   amp ({kind}) {mixed:9,.0f} samples/s   "
          f"speed-up {mixed / fp32:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9,
                        help="alternating rounds for SmallCNN (5x as many for the tiny MLP)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: steadiest on a shared machine)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--case", choices=("all", "cnn", "mlp"), default="all",
                        help="only the SmallCNN or only the tiny-MLP overhead (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
          f"CPUs, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__} on "
          f"{device} with {args.threads} CPU thread(s); medians of {args.rounds} rounds "
          f"of {'CPU' if device.type == 'cpu' else 'wall'} time\n")
    torch.manual_seed(0)
    if args.case in ("all", "cnn"):
        overhead("SmallCNN(widths=(16, 32, 64)) on mnist_small",
                 SmallCNN(1, 10, widths=(16, 32, 64)), mnist_small(seed=0).train, 64,
                 args.rounds, device)
    if args.case in ("all", "mlp"):
        # Its epochs take a fraction of a second, so five times the rounds cost little.
        overhead("MLP 64-128-10 on digits (tiny steps: the worst case)", MLP([64, 128, 10]),
                 digits(seed=0).train, 32, 5 * args.rounds, device)
    if args.case == "all":
        amp_speed(args.rounds, device)


if __name__ == "__main__":
    main()
