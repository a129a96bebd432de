"""dlcc.predict and `python -m dlcc train --data FOLDER / predict / evaluate`."""

import csv

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from dlcc.cli import main
from dlcc.predict import predict_tiled, ramp, tile_starts
from dlcc.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def conv_net(padding_mode="zeros", seed=0):
    """Fully convolutional, receptive field 7 x 7 (radius 3)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode=padding_mode), nn.Tanh(),
                         nn.Conv2d(4, 4, 3, padding=1, padding_mode=padding_mode), nn.Tanh(),
                         nn.Conv2d(4, 3, 3, padding=1, padding_mode=padding_mode))


def test_tile_starts_cover_the_image_with_overlap():
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:], strict=False))
    assert tile_starts(20, 32, 8) == [0]


def test_ramp_is_zero_at_cuts_and_one_at_borders():
    w = ramp(32, 16, cut_before=True, cut_after=False)
    assert (w[:4] == 0).all() and w[-1] == 1 and (np.diff(w) >= 0).all()
    assert (ramp(32, 16, False, False) == 1).all()


@pytest.mark.parametrize("shape", [(70, 90), (64, 64), (33, 100)])
def test_tiled_equals_whole_image_for_a_fully_convolutional_model(shape):
    model = conv_net()
    image = torch.randn(2, *shape)
    with torch.no_grad():
        whole = model(image[None])[0].numpy()
    tiled = predict_tiled(model, image, tile=32, overlap=12, batch_size=3)
    assert len(tile_starts(shape[0], 32, 12)) > 1  # really tiled
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=0)


def test_constant_image_gives_constant_output_without_seams():
    model = conv_net(padding_mode="replicate")
    out = predict_tiled(model, torch.full((2, 75, 61), 0.3), tile=24, overlap=8)
    assert out.shape == (3, 75, 61)
    np.testing.assert_allclose(out, out[:, :1, :1] * np.ones_like(out), atol=1e-6)


def test_predict_tiled_errors():
    with pytest.raises(ValueError, match="overlap must be >= 0 and smaller than tile"):
        predict_tiled(conv_net(), torch.zeros(2, 40, 40), tile=16, overlap=16)
    with pytest.raises(ValueError, match=r"image must have shape \(C, H, W\)"):
        predict_tiled(conv_net(), torch.zeros(40, 40), tile=16, overlap=4)


def cli(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as done:
        return done.code


def cell_folder(root, n=5, size=48):
    from dlcc.data import synthetic_cells

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (x, m) in enumerate(synthetic_cells(n, size, seed=1)):
        tifffile.imwrite(root / "images" / f"c{i}.tif", (x[0].numpy() * 900 + 100)
                         .astype(np.uint16))
        iio.imwrite(root / "masks" / f"c{i}_mask.png", (m[0].numpy() * 255).astype(np.uint8))


def train(data, out, *extra):
    return cli("train", "--data", data, "--patch", 16, "--batch-size", 8, "--device", "cpu",
               "--out", out, *extra)


def test_train_predict_evaluate_on_a_segmentation_folder(tmp_path, capsys):
    cell_folder(tmp_path / "data")
    assert train(tmp_path / "data", tmp_path / "run", "--epochs", 1, "--task", "segment") == 0
    out = capsys.readouterr().out
    assert "segmentation folder" in out and "train 4 image(s)" in out and "uint16" in out
    config = load_checkpoint(tmp_path / "run" / "best.pt")["config"]
    assert config["model"] == "unet" and config["patch"] == 16
    assert {"normalization", "class_names", "dlcc_version", "in_channels"} <= set(config)
    big = np.tile(tifffile.imread(tmp_path / "data" / "images" / "c0.tif"), (2, 3))
    tifffile.imwrite(tmp_path / "big.tif", big)  # 96 x 144, larger than one 64-pixel tile
    assert cli("predict", "--checkpoint", tmp_path / "run" / "best.pt", tmp_path / "big.tif",
               tmp_path / "data" / "images", "--out", tmp_path / "pred", "--probabilities",
               "--device", "cpu") == 0
    mask = tifffile.imread(tmp_path / "pred" / "big_mask.tif")
    assert mask.shape == big.shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    prob = tifffile.imread(tmp_path / "pred" / "big_prob.tif")
    assert ((prob > 0.5) * 255 == mask).all()
    assert len(list((tmp_path / "pred").glob("c*_mask.tif"))) == 5
    capsys.readouterr()
    assert cli("evaluate", "--checkpoint", tmp_path / "run" / "best.pt", "--device", "cpu") == 0
    out = capsys.readouterr().out
    assert "c4.tif" in out and "mean        dice" in out


def test_resumed_folder_run_matches_an_uninterrupted_one(tmp_path):
    cell_folder(tmp_path / "data")
    assert train(tmp_path / "data", tmp_path / "whole", "--epochs", 2) == 0
    assert train(tmp_path / "data", tmp_path / "split", "--epochs", 1) == 0
    assert train(tmp_path / "data", tmp_path / "split", "--epochs", 2, "--resume") == 0
    a = load_checkpoint(tmp_path / "whole" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_classification_folder_writes_a_csv_and_a_confusion_matrix(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, value in (("bright", 200), ("dark", 40)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            image = np.clip(rng.normal(value, 20, (30, 34)), 0, 255).astype(np.uint8)
            iio.imwrite(tmp_path / "data" / name / f"{i}.png", image)
    assert cli("train", "--data", tmp_path / "data", "--patch", 16, "--batch-size", 4,
               "--device", "cpu", "--out", tmp_path / "run", "--epochs", 1,
               "--task", "classify") == 0
    out = capsys.readouterr().out
    assert "train 10 image(s)" in out and "5 bright, 5 dark" in out
    assert cli("predict", "--checkpoint", tmp_path / "run" / "best.pt",
               str(tmp_path / "data" / "*" / "0.png"), "--out", tmp_path / "pred") == 0
    rows = list(csv.reader((tmp_path / "pred" / "predictions.csv").read_text().splitlines()))
    assert rows[0] == ["file", "class", "p_bright", "p_dark"] and len(rows) == 3
    assert all(r[1] in ("bright", "dark") and abs(float(r[2]) + float(r[3]) - 1) < 1e-5
               for r in rows[1:])
    capsys.readouterr()
    assert cli("evaluate", "--checkpoint", tmp_path / "run" / "best.pt") == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion" in out and "bright" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli("train", "--data", "nowhere") == 2
    assert "invalid choice: 'nowhere'" in capsys.readouterr().err
    assert cli("train", "--data", tmp_path / "nowhere") == 2
    assert f"error: --data: no folder {tmp_path / 'nowhere'}" in capsys.readouterr().err
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    assert train(tmp_path / "empty", tmp_path / "run") == 2
    assert "error: no images in" in capsys.readouterr().err
    cell_folder(tmp_path / "data")
    assert train(tmp_path / "data", tmp_path / "run", "--task", "classify") == 2
    assert "segmentation layout" in capsys.readouterr().err
    assert train(tmp_path / "data", tmp_path / "run", "--epochs", 1) == 0
    assert cli("predict", "--checkpoint", tmp_path / "run" / "best.pt", tmp_path / "none.tif",
               "--out", tmp_path / "p") == 2
    err = capsys.readouterr().err
    assert "error: INPUT" in err and "none.tif: no such file" in err
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((40, 40, 3), np.uint8))
    assert cli("predict", "--checkpoint", tmp_path / "run" / "best.pt", tmp_path / "rgb.tif",
               "--out", tmp_path / "p") == 2
    assert "rgb.tif has 3 channel(s); the model was trained on 1" in capsys.readouterr().err


def test_multiclass_label_masks_train_predict_and_evaluate(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        labels = np.zeros((40, 40), np.uint8)
        labels[5:15, 5 + i:20 + i] = 1
        labels[25:35, 10:30 - i] = 2
        image = (labels * 100 + rng.integers(0, 30, labels.shape)).astype(np.uint16)
        tifffile.imwrite(root / "images" / f"m{i}.tif", image)
        tifffile.imwrite(root / "masks" / f"m{i}_labels.tif", labels)
    assert train(root, tmp_path / "run", "--epochs", 2) == 0
    assert "label images with 3 classes" in capsys.readouterr().out
    config = load_checkpoint(tmp_path / "run" / "best.pt")["config"]
    assert config["num_classes"] == 3
    assert cli("predict", "--checkpoint", tmp_path / "run" / "best.pt", root / "images",
               "--out", tmp_path / "pred", "--probabilities", "--no-progress") == 0
    labels = tifffile.imread(tmp_path / "pred" / "m0_mask.tif")
    prob = tifffile.imread(tmp_path / "pred" / "m0_prob.tif")
    assert labels.shape == (40, 40) and set(np.unique(labels)) <= {0, 1, 2}
    assert prob.shape == (3, 40, 40) and np.allclose(prob.sum(0), 1, atol=1e-5)
    assert (prob.argmax(0) == labels).all()
    capsys.readouterr()
    assert cli("evaluate", "--checkpoint", tmp_path / "run" / "best.pt") == 0
    assert "mean of the foreground classes" in capsys.readouterr().out
