"""The cycle model of :mod:`pbitsim.sim.hardware`, one replica at a time (Numba).

Same machine, same numbers as the rules in that module's docstring (and the pure-Python
``simulate_cycles_reference``): these kernels run one replica on its replica-major state
(spins ``hist[L + 1, n]``, generators ``gen[n]``, ...). :class:`HardwareMachine` runs them for a
single replica in every schedule (the emulator's case: many short calls on one chain), and for
any number of replicas in "async-periodic", where each replica runs on its own (its phases are
its own, so replica lanes act alone; :mod:`pbitsim.sim.hardware_lanes` is slower there).

What makes them fast, measured on the 128 x 128 lattice (ns per p-bit update, one replica):

* **rows of fixed-width groups** (:func:`rows`): every p-bit's couplings padded to groups of four
  entries (padding: weight 0 on the p-bit's own spin, which adds exactly 0 to the integer sum), so
  the neighbour sum is a loop of constant trip count 4 that LLVM unrolls; the CSR's
  variable-length rows cost 12 ns an update against 5 here;
* **"async-periodic" event-driven** (:func:`_run_periodic`): a p-bit acts every T_i cycles, so
  it waits in a timing wheel, a FIFO list per cycle of the next W cycles (W a power of two above
  every period and counter), and a cycle visits its own p-bits only, instead of ticking all n
  counters (28.5 ns an update at T = 8). A p-bit's counter is not stepped: the kernel keeps the
  cycle of its next action and writes back the counter that cycle implies, k = due - cycle - 1,
  at the end of a call;
* **"async-random" in vector passes** (:func:`_run_random`): every cycle every p-bit's enable
  generator and decision generator step (the hardware's free-running rule, which no event
  scheme can skip); they step in loops over all p-bits without a branch (one flag byte per
  p-bit), and only the acting p-bits, found eight flags at a time, sum and decide.

Within a cycle the acting p-bits all read S_{t-1-L} and their new spins are written after the
last of them has decided, so the order in which a cycle visits them never matters.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from pbitsim.board.design import ENABLE_BITS
from pbitsim.sim.jit import (
    counter_at,
    decide_spin,
    enable_acts,
    next_action,
    rng_next,
    rng_output,
    saturate,
)
from pbitsim.sim.threads import run_blocks

__all__ = [
    "rows",
    "wheel_size",
    "run_coloured",
    "run_periodic",
    "run_periodic_replicas",
    "run_random",
]

#: entries per group of a padded row (the inner loop's constant trip count)
GROUP = 4


def rows(indptr, indices, j_codes, h_codes, order, acc_bits: int) -> tuple:
    """Couplings by position (position k is p-bit ``order[k]``), each row padded to a multiple of
    :data:`GROUP` entries (at least one group) with weight 0 on the p-bit's own spin, which adds
    exactly 0. Codes in the narrowest of int16/int32/int64 holding ``acc_bits`` (the accumulator
    never overflows, :func:`pbitsim.fixedpoint.quantize_couplings`, so sums in that type are
    exact); neighbour indices uint32 (no negative-index wrap-around in the kernels).

    Returns
    -------
    (ptr int64 [n + 1], nbr uint32 [ptr[n]], w [ptr[n]], h [n])
    """
    dtype = np.int16 if acc_bits <= 16 else np.int32 if acc_bits <= 32 else np.int64
    indptr = np.asarray(indptr, np.int64)
    order = np.asarray(order, np.int64)
    deg = np.diff(indptr)[order]
    n = len(order)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.maximum(-(-deg // GROUP), 1) * GROUP, out=ptr[1:])
    nbr = np.repeat(order, np.diff(ptr)).astype(np.uint32)  # padding: the p-bit itself
    w = np.zeros(ptr[n], dtype)
    within = np.arange(int(deg.sum()), dtype=np.int64) - np.repeat(np.cumsum(deg) - deg, deg)
    src = np.repeat(indptr[:-1][order], deg) + within
    dest = np.repeat(ptr[:-1], deg) + within
    nbr[dest] = np.asarray(indices, np.int64)[src]
    w[dest] = np.asarray(j_codes)[src]
    return ptr, nbr, w, np.asarray(h_codes)[order].astype(dtype)


@nb.njit(cache=True, nogil=True, inline="always")
def _input(ptr, nbr, w, h, k, read, input_max):
    """Saturated input of the p-bit at position k: h plus its row's terms, read from ``read``."""
    acc = np.int64(h[k])
    q = ptr[k]
    for _ in range((ptr[k + 1] - q) >> 2):
        for d in range(GROUP):
            acc += w[q + d] * read[nbr[q + d]]
        q += GROUP
    return saturate(acc, input_max)


@nb.njit(cache=True, nogil=True, inline="always")
def _end_cycle(hist, prev, cur, acting, tmp, m, done, stride, out):
    """S_t = S_{t-1} with the m new spins ``tmp`` of the p-bits ``acting``; the record."""
    if prev != cur:
        hist[cur, :] = hist[prev, :]
    for j in range(m):
        hist[cur, acting[j]] = tmp[j]
    if stride > 0 and done % stride == 0:
        out[done // stride - 1, :] = hist[cur, :]


@nb.njit(cache=True, nogil=True)
def run_coloured(
    ptr,
    nbr,
    w,
    h,
    table,
    order,
    cstart,
    n_colors,
    kind,
    rng_bits,
    input_max,
    warmup,
    latency,
    hist,
    gen,
    cycle0,
    ncycles,
    stride,
    out,
    acting,
    tmp,
):
    """Cycles cycle0+1 .. cycle0+ncycles of one replica, chromatic schedule: cycle t is colour
    (t - 1) mod C, its edge (t - 1) // C + 1; the rows are by position in ``order`` (sorted by
    colour, ``cstart`` the colours' first positions). ``hist[k % (L + 1)]`` holds S_k."""
    slots = latency + 1
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        colour = (t - 1) % n_colors
        warm = (t - 1) // n_colors + 1 > warmup
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-L} now (or S_0 early on); receives S_t
        read = hist[cur]
        lo = cstart[colour]
        m = 0
        for k in range(lo, cstart[colour + 1]):
            i = order[k]
            g = gen[i]
            if warm:
                acc = _input(ptr, nbr, w, h, k, read, input_max)
                tmp[m] = decide_spin(acc, table[abs(acc)], rng_output(kind, g, rng_bits))
            else:
                tmp[m] = hist[prev, i]
            acting[m] = i
            m += 1
            gen[i] = rng_next(kind, g)
        _end_cycle(hist, prev, cur, acting, tmp, m, t - cycle0, stride, out)


def wheel_size(reload, counter) -> int:
    """Slots of :func:`run_periodic`'s wheel: a power of two above every wait (reload + 1) and
    every counter + 1, so a p-bit's slot names its next cycle without ambiguity (<= 2**16)."""
    longest = max(int(np.max(reload, initial=0)), int(np.max(counter, initial=0))) + 1
    return 1 << max(1, (longest - 1).bit_length())


@nb.njit(cache=True, nogil=True)
def run_periodic(
    ptr,
    nbr,
    w,
    h,
    table,
    kind,
    rng_bits,
    input_max,
    warmup,
    latency,
    reload,
    hist,
    gen,
    counter,
    cycle0,
    ncycles,
    stride,
    out,
    head,
    tail,
    link,
    due,
    acting,
    tmp,
):
    """Cycles cycle0+1 .. cycle0+ncycles of one replica, "async-periodic", event-driven.

    p-bit i acts at cycle cycle0 + 1 + counter[i] and then every reload[i] + 1 cycles (the
    counter rule of :func:`pbitsim.sim.async_rules.counter_tick` in its event form,
    ``next_action`` and ``counter_at``; the PERIOD register is read at each action). It waits
    in slot (its next cycle) mod W of a wheel of FIFO lists (``head``/``tail`` per slot,
    ``link`` per p-bit, -1 ending a list; W = len(head) > every wait), ``due`` holding that
    cycle. The counters are written back at the end.
    Rows by p-bit (position = index)."""
    n = h.shape[0]
    mask = head.shape[0] - 1
    slots = latency + 1
    head[:] = -1
    for i in range(n):  # file every p-bit in index order
        due[i] = next_action(cycle0, counter[i])
        s = due[i] & mask
        link[i] = -1
        if head[s] < 0:
            head[s] = i
        else:
            link[tail[s]] = i
        tail[s] = i
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        warm = t > warmup
        prev = (t - 1) % slots
        cur = t % slots
        read = hist[cur]
        s = t & mask
        i = head[s]
        head[s] = -1  # detached: a p-bit of period W files itself in this slot again
        m = 0
        while i >= 0:
            nxt = link[i]
            g = gen[i]
            if warm:
                acc = _input(ptr, nbr, w, h, i, read, input_max)
                tmp[m] = decide_spin(acc, table[abs(acc)], rng_output(kind, g, rng_bits))
            else:
                tmp[m] = hist[prev, i]
            acting[m] = i
            m += 1
            gen[i] = rng_next(kind, g)
            d = next_action(t, reload[i])
            due[i] = d
            sd = d & mask
            link[i] = -1
            if head[sd] < 0:
                head[sd] = i
            else:
                link[tail[sd]] = i
            tail[sd] = i
            i = nxt
        _end_cycle(hist, prev, cur, acting, tmp, m, t - cycle0, stride, out)
    end = cycle0 + ncycles
    for i in range(n):
        counter[i] = counter_at(due[i], end)


@nb.njit(cache=True, nogil=True)
def _periodic_block(r0, r1, args, reload, hist, gen, counter, cycle0, ncycles, stride, out, W):
    """:func:`run_periodic` for replicas r0..r1-1 in turn, with one set of scratch arrays."""
    n = args[3].shape[0]
    head = np.empty(W, np.int64)
    tail = np.empty(W, np.int64)
    link = np.empty(n, np.int64)
    due = np.empty(n, np.int64)
    acting = np.empty(n, np.uint32)
    tmp = np.empty(n, np.int8)
    for r in range(r0, r1):
        run_periodic(
            *args, reload, hist[r], gen[r], counter[r], cycle0, ncycles, stride, out[r],
            head, tail, link, due, acting, tmp,
        )  # fmt: skip


#: calls of fewer p-bit updates than this (about a millisecond of work) stay on one thread
ONE_THREAD_BELOW = 1 << 17


def run_periodic_replicas(
    args: tuple,
    reload,
    hist,
    gen,
    counter,
    cycle0: int,
    ncycles: int,
    stride: int,
    out,
    threads: int,
) -> None:
    """:func:`run_periodic` for every replica of the replica-major arrays (``hist[R, L + 1, n]``,
    ``gen[R, n]``, ``counter[R, n]``, ``out[R, k, n]``), ``args`` being (ptr, nbr, w, h, table,
    kind, rng_bits, input_max, warmup, latency). Replicas run independently, so ``threads``
    (each taking a contiguous range of replicas) never changes a result."""
    R = hist.shape[0]
    W = wheel_size(reload, counter)
    threads = max(1, min(int(threads), R))
    bounds = [R * k // threads for k in range(threads + 1)]
    tail = (reload, hist, gen, counter, cycle0, ncycles, stride, out, W)
    run_blocks(lambda b: _periodic_block(bounds[b], bounds[b + 1], args, *tail), threads, threads)


@nb.njit(cache=True, nogil=True)
def run_random(
    ptr,
    nbr,
    w,
    h,
    table,
    kind,
    rng_bits,
    input_max,
    warmup,
    latency,
    threshold,
    hist,
    gen,
    egen,
    cycle0,
    ncycles,
    stride,
    out,
    flags,
    acting,
    tmp,
):
    """Cycles cycle0+1 .. cycle0+ncycles of one replica, "async-random": per cycle, one pass
    over all p-bits sets the flag of each acting one (enable number < ``threshold``) and steps
    the enable generators; the acting p-bits, found eight flags a word, sum and decide with
    their decision generator's output; a last pass steps every decision generator. Rows by
    p-bit. ``flags`` has room for n rounded up to 8."""
    n = h.shape[0]
    slots = latency + 1
    words = flags.view(np.uint64)
    flags[n:] = 0
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        warm = t > warmup
        prev = (t - 1) % slots
        cur = t % slots
        read = hist[cur]
        for i in range(n):
            e = egen[i]
            flags[i] = enable_acts(rng_output(kind, e, ENABLE_BITS), threshold)
            egen[i] = rng_next(kind, e)
        m = 0
        for b in range(words.shape[0]):
            if words[b]:
                for i in range(8 * b, 8 * b + 8):
                    if flags[i]:
                        if warm:
                            acc = _input(ptr, nbr, w, h, i, read, input_max)
                            r = rng_output(kind, gen[i], rng_bits)
                            tmp[m] = decide_spin(acc, table[abs(acc)], r)
                        else:
                            tmp[m] = hist[prev, i]
                        acting[m] = i
                        m += 1
        for i in range(n):
            gen[i] = rng_next(kind, gen[i])
        _end_cycle(hist, prev, cur, acting, tmp, m, t - cycle0, stride, out)
