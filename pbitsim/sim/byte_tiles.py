"""Transposing 8 x 8 tiles of bytes held as eight uint64 words (Numba, inlined).

The lane-major kernels keep the replicas of one site side by side (a row of int8 spins per site)
while the samples they return are replica-major (a row per replica). Both recordings,
:func:`pbitsim.sim.gibbs_kernels._record_lanes` and :func:`pbitsim.sim.hardware_lanes._record`,
turn 8 rows of 8 bytes into 8 columns with the same three swap stages: 12 word operations per
tile, several times faster than moving a byte at a time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["transpose8"]

_S8, _S16, _S32 = np.uint64(8), np.uint64(16), np.uint64(32)
_M8, _M16, _M32 = (np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF),
                   np.uint64(0x00000000FFFFFFFF))  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _swap(a, b, shift, mask):
    """One stage: a's high halves of each pair of 2**k-byte groups with b's low halves."""
    t = ((a >> shift) ^ b) & mask
    return a ^ (t << shift), b ^ t


@njit(cache=True, nogil=True, inline="always")
def transpose8(a0, a1, a2, a3, a4, a5, a6, a7):
    """The words of the transposed tile: byte t of result k is byte k of input word t
    (little-endian bytes; the inputs are 8 rows, the results the 8 columns)."""
    a0, a1 = _swap(a0, a1, _S8, _M8)
    a2, a3 = _swap(a2, a3, _S8, _M8)
    a4, a5 = _swap(a4, a5, _S8, _M8)
    a6, a7 = _swap(a6, a7, _S8, _M8)
    a0, a2 = _swap(a0, a2, _S16, _M16)
    a1, a3 = _swap(a1, a3, _S16, _M16)
    a4, a6 = _swap(a4, a6, _S16, _M16)
    a5, a7 = _swap(a5, a7, _S16, _M16)
    a0, a4 = _swap(a0, a4, _S32, _M32)
    a1, a5 = _swap(a1, a5, _S32, _M32)
    a2, a6 = _swap(a2, a6, _S32, _M32)
    a3, a7 = _swap(a3, a7, _S32, _M32)
    return a0, a1, a2, a3, a4, a5, a6, a7
