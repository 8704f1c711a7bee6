"""Rows of couplings padded to whole groups of entries: the layout every field loop of fixed trip
count reads (the hardware model's kernels by class, by p-bit and across replica lanes, the
gathered sums of :mod:`pbitsim.sim.gathers`, the asynchronous sampler).

A row of the CSR, padded to a multiple of :data:`ENTRIES` entries, is summed a group of four
terms at a time without a loop over a run-time width, and the gathers read one group as one
vector. The padding has weight 0, so it adds exactly 0 to an integer sum, and 0.0 * s to a float
sum: the same value up to the sign of a zero.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ENTRIES", "padded_rows"]

#: entries in a group of a padded row (an inner loop's constant trip count)
ENTRIES = 4


def padded_rows(indptr, indices, values, order, dtype, width=None, pad=None) -> tuple:
    """The CSR rows by position (position k is row ``order[k]``), in the CSR's order, each padded
    to a multiple of :data:`ENTRIES` entries and at least one group (the kernels read a row's
    first group unconditionally), or every row to ``width`` entries (a multiple of ENTRIES, at
    least the largest degree). The padding has weight 0 and reads index ``pad``, or the row's
    own index when None. Values in ``dtype``.

    Returns
    -------
    (ptr int64 [n + 1], nbr int64 [ptr[n]], w dtype [ptr[n]])
    """
    indptr = np.asarray(indptr, np.int64)
    order = np.asarray(order, np.int64)
    deg = np.diff(indptr)[order]
    n = len(order)
    if width is None:
        sizes = np.maximum(-(-deg // ENTRIES), 1) * ENTRIES
    else:
        if width % ENTRIES or (n and width < deg.max()):
            raise ValueError(
                f"width {width} must be a multiple of {ENTRIES} and at least the largest "
                f"degree ({int(deg.max())})"
            )
        sizes = np.full(n, width, np.int64)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=ptr[1:])
    nbr = np.repeat(order, sizes) if pad is None else np.full(ptr[n], pad, np.int64)
    w = np.zeros(ptr[n], dtype)
    # entry e of the rows taken in position order: its CSR index and its slot in the padded row
    within = np.arange(int(deg.sum()), dtype=np.int64) - np.repeat(np.cumsum(deg) - deg, deg)
    src = np.repeat(indptr[:-1][order], deg) + within
    dest = np.repeat(ptr[:-1], deg) + within
    nbr[dest] = np.asarray(indices, np.int64)[src]
    w[dest] = np.asarray(values)[src]
    return ptr, nbr, w
