"""Prediction on images of any size: tiles with overlap, blended smoothly.

:func:`predict_tiled` runs a fully convolutional model on ``tile`` x ``tile`` windows that
overlap by ``overlap`` pixels, a batch of windows at a time, and adds each window's output
into the full-size result with a weight that is 0 for the ``overlap // 4`` pixels next to a
cut (where the window's zero padding differs from the real neighbours), rises smoothly over
the next ``overlap // 2`` and is 1 inside; edges on the image border keep weight 1. Dividing
by the summed weights makes the result exact wherever the model's receptive field reaches
no further than ``overlap // 4`` pixels, and leaves no seams. Memory: the input and the
output at full size, plus one batch of windows.

:func:`predict_files` is ``python -m dlcc predict``: it reads a checkpoint written by
``python -m dlcc train --data FOLDER`` and writes masks (TIFF, the input's size) or a CSV.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import numpy as np
import torch
from torch import nn


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of windows of ``tile`` pixels covering ``size``, consecutive ones sharing at
    least ``overlap``; the last window ends at the border."""
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def ramp(length: int, overlap: int, cut_before: bool, cut_after: bool) -> np.ndarray:
    """Blending weights along one side of a window (see the module docstring)."""
    d = np.arange(length, dtype=np.float64)
    weight = np.ones(length)
    zero, rise = overlap // 4, max(1, overlap // 2)
    for cut, distance in ((cut_before, d), (cut_after, length - 1 - d)):
        if cut:
            t = np.clip((distance - zero + 0.5) / rise, 0, 1)
            weight *= np.sin(t * np.pi / 2) ** 2  # smooth: zero slope at both ends
    return weight.astype(np.float32)


@torch.no_grad()
def predict_tiled(model: nn.Module, image: np.ndarray | torch.Tensor, *, tile: int = 256,
                  overlap: int = 64, batch_size: int = 8, device: str | torch.device = "cpu",
                  progress=None) -> np.ndarray:
    """The blended output (K, H, W) float32 of ``model`` on ``image`` (C, H, W).

    ``progress`` (e.g. a tqdm bar) has ``update(n)`` called after each batch of windows.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be >= 0 and smaller than tile ({tile}), got {overlap}")
    if image.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W), got {tuple(image.shape)}")
    image = torch.as_tensor(image)
    _, h, w = image.shape
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    boxes = [(r, c) for r in rows for c in cols]
    th, tw = min(tile, h), min(tile, w)
    model.eval()
    out = weight = None
    for first in range(0, len(boxes), batch_size):
        batch = boxes[first:first + batch_size]
        x = torch.stack([image[:, r:r + th, c:c + tw] for r, c in batch]).to(device)
        y = model(x).float().cpu().numpy()
        if out is None:
            out = np.zeros((y.shape[1], h, w), np.float32)
            weight = np.zeros((h, w), np.float32)
        for (r, c), y_tile in zip(batch, y, strict=True):
            wr = ramp(th, overlap, r > 0, r + th < h)
            wc = ramp(tw, overlap, c > 0, c + tw < w)
            wt = wr[:, None] * wc[None, :]
            out[:, r:r + th, c:c + tw] += y_tile * wt
            weight[r:r + th, c:c + tw] += wt
        if progress is not None:
            progress.update(len(batch))
    out /= weight
    return out


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """``(model, config)`` from a checkpoint of ``python -m dlcc train --data FOLDER``."""
    from dlcc.models import build_model
    from dlcc.train import load_checkpoint

    state = load_checkpoint(checkpoint)
    config = state.get("config") or {}
    if "normalization" not in config:
        raise ValueError(f"--checkpoint {checkpoint} was not trained on a folder of images "
                         "(`python -m dlcc train --data FOLDER`): it stores no normalisation")
    model = build_model(config["model"], in_channels=config["in_channels"],
                        num_classes=config["num_classes"], image_size=config["image_size"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their image files) and globs, in order, each file once."""
    from dlcc.data.folders import SUFFIXES

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
        if not found:
            raise FileNotFoundError(f"INPUT {item}: no such file, no images in that folder, "
                                    f"or no match for the pattern")
        files += [p for p in found if p not in files]
    return files


def predict_files(checkpoint, inputs: list[str], out: str | Path, *, batch_size: int = 8,
                  device: str | torch.device = "cpu", tile: int | None = None,
                  overlap: int | None = None, probabilities: bool = False,
                  progress: bool = True) -> list[Path]:
    """Predict every input; returns the files written (masks, or one ``predictions.csv``).

    Segmentation writes ``OUT/NAME_mask.tif`` (uint8, the input's size: 255 for foreground,
    or for K classes the label 0..K-1) and with ``probabilities`` also ``OUT/NAME_prob.tif``
    (float32: the foreground probability, or K probabilities). ``tile`` defaults to
    four times the training patch, ``overlap`` to a quarter of the tile.
    """
    import tifffile

    from dlcc.data.folders import normalize, read_image, resize
    from dlcc.train.progress import _tqdm

    model, config = load_model(checkpoint, device)
    files = expand_inputs(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    norm, channels = config["normalization"], config["in_channels"]
    images = (normalize(read_image(p), norm) for p in files)

    def checked(image, path):
        if image.shape[0] != channels:
            raise ValueError(f"{path} has {image.shape[0]} channel(s); the model was trained "
                             f"on {channels}")
        return image

    bar = _tqdm()(total=len(files), unit="file", disable=not progress)
    written = []
    if config["task"] == "classification":
        names = config["class_names"]
        rows = []
        for path, image in zip(files, images, strict=False):
            x = resize(checked(image, path), config["patch"])[None].to(device)
            with torch.no_grad():
                p = torch.softmax(model(x).float(), dim=1)[0].cpu().tolist()
            rows.append([str(path), names[int(np.argmax(p))], *(f"{v:.6f}" for v in p)])
            bar.update()
        table = out / "predictions.csv"
        with open(table, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "class", *(f"p_{n}" for n in names)])
            writer.writerows(rows)
        bar.close()
        return [table]
    tile = tile or 4 * config["patch"]
    overlap = tile // 4 if overlap is None else overlap
    for path, image in zip(files, images, strict=False):
        image = checked(image, path)
        h, w = image.shape[-2:]
        n_tiles = len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))
        with _tqdm()(total=n_tiles, unit="tile", leave=False, disable=not progress) as tiles:
            logits = predict_tiled(model, image, tile=tile, overlap=overlap,
                                   batch_size=batch_size, device=device, progress=tiles)
        if len(logits) > 1:  # K classes: the label of largest logit, softmax probabilities
            p = torch.softmax(torch.from_numpy(logits), dim=0).numpy()
            labels = logits.argmax(0).astype(np.uint8)
        else:
            p = torch.sigmoid(torch.from_numpy(logits[0])).numpy()
            labels = ((p > 0.5) * 255).astype(np.uint8)
        mask = out / f"{path.stem}_mask.tif"
        tifffile.imwrite(mask, labels)
        written.append(mask)
        if probabilities:
            written.append(out / f"{path.stem}_prob.tif")
            tifffile.imwrite(written[-1], p.astype(np.float32), photometric="minisblack")
        bar.update()
    bar.close()
    return written
