"""dlcc.data.folders: the layouts, formats and errors of a folder of the user's images."""

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from dlcc.data.folders import (
    SegmentationPatches,
    label_masks,
    load_folder,
    normalize,
    percentiles,
    read_image,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cells(n=4, size=48, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, size, size)) > 0.7
    images = (masks * 3000 + rng.integers(0, 500, (n, size, size))).astype(np.uint16)
    return images, masks


def segmentation_folder(root, n=4, size=48, mask_suffix="_mask", image_ext=".tif",
                        mask_ext=".png"):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    images, masks = cells(n, size)
    for i in range(n):
        name = f"cell_{i:02d}"
        if image_ext == ".tif":
            tifffile.imwrite(root / "images" / f"{name}.tif", images[i])
        else:
            iio.imwrite(root / "images" / f"{name}{image_ext}", (images[i] // 16).astype(np.uint8))
        mask = root / "masks" / f"{name}{mask_suffix}{mask_ext}"
        if mask_ext == ".png":
            iio.imwrite(mask, masks[i].astype(np.uint8) * 255)
        else:
            tifffile.imwrite(mask, masks[i].astype(np.uint8))
    return images, masks


@pytest.mark.parametrize("suffix", ["", "_mask", "_labels"])
def test_segmentation_pairs_by_stem_with_accepted_mask_suffixes(tmp_path, suffix):
    images, masks = segmentation_folder(tmp_path, mask_suffix=suffix)
    train, val, test, spec = load_folder(tmp_path, patch=16, seed=0)
    assert test is None
    assert len(train.images) + len(val.images) == 4 and len(val.images) == 1
    assert spec["task"] == "segmentation" and spec["in_channels"] == 1
    assert "train 3 image(s)" in spec["summary"] and "uint16" in spec["summary"]
    # every training mask is the file's mask, binarised
    assert sorted(m.sum().item() for m in train.masks + val.masks) == \
        sorted(float(m.sum()) for m in masks)


def test_formats_8_16_bit_float_multichannel_multipage(tmp_path):
    data = np.arange(2 * 5 * 6, dtype=np.uint16).reshape(2, 5, 6)
    tifffile.imwrite(tmp_path / "pages.tif", data)
    assert read_image(tmp_path / "pages.tif").shape == (2, 5, 6)
    tifffile.imwrite(tmp_path / "f.tif", data[0].astype(np.float32) / 7)
    np.testing.assert_allclose(read_image(tmp_path / "f.tif")[0], data[0] / 7, rtol=1e-6)
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 1] = 200
    iio.imwrite(tmp_path / "rgb.png", rgb)
    got = read_image(tmp_path / "rgb.png")
    assert got.shape == (3, 8, 9) and got[1].min() == 200 and got[0].max() == 0
    iio.imwrite(tmp_path / "g.jpg", np.full((16, 16), 100, np.uint8))
    assert abs(read_image(tmp_path / "g.jpg").mean() - 100) < 2


def test_png_images_and_tif_masks(tmp_path):
    segmentation_folder(tmp_path, image_ext=".png", mask_ext=".tif")
    train, _, _, spec = load_folder(tmp_path, patch=16)
    assert spec["in_channels"] == 1 and len(train) > 0


def test_percentile_normalisation_maps_percentiles_to_0_and_1():
    image = np.linspace(0, 1000, 10_001, dtype=np.float32).reshape(1, 1, -1)
    norm = percentiles([image])
    assert norm["low"][0] == pytest.approx(10, rel=1e-3)
    assert norm["high"][0] == pytest.approx(998, rel=1e-3)
    scaled = normalize(image, norm)
    assert np.percentile(scaled, 1) == pytest.approx(0, abs=1e-4)
    assert np.percentile(scaled, 99.8) == pytest.approx(1, abs=1e-4)


def test_patches_move_jointly_and_repeat_for_seed_and_epoch(tmp_path):
    image = np.arange(32 * 32, dtype=np.float32).reshape(1, 32, 32)
    mask = image.copy()  # a "mask" equal to the image shows whether both moved alike
    data = SegmentationPatches([image], [mask], 8, seed=3)
    assert len(data) == 16
    x, y = data[5]
    # the image also gets a small brightness change, the mask does not: undo it by fitting
    a, b = np.polyfit(y.ravel().numpy(), x.ravel().numpy(), 1)
    np.testing.assert_allclose(x.numpy(), a * y.numpy() + b, rtol=1e-4, atol=1e-2)
    assert 0.9 <= a <= 1.1
    assert torch.equal(data[5][0], x)  # a pure function of (seed, epoch, index)
    data.set_epoch(1)
    assert not torch.equal(data[5][0], x)
    data.set_epoch(0)
    assert torch.equal(data[5][0], x)
    val = SegmentationPatches([image], [mask], 8, seed=3, train=False)
    first = val[2][0]
    val.set_epoch(4)
    assert torch.equal(val[2][0], first) and torch.equal(val[2][0], val[2][1])


def test_split_is_seeded(tmp_path):
    segmentation_folder(tmp_path, n=6)
    def held(seed):
        return [float(m.sum()) for m in load_folder(tmp_path, patch=16, seed=seed)[1].masks]
    assert held(0) == held(0)
    assert any(held(0) != held(s) for s in (1, 2, 3))


def test_val_and_test_folders_are_used(tmp_path):
    segmentation_folder(tmp_path, n=3)
    segmentation_folder(tmp_path / "val", n=2)
    segmentation_folder(tmp_path / "test", n=1)
    train, val, test, spec = load_folder(tmp_path, patch=16)
    assert (len(train.images), len(val.images), len(test.images)) == (3, 2, 1)


def test_classification_layout(tmp_path):
    for name, value in (("dead", 10), ("alive", 200)):
        (tmp_path / name).mkdir()
        for i in range(5):
            iio.imwrite(tmp_path / name / f"{i}.png", np.full((20 + i, 24), value, np.uint8))
    train, val, test, spec = load_folder(tmp_path, patch=16, seed=0)
    assert spec["task"] == "classification" and spec["class_names"] == ["alive", "dead"]
    assert len(train) == 8 and len(val) == 2 and sorted(val.labels.tolist()) == [0, 1]
    assert train[0][0].shape == (1, 16, 16)
    assert "4 alive, 4 dead" in spec["summary"]


ERRORS = {
    "empty": (lambda r: ((r / "images").mkdir(), (r / "masks").mkdir()), "no images in"),
    "no folder": (lambda r: None, "no folder"),
    "image without mask": (
        lambda r: (segmentation_folder(r), (r / "masks" / "cell_02_mask.png").unlink()),
        r"1 image\(s\) in .* have no mask .*cell_02.tif"),
    "size mismatch": (
        lambda r: (segmentation_folder(r), iio.imwrite(r / "masks" / "cell_01_mask.png",
                                                       np.zeros((10, 10), np.uint8))),
        "cell_01_mask.png is 10 x 10 but its image is 48 x 48"),
    "truncated file": (
        lambda r: (segmentation_folder(r), (r / "images" / "cell_03.tif").write_bytes(
            (r / "images" / "cell_03.tif").read_bytes()[:50])),
        "cannot read .*cell_03.tif"),
    "mixed channels": (
        lambda r: (segmentation_folder(r), tifffile.imwrite(
            r / "images" / "cell_00.tif", np.zeros((2, 48, 48), np.uint16))),
        "different channel counts .*2 in cell_00.tif"),
    "patch too large": (lambda r: segmentation_folder(r, size=12), "--patch 16 is larger"),
    "class with one image": (
        lambda r: [(r / c).mkdir(exist_ok=True)
                   or iio.imwrite(r / c / f"{i}.png", np.zeros((8, 8), np.uint8))
                   for c, n in (("a", 3), ("b", 1)) for i in range(n)],
        "class folder .*b has 1 image"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_name_the_files(tmp_path, case):
    make, message = ERRORS[case]
    root = tmp_path / "data"
    if case != "no folder":
        root.mkdir()
    make(root)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_folder(root, patch=16)


def test_wrong_task_is_named(tmp_path):
    segmentation_folder(tmp_path)
    with pytest.raises(ValueError, match="--task classification: .* segmentation layout"):
        load_folder(tmp_path, task="classification", patch=16)


def test_non_image_files_are_ignored_with_a_warning(tmp_path):
    segmentation_folder(tmp_path)
    (tmp_path / "images" / "notes.txt").write_text("acquired on Tuesday")
    (tmp_path / "masks" / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(UserWarning, match="ignoring 1 file.*notes.txt"):
        train, val, _, _ = load_folder(tmp_path, patch=16)
    assert len(train.images) + len(val.images) == 4


def test_label_masks_binary_multiclass_and_bad_values(tmp_path):
    paths = [tmp_path / "a.tif"]
    masks, k = label_masks([np.array([[[0, 255], [255, 0]]], np.float32)], paths)
    assert k == 1 and masks[0].max() == 1
    masks, k = label_masks([np.array([[[0, 1], [2, 3]]], np.float32)], paths)
    assert k == 4 and masks[0].max() == 3
    with pytest.raises(ValueError, match="a multi-class mask the labels 0, 1, ..., K-1"):
        label_masks([np.array([[[0, 1], [2.5, 3]]], np.float32)], paths)
