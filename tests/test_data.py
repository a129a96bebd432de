"""Tests for dlcc.data: offline sets, synthetic cells, preparation, loaders, augmentation."""

import functools

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dlcc.data import (
    Augmented,
    DataSplits,
    compose,
    digits,
    gaussian_blur,
    make_loader,
    mnist_small,
    normalization_stats,
    random_crop,
    random_flip,
    random_rotate,
    synthetic_cells,
    to_dataset,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digit_splits():
    return digits(seed=0), digits(seed=0, standardize=False)


# ---- offline sets -------------------------------------------------------------------------

def test_digits_shapes_dtypes_and_unpacking(digit_splits):
    splits, _ = digit_splits
    assert isinstance(splits, DataSplits)
    train, val, test = splits
    assert len(train) + len(val) + len(test) == 1797
    x, y = train.tensors
    assert x.shape == (len(train), 1, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert splits.mean.shape == splits.std.shape == (1, 8, 8)


def test_digits_standardised_with_training_statistics_only(digit_splits):
    splits, raw = digit_splits
    raw_train = raw.train.tensors[0]
    torch.testing.assert_close(splits.mean, raw_train.mean(0))
    # Every split, the test split included, uses the *training* mean and std.
    for std_split, raw_split in zip(splits, raw, strict=True):
        torch.testing.assert_close(std_split.tensors[0],
                                   (raw_split.tensors[0] - splits.mean) / splits.std)
        assert torch.equal(std_split.tensors[1], raw_split.tensors[1])
    assert splits.train.tensors[0].mean(0).abs().max() < 1e-5
    assert splits.test.tensors[0].mean(0).abs().max() > 1e-3  # not re-centred on itself


def test_digits_deterministic_per_seed(digit_splits):
    splits, _ = digit_splits
    again, other = digits(seed=0), digits(seed=1)
    assert torch.equal(again.test.tensors[0], splits.test.tensors[0])
    assert not torch.equal(other.test.tensors[1], splits.test.tensors[1])


def test_mnist_small():
    train, val, test = mnist_small(seed=0, val_fraction=0.2, test_fraction=0.2)
    assert (len(train), len(val), len(test)) == (3000, 1000, 1000)
    assert train.tensors[0].shape == (3000, 1, 28, 28)
    assert train.tensors[0].dtype == torch.float32 and test.tensors[1].dtype == torch.int64


# ---- synthetic cells ----------------------------------------------------------------------

def test_synthetic_cells_shapes_and_values():
    """Its speed is measured against a training epoch in benchmarks/data.py."""
    images, masks = synthetic_cells().tensors  # the defaults: 256 images of 64x64
    assert images.shape == masks.shape == (256, 1, 64, 64)
    assert images.dtype == masks.dtype == torch.float32
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    assert (masks.sum(dim=(1, 2, 3)) > 0).all()  # every image has a cell
    assert 0.02 < masks.mean() < 0.3


def test_synthetic_cells_deterministic_per_seed():
    a = synthetic_cells(n=8, size=32, seed=3).tensors
    b = synthetic_cells(n=8, size=32, seed=3).tensors
    c = synthetic_cells(n=8, size=32, seed=4).tensors
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_synthetic_masks_sit_on_the_cells():
    images, masks = synthetic_cells(n=32, size=48, noise=0.0, blur=0.0).tensors
    inside = (images * masks).sum((1, 2, 3)) / masks.sum((1, 2, 3))
    outside = (images * (1 - masks)).sum((1, 2, 3)) / (1 - masks).sum((1, 2, 3))
    assert (inside > outside + 0.2).all()


def test_synthetic_cells_are_not_a_thresholding_problem():
    images, masks = synthetic_cells(n=64, seed=1).tensors
    # Dice of "the k brightest pixels are cells" for every k at once: the best any global
    # threshold can do.
    order = images.flatten().argsort(descending=True)
    true_positives = masks.flatten()[order].cumsum(0)
    predicted = torch.arange(1, len(order) + 1)
    best = (2 * true_positives / (predicted + masks.sum())).max()
    assert 0.3 < best < 0.75  # a small U-Net reaches Dice > 0.9 on the same data


def test_gaussian_blur_preserves_mean_and_smooths():
    x = torch.randn(4, 1, 20, 30, generator=gen())
    y = gaussian_blur(x, 1.5)
    assert y.shape == x.shape
    torch.testing.assert_close(y.mean(), x.mean(), atol=0.02, rtol=0)
    assert y.std() < x.std() / 2
    assert torch.equal(gaussian_blur(x, 0), x)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be a positive integer"),
    (dict(size=4), "size must be an integer >= 8"),
    (dict(max_cells=0), "max_cells"),
    (dict(noise=-0.1), "noise must be >= 0"),
    (dict(blur=float("nan")), "blur must be >= 0"),
])
def test_synthetic_cells_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_cells(**kwargs)


# ---- preparation --------------------------------------------------------------------------

def test_normalization_stats_per_channel():
    images = torch.stack([torch.full((4, 4), 10.0), torch.arange(16.0).view(4, 4)])[None]
    images = images.repeat(3, 1, 1, 1).to(torch.uint8)  # (3, 2, 4, 4), channel 0 constant
    mean, std = normalization_stats(images)
    assert mean.dtype == std.dtype == torch.float32 and mean.shape == (2,)
    torch.testing.assert_close(mean, torch.tensor([10.0, 7.5]))
    torch.testing.assert_close(std, torch.tensor([1.0, torch.arange(16.0).std(correction=0)]))
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\); got \(4, 4\)"):
        normalization_stats(torch.zeros(4, 4))


def test_to_dataset_uses_training_statistics():
    g = gen()
    x_train = torch.randint(0, 256, (50, 3, 4, 4), generator=g, dtype=torch.uint8)
    x_test = torch.randint(100, 256, (20, 3, 4, 4), generator=g, dtype=torch.uint8)
    y_train, y_test = torch.zeros(50, dtype=torch.int32), torch.ones(20, dtype=torch.int32)
    mean, std = normalization_stats(x_train)
    train = to_dataset(x_train, y_train)
    test = to_dataset(x_test, y_test, mean, std)
    assert train.tensors[0].dtype == torch.float32 and train.tensors[1].dtype == torch.int64
    torch.testing.assert_close(train.tensors[0].mean((0, 2, 3)), torch.zeros(3), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(test.tensors[0],
                               (x_test.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    assert (test.tensors[0].mean((0, 2, 3)) > 0.3).all()  # brighter test set stays brighter


@pytest.mark.parametrize("args, message", [
    ((torch.zeros(5, 1, 2, 2), torch.zeros(4)), r"labels must be a tensor of shape \(5,\)"),
    ((torch.zeros(5, 1, 2, 2), torch.zeros(5), 0.5), "give both mean and std"),
    ((torch.zeros(5, 2, 2, 2), torch.zeros(5), [0.5], [1.0]), r"one value per channel \(2\)"),
])
def test_to_dataset_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        to_dataset(*args)


def test_make_loader_seeded_shuffle_and_pinning():
    data = TensorDataset(torch.arange(32))

    def order(loader):
        return torch.cat([batch for (batch,) in loader]).tolist()

    a, b = make_loader(data, 8, True, seed=0), make_loader(data, 8, True, seed=0)
    first = order(a)
    assert first == order(b) and sorted(first) == list(range(32))
    assert order(a) != first  # a new order each epoch ...
    assert order(make_loader(data, 8, True, seed=1)) != first  # ... and per seed
    assert order(make_loader(data, 8, False)) == list(range(32))
    assert not a.pin_memory and not make_loader(data, 8, True, device="cpu").pin_memory
    assert make_loader(data, 8, True, device="cuda:0").pin_memory


def test_make_loader_bad_arguments():
    data = TensorDataset(torch.arange(4))
    sampler = torch.utils.data.SequentialSampler(data)
    assert len(make_loader(data, 2, False, sampler=sampler)) == 2
    with pytest.raises(ValueError, match="shuffle must be False when a sampler is given"):
        make_loader(data, 2, True, sampler=sampler)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        make_loader(data, 0, True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got True"):
        make_loader(data, True, True)
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0, got -1"):
        make_loader(data, 2, True, num_workers=-1)
    # numpy integers (sizes computed with numpy) are integers too
    assert make_loader(data, np.int64(2), False, num_workers=np.int64(0)).batch_size == 2


# ---- augmentation -------------------------------------------------------------------------

def test_random_flip():
    x = torch.arange(2 * 3 * 4.0).view(1, 2, 3, 4).repeat(64, 1, 1, 1)
    assert torch.equal(random_flip(x, gen(), p=1.0), x.flip(-1))
    assert torch.equal(random_flip(x, gen(), p=0.0), x)
    out = random_flip(x, gen(), p=0.5)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert ((out == x).flatten(1).all(1) ^ flipped).all()  # each image whole, one or other
    assert 10 < flipped.sum() < 54
    assert torch.equal(out, random_flip(x, gen(), p=0.5))
    assert random_flip(x[0], gen(), p=1.0).shape == (2, 3, 4)


def test_random_crop_is_a_shifted_window():
    x = torch.arange(1, 1 + 2 * 5 * 6.0).view(1, 2, 5, 6).repeat(16, 1, 1, 1)
    assert torch.equal(random_crop(x, gen(), padding=0), x)
    out = random_crop(x, gen(), padding=2)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x[0], (2, 2, 2, 2))
    windows = {(i, j): padded[:, i:i + 5, j:j + 6] for i in range(5) for j in range(5)}
    found = [next(k for k, w in windows.items() if torch.equal(w, img)) for img in out]
    assert len(set(found)) > 4  # different shifts for different images
    single = random_crop(torch.ones(3, 8, 8, dtype=torch.uint8), gen(), padding=1)
    assert single.shape == (3, 8, 8) and single.dtype == torch.uint8


def test_random_rotate_turns_rigidly():
    x = torch.rand(2, 1, 9, 13, generator=gen(5))
    torch.testing.assert_close(random_rotate(x, gen(), degrees=0), x)
    # A centred disk on a non-square image must stay a disk (no shear from the aspect ratio).
    yy, xx = torch.meshgrid(torch.arange(41.0), torch.arange(61.0), indexing="ij")
    disk = (((yy - 20) ** 2 + (xx - 30) ** 2) <= 15**2).float().expand(8, 1, 41, 61)
    turned = random_rotate(disk, gen(), degrees=90)
    assert (turned - disk).abs().mean() < 0.03  # interpolated edge; a sheared disk: 0.08
    with pytest.raises(TypeError, match="must be floating point"):
        random_rotate(disk.to(torch.uint8), gen())


def test_augmentation_bad_input():
    with pytest.raises(ValueError, match=r"x must have shape \(C, H, W\) or \(N, C, H, W\)"):
        random_flip(torch.zeros(4, 4), gen())
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        random_crop(torch.zeros(1, 4, 4), 0)
    with pytest.raises(ValueError, match="padding must be an integer >= 0"):
        random_crop(torch.zeros(1, 4, 4), gen(), padding=-1)


def test_augmented_keeps_masks_aligned():
    _, masks = synthetic_cells(n=16, size=32, seed=2).tensors
    images = 2 * masks  # an image whose bright pixels are exactly the mask
    transform = compose(random_flip, functools.partial(random_crop, padding=6),
                        functools.partial(random_rotate, degrees=30))
    data = Augmented(TensorDataset(images, masks), transform, seed=0, masks=True)
    changed = 0
    for i in range(len(data)):
        image, mask = data[i]
        assert image.shape == mask.shape == (1, 32, 32) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(image > 1.0, mask > 0.5)
        changed += not torch.equal(mask, masks[i])
    assert changed > 12


def test_augmented_reproducible_and_labels_untouched():
    x, y = torch.rand(6, 1, 8, 8, generator=gen()), torch.arange(6)
    a = Augmented(TensorDataset(x, y), functools.partial(random_crop, padding=2), seed=1)
    b = Augmented(TensorDataset(x, y), functools.partial(random_crop, padding=2), seed=1)
    items_a, items_b = [a[i] for i in range(6)], [b[i] for i in range(6)]
    assert all(torch.equal(p[0], q[0]) for p, q in zip(items_a, items_b, strict=True))
    assert [int(item[1]) for item in items_a] == list(range(6))
    assert len(a) == 6


def test_augmented_workers_draw_different_randomness():
    data = Augmented(TensorDataset(torch.rand(1, 1, 8, 8).expand(8, 1, 8, 8)),
                     functools.partial(random_crop, padding=3), seed=0)

    def epoch():
        loader = make_loader(data, 1, False, num_workers=2, seed=7)
        return torch.cat([batch for (batch,) in loader])

    first = epoch()
    assert torch.equal(first, epoch())  # a seeded loader repeats itself
    assert not torch.equal(first[0], first[1])  # workers 0 and 1 do not repeat each other


def test_augmented_bad_arguments():
    with pytest.raises(TypeError, match="transform must be callable"):
        Augmented(TensorDataset(torch.zeros(2, 1, 4, 4)), "flip")
    data = Augmented(TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2)), random_flip,
                     masks=True)
    with pytest.raises(ValueError, match="masks=True needs items"):
        data[0]
