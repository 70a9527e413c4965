"""K independent copies of an encoder computed as grouped layers, for training baselines together.

Training the K single-task baselines of a run as K separate runs repeats every kernel launch K
times; on small models that overhead dominates. :func:`group_encoders` turns K encoders of the
same shape into one module whose layers compute all K at once: linear layers become one batched
matmul over stacked weights (K, out, in), convolutions one grouped convolution (groups=K), and
BatchNorm one layer over the K*C channels (its statistics stay per copy because they are per
channel). The result is numerically the K independent networks (up to float rounding).

Between layers, features travel either as vectors ``(K, N, D)`` or as images ``(N, K*C, H, W)``.
Encoders with a layer that has no grouped form return ``None`` and callers fall back to
separate networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlrun.data.base import TaskSpec
from mtlrun.models.base import MultiTaskModel
from mtlrun.models.encoders import EncoderSpec, StagedEncoder
from mtlrun.models.heads import build_head


class _ToVectors(nn.Module):
    """Flatten into the vector layout (K, N, D) from the input or from the image layout."""

    def __init__(self, k: int, from_images: bool) -> None:
        super().__init__()
        self.k, self.from_images = k, from_images

    def forward(self, x: Tensor) -> Tensor:
        if self.from_images:  # (N, K*C, H, W) -> (K, N, C*H*W)
            n = x.shape[0]
            return x.reshape(n, self.k, -1).transpose(0, 1)
        return x.reshape(1, x.shape[0], -1).expand(self.k, -1, -1)


class _ToImages(nn.Module):
    """Repeat the input image K times along channels: (N, C, H, W) -> (N, K*C, H, W)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return x.repeat(1, self.k, 1, 1)


class GroupedLinear(nn.Module):
    """K linear layers as one batched matmul on (K, N, in)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (K, out, in)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]))  # (K, out)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class InputLinear(nn.Module):
    """K linear layers reading the same input: one matmul with the weights side by side."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (K, out, in)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]))  # (K, out)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, in) -> (K, N, out)
        k, out, d = self.weight.shape
        y = torch.addmm(self.bias.reshape(1, k * out), x.reshape(x.shape[0], d), self.weight.reshape(k * out, d).T)
        return y.reshape(x.shape[0], k, out).transpose(0, 1)


def _grouped_conv(layers: Sequence[nn.Conv2d]) -> nn.Conv2d | None:
    first = layers[0]
    if first.groups != 1 or first.padding_mode != "zeros":
        return None
    k = len(layers)
    conv = nn.Conv2d(
        first.in_channels * k,
        first.out_channels * k,
        first.kernel_size,
        first.stride,
        first.padding,
        first.dilation,
        groups=k,
        bias=first.bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.cat([m.weight for m in layers]))
        if first.bias is not None:
            conv.bias.copy_(torch.cat([m.bias for m in layers]))
    return conv


def _grouped_batchnorm(layers: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first = layers[0]
    bn = nn.BatchNorm2d(first.num_features * len(layers), first.eps, first.momentum, first.affine)
    with torch.no_grad():
        if first.affine:
            bn.weight.copy_(torch.cat([m.weight for m in layers]))
            bn.bias.copy_(torch.cat([m.bias for m in layers]))
        bn.running_mean.copy_(torch.cat([m.running_mean for m in layers]))
        bn.running_var.copy_(torch.cat([m.running_var for m in layers]))
    return bn


def _leaves(stage: nn.Module) -> list[nn.Module]:
    return list(stage) if isinstance(stage, nn.Sequential) else [stage]


def group_encoders(encoders: Sequence[StagedEncoder], input_is_image: bool) -> nn.Sequential | None:
    """One module computing ``encoders`` side by side; output (K, N, D). ``None`` if not groupable."""
    k = len(encoders)
    layout = "input"
    layers: list[nn.Module] = []
    for copies in zip(*[[leaf for stage in e.stages for leaf in _leaves(stage)] for e in encoders]):
        first = copies[0]
        if any(type(c) is not type(first) for c in copies):
            return None
        if isinstance(first, nn.Flatten):
            if layout == "images":
                layers.append(_ToVectors(k, from_images=True))
                layout = "vectors"
            else:
                layers.append(nn.Flatten())
                layout = "flat_input" if layout == "input" else layout
        elif isinstance(first, nn.Linear) and layout in ("input", "flat_input"):
            layers.append(InputLinear(copies))
            layout = "vectors"
        elif isinstance(first, nn.Linear):
            if layout != "vectors":
                layers.append(_ToVectors(k, from_images=layout == "images"))
                layout = "vectors"
            layers.append(GroupedLinear(copies))
        elif isinstance(first, nn.Conv2d):
            if layout == "vectors" or not input_is_image:
                return None
            if layout == "input":
                layers.append(_ToImages(k))
                layout = "images"
            conv = _grouped_conv(copies)
            if conv is None:
                return None
            layers.append(conv)
        elif isinstance(first, nn.BatchNorm2d) and layout == "images":
            layers.append(_grouped_batchnorm(copies))
        elif isinstance(first, (nn.ReLU, nn.Dropout, nn.MaxPool2d, nn.Identity)):
            layers.append(first)
        else:
            return None
    if layout != "vectors":
        return None
    return nn.Sequential(*layers)


class GroupedSingleTask(MultiTaskModel):
    """K independent single-task networks computed as grouped layers (baseline training only).

    Each copy starts from the same RNG state, like ``arch=single_task``. Every parameter holds a
    slice per task, so the model is meant for equal weighting; gradients are clipped per slice.
    """

    def __init__(self, encoder: EncoderSpec, tasks: list[TaskSpec], grouped: nn.Sequential, heads: nn.ModuleDict):
        super().__init__(encoder, tasks)
        self.grouped = grouped
        self.heads = heads

    @classmethod
    def build(cls, encoder: EncoderSpec, tasks: list[TaskSpec]) -> GroupedSingleTask | None:
        start = torch.get_rng_state()
        encoders, heads = [], {}
        for spec in tasks:
            torch.set_rng_state(start)
            encoders.append(encoder.build())
            heads[spec.name] = build_head(spec, encoders[-1])
        grouped = group_encoders(encoders, input_is_image=len(encoder.input_shape) == 3)
        if grouped is None:
            return None
        return cls(encoder, tasks, grouped, nn.ModuleDict(heads))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.grouped(x)
        return {t: self.heads[t](features[k]) for k, t in enumerate(self.task_names)}

    def clip_gradients(self, max_norm: float) -> None:
        k = len(self.task_names)
        sliced: list[list[Tensor]] = [[] for _ in range(k)]
        for module in self.grouped.modules():
            params = [p for p in module.parameters(recurse=False) if p.grad is not None]
            for p in params:
                chunks = p.grad.chunk(k, dim=0)  # stacked (K, ...) or concatenated (K*C, ...) along dim 0
                for i, chunk in enumerate(chunks):
                    sliced[i].append(chunk)
        for i, task in enumerate(self.task_names):
            grads = sliced[i] + [p.grad for p in self.heads[task].parameters() if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale)
