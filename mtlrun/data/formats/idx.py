"""The IDX format of MNIST and Fashion-MNIST (LeCun et al.), read with numpy.

Big-endian int32 header: magic (2051 images, 2049 labels), the count, then for images the rows
and columns; then the uint8 payload in row-major order.
"""

from __future__ import annotations

import numpy as np

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


class IdxFormatError(ValueError):
    """The bytes are not a well-formed IDX file of the expected kind (the message says why)."""


def parse_images(data: bytes) -> np.ndarray:
    """An IDX3 image file's bytes -> uint8 array (n, rows, cols)."""
    if len(data) < 16:
        raise IdxFormatError(f"{len(data)} bytes is shorter than the 16-byte IDX image header")
    magic, n, rows, cols = (int(v) for v in np.frombuffer(data, dtype=">i4", count=4))
    if magic != IMAGES_MAGIC:
        raise IdxFormatError(f"magic number {magic} is not {IMAGES_MAGIC} (IDX images)")
    expected = 16 + n * rows * cols
    if len(data) != expected:
        raise IdxFormatError(
            f"header promises {n} images of {rows}x{cols} ({expected} bytes) but the file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def parse_labels(data: bytes) -> np.ndarray:
    """An IDX1 label file's bytes -> uint8 array (n,)."""
    if len(data) < 8:
        raise IdxFormatError(f"{len(data)} bytes is shorter than the 8-byte IDX label header")
    magic, n = (int(v) for v in np.frombuffer(data, dtype=">i4", count=2))
    if magic != LABELS_MAGIC:
        raise IdxFormatError(f"magic number {magic} is not {LABELS_MAGIC} (IDX labels)")
    if len(data) != 8 + n:
        raise IdxFormatError(f"header promises {n} labels ({8 + n} bytes) but the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def pack_images(images: np.ndarray) -> bytes:
    """The IDX bytes of uint8 images (n, rows, cols) (used to write fixtures and caches)."""
    n, rows, cols = images.shape
    return np.array([IMAGES_MAGIC, n, rows, cols], dtype=">i4").tobytes() + images.astype(np.uint8).tobytes()


def pack_labels(labels: np.ndarray) -> bytes:
    """The IDX bytes of uint8 labels (n,)."""
    return np.array([LABELS_MAGIC, len(labels)], dtype=">i4").tobytes() + labels.astype(np.uint8).tobytes()
