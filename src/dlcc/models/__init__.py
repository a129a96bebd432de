"""PyTorch models of the course, and a registry so the command line can build them by name.

``from dlcc.models import SmallCNN`` and ``build_model("smallcnn", in_channels=3,
num_classes=10, image_size=32)`` give the same network.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ._common import count_parameters, init_weights
from .cnn import LeNet5, SmallCNN, conv_bn_relu
from .diffusion import NoiseMLP, NoiseUNet, timestep_embedding
from .generative import VAE, ConvAutoencoder, DCGANDiscriminator, DCGANGenerator, PatchDiscriminator
from .mlp import MLP
from .resnet import PreActBlock, ResNet
from .sequence import Conv1dNet, RecurrentNet
from .transformer import GPT, Block, TransformerClassifier, ViT, sinusoidal_positions
from .unet import UNet

__all__ = [
    "MLP", "LeNet5", "SmallCNN", "ResNet", "PreActBlock", "UNet", "conv_bn_relu",
    "count_parameters", "init_weights", "MODELS", "build_model", "MLP_HIDDEN",
    "RecurrentNet", "Conv1dNet", "TransformerClassifier", "GPT", "ViT", "Block",
    "sinusoidal_positions",
    "ConvAutoencoder", "VAE", "DCGANGenerator", "DCGANDiscriminator", "PatchDiscriminator",
    "NoiseUNet", "NoiseMLP", "timestep_embedding",
]

#: Hidden sizes of the MLP that ``build_model("mlp", ...)`` makes.
MLP_HIDDEN = (512, 256)


def _mlp(in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    h, w = image_size
    return MLP([in_channels * h * w, *MLP_HIDDEN, num_classes])


#: name -> ``builder(in_channels, num_classes, image_size)``, image_size as (H, W).
#: For "unet", num_classes is the number of output channels (1 for binary masks).
MODELS: dict[str, Callable[[int, int, tuple[int, int]], nn.Module]] = {
    "mlp": _mlp,
    "lenet5": lambda c, k, size: LeNet5(c, k),
    "smallcnn": lambda c, k, size: SmallCNN(c, k),
    "smallcnn-dw": lambda c, k, size: SmallCNN(c, k, depthwise=True),
    "resnet": lambda c, k, size: ResNet(c, k),
    "unet": lambda c, k, size: UNet(c, k),
    "vit": lambda c, k, size: _vit(c, k, size),
}


def _vit(in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    h, w = image_size
    if h != w:
        raise ValueError(f"the ViT needs square images, got {h}x{w}")
    patch = next(p for p in (7, 8, 4, 2, 1) if h % p == 0)  # 28 -> 4x4 patches, 32 -> 4x4
    return ViT(in_channels, num_classes, h, patch_size=patch)


def build_model(name: str, *, in_channels: int, num_classes: int,
                image_size: int | tuple[int, int]) -> nn.Module:
    """Build the model called ``name`` (a key of :data:`MODELS`) with default widths.

    ``image_size`` is the side of a square image or (H, W); only the MLP needs it, to size its
    input layer, but every model gets it so that the command line can treat them alike.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(s, int) and s > 0 for s in image_size)):
        raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
    return MODELS[name](in_channels, num_classes, tuple(image_size))
