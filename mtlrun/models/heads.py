"""Task heads: vector heads, and per-pixel heads that read a feature map and output the input size.

A dense task (segmentation, depth, normal, per-pixel regression) gets one of two heads, chosen by
the encoder (``StagedEncoder.dense_head``):

- ``conv``: MTAN's prediction layer (Liu et al., CVPR 2019, ``model_segnet_*.py``: a 3x3 conv
  keeping the channels, then a 1x1 conv to the task's outputs), used on SegNet;
- ``aspp``: the DeepLab-v3 head LibMTL puts on its dilated ResNet (``LibMTL/model/resnet_dilated.py``
  with ``DeepLabHead``; Chen et al., 2017): atrous spatial pyramid pooling with rates 12, 24, 36
  and an image-pooling branch, a 3x3 conv, and a 1x1 conv to the outputs.

Both then upsample bilinearly (``align_corners=True``, as LibMTL) to the input's height and width
when the map is smaller. A vector task (classification, ...) on a feature map reads the globally
average-pooled map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.errors import ConfigError
from mtlrun.models.encoders import StagedEncoder

DENSE_ENCODERS = "segnet, resnet_dilated"
ASPP_RATES = (12, 24, 36)


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = 0 if kernel == 1 else dilation
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average pool, 1x1 conv, BN, ReLU, broadcast back.

    A training batch of one example has a single value per channel after pooling, on which batch
    norm's batch statistics are undefined; such a batch is normalised with the running statistics.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.adaptive_avg_pool2d(x, 1))
        bn = self.bn
        use_batch = bn.training and y.shape[0] > 1
        y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, use_batch, bn.momentum or 0.0, bn.eps)
        return F.relu(y).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (Chen et al., 2017; torchvision's and LibMTL's ``ASPP``)."""

    def __init__(self, cin: int, width: int, rates: Sequence[int] = ASPP_RATES) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn_relu(cin, width, 1), *(_conv_bn_relu(cin, width, 3, r) for r in rates), ImagePooling(cin, width)]
        )
        self.project = nn.Sequential(_conv_bn_relu(width * (len(rates) + 2), width, 1), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DenseHead(nn.Module):
    """A per-pixel head: ``conv`` or ``aspp`` layers, then bilinear upsampling to ``size``."""

    def __init__(self, in_channels: int, out_channels: int, size: tuple[int, int], style: str, width: int) -> None:
        super().__init__()
        width = width or in_channels
        if style == "aspp":
            self.layers = nn.Sequential(
                ASPP(in_channels, width), _conv_bn_relu(width, width, 3), nn.Conv2d(width, out_channels, 1)
            )
        else:
            self.layers = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Conv2d(width, out_channels, 1))
        self.size = tuple(size)

    def forward(self, features: Tensor) -> Tensor:
        out = self.layers(features)
        if tuple(out.shape[-2:]) != self.size:
            out = F.interpolate(out, size=self.size, mode="bilinear", align_corners=True)
        return out


class PooledHead(nn.Module):
    """A vector task's head on a feature map: global average pooling, then the task's own head."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: Tensor) -> Tensor:
        return self.head(features.mean(dim=(-2, -1)))


def build_head(task: TaskSpec, encoder: StagedEncoder) -> nn.Module:
    """The head of ``task`` on what ``encoder`` outputs (a vector or a feature map)."""
    shape = encoder.stage_shapes[-1]
    is_map = len(shape) == 3
    if task.dense:
        if not is_map:
            raise ConfigError(
                f"task '{task.name}' is per-pixel ({task.kind}) and needs an encoder that outputs feature maps "
                f"({DENSE_ENCODERS}); encoder={encoder.name or '?'} outputs vectors"
            )
        size = tuple(encoder.input_shape[-2:]) if len(encoder.input_shape) == 3 else tuple(shape[-2:])
        return DenseHead(shape[0], task.out_dim, size, encoder.dense_head, encoder.head_width)
    head = task.build_head(shape[0])
    return PooledHead(head) if is_map else head


def build_heads(tasks: Sequence[TaskSpec], encoder: StagedEncoder) -> nn.ModuleDict:
    return nn.ModuleDict({t.name: build_head(t, encoder) for t in tasks})
