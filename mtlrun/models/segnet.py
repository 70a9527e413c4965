"""SegNet as MTAN uses it (Badrinarayanan et al., TPAMI 2017; Liu et al., CVPR 2019).

MTAN's ``model_segnet_*.py``: five encoder blocks (widths 64, 128, 256, 512, 512 with 2, 2, 3, 3, 3
conv-BN-ReLU layers, each block ending in 2x2 max pooling) and a mirrored decoder (upsampling,
then a conv to the next width down and the block's remaining convs), giving a full-resolution
64-channel map that the task heads read. Here every block is one stage, so ``arch=mtan`` puts
its attention modules on every encoder and decoder block as MTAN does, and ``arch=cross_stitch``,
``branched`` and the expert models mix or split at block boundaries.

Departure: MTAN upsamples with max-unpooling at the pooling indices of the matching encoder block.
Indices cannot follow features through architectures that mix several encoders' maps between
stages, so the decoder upsamples bilinearly to the matching encoder block's input size instead.
With ``decoder=false`` only the encoder runs and the heads upsample its coarse map.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from mtlrun.errors import ConfigError
from mtlrun.models.encoders import ENCODERS, StagedEncoder
from mtlrun.models.pretrained import load_weights
from mtlrun.registry import positive


def conv_layers(cin: int, cout: int, count: int) -> list[nn.Module]:
    """``count`` conv3x3-BN-ReLU layers, the first from ``cin`` channels, the rest at ``cout``."""
    layers: list[nn.Module] = []
    for i in range(count):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    return layers


class Upsample(nn.Module):
    """Bilinear upsampling to a fixed size (that of the matching encoder block's input)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=True)


@ENCODERS.register("segnet")
def segnet(
    input_shape: tuple[int, ...],
    channels: list[int] = (64, 128, 256, 512, 512),
    convs: list[int] = (2, 2, 3, 3, 3),
    decoder: bool = True,
    weights: str | None = None,
) -> StagedEncoder:
    """SegNet with one stage per block; ``channels`` and ``convs`` give each encoder block's width and depth."""
    if len(input_shape) != 3:
        raise ConfigError(f"encoder=segnet needs image inputs (C, H, W); the inputs have shape {input_shape}")
    if not channels or len(channels) != len(convs):
        raise ConfigError(
            f"encoder.channels ({len(channels)} blocks) and encoder.convs ({len(convs)}) must list the same blocks"
        )
    positive("encoder", **{f"channels[{i}]": c for i, c in enumerate(channels)})
    positive("encoder", **{f"convs[{i}]": c for i, c in enumerate(convs)})
    c, h, w = input_shape
    if min(h, w) < 2 ** len(channels):
        raise ConfigError(
            f"encoder=segnet with {len(channels)} blocks halves {h}x{w} inputs {len(channels)} times; "
            "use fewer blocks (encoder.channels, encoder.convs)"
        )
    stages, shapes, sizes = [], [], []
    for width, count in zip(channels, convs):
        sizes.append((h, w))
        stages.append(nn.Sequential(*conv_layers(c, width, count), nn.MaxPool2d(2, 2)))
        c, h, w = width, h // 2, w // 2
        shapes.append((c, h, w))
    if decoder:
        for level in reversed(range(len(channels))):
            out = channels[max(level - 1, 0)]
            stages.append(nn.Sequential(Upsample(sizes[level]), *conv_layers(c, out, convs[level])))
            c, (h, w) = out, sizes[level]
            shapes.append((c, h, w))
    encoder = StagedEncoder(stages, shapes)
    _init(encoder)
    if weights:
        load_weights(encoder, weights)
    return encoder


def _init(module: nn.Module) -> None:
    """MTAN's initialisation: Xavier-normal convs with zero bias, BN at weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
