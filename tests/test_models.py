"""Tests for dlcc.models: shapes, parameter counts, initialisation, the registry, errors."""

import math

import pytest
import torch
from torch import nn

from dlcc.models import (
    MLP,
    MODELS,
    LeNet5,
    PreActBlock,
    ResNet,
    SmallCNN,
    UNet,
    build_model,
    count_parameters,
)

TINY = dict(widths=(4, 8))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("model, x_shape, out_shape", [
    (MLP([12, 7, 3]), (5, 12), (5, 3)),
    (MLP([16, 3]), (5, 1, 4, 4), (5, 3)),
    (LeNet5(), (2, 1, 28, 28), (2, 10)),
    (LeNet5(in_channels=3, num_classes=4), (2, 3, 32, 32), (2, 4)),
    (SmallCNN(in_channels=1, num_classes=5, **TINY), (2, 1, 12, 12), (2, 5)),
    (SmallCNN(num_classes=5, depthwise=True, dropout=0.5, **TINY), (2, 3, 9, 13), (2, 5)),
    (ResNet(num_classes=7, widths=(4, 8, 8), blocks_per_stage=1), (2, 3, 32, 32), (2, 7)),
    (UNet(in_channels=2, out_channels=3, depth=2, width=4), (2, 2, 16, 16), (2, 3, 16, 16)),
], ids=["mlp-vectors", "mlp-images", "lenet-28", "lenet-32-rgb", "smallcnn", "smallcnn-dw",
        "resnet", "unet"])
def test_output_shapes(model, x_shape, out_shape):
    out = model(torch.randn(x_shape))
    assert out.shape == out_shape
    assert out.dtype == torch.float32


def test_lenet5_parameter_count():
    # conv1 6*1*25+6 = 156, conv2 16*6*25+16 = 2,416, fc1 400*120+120 = 48,120,
    # fc2 120*84+84 = 10,164, fc3 84*10+10 = 850.
    assert count_parameters(LeNet5()) == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706
    # Three input channels add 2*6*25 first-layer weights.
    assert count_parameters(LeNet5(in_channels=3)) == 61_706 + 300


def test_mlp_parameter_count_and_layers():
    model = MLP([10, 6, 4, 2], activation="tanh", dropout=0.2)
    assert count_parameters(model) == (10 * 6 + 6) + (6 * 4 + 4) + (4 * 2 + 2)
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2
    assert isinstance(list(model.modules())[-1], nn.Linear)  # logits: no final activation


def test_count_parameters_trainable_only():
    model = MLP([4, 3, 2])
    model.net[1].weight.requires_grad_(False)
    assert count_parameters(model) == 3 + 3 * 2 + 2
    assert count_parameters(model, trainable_only=False) == 4 * 3 + 3 + 3 * 2 + 2


def test_depthwise_variant_has_fewer_parameters():
    dense = SmallCNN(widths=(32, 64))
    separable = SmallCNN(widths=(32, 64), depthwise=True)
    assert count_parameters(separable) < count_parameters(dense) / 3
    grouped = [m for m in separable.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert [m.groups for m in grouped] == [32, 32, 64]  # every 3x3 conv but the first
    first = next(m for m in separable.modules() if isinstance(m, nn.Conv2d))
    assert first.groups == 1 and first.kernel_size == (3, 3)


def test_smallcnn_init_statistics():
    model = SmallCNN(in_channels=3, num_classes=10, widths=(64, 128))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs[1:]:  # enough weights for a stable std
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    linear = model.head[-1]
    bound = math.sqrt(6 / (linear.in_features + linear.out_features))  # Xavier uniform
    assert linear.weight.abs().max().item() <= bound
    assert linear.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert torch.all(linear.bias == 0)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_resnet_structure():
    model = ResNet(widths=(4, 8, 16), blocks_per_stage=2)
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert len(blocks) == 6
    # Projection only where the shape changes: the first block of stages 2 and 3.
    assert [b.shortcut is not None for b in blocks] == [False, False, True, False, True, False]
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1]
    # Pre-activation: BN acts on the block input, before the first conv.
    assert blocks[0].bn1.num_features == 4


def test_resnet_identity_block_adds_input():
    block = PreActBlock(3, 3).eval()
    nn.init.zeros_(block.conv2.weight)  # residual branch switched off
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("size", [(37, 50), (16, 16), (9, 7), (3, 5)])
def test_unet_handles_any_size(size):
    model = UNet(depth=3, width=4).eval()
    out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 1, *size)


def test_unet_crop_matches_padding():
    # The output of an odd-sized input is the matching window of the output for the padded
    # image: padding and cropping agree on where the image sits.
    model = UNet(depth=2, width=4).eval()
    x = torch.randn(1, 1, 37, 50)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="reflect")  # to 40 x 52
    torch.testing.assert_close(model(x), model(padded)[..., :37, :50])


def test_unet_gradients_flow_through_every_level():
    model = UNet(depth=2, width=4)
    model(torch.randn(2, 1, 12, 12)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_registry_and_build_model():
    assert set(MODELS) == {"mlp", "lenet5", "smallcnn", "smallcnn-dw", "resnet", "unet", "vit"}
    mlp = build_model("mlp", in_channels=1, num_classes=10, image_size=28)
    assert [m.in_features for m in mlp.modules() if isinstance(m, nn.Linear)][0] == 784
    assert mlp(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    rect = build_model("mlp", in_channels=3, num_classes=2, image_size=(4, 6))
    assert rect(torch.randn(1, 3, 4, 6)).shape == (1, 2)
    dw = build_model("smallcnn-dw", in_channels=3, num_classes=10, image_size=32)
    dense = build_model("smallcnn", in_channels=3, num_classes=10, image_size=32)
    assert count_parameters(dw) < count_parameters(dense)
    unet = build_model("unet", in_channels=1, num_classes=1, image_size=64)
    assert isinstance(unet, UNet)
    vit = build_model("vit", in_channels=1, num_classes=10, image_size=28)
    assert vit(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert isinstance(build_model("resnet", in_channels=3, num_classes=10, image_size=32),
                      ResNet)


def test_build_model_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*mlp, lenet5, smallcnn"):
        build_model("vgg", in_channels=1, num_classes=10, image_size=28)
    with pytest.raises(ValueError, match="image_size"):
        build_model("mlp", in_channels=1, num_classes=10, image_size=(28,))


@pytest.mark.parametrize("model", [LeNet5(), SmallCNN(in_channels=1, **TINY),
                                   ResNet(in_channels=1, widths=(4,), blocks_per_stage=1),
                                   UNet(depth=1, width=2)],
                         ids=["lenet5", "smallcnn", "resnet", "unet"])
def test_cnns_reject_bad_input(model):
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\); got \(28, 28, 1\)"):
        model(torch.randn(28, 28, 1))
    with pytest.raises(ValueError, match="x has 3 channels but the model expects 1"):
        model(torch.randn(2, 3, 28, 28))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([[1.0]])


def test_too_small_images_are_reported():
    with pytest.raises(ValueError, match=r"at least 4x4 pixels .* got \(2, 8\)"):
        SmallCNN(in_channels=1, **TINY)(torch.randn(1, 1, 2, 8))
    with pytest.raises(ValueError, match="at least 16x16"):
        LeNet5()(torch.randn(1, 1, 8, 8))


def test_mlp_reports_wrong_feature_count():
    with pytest.raises(ValueError, match=r"x has 784 features .*\(2, 1, 28, 28\).* expects 64"):
        MLP([64, 10])(torch.randn(2, 1, 28, 28))


@pytest.mark.parametrize("make, message", [
    (lambda: MLP([10]), "sizes must list at least"),
    (lambda: MLP([10, 0, 2]), "every entry of sizes"),
    (lambda: MLP([10, 2], activation="swish"), "activation must be one of"),
    (lambda: MLP([10, 2], dropout=1.0), r"dropout must be in \[0, 1\)"),
    (lambda: SmallCNN(widths=()), "widths must be a non-empty sequence"),
    (lambda: SmallCNN(num_classes=0), "num_classes must be a positive integer"),
    (lambda: ResNet(blocks_per_stage=0), "blocks_per_stage"),
    (lambda: UNet(depth=0), "depth must be a positive integer"),
    (lambda: LeNet5(in_channels=2.5), "in_channels"),
])
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_integers_are_accepted_and_bools_rejected():
    """One validator for both halves: sizes computed with numpy work, True is not 1."""
    import numpy as np

    i = np.int64
    assert MLP([i(12), i(8), i(3)])(torch.randn(2, 12)).shape == (2, 3)
    assert SmallCNN(in_channels=i(3), num_classes=i(5))(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    unet = UNet(in_channels=i(1), out_channels=i(2), depth=i(2), width=i(4))
    assert unet(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    assert type(unet.depth) is int
    with pytest.raises(ValueError, match="every entry of sizes must be a positive integer, "
                                         "got True"):
        MLP([10, True])
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got False"):
        SmallCNN(num_classes=False)
    with pytest.raises(ValueError, match=r"every entry of widths must be a positive integer, "
                                         r"got 2\.0"):
        SmallCNN(widths=(4, 2.0))
