"""Training data for Boltzmann machines, as +-1 spin arrays.

The default is the 8x8 handwritten digits that ship inside scikit-learn (1,797 images, no
download), binarised. :func:`load_mnist_idx` reads MNIST-format IDX files a user already has.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["digits", "load_mnist_idx", "read_idx", "binarize"]


def binarize(images: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Scale images to [0, 1] by their maximum and map to +1 (>= threshold) / -1, int8."""
    x = np.asarray(images, dtype=np.float64)
    top = x.max()
    if top <= 0:
        raise ValueError("images are all zero; nothing to binarise")
    return np.where(x / top >= threshold, 1, -1).astype(np.int8)


def digits(
    classes: tuple[int, ...] | None = None, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, binarised: (spins int8 (N, 64), labels (N,)).

    ``classes`` keeps only those digit labels (e.g. ``(0, 1)`` for a small, fast problem).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images.reshape(len(d.images), -1), d.target
    if classes is not None:
        keep = np.isin(y, classes)
        if not keep.any():
            raise ValueError(f"no digits of classes {classes}; labels are 0..9")
        x, y = x[keep], y[keep]
    return binarize(x / 16.0, threshold), y.astype(np.int64)


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic {raw[:4]!r})")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{dtype:02x}")
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if ndim else 1
    itemsize = np.dtype(_IDX_TYPES[dtype]).itemsize
    if len(raw) - offset != count * itemsize:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({count * itemsize} bytes of data) but the "
            f"file holds {len(raw) - offset}; truncated or corrupted"
        )
    return np.frombuffer(raw, _IDX_TYPES[dtype], count, offset).reshape(shape)


def load_mnist_idx(
    images_path, labels_path=None, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray | None]:
    """Binarised MNIST from IDX files: (spins int8 (N, rows*cols), labels or None)."""
    images = read_idx(images_path)
    if images.ndim != 3:
        raise ValueError(
            f"{images_path}: expected images (N, rows, cols), got shape {images.shape}"
        )
    spins = binarize(images.reshape(len(images), -1), threshold)
    labels = None
    if labels_path is not None:
        labels = read_idx(labels_path).astype(np.int64)
        if labels.shape != (len(images),):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
    return spins, labels
