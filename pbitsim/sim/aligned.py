"""Arrays whose data start on a cache line, for the kernels' lane-major state.

numpy puts a large array's data 16 bytes into its first page (the allocator's header), so a row
of 64 int8 spins (one per replica) straddles two 64-byte cache lines: every neighbour read then
touches two lines, and a prefetch of the row's first byte brings only one of them. Rows of
spins, streams and generators that start on a line cost one line each. No value depends on it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LINE", "empty", "zeros", "copy"]

#: bytes per cache line (x86-64, and the arm64 cores of the same generation)
LINE = 64


def empty(shape, dtype, tail: int = 0) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order) whose data start on a :data:`LINE` boundary (unless
    it holds no element), with at least ``tail`` readable bytes after its end (a kernel that
    reads a word at its last byte: :mod:`pbitsim.sim.gathers`)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(x) for x in np.atleast_1d(shape))
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + LINE + tail, np.uint8)
    start = -raw.ctypes.data % LINE
    return raw[start : start + size].view(dtype).reshape(shape)


def zeros(shape, dtype) -> np.ndarray:
    """``np.zeros`` on a line boundary (:func:`empty`)."""
    a = empty(shape, dtype)
    a[...] = 0
    return a


def copy(a) -> np.ndarray:
    """A C-ordered copy of ``a`` on a line boundary."""
    a = np.asarray(a)
    out = empty(a.shape, a.dtype)
    out[...] = a
    return out
