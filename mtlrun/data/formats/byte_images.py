"""An image split kept in memory as uint8 and turned into normalised floats one batch at a time.

Image benchmarks are large (CelebA: 200k images); as uint8 they take a quarter of the memory of
float32, and converting per batch costs little next to the network. Every encoder therefore still
sees float tensors ``(x / 255 - mean) / std``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from mtlrun.data.base import TensorSplit


class ByteImageSplit(TensorSplit):
    """A :class:`TensorSplit` whose ``x`` is uint8 (N, C, H, W); batches come out as normalised floats."""

    def __init__(self, x: Tensor, targets: dict[str, Tensor], mean: Sequence[float], std: Sequence[float]) -> None:
        if x.dtype != torch.uint8:
            raise TypeError(f"ByteImageSplit holds uint8 images, got {x.dtype}")
        super().__init__(x, targets)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def _float(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(self.mean, device=x.device).view(shape)
        std = torch.tensor(self.std, device=x.device).view(shape)
        return (x.float() / 255.0 - mean) / std

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self._float(self.x[index : index + 1])[0], {t: y[index] for t, y in self.targets.items()}

    def select(self, tasks: list[str]) -> ByteImageSplit:
        return ByteImageSplit(self.x, {t: self.targets[t] for t in tasks}, self.mean, self.std)

    def subset(self, index: Tensor) -> ByteImageSplit:
        return ByteImageSplit(self.x[index], {t: y[index] for t, y in self.targets.items()}, self.mean, self.std)

    def to(self, device: torch.device) -> ByteImageSplit:
        return ByteImageSplit(
            self.x.to(device), {t: y.to(device) for t, y in self.targets.items()}, self.mean, self.std
        )

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        for x, targets in super().batches(batch_size, shuffle=shuffle, generator=generator):
            yield self._float(x), targets
