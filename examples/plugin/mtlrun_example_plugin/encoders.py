"""A residual MLP encoder for vector inputs."""

from __future__ import annotations

from torch import Tensor, nn

from mtlrun.models import StagedEncoder


class _ResidualBlock(nn.Module):
    """``h -> relu(h + W2 relu(W1 h))``: a residual unit (He et al., CVPR 2016) on vectors."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width))
        self.out = nn.ReLU()

    def forward(self, h: Tensor) -> Tensor:
        return self.out(h + self.inner(h))


class ResidualMLP(StagedEncoder):
    """A residual MLP: a linear projection to ``width``, then ``blocks`` residual units (He et al. 2016).

    Each unit is one stage, so architectures that mix features between stages (cross-stitch,
    MTAN, branching) work on it; the last stage's output (N, width) is what the heads read.
    """

    def __init__(self, input_shape: tuple[int, ...], width: int = 64, blocks: int = 2, dropout: float = 0.0) -> None:
        if width < 1 or blocks < 0:
            from mtlrun.errors import ConfigError

            raise ConfigError(f"encoder.width={width} must be >= 1 and encoder.blocks={blocks} >= 0")
        in_dim = 1
        for size in input_shape:
            in_dim *= size
        stages: list[nn.Module] = [nn.Sequential(nn.Flatten(), nn.Linear(in_dim, width), nn.ReLU())]
        stages += [_ResidualBlock(width, dropout) for _ in range(blocks)]
        super().__init__(stages, [(width,)] * len(stages))
