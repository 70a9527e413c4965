"""Encoders as lists of stages.

Architectures that mix or gate features between tasks (cross-stitch, MTAN, PLE, branching) do
so at stage boundaries, so each is written once against :class:`StagedEncoder` and works with any
encoder. The last stage always returns a flat feature vector (N, D) that heads consume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlrun.errors import ConfigError
from mtlrun.plugins.resolve import factory_contract
from mtlrun.registry import Registry, positive

ENCODERS: Registry[StagedEncoder] = Registry("encoder")


class StagedEncoder(nn.Module):
    """A feature extractor made of ``stages``; ``stage_shapes[i]`` is stage i's output shape (no batch).

    Encoders for dense tasks end in a feature map (C, h, w) instead of a vector; ``dense_head`` and
    ``head_width`` say which per-pixel head suits them (see :mod:`mtlrun.models.heads`).
    """

    #: the head dense tasks get on this encoder: "conv" (MTAN's prediction layer) or "aspp" (DeepLab)
    dense_head: str = "conv"
    #: channels inside the dense head (0: the feature map's channels)
    head_width: int = 0
    #: set by :meth:`EncoderSpec.build`: the encoder's name and one input's shape
    name: str = ""
    input_shape: tuple[int, ...] = ()

    def __init__(self, stages: Sequence[nn.Module], stage_shapes: Sequence[tuple[int, ...]]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.stage_shapes = [tuple(s) for s in stage_shapes]

    @property
    def out_dim(self) -> int:
        return int(self.stage_shapes[-1][0])

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


@dataclass
class EncoderSpec:
    """Everything needed to build fresh, identical-in-shape copies of an encoder."""

    name: str
    input_shape: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    #: arguments fixed by the data rather than the user (e.g. a table's category counts)
    context: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> StagedEncoder:
        encoder = ENCODERS.build(self.name, self.options, input_shape=self.input_shape, **self.context)
        if not isinstance(encoder, StagedEncoder):  # a user's function returned something else
            raise ConfigError(
                f"encoder {self.name} returned {type(encoder).__name__}, not a mtlrun.models.StagedEncoder "
                "(a list of stages with their output shapes; see docs/plugins.md)"
            )
        encoder.name, encoder.input_shape = self.name, tuple(self.input_shape)
        return encoder

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.options)}


#: a user's encoder (``encoder._target_=pkg.mod.Name`` or an entry point): a class or a function
ENCODERS.accept_plugins(factory_contract((StagedEncoder,), ("input_shape",)))


@ENCODERS.register("mlp")
def mlp(input_shape: tuple[int, ...], hidden: list[int] = (128, 64), dropout: float = 0.0) -> StagedEncoder:
    """A multilayer perceptron; each hidden layer (Linear + ReLU) is one stage."""
    if not hidden:
        raise ConfigError("encoder.hidden must list at least one layer width")
    positive("encoder", **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
    in_dim = 1
    for size in input_shape:
        in_dim *= size
    stages, shapes = [], []
    for i, width in enumerate(hidden):
        layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        stages.append(nn.Sequential(*layers))
        shapes.append((width,))
        in_dim = width
    return StagedEncoder(stages, shapes)


@ENCODERS.register("cnn")
def cnn(
    input_shape: tuple[int, ...], channels: list[int] = (16, 32), hidden: int = 64, pool: bool = True
) -> StagedEncoder:
    """A small conv net for images: one stage per conv block (conv 3x3, BN, ReLU, optional 2x2 pool),
    then a flatten + linear stage that gives the feature vector.

    The convolutions have no bias: batch norm subtracts each channel's mean, so a bias before it
    changes nothing the network computes while training and has an exactly zero gradient. Adam turns
    the rounding noise of that zero into full learning-rate steps, a random walk that the running
    mean of eval-mode batch norm trails, which made results depend on floating-point summation order
    (the same run on 1 or 2 data-parallel processes differed in test accuracy by 5e-3)."""
    if len(input_shape) != 3:
        raise ConfigError(f"encoder=cnn needs image inputs (C, H, W); this dataset's inputs have shape {input_shape}")
    if not channels:
        raise ConfigError("encoder.channels must list at least one conv block")
    positive("encoder", hidden=hidden, **{f"channels[{i}]": c for i, c in enumerate(channels)})
    c, h, w = input_shape
    stages, shapes = [], []
    for out_c in channels:
        block: list[nn.Module] = [nn.Conv2d(c, out_c, 3, padding=1, bias=False), nn.BatchNorm2d(out_c), nn.ReLU()]
        if pool and min(h, w) >= 2:
            block.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        stages.append(nn.Sequential(*block))
        c = out_c
        shapes.append((c, h, w))
    stages.append(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU()))
    shapes.append((hidden,))
    return StagedEncoder(stages, shapes)


def count_parameters(params: Sequence[torch.nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
