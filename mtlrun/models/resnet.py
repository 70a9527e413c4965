"""ResNet with dilated last stages, LibMTL's dense backbone (He et al., CVPR 2016; Yu & Koltun, 2016).

LibMTL (``LibMTL/model/resnet_dilated.py``, ``ResnetDilated(dilate_scale=8)``) takes a torchvision
ResNet and turns the strides of ``layer3`` and ``layer4`` into dilations 2 and 4, so the map
keeps 1/8 of the input size; its NYUv2 and Cityscapes examples put a DeepLab-v3 ASPP head per
task on top (:mod:`mtlrun.models.heads`). This is the same network written here, because
torchvision's builds need a newer torch than mtlrun's; module names follow torchvision's, so
its ImageNet checkpoints load with ``encoder.weights=PATH``. Stages: the stem (conv 7x7, BN,
ReLU, max pool), then ``layer1`` .. ``layer4``.

The first block of a dilated layer keeps the previous dilation in its 3x3 conv and the others use
the new one, which is both LibMTL's ``_nostride_dilate`` and torchvision's
``replace_stride_with_dilation``. Bottleneck blocks stride in the 3x3 conv (ResNet v1.5).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from mtlrun.errors import ConfigError, choices_error
from mtlrun.models.encoders import ENCODERS, StagedEncoder
from mtlrun.models.pretrained import load_weights
from mtlrun.registry import positive


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, dilation: int, previous: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, padding=previous, dilation=previous, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(cin, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, dilation: int, previous: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=previous, dilation=previous, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(cin, width * 4, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


#: depth -> (block, blocks per layer), as torchvision's resnet18 .. resnet152
DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def _down(size: int) -> int:
    """Output size of a stride-2 layer with 'same' padding (3x3 pad 1, 7x7 pad 3, max pool 3/2/1)."""
    return (size - 1) // 2 + 1


@ENCODERS.register("resnet_dilated")
def resnet_dilated(
    input_shape: tuple[int, ...],
    depth: int = 50,
    width: int = 64,
    dilated: bool = True,
    weights: str | None = None,
    head: str = "aspp",
    head_width: int = 256,
) -> StagedEncoder:
    """ResNet-``depth`` with base width ``width``; ``dilated`` keeps 1/8 resolution (else 1/32).

    ``head`` is the dense head each task gets on it (``aspp``, LibMTL's DeepLab head with
    ``head_width`` channels, or ``conv``).
    """
    if len(input_shape) != 3:
        raise ConfigError(
            f"encoder=resnet_dilated needs image inputs (C, H, W); this dataset's inputs have shape {input_shape}"
        )
    if depth not in DEPTHS:
        raise choices_error("encoder.depth", depth, [str(d) for d in DEPTHS])
    if head not in ("aspp", "conv"):
        raise choices_error("encoder.head", head, ["aspp", "conv"])
    positive("encoder", width=width, head_width=head_width)
    block, counts = DEPTHS[depth]
    c, h, w = input_shape
    stem = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(c, width, 7, 2, 3, bias=False),
            bn1=nn.BatchNorm2d(width),
            relu=nn.ReLU(),
            maxpool=nn.MaxPool2d(3, 2, 1),
        )
    )
    h, w = _down(_down(h)), _down(_down(w))
    stages, shapes = [stem], [(width, h, w)]
    cin, dilation = width, 1
    for k, count in enumerate(counts):
        stride = 1 if k == 0 else 2
        previous = dilation
        if dilated and k >= 2:
            dilation, stride = dilation * stride, 1
        planes = width * 2**k
        blocks = []
        for i in range(count):
            blocks.append(block(cin, planes, stride if i == 0 else 1, dilation, previous if i == 0 else dilation))
            cin = planes * block.expansion
        if stride == 2:
            h, w = _down(h), _down(w)
        stages.append(nn.Sequential(*blocks))
        shapes.append((cin, h, w))
    encoder = StagedEncoder(stages, shapes)
    encoder.dense_head, encoder.head_width = head, head_width
    _init(encoder)
    if weights:
        load_weights(encoder, weights)
    return encoder


def _init(module: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan out) convs, BN at weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
