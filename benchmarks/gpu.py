"""GPU checks of dlcc.train that a CPU cannot make.  Run: ``python benchmarks/gpu.py``.

Each check prints one row (name, pass/fail/skipped, a figure, what it means) and, with
``--json PATH``, all rows go to a file for the record. On a CUDA machine it runs:

- ``autocast``: fit's forward really runs in bfloat16 and in float16.
- ``fp16-overflow``: an infinite loss under float16 is skipped by the scaler, not fatal.
- ``cuda-rng``: the GPU generator saved by a checkpoint is restored exactly.
- ``gpu-to-cpu``: a checkpoint written on the GPU is evaluated and resumed on the CPU.
- ``host-syncs``: synchronisations per training step, counted by
  ``torch.cuda.set_sync_debug_mode`` (fit looks at losses every ``CHECK_EVERY`` steps).
- ``nccl-resume``: a one-process NCCL group trains, saves and resumes.
- ``amp-speedup``, then the speed options of issue 23 (each relative to float32 without
  it): ``cudnn.benchmark``, channels-last, ``torch.compile``, TF32, and a data set kept on
  the GPU instead of a DataLoader from pinned CPU memory. None is on by default in dlcc;
  these figures decide whether one earns a recommendation.

``--device cpu --tiny`` runs the parts a CPU can (autocast through CPU autocast, the
overflow with a CPU GradScaler, a checkpoint round trip, a small speed table) and marks
the rest skipped; the test suite runs it so the script cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from dlcc.data import make_loader
from dlcc.models import SmallCNN
from dlcc.train import evaluate, fit, get_device, load_checkpoint
from dlcc.train.checkpoint import rng_state, set_rng_state
from dlcc.train.loop import CHECK_EVERY


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cuda, cuda:1, cpu (default: auto)")
    parser.add_argument("--tiny", action="store_true",
                        help="small sizes and few rounds: a smoke test, not a measurement")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def row(check: str, status: str, value: float | None = None, unit: str = "",
        note: str = "") -> dict:
    return {"check": check, "status": status, "value": value, "unit": unit, "note": note}


def table(rows: list[dict]) -> str:
    """The rows as aligned text, one line each."""
    lines = [f"{'check':<18} {'status':<8} {'value':>12}  note"]
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:,.3f} {r['unit']}".rstrip()
        lines.append(f"{r['check']:<18} {r['status']:<8} {value:>12}  {r['note']}")
    return "\n".join(lines)


def write_json(rows: list[dict], path: Path, device: torch.device) -> None:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    path.write_text(json.dumps({"device": name, "torch": torch.__version__,
                                "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                "rows": rows}, indent=1) + "\n")


def data(n: int, size: int, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, size, size, generator=g),
                         torch.randint(0, 10, (n,), generator=g))


def model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(3, 10, widths=(16, 32, 64))


def train(net, loader, device, **kwargs):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    return fit(net, loader, loss_fn=kwargs.pop("loss_fn", F.cross_entropy),
               optimizer=optimizer, epochs=kwargs.pop("epochs", 1), device=device,
               progress="off", **kwargs)


def check_autocast(device, loader) -> list[dict]:
    rows = []
    for amp, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        net, seen = model(), set()
        net.register_forward_hook(lambda module, args, out, seen=seen: seen.add(out.dtype))
        train(net, loader, device, amp=amp)
        ok = seen == {dtype}
        rows.append(row(f"autocast-{amp}", "pass" if ok else "fail",
                        note=f"outputs {sorted(str(d) for d in seen)}"))
    return rows


def check_fp16_overflow(device, loader) -> dict:
    calls = []

    def inf_once(outputs, targets):
        calls.append(1)
        loss = F.cross_entropy(outputs, targets)
        return loss * float("inf") if len(calls) == 2 else loss

    net = model()
    with tempfile.TemporaryDirectory() as run:
        history = train(net, loader, device, amp="fp16", loss_fn=inf_once, checkpoint_dir=run)
        scale = load_checkpoint(Path(run) / "last.pt")["scaler"]["scale"]
    ok = len(history) == 1 and all(torch.isfinite(p).all() for p in net.parameters())
    return row("fp16-overflow", "pass" if ok else "fail", scale, "scale",
               "one infinite loss skipped; the scale after the epoch")


def check_cuda_rng(device) -> dict:
    state = rng_state(device)
    first = torch.rand(4, device=device)
    torch.rand(100, device=device)
    set_rng_state(state, device)
    ok = torch.equal(first, torch.rand(4, device=device))
    return row("cuda-rng", "pass" if ok else "fail", note=f"generator of {device} restored")


def check_gpu_to_cpu(device, loader) -> dict:
    with tempfile.TemporaryDirectory() as run:
        train(model(), loader, device, checkpoint_dir=run)
        net = model()
        net.load_state_dict(load_checkpoint(Path(run) / "last.pt")["model"])
        cpu_loader = DataLoader(loader.dataset, batch_size=loader.batch_size)
        result = evaluate(net, cpu_loader, loss_fn=F.cross_entropy, device="cpu")
        resumed = train(model(), cpu_loader, "cpu", epochs=2, checkpoint_dir=run, resume=True)
    ok = [r["epoch"] for r in resumed.epochs] == [1, 2]
    return row("gpu-to-cpu", "pass" if ok else "fail", result["loss"], "loss",
               "evaluated on the CPU, then one more epoch there")


def check_host_syncs(device, loader) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train(model(), loader, device, amp="off")
        finally:
            torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    per_step = syncs / len(loader)
    return row("host-syncs", "pass" if per_step <= 3 / CHECK_EVERY + 0.2 else "fail",
               per_step, "per step", f"{syncs} in {len(loader)} steps (no metrics)")


def check_nccl_resume(device, loader) -> dict:
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK=str(device.index or 0),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT",
                                                                          "29531"))
    from dlcc.train import distributed

    torch.distributed.init_process_group("nccl", device_id=device)
    try:
        with tempfile.TemporaryDirectory() as run:
            train(distributed.wrap_model(model(), device), loader, device, checkpoint_dir=run)
            history = train(distributed.wrap_model(model(), device), loader, device,
                            epochs=2, checkpoint_dir=run, resume=True)
    finally:
        distributed.cleanup()
    ok = [r["epoch"] for r in history.epochs] == [1, 2]
    return row("nccl-resume", "pass" if ok else "fail", note="one process, NCCL backend")


def samples_per_s(device, dataset, rounds, batch=256, amp="off", prepare=None,
                  on_device=False) -> float:
    """Median training throughput of one epoch over ``rounds`` (after one warm-up epoch)."""
    net = model()
    if prepare is not None:
        net = prepare(net)
    if on_device:
        dataset = TensorDataset(*(t.to(device) for t in dataset.tensors))
        loader = DataLoader(dataset, batch_size=batch, shuffle=True,
                            generator=torch.Generator(device=device).manual_seed(0))
    else:
        loader = make_loader(dataset, batch, shuffle=True, device=device, seed=0)
    speeds = [train(net, loader, device, amp=amp).epochs[-1]["samples_per_s"]
              for _ in range(rounds + 1)]
    return statistics.median(speeds[1:])


@contextlib.contextmanager
def flags(**settings):
    """Set torch.backends flags (``cudnn_benchmark``, ``tf32``) for the duration."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = settings.get("cudnn_benchmark", saved[0])
    tf32 = settings.get("tf32")
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved


def speed_rows(device, dataset, rounds) -> list[dict]:
    cuda = device.type == "cuda"
    with flags(tf32=False):
        base = samples_per_s(device, dataset, rounds)
    rows = [row("float32", "measured", base, "samples/s", "the reference below")]
    contenders = {"amp-speedup": {"amp": "auto" if cuda else "bf16"}}
    if cuda:
        contenders.update({
            "cudnn-benchmark": {"flags": {"cudnn_benchmark": True}},
            "channels-last": {"prepare": lambda m: m.to(memory_format=torch.channels_last)},
            "torch-compile": {"prepare": torch.compile},
            "tf32": {"flags": {"tf32": True}},
            "data-on-device": {"on_device": True}})
    for name, options in contenders.items():
        with flags(**{"tf32": False, **options.pop("flags", {})}):
            speed = samples_per_s(device, dataset, rounds, **options)
        rows.append(row(name, "measured", speed / base, "x", f"{speed:,.0f} samples/s"))
    return rows


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = get_device(args.device)
    cuda = device.type == "cuda"
    n, size = (128, 16) if args.tiny else (8192, 32)
    rounds = 1 if args.tiny else args.rounds
    dataset = data(n, size)
    loader = make_loader(dataset, 32 if args.tiny else 256, shuffle=True, device=device)
    rows = [*check_autocast(device, loader), check_fp16_overflow(device, loader)]
    if cuda:
        rows += [check_cuda_rng(device), check_gpu_to_cpu(device, loader),
                 check_host_syncs(device, loader), check_nccl_resume(device, loader)]
    else:
        rows += [row(name, "skipped", note="needs CUDA")
                 for name in ("cuda-rng", "gpu-to-cpu", "host-syncs", "nccl-resume")]
    rows += speed_rows(device, dataset, rounds)
    print(f"{torch.cuda.get_device_name(device) if cuda else 'cpu'}, torch "
          f"{torch.__version__}{', tiny sizes: not a measurement' if args.tiny else ''}")
    print(table(rows))
    if args.json is not None:
        write_json(rows, args.json, device)
    return rows


if __name__ == "__main__":
    sys.exit(1 if any(r["status"] == "fail" for r in main()) else 0)
