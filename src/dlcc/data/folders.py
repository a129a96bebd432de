"""Your own images: a folder of TIFF, PNG or JPEG files as a training set.

Two layouts, as people already keep them:

- segmentation: ``DIR/images/NAME.tif`` with its mask ``DIR/masks/NAME.tif``; the mask may
  also be called ``NAME_mask``, ``NAME_masks``, ``NAME_label`` or ``NAME_labels``, with any
  image suffix (:data:`MASK_SUFFIXES`). Masks holding two values (0 and 1, or 0 and 255) are
  binary, foreground where > 0; masks holding more are label images 0, 1, ..., K-1 (K
  classes, 0 the background) (:func:`label_masks`).
- classification: ``DIR/CLASS/*``, one folder a class, named after it.

``DIR/val/`` and ``DIR/test/`` may hold the same layout; otherwise a seeded split by file
holds out ``val_fraction`` of the files. Intensities are scaled per channel by the 1st and
99.8th percentiles of the training images (:func:`percentiles`); the numbers travel in the
checkpoint so prediction scales new images the same way. Training draws random patches; the
randomness of each patch (where, which flip and rotation, how much brighter) is a pure
function of ``(seed, epoch, index)``, as in :class:`dlcc.data.Augmented`, so a resumed run
sees the same patches as an uninterrupted one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

from dlcc.scratch._checks import integer

SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
MASK_SUFFIXES = ("", "_mask", "_masks", "_label", "_labels")
SPLITS = ("val", "test")
PERCENTILES = (1.0, 99.8)


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as float32 (C, H, W).

    TIFF through ``tifffile`` (8/16-bit, float; the pages of a multi-page file become
    channels), PNG and JPEG through ``imageio``. A trailing axis of 3 or 4 is taken as colour
    channels. A file that cannot be read raises ``ValueError`` naming it.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile
            array = tifffile.imread(path)
        else:
            import imageio.v3 as iio
            array = iio.imread(path)
    except Exception as error:  # truncated, not an image, unsupported compression, ...
        raise ValueError(f"cannot read {path}: {error}") from None
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        array = np.moveaxis(array, -1, 0)
    elif array.ndim != 3:
        raise ValueError(f"{path}: expected a 2-D image, channels x H x W or H x W x "
                         f"channels; got shape {array.shape}")
    return array.astype(np.float32)


def _files(folder: Path) -> list[Path]:
    """The image files in ``folder``, sorted; anything else is ignored with a warning
    (hidden files such as ``.DS_Store`` silently)."""
    files, others = [], []
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith("."):
            continue
        (files if path.suffix.lower() in SUFFIXES else others).append(path)
    if others:
        names = ", ".join(p.name for p in others[:5]) + (" ..." if len(others) > 5 else "")
        warnings.warn(f"{folder}: ignoring {len(others)} file(s) that are not images "
                      f"({', '.join(SUFFIXES)}): {names}", stacklevel=3)
    return files


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of a segmentation folder ``root``, paired by file stem."""
    images = _files(root / "images")
    masks = {p.stem: p for p in _files(root / "masks")}
    if not images:
        raise ValueError(f"no images in {root / 'images'} (expected {', '.join(SUFFIXES)})")
    pairs, missing = [], []
    for image in images:
        found = [masks[image.stem + s] for s in MASK_SUFFIXES if image.stem + s in masks]
        if found:
            pairs.append((image, found[0]))
        else:
            missing.append(image.name)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} image(s) in {root / 'images'} have no mask in "
                         f"{root / 'masks'}: {shown} (a mask of NAME.tif is NAME.* or "
                         f"NAME{{{','.join(MASK_SUFFIXES[1:])}}}.*)")
    return pairs


def _classes(root: Path) -> dict[str, list[Path]]:
    """``{class name: files}`` of a classification folder ``root``."""
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name not in SPLITS]
    classes = {p.name: _files(p) for p in folders}
    if not classes or not any(classes.values()):
        raise ValueError(f"no images in {root}: expected {root}/images and {root}/masks "
                         f"(segmentation) or one folder of images per class (classification)")
    for name, files in classes.items():
        if len(files) < 2:
            raise ValueError(f"class folder {root / name} has {len(files)} image(s); a class "
                             "needs at least 2 (one to train on, one to check)")
    return classes


def detect_task(root: str | Path) -> str:
    """``"segmentation"`` if ``root`` has images/ and masks/, else ``"classification"``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data: no folder {root}")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "segmentation"
    if (root / "images").is_dir():
        raise ValueError(f"{root} has images/ but no masks/: a segmentation folder needs both")
    return "classification"


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The mask at ``path`` as float32 (1, H, W) of its values; its size must be ``shape``."""
    mask = read_image(path)
    if mask.shape[-2:] != tuple(shape):
        raise ValueError(f"mask {path} is {mask.shape[-2]} x {mask.shape[-1]} but its image "
                         f"is {shape[0]} x {shape[1]}")
    return mask.max(axis=0, keepdims=True)  # an RGB mask: any channel set


def label_masks(masks: list[np.ndarray], paths: list[Path]) -> tuple[list[np.ndarray], int]:
    """``(masks, num_classes)``: binary masks in {0, 1} with ``num_classes`` 1, or label
    images 0..K-1 with ``num_classes`` K, from the values the masks hold."""
    values = set()
    for mask in masks:
        values.update(np.unique(mask).tolist())
    if len(values) <= 2:
        return [(m > 0).astype(np.float32) for m in masks], 1
    k = int(max(values)) + 1
    if any(v != int(v) or v < 0 for v in values) or k > 256:
        shown = sorted(values)[:8]
        raise ValueError(f"masks in {paths[0].parent} hold the values {shown}...: a binary "
                         "mask holds two values, a multi-class mask the labels 0, 1, ..., "
                         "K-1 (at most 256)")
    return masks, k


def _check_channels(images: list[np.ndarray], paths: list[Path]) -> int:
    counts = {}
    for image, path in zip(images, paths, strict=True):
        counts.setdefault(image.shape[0], path)
    if len(counts) > 1:
        found = "; ".join(f"{c} in {p.name}" for c, p in counts.items())
        raise ValueError(f"images have different channel counts ({found}): convert them to "
                         "one count")
    return next(iter(counts))


def percentiles(images: list[np.ndarray], q: tuple[float, float] = PERCENTILES) -> dict:
    """Per-channel low and high intensity of ``images``: ``{"low", "high", "q"}``.

    Up to 2**20 pixels a channel from each image (a regular subsample) enter the estimate, so
    large images cost little.
    """
    channels = images[0].shape[0]
    low, high = [], []
    for c in range(channels):
        values = np.concatenate([
            im[c].ravel()[:: max(1, im[c].size // 2**20)] for im in images])
        lo, hi = np.percentile(values, q)
        low.append(float(lo))
        high.append(float(hi) if hi > lo else float(lo) + 1.0)
    return {"low": low, "high": high, "q": list(q)}


def normalize(image: np.ndarray, norm: dict) -> np.ndarray:
    """``image`` (C, H, W) scaled so the stored low and high percentiles map to 0 and 1."""
    low = np.asarray(norm["low"], np.float32)[:, None, None]
    high = np.asarray(norm["high"], np.float32)[:, None, None]
    return ((image - low) / (high - low)).astype(np.float32)


def _generator(seed: int, epoch: int, index: int) -> torch.Generator:
    # hash() of a tuple of ints is the same in every process (only str hashes are salted).
    return torch.Generator().manual_seed(hash((seed, epoch, index)) % 2**64)


def augment(x: torch.Tensor, generator: torch.Generator, image_channels: int) -> torch.Tensor:
    """A random 90-degree rotation and flip of ``x`` (C, H, W), then a small change of
    brightness and contrast on the first ``image_channels`` channels (the rest is a mask)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.rand(1, generator=generator) < 0.5)
    gain, shift = (torch.rand(2, generator=generator) - 0.5) * 0.2  # +-10 %
    x = torch.rot90(x, k, dims=(-2, -1))
    if flip:
        x = x.flip(-1)
    x = x.clone()
    x[:image_channels] = x[:image_channels] * (1 + gain) + shift
    return x


class _Epochs(Dataset):
    """Items drawn from ``(seed, epoch, index)``; ``set_epoch`` is called by ``fit``."""

    def __init__(self, seed: int, train: bool):
        self.seed, self.train = seed, train
        # Shared memory: DataLoader workers see set_epoch's value (as in Augmented).
        self.epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        if self.train:  # validation items stay the same every epoch
            self.epoch.fill_(epoch)

    def generator(self, index: int) -> torch.Generator:
        return _generator(self.seed, int(self.epoch), index)


class SegmentationPatches(_Epochs):
    """Random ``patch`` x ``patch`` windows of ``images`` with their ``masks``.

    An image of H x W pixels gives ``ceil(H * W / patch**2)`` windows an epoch, so an epoch
    covers about as many pixels as the images hold. With ``train=True`` each window is
    augmented (:func:`augment`) and the windows move every epoch; with ``train=False`` they
    are fixed and unaugmented, so validation numbers are comparable across epochs.
    """

    def __init__(self, images: list[np.ndarray], masks: list[np.ndarray], patch: int, *,
                 seed: int = 0, train: bool = True):
        super().__init__(seed, train)
        self.images = [torch.from_numpy(im) for im in images]
        self.masks = [torch.from_numpy(m) for m in masks]
        self.patch = patch
        self.owner = [i for i, im in enumerate(images)
                      for _ in range(-(-im.shape[-2] * im.shape[-1] // patch**2))]

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index: int):
        image, mask = self.images[self.owner[index]], self.masks[self.owner[index]]
        g = self.generator(index)
        h, w = image.shape[-2:]
        top = int(torch.randint(0, h - self.patch + 1, (1,), generator=g))
        left = int(torch.randint(0, w - self.patch + 1, (1,), generator=g))
        window = (..., slice(top, top + self.patch), slice(left, left + self.patch))
        x, y = image[window], mask[window]
        if not self.train:
            return x, y
        both = augment(torch.cat([x, y]), g, image_channels=len(x))
        return both[:len(x)], both[len(x):]


class ClassImages(_Epochs):
    """Images resized to ``patch`` x ``patch`` with integer labels; augmented if ``train``."""

    def __init__(self, images: list[np.ndarray], labels: list[int], patch: int, *,
                 seed: int = 0, train: bool = True):
        super().__init__(seed, train)
        self.images = torch.stack([resize(im, patch) for im in images])
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = self.images[index]
        if self.train:
            x = augment(x, self.generator(index), image_channels=len(x))
        return x, self.labels[index]


def resize(image: np.ndarray, size: int) -> torch.Tensor:
    """``image`` (C, H, W) resized to (C, size, size), antialiased: what a classifier sees."""
    x = torch.from_numpy(np.ascontiguousarray(image))[None]
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0]


def _split(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded split of ``items`` into (kept, held out), at least one held out."""
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_out = max(1, round(fraction * len(items))) if len(items) > 1 else 0
    return [items[i] for i in sorted(order[n_out:])], [items[i] for i in sorted(order[:n_out])]


def read_segmentation(root: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[Path]]:
    """Images, masks and image paths of a segmentation folder (no normalisation)."""
    pairs = _pairs(root)
    images, masks = [], []
    for image_path, mask_path in pairs:
        image = read_image(image_path)
        images.append(image)
        masks.append(read_mask(mask_path, image.shape[-2:]))
    return images, masks, [p for p, _ in pairs]


def read_classes(root: Path, names: list[str] | None = None):
    """Images, labels, paths and class names of a classification folder."""
    classes = _classes(root)
    names = names or list(classes)
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise ValueError(f"{root} has class folders the model does not know: {unknown} "
                         f"(its classes are {names})")
    paths = [(p, names.index(c)) for c, files in classes.items() for p in files]
    return [read_image(p) for p, _ in paths], [y for _, y in paths], [p for p, _ in paths], \
        names


def load_folder(root: str | Path, *, task: str | None = None, patch: int = 64, seed: int = 0,
                val_fraction: float = 0.2):
    """``(train, val, test, spec)`` for the folder ``root``, as :func:`dlcc.cli.load_data`.

    ``test`` is ``None`` without ``root/test``. ``spec`` holds what prediction needs (task,
    channels, classes, patch size, the normalisation) and ``spec["summary"]`` says what was
    found, one line a split.
    """
    root = Path(root)
    found = detect_task(root)
    if task is not None and task != found:
        raise ValueError(f"--task {task}: {root} has the {found} layout "
                         "(images/ + masks/ is segmentation, one folder a class is "
                         "classification)")
    integer("patch", patch)
    segment = found == "segmentation"
    names = None
    splits = {}
    for split in ("train", *SPLITS):
        folder = root if split == "train" else root / split
        if split != "train" and not folder.is_dir():
            continue
        if segment:
            images, targets, paths = read_segmentation(folder)
        else:
            images, targets, paths, names = read_classes(folder, names)
        splits[split] = (images, targets, paths)
    if "val" not in splits:
        indices = list(range(len(splits["train"][0])))
        if not segment:  # split each class on its own, so every class is in both
            labels = splits["train"][1]
            keep, held = [], []
            for c in range(len(names)):
                k, h = _split([i for i in indices if labels[i] == c], val_fraction, seed + c)
                keep += k
                held += h
        else:
            keep, held = _split(indices, val_fraction, seed)
        if not held:
            raise ValueError(f"{root} holds one image: at least 2 are needed (one to train "
                             "on, one to validate)")
        images, targets, paths = splits["train"]
        splits["val"] = tuple([part[i] for i in held] for part in (images, targets, paths))
        splits["train"] = tuple([part[i] for i in sorted(keep)]
                                for part in (images, targets, paths))
    all_paths = [p for s in splits.values() for p in s[2]]
    channels = _check_channels([im for s in splits.values() for im in s[0]], all_paths)
    if segment:
        small = [(p, im.shape[-2:]) for s in splits.values()
                 for im, p in zip(s[0], s[2], strict=True) if min(im.shape[-2:]) < patch]
        if small:
            path, shape = small[0]
            raise ValueError(f"--patch {patch} is larger than {path.name} ({shape[0]} x "
                             f"{shape[1]}): choose a patch no larger than the smallest side")
    num_classes = len(names) if not segment else None
    if segment:
        all_masks, num_classes = label_masks([m for s in splits.values() for m in s[1]],
                                             all_paths)
        for split, (images, _, paths) in list(splits.items()):
            splits[split] = (images, all_masks[:len(images)], paths)
            all_masks = all_masks[len(images):]
    norm = percentiles(splits["train"][0])
    datasets = {}
    for split, (images, targets, _) in splits.items():
        images = [normalize(im, norm) for im in images]
        kind = SegmentationPatches if segment else ClassImages
        datasets[split] = kind(images, targets, patch, seed=seed, train=split == "train")
    summary = [f"{found} folder {root}: {channels} channel(s), patch {patch}"]
    for split in ("train", *SPLITS):
        if split not in splits:
            continue
        images, targets, paths = splits[split]
        sizes = sorted({f"{im.shape[-2]}x{im.shape[-1]}" for im in images})
        dtypes = sorted({str(_dtype(p)) for p in paths[:20]})
        line = (f"  {split:<5} {len(images)} image(s), {len(datasets[split])} "
                f"{'patches' if segment else 'samples'}; sizes {', '.join(sizes[:4])}"
                f"{' ...' if len(sizes) > 4 else ''}; dtype {', '.join(dtypes)}")
        if not segment:
            counts = np.bincount(targets, minlength=len(names))
            line += "; " + ", ".join(f"{c} {n}" for n, c in zip(names, counts, strict=True))
        summary.append(line)
    if segment and num_classes > 1:
        summary.append(f"  masks: label images with {num_classes} classes (0 = background)")
    spec = {"task": found, "in_channels": channels, "num_classes": num_classes,
            "image_size": patch, "patch": patch, "normalization": norm,
            "class_names": names, "summary": "\n".join(summary)}
    return datasets["train"], datasets["val"], datasets.get("test"), spec


def _dtype(path: Path) -> np.dtype:
    """The stored dtype of an image file (read again, cheaply, only for the summary)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile
        with tifffile.TiffFile(path) as tif:
            return tif.series[0].dtype
    import imageio.v3 as iio
    return iio.imread(path).dtype
