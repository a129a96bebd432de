"""The command line: ``python -m dlcc {doctor,train,predict,evaluate}``.

``train`` and ``evaluate`` are thin: they build a data set, a model from
:data:`dlcc.models.MODELS` and an optimizer from the arguments, then call
:func:`dlcc.train.fit` or :func:`dlcc.train.evaluate`. ``train`` runs unchanged under
``torchrun`` (one process per GPU). ``--data`` is a built-in data set or a folder of
your own images (:mod:`dlcc.data.folders`); ``predict`` runs a model trained on a folder
over new files (:mod:`dlcc.predict`). The model names and AMP modes come from the library
(``MODELS``, :data:`dlcc.train.device.AMP_MODES`); without PyTorch the parser still builds,
so ``doctor`` works, and says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATASETS = ("digits", "mnist-small", "cells", "mnist", "fashion-mnist", "cifar10")
CELLS = {"train": 512, "val": 64, "test": 128, "size": 64}  # synthetic_cells sizes


class Parser(argparse.ArgumentParser):
    """Bad arguments give one line on stderr and exit code 2, not the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind, low, inclusive=True):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < low or (value == low and not inclusive):
            bound = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(f"must be {bound} {low}, got {text}")
        return value
    return parse


def _data(text: str) -> str:
    """A built-in data set name, or a folder of images (a path: checked when it is read)."""
    import os

    if text in DATASETS or os.path.isdir(text) or "/" in text or os.sep in text:
        return os.path.expanduser(text)
    raise argparse.ArgumentTypeError(
        f"invalid choice: {text!r} (choose from {', '.join(DATASETS)}, or give a folder of "
        "images: FOLDER/images + FOLDER/masks, or one folder a class)")


def _library_choices() -> tuple[list[str] | None, list[str] | None]:
    """The model names and AMP modes, or ``(None, None)`` where PyTorch is missing."""
    try:
        from dlcc.models import MODELS
        from dlcc.train.device import AMP_MODES
    except ImportError:  # train and evaluate then fail with the import error; doctor runs
        return None, None
    return list(MODELS), list(AMP_MODES)


def build_parser() -> argparse.ArgumentParser:
    from dlcc import doctor as doctor_module

    models, amp_modes = _library_choices()
    parser = Parser(prog="python -m dlcc", description="Deep Learning Crash Course tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor", help="check Python, PyTorch and the GPU; print a matmul speed",
        description="Check this environment for the course and print what was found.",
    )
    doctor_module.add_arguments(doctor)

    train = commands.add_parser(
        "train", help="train a model of the course on a data set",
        description="Train a model with dlcc.train.fit and write last.pt, best.pt, "
                    "metrics.csv, history.json and TensorBoard logs to --out. Runs on "
                    "several GPUs when launched with torchrun.")
    train.add_argument("--model", choices=models, default=None,
                       help="model (default: smallcnn; unet for cells)")
    train.add_argument("--data", type=_data, default="digits",
                       help=f"data set: {', '.join(DATASETS)} (default: digits; mnist, "
                            "fashion-mnist and cifar10 are downloaded once into the data "
                            "cache), or a folder of your own images")
    train.add_argument("--task", choices=("segment", "classify"), default=None,
                       help="for a folder: the task it must hold (default: from its layout)")
    train.add_argument("--patch", type=_number(int, 8), default=64,
                       help="for a folder: side of the random training patches; classify "
                            "resizes images to it (default: 64)")
    train.add_argument("--val-fraction", type=_number(float, 0, inclusive=False),
                       default=0.2, help="for a folder without val/: share of files held "
                                         "out, seeded (default: 0.2)")
    train.add_argument("--epochs", type=_number(int, 1), default=10,
                       help="passes over the training set (default: 10)")
    train.add_argument("--batch-size", type=_number(int, 1), default=64,
                       help="samples per batch and per process (default: 64)")
    train.add_argument("--lr", type=_number(float, 0, inclusive=False), default=1e-3,
                       help="learning rate; the peak rate for onecycle (default: 1e-3)")
    train.add_argument("--optimizer", choices=("sgd", "momentum", "adam", "adamw"),
                       default="adamw", help="momentum is SGD with Nesterov momentum 0.9 "
                                             "(default: adamw)")
    train.add_argument("--weight-decay", type=_number(float, 0), default=0.0,
                       help="L2 penalty, decoupled for adamw (default: 0)")
    train.add_argument("--scheduler", choices=("none", "step", "cosine", "onecycle"),
                       default="none", help="step: x0.1 every third of the run; cosine: "
                                            "anneal to 0; onecycle: warm up then anneal "
                                            "(default: none)")
    train.add_argument("--device", default="auto",
                       help="cpu, cuda, cuda:1, mps or auto (default: auto); under torchrun "
                            "cpu, cuda or auto, and process k takes cuda:k")
    train.add_argument("--amp", choices=amp_modes, default="auto",
                       help="mixed precision; auto is bf16 (on GPUs with native bf16) or "
                            "fp16 on CUDA, off elsewhere")
    train.add_argument("--out", default=None,
                       help="run directory (default: runs/DATA-MODEL)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/last.pt if it exists")
    train.add_argument("--seed", type=int, default=0,
                       help="seed for weights, data splits and shuffling (default: 0)")
    train.add_argument("--workers", type=_number(int, 0), default=0,
                       help="DataLoader worker processes (default: 0)")

    evaluate = commands.add_parser(
        "evaluate", help="measure a saved model on a data split",
        description="Load a checkpoint written by `train` and print its loss and metrics.")
    evaluate.add_argument("--checkpoint", required=True, help="path of best.pt or last.pt")
    evaluate.add_argument("--data", type=_data, default=None,
                          help="data set (default: the one the model was trained on) or a "
                               "folder in the layout the model was trained on")
    evaluate.add_argument("--split", choices=("train", "val", "test"), default="test",
                          help="which split to measure (default: test)")
    evaluate.add_argument("--batch-size", type=_number(int, 1), default=256,
                          help="samples per batch (default: 256)")
    evaluate.add_argument("--device", default="auto", help="as for train (default: auto)")
    evaluate.add_argument("--amp", choices=amp_modes, default="auto",
                          help="mixed precision, as for train (default: auto)")

    predict = commands.add_parser(
        "predict", help="run a model trained on a folder over new images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load a checkpoint written by `train --data FOLDER` and predict every "
                    "INPUT.\nSegmentation writes OUT/NAME_mask.tif (uint8, 255 = foreground or "
                    "the class label;\nthe input's size), computed on overlapping tiles "
                    "blended smoothly, so any image size fits in memory;\nclassification "
                    "writes "
                    "OUT/predictions.csv (file, class, one probability a class).",
        epilog="examples:\n"
               "  python -m dlcc predict --checkpoint runs/cells/best.pt new/*.tif --out pred\n"
               "  python -m dlcc predict --checkpoint runs/cells/best.pt big.tif --out pred "
               "--tile 512 --device cuda")
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image files, folders of images or glob patterns")
    predict.add_argument("--checkpoint", required=True, help="path of best.pt or last.pt")
    predict.add_argument("--out", required=True, help="folder for the masks or the CSV")
    predict.add_argument("--batch-size", type=_number(int, 1), default=8,
                         help="tiles per forward pass (default: 8)")
    predict.add_argument("--device", default="auto", help="as for train (default: auto)")
    predict.add_argument("--tile", type=_number(int, 8), default=None,
                         help="tile side in pixels (default: 4 x the training patch)")
    predict.add_argument("--overlap", type=_number(int, 0), default=None,
                         help="pixels shared by neighbouring tiles (default: tile / 4)")
    predict.add_argument("--probabilities", action="store_true",
                         help="also write OUT/NAME_prob.tif (float32 foreground probability)")
    predict.add_argument("--no-progress", action="store_true",
                         help="no progress bar (for logs and notebooks)")
    return parser


def is_folder(data: str) -> bool:
    """Whether ``--data`` names a folder of the user's images, not a built-in data set."""
    return data not in DATASETS


def load_folder_data(args):
    """``(train, val, test, spec)`` for ``train --data FOLDER``."""
    import dlcc
    from dlcc.data.folders import load_folder

    task = {"segment": "segmentation", "classify": "classification", None: None}[args.task]
    train, val, test, spec = load_folder(args.data, task=task, patch=args.patch,
                                         seed=args.seed, val_fraction=args.val_fraction)
    return train, val, test, {**spec, "dlcc_version": dlcc.__version__}


def load_data(name: str, seed: int):
    """``(train, val, test, spec)`` for a data set name; ``spec`` describes the task."""
    from dlcc import data

    if name == "cells":
        splits = [data.synthetic_cells(CELLS[s], CELLS["size"], seed=seed + i)
                  for i, s in enumerate(("train", "val", "test"))]
        return (*splits, {"task": "segmentation", "in_channels": 1, "num_classes": 1,
                          "image_size": CELLS["size"]})
    if name in ("digits", "mnist-small"):
        train, val, test = (data.digits if name == "digits" else data.mnist_small)(seed=seed)
    else:
        loader = {"mnist": data.load_mnist, "fashion-mnist": data.load_fashion_mnist,
                  "cifar10": data.load_cifar10}[name]
        import torch

        x, y = loader("train")
        # Hold out 5,000 training images for validation; statistics from the rest only.
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        fit_idx, val_idx = order[5000:], order[:5000]
        mean, std = data.normalization_stats(x[fit_idx])
        train = data.to_dataset(x[fit_idx], y[fit_idx], mean, std)
        val = data.to_dataset(x[val_idx], y[val_idx], mean, std)
        test = data.to_dataset(*loader("test"), mean, std)
    images = train.tensors[0]
    return train, val, test, {"task": "classification", "in_channels": images.shape[1],
                              "num_classes": 10, "image_size": images.shape[-1]}


def class_dice(logits, masks) -> float:
    """Mean Dice over the foreground classes 1..K-1 of label masks (N, 1, H, W), predicting
    the class of largest logit; classes absent from both prediction and truth are skipped."""
    import torch

    pred, true = logits.argmax(1), masks[:, 0].long()
    scores = []
    for k in range(1, logits.shape[1]):
        p, t = pred == k, true == k
        total = p.sum() + t.sum()
        if total:
            scores.append(2 * (p & t).sum() / total)
    return float(torch.stack(scores).mean()) if scores else 1.0


def class_cross_entropy(logits, masks):
    """Cross-entropy of logits (N, K, H, W) against label masks (N, 1, H, W)."""
    from torch.nn import functional as F

    return F.cross_entropy(logits, masks[:, 0].long())


def task_functions(task: str, num_classes: int = 1):
    """Loss function and metrics for a task (segmentation with ``num_classes`` > 1: label
    masks, cross-entropy and the mean Dice of the foreground classes)."""
    from torch.nn import functional as F

    from dlcc import metrics

    if task == "segmentation" and num_classes > 1:
        return class_cross_entropy, {"dice": class_dice}
    if task == "segmentation":
        return metrics.DiceBCELoss(), {"dice": metrics.dice, "iou": metrics.iou}
    return F.cross_entropy, {"accuracy": metrics.accuracy}


def build(name: str | None, spec: dict):
    """The model ``name`` for the task in ``spec`` (``None``: the default for the task)."""
    from dlcc.models import MODELS, build_model

    segmentation = spec["task"] == "segmentation"
    name = name or ("unet" if segmentation else "smallcnn")
    if name in MODELS and (name == "unet") != segmentation:
        wanted = "--model unet" if segmentation else "a classifier, not unet"
        raise ValueError(f"model {name!r} does not fit a {spec['task']} data set: use {wanted}")
    return name, build_model(name, in_channels=spec["in_channels"],
                             num_classes=spec["num_classes"], image_size=spec["image_size"])


def make_optimizer(args, parameters):
    import torch

    if args.optimizer in ("sgd", "momentum"):
        momentum = 0.9 if args.optimizer == "momentum" else 0.0
        return torch.optim.SGD(parameters, lr=args.lr, momentum=momentum,
                               nesterov=momentum > 0, weight_decay=args.weight_decay)
    kind = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
    return kind(parameters, lr=args.lr, weight_decay=args.weight_decay)


def make_scheduler(args, optimizer, steps_per_epoch: int):
    from torch.optim import lr_scheduler

    if args.scheduler == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, args.epochs // 3), gamma=0.1)
    if args.scheduler == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if args.scheduler == "onecycle":  # fit steps it per batch
        return lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr,
                                       total_steps=args.epochs * steps_per_epoch)
    return None


def train_command(args) -> int:
    from dlcc.data import make_loader
    from dlcc.train import distributed, fit, seed_everything

    # Under torchrun each process takes its own GPU; alone, --device as given.
    device = distributed.init_distributed(args.device)
    try:
        rank = distributed.get_rank()
        main = distributed.is_main_process()
        seed_everything(args.seed + rank)  # own dropout per process; DDP sends rank 0's weights
        if not main:
            distributed.barrier()  # rank 0 downloads first, the others read its cache
        folder = is_folder(args.data)
        if folder:
            train, val, _, spec = load_folder_data(args)
            if main:
                print(spec["summary"])
        else:
            train, val, _, spec = load_data(args.data, args.seed)
        if main:
            distributed.barrier()
        name, model = build(args.model, spec)
        out = args.out or f"runs/{Path(args.data).name if folder else args.data}-{name}"
        sampler = distributed.distributed_sampler(train, shuffle=True, seed=args.seed)
        train_loader = make_loader(train, args.batch_size, shuffle=sampler is None,
                                   device=device, num_workers=args.workers, seed=args.seed,
                                   sampler=sampler)
        val_loader = make_loader(val, args.batch_size, shuffle=False, device=device,
                                 num_workers=args.workers,
                                 sampler=distributed.shard_sampler(val))
        model = distributed.wrap_model(model, device)
        optimizer = make_optimizer(args, model.parameters())
        loss_fn, metrics = task_functions(spec["task"], spec["num_classes"])
        monitor = "val_dice" if spec["task"] == "segmentation" else "val_accuracy"
        config = {**{k: v for k, v in vars(args).items() if k != "func"}, "model": name,
                  "out": out, "device": str(device),
                  "processes": distributed.get_world_size(), **spec}
        history = fit(model, train_loader, val_loader, loss_fn=loss_fn, optimizer=optimizer,
                      epochs=args.epochs,
                      scheduler=make_scheduler(args, optimizer, len(train_loader)),
                      metrics=metrics, device=device, amp=args.amp, checkpoint_dir=out,
                      resume=args.resume, monitor=monitor, config=config)
        if main and history.best is not None:
            best = history.best
            print(f"best epoch {best['epoch']}: {monitor} {best[monitor]:.4f}; "
                  f"checkpoints and logs in {out}")
    finally:
        distributed.cleanup()
    return 0


def evaluate_command(args) -> int:
    from dlcc.data import make_loader
    from dlcc.train import evaluate, get_device, load_checkpoint

    device = get_device(args.device)
    state = load_checkpoint(args.checkpoint)
    config = state.get("config") or {}
    if "model" not in config or "data" not in config:
        raise ValueError(f"{args.checkpoint} was not written by `python -m dlcc train` "
                         "(its config lacks the model and data names)")
    if "normalization" in config or (args.data and is_folder(args.data)):
        return evaluate_folder(args, device)
    data_name = args.data or config["data"]
    splits = load_data(data_name, config.get("seed", 0))
    spec = splits[3]
    _, model = build(config["model"], spec)
    model.load_state_dict(state["model"])
    dataset = splits[("train", "val", "test").index(args.split)]
    loss_fn, metrics = task_functions(spec["task"])
    result = evaluate(model, make_loader(dataset, args.batch_size, shuffle=False, device=device),
                      loss_fn=loss_fn, metrics=metrics, device=device, amp=args.amp)
    print(f"checkpoint  {args.checkpoint} ({config['model']}, epoch {state['epoch']})")
    print(f"data        {data_name}, {args.split} split ({len(dataset):,} images)")
    for key, value in result.items():
        print(f"{key:<11} {value:.4f}")
    return 0


def evaluate_folder(args, device) -> int:
    """``evaluate`` for a model trained on a folder: Dice and IoU per image (tiled, whole
    images) or accuracy and a confusion matrix. ``--data`` (default: the training folder)
    is read whole, or its val/ or test/ subfolder where --split names one that exists."""
    import numpy as np

    from dlcc.data.folders import (
        label_masks,
        normalize,
        read_classes,
        read_segmentation,
        resize,
    )
    from dlcc.predict import load_model, predict_tiled

    model, config = load_model(args.checkpoint, device)
    folder = Path(args.data or config["data"])
    if (folder / args.split).is_dir():
        folder = folder / args.split
    elif args.data is None or Path(args.data).resolve() == Path(config["data"]).resolve():
        print(f"note: {folder} has no {args.split}/ folder, so every image in it is scored, "
              "training images included; keep a test/ folder for an honest score")
    print(f"checkpoint  {args.checkpoint} ({config['model']}, {config['task']})")
    norm = config["normalization"]
    import torch

    if config["task"] == "segmentation":
        images, masks, paths = read_segmentation(folder)
        masks, _ = label_masks(masks, paths)
        print(f"data        {folder} ({len(images)} images)")
        scores = []
        for image, mask, path in zip(images, masks, paths, strict=True):
            logits = predict_tiled(model, normalize(image, norm), tile=4 * config["patch"],
                                   overlap=config["patch"], batch_size=args.batch_size,
                                   device=device)
            if config["num_classes"] > 1:  # label images: Dice only
                dice = class_dice(torch.from_numpy(logits)[None], torch.from_numpy(mask)[None])
                scores.append((dice, float("nan")))
                print(f"  {path.name:<30} dice {dice:.4f} (mean of the foreground classes)")
                continue
            pred, true = logits[0] > 0, mask[0] > 0
            inter, total = (pred & true).sum(), pred.sum() + true.sum()
            dice = 2 * inter / total if total else 1.0
            iou = inter / (total - inter) if total else 1.0
            scores.append((dice, iou))
            print(f"  {path.name:<30} dice {dice:.4f}  iou {iou:.4f}")
        dice, iou = np.mean(scores, axis=0)
        print(f"mean        dice {dice:.4f}  iou {iou:.4f}")
        return 0
    images, labels, paths, names = read_classes(folder, config["class_names"])
    x = torch.stack([resize(normalize(im, norm), config["patch"]) for im in images])
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + args.batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(x), args.batch_size)]).numpy()
    labels = np.asarray(labels)
    confusion = np.zeros((len(names), len(names)), int)
    np.add.at(confusion, (labels, pred), 1)
    print(f"data        {folder} ({len(images)} images)")
    print(f"accuracy    {(pred == labels).mean():.4f}")
    print("confusion   rows: true class, columns: predicted")
    width = max(len(n) for n in names)
    print(" " * (width + 2) + " ".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, confusion, strict=True):
        print(f"  {name:<{width}}" + " ".join(f"{v:>{width}}" for v in row))
    return 0


def predict_command(args) -> int:
    from dlcc.predict import predict_files
    from dlcc.train import get_device

    written = predict_files(args.checkpoint, args.inputs, args.out,
                            batch_size=args.batch_size, device=get_device(args.device),
                            tile=args.tile, overlap=args.overlap,
                            probabilities=args.probabilities,
                            progress=not args.no_progress)
    print(f"wrote {len(written)} file(s) to {args.out}")
    return 0


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug: reported in one line, exit code 2."""
    errors: list[type[BaseException]] = [ValueError, FileNotFoundError]
    data = sys.modules.get("dlcc.data")
    if data is not None:
        errors.append(data.DownloadError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from dlcc import doctor

        return doctor.main(seconds=args.seconds, expect_gpu=args.gpu, network=args.network)
    command = {"train": train_command, "evaluate": evaluate_command,
               "predict": predict_command}[args.command]
    try:
        return command(args)
    except FloatingPointError as error:  # dlcc.train.NonFiniteLossError: the run diverged
        print(f"{parser.prog} {args.command}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
