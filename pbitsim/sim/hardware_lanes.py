"""The chromatic schedule of :mod:`pbitsim.sim.hardware` vectorised across replica lanes (Numba).

Same machine, same numbers: replica r here computes exactly what the one-replica kernels of
:mod:`pbitsim.sim.hardware_replica` compute for it (same generators, same order of steps, the
fixed-point rules and generator steps of :mod:`pbitsim.sim.jit`, compiled from
:mod:`pbitsim.rng` and :mod:`pbitsim.fixedpoint`). Only the memory layout differs, and a test
checks every read latency and preset against the reference. :class:`HardwareMachine` runs it
from ``LANES_FROM`` replicas on; fewer, and the un-coloured schedules, run replica after
replica (:mod:`pbitsim.sim.hardware_replica`: the replicas' own enable generators and phases
make the lanes of a p-bit act at different cycles, so lanes would mostly idle).

Layout
------
The replicas are split into blocks of consecutive replicas (:func:`block_bounds`); a block of m
replicas keeps its state *lane-major*, the m replicas of one p-bit contiguous
(:class:`LaneState`): spins ``H[L + 1, n + 1, m]`` int8 by p-bit (row n stays 0: the padding of
the couplings reads it), decision generators ``G[n, m]`` by *position* (position p is p-bit
``order[p]``: the chromatic schedule then reads a colour's generators front to back). (Holding
a 32-bit generator in uint32 measured no faster, and would compile every kernel twice.) So the
innermost loop of every step runs over the m lanes of one p-bit with unit stride, and the
neighbour sum (in the narrowest integer type that holds ``acc_bits``), the saturation, the
decision and the generator step vectorise over replicas; the table look-up is a gather, done
as a scalar loop between vector loops (LLVM does not emit gather instructions for this CPU
family). Blocks share no cache line and never wait for each other, so they may run on several
threads; which thread runs a block, and how replicas are split into blocks, never changes a
result.

The machine's registers, the GPU machine and the tests read the state replica-major
(``hist[R, L + 1, n]``, ``gen[R, n]``, ...): :meth:`LaneState.load` and :meth:`LaneState.store`
convert, and :class:`pbitsim.sim.hardware.HardwareMachine` calls them only when one side has
changed, so a run of many calls pays for no conversion.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from pbitsim.sim import aligned
from pbitsim.sim.byte_tiles import transpose8
from pbitsim.sim.jit import decide_spin, rng_next, rng_output, saturate
from pbitsim.sim.rows import padded_rows
from pbitsim.sim.threads import run_blocks

__all__ = ["LaneState", "lanes_layout", "block_bounds", "run_chromatic"]

#: widest block of replicas: 64 int16 lanes are four AVX2 vectors; wider blocks only grow the
#: block's working set (n x m x 9 bytes) past the caches.
MAX_BLOCK = 64
#: narrowest block worth a thread of its own: narrower lane loops run mostly as scalar remainders
#: (measured: 8 replicas in two blocks of 4 do 0.45x the flips per CPU-s of one block of 8)
MIN_BLOCK = 8
#: calls with less work than this (lane-site cycles) run on the calling thread: waking a second
#: thread costs a scheduler slice on a busy machine (as pbitsim.sim.gibbs does)
ONE_THREAD_BELOW = 1 << 20
_TRANSPOSE = 64  # p-bits per tile of the transposes


# --------------------------------------------------------------------------------------------
# The couplings as the lane kernels read them.
# --------------------------------------------------------------------------------------------


def lanes_layout(indptr, indices, j_codes, h_codes, order, acc_bits: int) -> tuple:
    """Couplings by position (position p is p-bit ``order[p]``), every row padded to a multiple
    of 4 entries, at least 4 (:func:`pbitsim.sim.rows.padded_rows`): here the
    padding reads the zero row n of the spins with weight 0, which adds exactly 0. Codes are
    held in the narrowest of int16/int32/int64 with ``acc_bits`` bits: the accumulator never
    overflows (:func:`pbitsim.fixedpoint.quantize_couplings` checks the worst case, which bounds
    every partial sum too), so sums in that type are the exact sums.

    Returns
    -------
    (ptr int64 [n + 1], nbr int64 [ptr[n]] (p-bits, n for padding), w [ptr[n]], h [n])
    """
    dtype = np.int16 if acc_bits <= 16 else np.int32 if acc_bits <= 32 else np.int64
    n = len(indptr) - 1
    ptr, nbr, w = padded_rows(indptr, indices, j_codes, order, dtype, pad=n)
    return ptr, nbr, w, np.asarray(h_codes)[order].astype(dtype)


# --------------------------------------------------------------------------------------------
# The state of a block, lane-major, and its conversion to and from the machine's.
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _gather_lanes(src, perm, r0, dst):
    """dst[p, j] = src[r0 + j, perm[p]] (src replica-major [R, n], dst lane-major [n, m])."""
    n, m = dst.shape
    for b in range(0, n, _TRANSPOSE):
        for j in range(m):
            row = src[r0 + j]
            for p in range(b, min(b + _TRANSPOSE, n)):
                dst[p, j] = row[perm[p]]


@nb.njit(cache=True, nogil=True)
def _scatter_lanes(src, perm, r0, dst):
    """The inverse of :func:`_gather_lanes`: dst[r0 + j, perm[p]] = src[p, j]."""
    n, m = src.shape[0], src.shape[1]
    for b in range(0, n, _TRANSPOSE):
        for j in range(m):
            row = dst[r0 + j]
            for p in range(b, min(b + _TRANSPOSE, n)):
                row[perm[p]] = src[p, j]


@nb.njit(cache=True, nogil=True)
def _copy_rows(src, dst, rows):
    """dst[:rows] = src[:rows] for C-ordered [*, m] arrays, as one flat loop (Numba's slice
    assignment of a 2-D block measured ten times slower: ~0.27 ns a byte)."""
    size = rows * src.shape[1]
    s = src.reshape(src.size)
    d = dst.reshape(dst.size)
    for x in range(size):
        d[x] = s[x]


@nb.njit(cache=True, nogil=True)
def _record(Hc, r0, d, out):
    """out[r0 + j, d, i] = Hc[i, j]: the spins of every lane after a recorded cycle.

    Tiles of 8 p-bits x 8 lanes are transposed as eight uint64 words
    (:func:`pbitsim.sim.byte_tiles.transpose8`; a byte at a time is several times slower);
    ragged edges go a byte at a time.
    """
    n = out.shape[2]
    m = Hc.shape[1]
    n8 = n // 8 * 8 if m % 8 == 0 and n % 8 == 0 else 0
    if n8:
        H8 = Hc.view(np.uint64)  # [n + 1, m / 8]: word jb of row i = lanes 8 jb .. 8 jb + 7
        O8 = out.view(np.uint64)  # [R, k, n / 8]
        for ib in range(n8 // 8):
            i0 = 8 * ib
            for jb in range(m // 8):
                a0, a1, a2, a3, a4, a5, a6, a7 = transpose8(
                    H8[i0, jb], H8[i0 + 1, jb], H8[i0 + 2, jb], H8[i0 + 3, jb],
                    H8[i0 + 4, jb], H8[i0 + 5, jb], H8[i0 + 6, jb], H8[i0 + 7, jb],
                )  # fmt: skip
                r = r0 + 8 * jb
                O8[r, d, ib] = a0
                O8[r + 1, d, ib] = a1
                O8[r + 2, d, ib] = a2
                O8[r + 3, d, ib] = a3
                O8[r + 4, d, ib] = a4
                O8[r + 5, d, ib] = a5
                O8[r + 6, d, ib] = a6
                O8[r + 7, d, ib] = a7
        return
    for b in range(0, n, _TRANSPOSE):
        for j in range(m):
            row = out[r0 + j, d]
            for i in range(b, min(b + _TRANSPOSE, n)):
                row[i] = Hc[i, j]


class LaneState:
    """The state of R replicas in lane-major blocks (module docstring).

    Parameters
    ----------
    replicas, n, slots : int
        Replicas, p-bits, and L + 1 (spin states kept).
    order : int64 [n]
        p-bit at each position of the decision generators.
    threads : int
        Threads the blocks are split for (:func:`block_bounds`).
    """

    def __init__(self, replicas, n, slots, order, threads):
        self.bounds = block_bounds(replicas, threads)
        self.order = np.ascontiguousarray(order, np.int64)
        self.ident = np.arange(n, dtype=np.int64)
        widths = np.diff(self.bounds)
        if widths.max() > 64:
            raise ValueError(f"a block has at most 64 lanes, not {widths.max()}")
        self.H = [aligned.zeros((slots, n + 1, m), np.int8) for m in widths]
        self.G = [aligned.empty((n, m), np.uint64) for m in widths]

    def load(self, hist, gen, egen, counter=None, cycle=None) -> None:
        """Take the machine's replica-major state (no counters here; the arguments are those of
        every kernel copy of the state)."""
        for b, r0 in enumerate(self.bounds[:-1]):
            for s in range(hist.shape[1]):
                _gather_lanes(hist[:, s], self.ident, r0, self.H[b][s, :-1])
            _gather_lanes(gen, self.order, r0, self.G[b])

    def store(self, hist, gen, egen, counter=None, cycle=None) -> None:
        """Write the state back into the machine's replica-major arrays."""
        for b, r0 in enumerate(self.bounds[:-1]):
            for s in range(hist.shape[1]):
                _scatter_lanes(self.H[b][s, :-1], self.ident, r0, hist[:, s])
            _scatter_lanes(self.G[b], self.order, r0, gen)


def block_bounds(replicas: int, threads: int, max_block: int | None = None) -> np.ndarray:
    """Replica blocks [b[k], b[k+1]): none wider than ``max_block`` (default :data:`MAX_BLOCK`),
    a multiple of ``threads`` blocks (balance) where each can keep :data:`MIN_BLOCK` lanes, else
    fewer threads. Results do not depend on the split."""
    max_block = MAX_BLOCK if max_block is None else int(max_block)
    replicas = int(replicas)
    threads = max(1, min(int(threads), replicas // MIN_BLOCK))
    nblocks = min(replicas, threads * -(-replicas // (threads * max_block)))
    return (np.arange(nblocks + 1) * replicas // nblocks).astype(np.int64)


# --------------------------------------------------------------------------------------------
# The chromatic schedule.
# --------------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def _chromatic_block(
    ptr, nbr, w, h, table, order, cstart, n_colors, kind, rng_bits, input_max, warmup, latency,
    H, G, r0, cycle0, ncycles, stride, out,
):  # fmt: skip
    """Cycles cycle0+1 .. cycle0+ncycles of the block of replicas r0.. held in H, G (module
    docstring), with the couplings of :func:`lanes_layout`: what
    :func:`pbitsim.sim.hardware_replica.run_coloured` does for each of them."""
    m = G.shape[1]
    mu = np.uint64(m)  # unsigned lane indices: no negative-index wrap-around checks
    slots = latency + 1
    width = 1
    for c in range(n_colors):
        width = max(width, cstart[c + 1] - cstart[c])
    tmp = np.empty((width, m), np.int8)
    acc = np.empty(m, w.dtype)
    tv = np.empty(m, np.uint64)
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        colour = (t - 1) % n_colors
        edge = (t - 1) // n_colors + 1
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-L} now (or S_0 early on); receives S_t
        lo = cstart[colour]
        hi = cstart[colour + 1]
        Hc = H[cur]
        Hp = H[prev]
        if edge <= warmup:  # warm-up: the spins hold, the generators advance
            for p in range(lo, hi):
                i = order[p]
                for j in range(mu):
                    tmp[p - lo, j] = Hp[i, j]
                    G[p, j] = rng_next(kind, G[p, j])
        else:
            for p in range(lo, hi):
                # the exact input (the first four neighbours, padding included, in one pass,
                # the rest four at a time), saturated
                k0 = ptr[p]
                k1 = ptr[p + 1]
                hv = h[p]
                q0, q1, q2, q3 = nbr[k0], nbr[k0 + 1], nbr[k0 + 2], nbr[k0 + 3]
                w0, w1, w2, w3 = w[k0], w[k0 + 1], w[k0 + 2], w[k0 + 3]
                if k1 - k0 == 4:
                    for j in range(mu):
                        a = hv + w0 * Hc[q0, j] + w1 * Hc[q1, j] + w2 * Hc[q2, j] + w3 * Hc[q3, j]
                        acc[j] = saturate(a, input_max)
                else:
                    for j in range(mu):
                        acc[j] = (
                            hv + w0 * Hc[q0, j] + w1 * Hc[q1, j] + w2 * Hc[q2, j] + w3 * Hc[q3, j]
                        )
                    for k in range(k0 + 4, k1, 4):
                        q0, q1, q2, q3 = nbr[k], nbr[k + 1], nbr[k + 2], nbr[k + 3]
                        w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
                        for j in range(mu):
                            a = acc[j] + w0 * Hc[q0, j] + w1 * Hc[q1, j] + w2 * Hc[q2, j]
                            acc[j] = a + w3 * Hc[q3, j]
                    for j in range(mu):
                        acc[j] = saturate(acc[j], input_max)
                for j in range(mu):  # the table look-up, a gather: its own (scalar) loop
                    tv[j] = table[abs(acc[j])]
                for j in range(mu):  # the decision, then the generator step
                    r = rng_output(kind, G[p, j], rng_bits)
                    tmp[p - lo, j] = decide_spin(acc[j], tv[j], r)
                    G[p, j] = rng_next(kind, G[p, j])
        if slots > 1:
            _copy_rows(Hp, Hc, Hp.shape[0])
        for p in range(lo, hi):
            i = order[p]
            for j in range(mu):
                Hc[i, j] = tmp[p - lo, j]
        done = t - cycle0
        if stride > 0 and done % stride == 0:
            _record(Hc, r0, done // stride - 1, out)


# --------------------------------------------------------------------------------------------
# Blocks and threads.
# --------------------------------------------------------------------------------------------


def run_chromatic(args: tuple, lanes: LaneState, cycle0: int, ncycles: int, stride: int, out,
                  threads: int = 1) -> None:  # fmt: skip
    """Run the chromatic schedule on every block of ``lanes``.

    ``args``: (ptr, nbr, w, h) of :func:`lanes_layout`, then table, order, cstart, n_colors,
    kind, rng_bits, input_max, warmup (edges), latency; ``out`` int8 [R, k, n].
    """

    def block(b: int) -> None:
        r0 = lanes.bounds[b]
        _chromatic_block(*args, lanes.H[b], lanes.G[b], r0, cycle0, ncycles, stride, out)

    run_blocks(block, len(lanes.bounds) - 1, threads)
