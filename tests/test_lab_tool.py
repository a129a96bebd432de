"""From notebook to lab tool: export with a parity check, calibration, uncertainty, shift."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcc import calibration, shift, uncertainty
from dlcc.export import ParityError, export
from dlcc.models import SmallCNN, UNet


def calibrated(n: int, seed: int, sharpen: float = 1.0):
    """Binary predictions whose label is 1 with probability p (calibrated), reported as
    sigmoid(sharpen * logit(p)): over-confident for sharpen > 1. Returns logits (n, 1), y."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, generator=g, dtype=torch.float64)
    y = (torch.rand(n, generator=g, dtype=torch.float64) < p).long()
    return (sharpen * torch.logit(p)).view(-1, 1), y


# --- calibration ---------------------------------------------------------------------------

def test_ece_is_zero_for_a_calibrated_predictor_and_large_for_an_overconfident_one():
    logits, y = calibrated(200_000, seed=0)
    ece = calibration.expected_calibration_error(torch.sigmoid(logits), y, bins=15)
    # sampling noise per bin is about sqrt(p(1-p)/n_b) ~ 0.004 with ~13,000 points per bin
    assert ece < 0.01
    logits, y = calibrated(200_000, seed=0, sharpen=4.0)
    assert calibration.expected_calibration_error(torch.sigmoid(logits), y) > 0.1


def test_ece_of_a_deterministic_predictor_matches_its_definition():
    # confidences 0.85 (4 predictions, 3 right) and 0.65 (2 predictions, both right), 10 bins
    probs = torch.tensor([[0.85, 0.15]] * 4 + [[0.35, 0.65]] * 2)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    expected = 4 / 6 * abs(0.75 - 0.85) + 2 / 6 * abs(1.0 - 0.65)
    assert calibration.expected_calibration_error(probs, labels, bins=10) == pytest.approx(
        expected)
    r = calibration.reliability(probs, labels, bins=10)
    assert r.count.tolist() == [0, 0, 0, 0, 0, 0, 2, 0, 4, 0]  # 0.65 in (0.6, 0.7]
    assert r.accuracy[8].item() == pytest.approx(0.75)
    assert math.isnan(r.confidence[0].item())


def test_reliability_treats_one_channel_as_binary_and_pixels_as_predictions():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(3, 1, 4, 5, generator=g)
    masks = (torch.rand(3, 4, 5, generator=g) < 0.5).long()
    two = torch.cat([1 - p, p], dim=1)
    a = calibration.reliability(p, masks, bins=5)
    b = calibration.reliability(two, masks, bins=5)
    assert torch.equal(a.count, b.count) and a.count.sum() == 60
    assert torch.allclose(a.accuracy.nan_to_num(-1), b.accuracy.nan_to_num(-1))


def test_temperature_scaling_lowers_held_out_nll_and_keeps_accuracy():
    torch.manual_seed(0)
    centres = 0.3 * torch.randn(5, 40)

    def draw(n, seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 5, (n,), generator=g)
        return centres[y] + torch.randn(n, 40, generator=g), y

    x, y = draw(100, 1)
    model = nn.Linear(40, 5)
    opt = torch.optim.Adam(model.parameters(), 0.05)
    for _ in range(300):  # 100 points in 40 dimensions: separable, so the logits grow
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        val_x, val_y = draw(2000, 2)
        val_logits = model(val_x)
        test_x, test_y = draw(2000, 3)
        test_logits = model(test_x)
    t = calibration.fit_temperature(val_logits, val_y)
    assert t > 1  # over-confident: the fitted temperature softens
    before = calibration.negative_log_likelihood(test_logits, test_y)
    after = calibration.negative_log_likelihood(test_logits / t, test_y)
    assert after < before - 0.01
    assert torch.equal(test_logits.argmax(1), (test_logits / t).argmax(1))
    ece_before = calibration.expected_calibration_error(test_logits.softmax(1), test_y)
    ece_after = calibration.expected_calibration_error((test_logits / t).softmax(1), test_y)
    assert ece_after < ece_before


def test_temperature_recovers_a_known_sharpening_for_binary_logits():
    logits, y = calibrated(50_000, seed=3, sharpen=2.5)
    assert calibration.fit_temperature(logits, y) == pytest.approx(2.5, rel=0.05)
    logits, y = calibrated(50_000, seed=4, sharpen=1.0)
    assert calibration.fit_temperature(logits, y) == pytest.approx(1.0, rel=0.05)


def test_calibration_bad_inputs_name_the_argument():
    probs, y = torch.full((4, 2), 0.5), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        calibration.expected_calibration_error(probs, y, bins=0)
    with pytest.raises(ValueError, match=r"labels must be a tensor of shape \(4,\)"):
        calibration.expected_calibration_error(probs, y[:3])
    with pytest.raises(ValueError, match="labels must be class indices in"):
        calibration.expected_calibration_error(probs, y + 2)
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        calibration.expected_calibration_error(probs * 3, y)
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        calibration.fit_temperature(torch.ones(4, dtype=torch.long), y)


# --- uncertainty ---------------------------------------------------------------------------

def test_ensemble_and_summary_shapes_and_values():
    torch.manual_seed(0)
    models = [UNet(1, 1, depth=1, width=4).eval() for _ in range(3)]
    models[1].train()
    x = torch.randn(2, 1, 8, 8)
    samples = uncertainty.ensemble(models, x)
    assert samples.shape == (3, 2, 2, 8, 8)
    assert torch.allclose(samples.sum(2), torch.ones(3, 2, 8, 8))
    assert models[1].training and not models[0].training  # modes as found
    assert torch.equal(uncertainty.ensemble(iter(models), x), samples)  # any iterable
    s = uncertainty.summarise(samples)
    assert s.mean.shape == (2, 2, 8, 8)
    for name in ("entropy", "mutual_information", "variance"):
        assert getattr(s, name).shape == (2, 8, 8), name
    assert (s.mutual_information <= s.entropy + 1e-6).all()
    assert (s.entropy <= math.log(2) + 1e-6).all()


def test_summary_separates_agreement_from_disagreement():
    agree = torch.tensor([[[0.5, 0.5]], [[0.5, 0.5]]])  # (S=2, N=1, K=2): unsure, agreeing
    disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # sure, disagreeing
    a, d = uncertainty.summarise(agree), uncertainty.summarise(disagree)
    assert a.entropy.item() == pytest.approx(math.log(2))
    assert a.mutual_information.item() == pytest.approx(0, abs=1e-9)
    assert d.entropy.item() == pytest.approx(math.log(2))
    assert d.mutual_information.item() == pytest.approx(math.log(2), abs=1e-6)
    assert d.variance.item() == pytest.approx(0.5)


@pytest.mark.parametrize("start_training", [False, True])
def test_mc_dropout_varies_and_leaves_every_module_in_its_mode(start_training):
    torch.manual_seed(0)
    model = SmallCNN(1, 3, widths=(4, 8), dropout=0.5)
    model.train(start_training)
    modes = {name: m.training for name, m in model.named_modules()}
    bn = model.features[0][1]
    running = bn.running_mean.clone()
    samples = uncertainty.mc_dropout(model, torch.randn(5, 1, 8, 8), samples=7)
    assert samples.shape == (7, 5, 3)
    assert samples.std(0).max() > 0  # the masks differ between passes
    assert torch.equal(bn.running_mean, running)  # batch-norm was in eval mode
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_uncertainty_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="model has no dropout layers"):
        uncertainty.mc_dropout(UNet(1, 1, depth=1, width=4), torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="samples must be a positive integer"):
        uncertainty.mc_dropout(SmallCNN(1, 2, dropout=0.5), torch.randn(1, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="models must be a non-empty sequence"):
        uncertainty.ensemble([], torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="models must be a non-empty sequence"):
        uncertainty.ensemble(UNet(1, 1, depth=1, width=4), torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="logits must be a floating-point tensor"):
        uncertainty.probabilities(torch.ones(3))
    with pytest.raises(ValueError, match=r"samples must be a tensor \(S, N, K, ...\)"):
        uncertainty.summarise(torch.ones(2, 3))


# --- export --------------------------------------------------------------------------------

def trained_ish(model: nn.Module) -> nn.Module:
    """Give batch-norm non-trivial running statistics, so eval mode differs from training."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, *EXAMPLES[type(model)].shape[1:]) * 2 + 1)
    return model


EXAMPLES = {SmallCNN: torch.randn(3, 1, 16, 16), UNet: torch.randn(2, 1, 20, 20)}
MODELS = {"smallcnn": lambda: SmallCNN(1, 4, widths=(8, 16), dropout=0.3),
          "unet": lambda: UNet(1, 1, depth=2, width=8)}


@pytest.mark.parametrize("suffix", [".pt", ".onnx"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_models_agree_with_eager(tmp_path, name, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
    model = trained_ish(MODELS[name]())
    example = EXAMPLES[type(model)]
    path = tmp_path / f"model{suffix}"
    difference = export(model, example, path)
    assert difference < 1e-5 and path.is_file()
    assert model.training  # left as it was found
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left
    model.eval()
    with torch.no_grad():
        batch = torch.randn(5, *example.shape[1:])  # another batch size
        eager = model(batch)
    if suffix == ".pt":
        loaded = torch.jit.load(str(path))(batch)
    else:
        import onnxruntime
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        loaded = torch.from_numpy(session.run(None, {"x": batch.numpy()})[0])
    torch.testing.assert_close(loaded, eager, rtol=1e-5, atol=1e-5)


class Flaky(nn.Module):
    """Agrees with itself only while tracing: the exported graph freezes a Python branch."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * (1.0 if self.calls == 1 else 2.0)


def test_parity_failure_raises_with_the_difference_and_writes_nothing(tmp_path):
    path = tmp_path / "flaky.pt"
    path.write_bytes(b"the old model")
    with pytest.raises(ParityError, match=r"differs from the eager model by up to 1"):
        export(Flaky(), torch.ones(2, 3), path)
    assert path.read_bytes() == b"the old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flaky.pt"]


def test_export_bad_inputs_name_the_argument(tmp_path):
    model, x = SmallCNN(1, 2, widths=(4,)), torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="path must end in .pt, .pts, .onnx"):
        export(model, x, tmp_path / "model.bin")
    with pytest.raises(ValueError, match="format must be 'torchscript' or 'onnx'"):
        export(model, x, tmp_path / "model.pt", format="tflite")
    with pytest.raises(TypeError, match="example must be a floating-point torch.Tensor"):
        export(model, x.long(), tmp_path / "model.pt")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        export(lambda t: t, x, tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="path's folder"):
        export(model, x, tmp_path / "missing" / "model.pt")
    with pytest.raises(ValueError, match=r"model must be on the CPU .* parameters on meta"):
        export(SmallCNN(1, 2, widths=(4,)).to("meta"), x, tmp_path / "model.pt")


# --- shift ---------------------------------------------------------------------------------

def test_mmd_false_positive_rate_is_its_level():
    """Under no shift the permutation p-value is exact for a continuous statistic: with 99
    permutations P(p <= 0.05) = 5/100. Over 300 seeded repeats the count of rejections is
    binomial(300, 0.05): 15 on average, standard deviation 3.8; allow three either side."""
    alpha, repeats = 0.05, 300
    rejections = 0
    for seed in range(repeats):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g)
        rejections += shift.mmd_test(x, y, permutations=99, generator=g).p_value <= alpha
    spread = 3 * math.sqrt(repeats * alpha * (1 - alpha))
    assert abs(rejections - alpha * repeats) <= spread, rejections


def test_mmd_detects_a_clear_shift():
    detected = 0
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(40, 4, generator=g)
        y = torch.randn(40, 4, generator=g) * 1.5 + 0.5  # scale and mean change
        detected += shift.mmd_test(x, y, permutations=199, generator=g).p_value <= 0.05
    assert detected >= 19


def test_mmd_statistic_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 2, generator=g), torch.randn(4, 2, generator=g) + 1
    result = shift.mmd_test(x, y, permutations=10, generator=g)
    k = lambda a, b: torch.exp(-torch.cdist(a, b).square() / (2 * result.bandwidth**2))  # noqa: E731
    x, y = x.double(), y.double()
    direct = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    assert result.statistic == pytest.approx(direct.item())
    assert 1 / 11 <= result.p_value <= 1


def test_shift_bad_inputs_name_the_argument():
    x = torch.randn(10, 3)
    with pytest.raises(ValueError, match="y has 2 features per row but x has 3"):
        shift.mmd_test(x, torch.randn(10, 2))
    with pytest.raises(ValueError, match=r"x must be a floating-point tensor \(n, features\)"):
        shift.mmd_test(torch.randn(10), x)
    with pytest.raises(ValueError, match="permutations must be a positive integer"):
        shift.mmd_test(x, x, permutations=0)
    with pytest.raises(ValueError, match="y contains NaN"):
        shift.mmd_test(x, x * float("nan"))


def test_onnx_export_without_onnxruntime_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ImportError, match="ONNX export needs the 'onnxruntime' package"):
        export(SmallCNN(1, 2, widths=(4,)), torch.randn(2, 1, 8, 8), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
