"""The cycle model of :mod:`pbitsim.sim.hardware`, replica after replica (Numba).

Same machine, same numbers as the rules in that module's docstring (and the pure-Python
``simulate_cycles_reference``): each replica runs alone, on its own state. Which kernel
:class:`~pbitsim.sim.hardware.HardwareMachine` runs for which schedule and replica count is
said there; ``docs/performance.md`` ("The hardware model") has the measurements.

* **Classes** (:func:`run_coloured`, :class:`ClassState`): where p-bits act together — the
  colours of the chromatic schedule, or in "async-periodic" with one period T the p-bits whose
  counters agree — a class is a run of positions, with the rows of couplings (:func:`rows`:
  padded to groups of four entries, weight 0 on the p-bit's own spin) and the generators laid
  out by position. 16 positions' inputs are summed at once with vector gathers
  (:data:`pbitsim.sim.gathers.inputs16`), then the saturation, the table look-up, the
  comparator and the generator step run in loops over the whole class.
* **Events** (:func:`run_periodic`): "async-periodic" with several periods. A p-bit waits in a
  timing wheel, a FIFO list per cycle of the next W cycles (W a power of two above every wait),
  and a cycle visits its own p-bits only; the counters are not stepped but written back from
  the cycle of each p-bit's next action at the end of a call.
* **Vector passes** (:func:`run_random`): "async-random" steps both generators of every p-bit
  every cycle (the hardware's free-running rule, which no event scheme can skip), in loops over
  all p-bits without a branch that set the acting p-bits' bits in 64-bit masks; only those sum
  and decide.

Within a cycle the acting p-bits all read S_{t-1-L} and their new spins are written after the
last of them has decided, so the order in which a cycle visits them never matters.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from pbitsim.board.design import ENABLE_BITS
from pbitsim.sim import aligned
from pbitsim.sim.gathers import GROUP as GATHER
from pbitsim.sim.gathers import inputs16
from pbitsim.sim.jit import (
    counter_at,
    decide_spin,
    enable_acts,
    lfsr32_xnor_next,
    lfsr32_xnor_output,
    next_action,
    rng_next,
    rng_output,
    saturate,
    xorshift64_next,
    xorshift64_output,
)
from pbitsim.sim.rows import ENTRIES, padded_rows
from pbitsim.sim.threads import run_blocks

__all__ = [
    "ClassState",
    "gathered",
    "rows",
    "wheel_size",
    "run_coloured",
    "run_periodic",
    "run_periodic_events",
    "run_classes",
    "run_random",
    "run_random_replicas",
]


def rows(indptr, indices, j_codes, h_codes, order, acc_bits: int) -> tuple:
    """The couplings as these kernels read them, by position (position k is p-bit ``order[k]``):
    :func:`pbitsim.sim.rows.padded_rows` with the padding on the p-bit's own spin, neighbour
    indices int32, codes and h in int32 when ``acc_bits`` <= 32, else int64: the accumulator
    never overflows (:func:`pbitsim.fixedpoint.quantize_couplings`), so sums in that type are
    exact. (int16 codes, half the bytes, measured no faster.)

    Returns
    -------
    (ptr int64 [n + 1], nbr int32 [ptr[n]], w [ptr[n]], h [n])
    """
    dtype = np.int32 if acc_bits <= 32 else np.int64
    ptr, nbr, w = padded_rows(indptr, indices, j_codes, order, dtype)
    return ptr, nbr.astype(np.int32), w, np.asarray(h_codes)[order].astype(dtype)


def gathered(ptr, w) -> bool:
    """Whether rows of :func:`rows` take the gathered path: every row one group (degree <= 4)
    and int32 codes (:func:`pbitsim.sim.gathers.inputs16`)."""
    return w.dtype == np.int32 and int(ptr[-1]) == ENTRIES * (len(ptr) - 1)


@nb.njit(cache=True, nogil=True, inline="always")
def _row_sum(nbr, w, hk, q, groups, read):
    """hk plus the terms of ``groups`` groups of a row starting at entry q, read from ``read``:
    loops of constant trip count ENTRIES, which LLVM unrolls."""
    acc = np.int64(hk)
    for _ in range(groups):
        for d in range(ENTRIES):
            acc += w[q + d] * read[np.uint32(nbr[q + d])]
        q += ENTRIES
    return acc


@nb.njit(cache=True, nogil=True, inline="always")
def _sum(ptr, nbr, w, h, k, read):
    """The exact input of the p-bit at position k: h plus its row's terms, read from ``read``."""
    return _row_sum(nbr, w, h[k], ptr[k], (ptr[k + 1] - ptr[k]) >> 2, read)


@nb.njit(cache=True, nogil=True, inline="always")
def _input(ptr, nbr, w, h, k, read, input_max):
    """The saturated input of the p-bit at position k."""
    return saturate(_sum(ptr, nbr, w, h, k, read), input_max)


@nb.njit(cache=True, nogil=True, inline="always")
def _decide(ptr, nbr, w, h, vector, table, kind, rng_bits, input_max, read, gen, lo, hi, acc, tv,
            tmp):  # fmt: skip
    """New spins of positions lo..hi-1, all from ``read``, into tmp[0 : hi - lo], and their
    generators (by position) stepped: the inputs 16 positions at a time by gathers when
    ``vector`` (:func:`gathered`; ``read`` then has 3 readable bytes after its end), then the
    saturation, the table look-up and the comparator with the generator step in loops over the
    whole range (LLVM vectorises the first and last; a 16-position loop it left scalar)."""
    k = lo
    if vector:
        while k + GATHER <= hi:
            inputs16(read, nbr, w, h, np.int64(k), acc, np.int64(k - lo))
            k += GATHER
    while k < hi:
        acc[k - lo] = _sum(ptr, nbr, w, h, k, read)
        k += 1
    m = hi - lo
    for j in range(m):
        acc[j] = saturate(acc[j], input_max)
    for j in range(m):  # a gather: its own (scalar) loop
        tv[j] = table[np.uint32(abs(acc[j]))]
    g = gen[lo:hi]
    for j in range(m):
        tmp[j] = decide_spin(acc[j], tv[j], rng_output(kind, g[j], rng_bits))
        g[j] = rng_next(kind, g[j])


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
    vector,
    table,
    order,
    cstart,
    n_colors,
    kind,
    rng_bits,
    input_max,
    phase0,
    warm_from,
    latency,
    hist,
    gen,
    cycle0,
    ncycles,
    stride,
    out,
    acc,
    tv,
    tmp,
):
    """Cycles cycle0+1 .. cycle0+ncycles of one replica whose p-bits act in classes: cycle t is
    class (t - 1 - phase0) mod C (its positions ``order[cstart[c]:cstart[c + 1]]``, the rows of
    :func:`rows` by position and the generators ``gen`` by position), and decides from cycle
    ``warm_from`` on (before it the class's spins hold, its generators still advance). The
    chromatic schedule (classes the colours, phase0 = 0) and "async-periodic" with one period
    (classes the phases, :class:`ClassState`). ``hist[k % (L + 1)]`` holds S_k, with 3
    readable bytes after its end when ``vector``; ``acc``, ``tv``, ``tmp`` scratch for the
    largest class."""
    slots = latency + 1
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        c = (t - 1 - phase0) % n_colors
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-L} now (or S_0 early on); receives S_t
        lo = cstart[c]
        hi = cstart[c + 1]
        if t >= warm_from:
            _decide(ptr, nbr, w, h, vector, table, kind, rng_bits, input_max, hist[cur], gen,
                    lo, hi, acc, tv, tmp)  # fmt: skip
        else:
            for k in range(lo, hi):
                tmp[k - lo] = hist[prev, order[k]]
                gen[k] = rng_next(kind, gen[k])
        _end_cycle(hist, prev, cur, order[lo:hi], tmp, hi - lo, t - cycle0, stride, out)


def wheel_size(reload, counter) -> int:
    """Slots of :func:`run_periodic`'s wheel: a power of two above every wait (reload + 1) and
    every counter + 1, so a p-bit's slot names its next cycle without ambiguity (<= 2**16)."""
    longest = max(int(np.max(reload, initial=0)), int(np.max(counter, initial=0))) + 1
    return 1 << max(1, (longest - 1).bit_length())


@nb.njit(cache=True, nogil=True, inline="always")
def _append(head, tail, link, s, i):
    """p-bit i to the end of slot s's list."""
    link[i] = -1
    if head[s] < 0:
        head[s] = i
    else:
        link[tail[s]] = i
    tail[s] = i


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
        _append(head, tail, link, due[i] & mask, i)
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
                tmp[m] = decide_spin(acc, table[np.uint32(abs(acc))], rng_output(kind, g, rng_bits))
            else:
                tmp[m] = hist[prev, i]
            acting[m] = i
            m += 1
            gen[i] = rng_next(kind, g)
            due[i] = next_action(t, reload[i])
            _append(head, tail, link, due[i] & mask, i)
            i = nxt
        _end_cycle(hist, prev, cur, acting, tmp, m, t - cycle0, stride, out)
    end = cycle0 + ncycles
    for i in range(n):
        counter[i] = counter_at(due[i], end)


@nb.njit(cache=True, nogil=True)
def _by_class(counter, order, cstart):
    """``order``: the p-bits sorted by counter value (all < C = len(cstart) - 1), then index;
    ``cstart[c]``: the first position of value c (a counting sort)."""
    cstart[:] = 0
    for i in range(counter.shape[0]):
        cstart[counter[i] + 1] += 1
    for c in range(cstart.shape[0] - 1):
        cstart[c + 1] += cstart[c]
    for i in range(counter.shape[0]):
        c = counter[i]
        order[cstart[c]] = i
        cstart[c] += 1
    for c in range(cstart.shape[0] - 1, 0, -1):
        cstart[c] = cstart[c - 1]
    cstart[0] = 0


@nb.njit(cache=True, nogil=True)
def _position_rows(order, ptr, nbr, w, h, ptr_p, nbr_p, w_p, h_p):
    """The rows of :func:`rows` by p-bit (identity order), laid out by position in ``order``."""
    n = order.shape[0]
    if ptr[n] == ENTRIES * n:  # every row one group: a copy of constant length (ptr_p unused)
        for k in range(n):
            i = order[k]
            for e in range(ENTRIES):
                nbr_p[ENTRIES * k + e] = nbr[ENTRIES * i + e]
                w_p[ENTRIES * k + e] = w[ENTRIES * i + e]
            h_p[k] = h[i]
        return
    ptr_p[0] = 0
    for k in range(n):
        i = order[k]
        a = ptr[i]
        q = ptr_p[k]
        for e in range(ptr[i + 1] - a):
            nbr_p[q + e] = nbr[a + e]
            w_p[q + e] = w[a + e]
        ptr_p[k + 1] = q + ptr[i + 1] - a
        h_p[k] = h[i]


@nb.njit(cache=True, nogil=True)
def _periodic_events(r0, r1, args, reload, hist, gen, counter, cycle0, ncycles, stride, out, W):
    """Replicas r0..r1-1 by :func:`run_periodic`, in turn, with one set of scratch arrays."""
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


def _bounds(replicas: int, threads: int) -> list:
    """Contiguous replica ranges, one per thread (replicas are independent: the split never
    changes a result)."""
    threads = max(1, min(int(threads), replicas))
    return [replicas * k // threads for k in range(threads + 1)]


def run_periodic_events(args: tuple, reload, hist, gen, counter, cycle0: int, ncycles: int,
                        stride: int, out, threads: int) -> None:  # fmt: skip
    """ "async-periodic" event-driven (:func:`run_periodic`) for every replica of the
    replica-major arrays (``hist[R, L + 1, n]``, ``gen[R, n]``, ``counter[R, n]``,
    ``out[R, k, n]``), ``args`` being (ptr, nbr, w, h, table, kind, rng_bits, input_max,
    warmup, latency) with rows by p-bit and ``reload`` the counters' reload values."""
    b = _bounds(hist.shape[0], threads)
    rest = (args, reload, hist, gen, counter, cycle0, ncycles, stride, out,
            wheel_size(reload, counter))  # fmt: skip
    run_blocks(lambda k: _periodic_events(b[k], b[k + 1], *rest), len(b) - 1, len(b) - 1)


# --------------------------------------------------------------------------------------------
# Replicas whose p-bits act in classes (the chromatic schedule; "async-periodic" with one
# period), on state kept by position.
# --------------------------------------------------------------------------------------------


class ClassState:
    """The state of R replicas whose p-bits act in classes, as :func:`run_coloured` reads it,
    kept between calls: spins ``H[R, L + 1, n]`` with 3 readable bytes after them (the gathers
    read words), generators ``G[R, n]`` by position, and the classes with the rows laid out by
    them: shared by every replica (``shared``: the colours of the chromatic schedule, given) or
    filed per replica from its counters ("async-periodic": class k holds the p-bits whose
    counter read k after cycle ``ref[r]``, so that they act at cycles ref + 1 + k + m T).

    Like :class:`pbitsim.sim.hardware_lanes.LaneState`, it is converted from and to the
    machine's replica-major arrays (:meth:`load`, :meth:`store`) only when one side has changed;
    while it holds the state, the classes hold too (nothing else moves the counters).
    """

    def __init__(self, replicas: int, n: int, slots: int, classes: int, rows, order=None,
                 cstart=None) -> None:  # fmt: skip
        self.shared = order is not None
        self.classes = int(classes)
        ptr, nbr, w, h = rows
        k = 1 if self.shared else replicas
        if self.shared:
            self.order = np.ascontiguousarray(order, np.int32)[None]
            self.cstart = np.ascontiguousarray(cstart, np.int64)[None]
            self.ptr, self.nbr, self.w, self.h = (np.ascontiguousarray(a)[None] for a in rows)
        else:
            self.by_pbit = rows  # rows by p-bit, laid out anew by class at each load
            self.order = np.empty((k, n), np.int32)
            self.cstart = np.empty((k, self.classes + 1), np.int64)
            # rows of one group each start at 4 k whatever the order: one shared ``ptr``
            uniform = int(ptr[-1]) == ENTRIES * n
            self.ptr = ptr[None] if uniform else np.empty((k, n + 1), np.int64)
            self.nbr = np.empty((k, len(nbr)), nbr.dtype)
            self.w = np.empty((k, len(w)), w.dtype)
            self.h = np.empty((k, n), h.dtype)
        self.ref = np.zeros(k, np.int64)
        self.vector = gathered(ptr, w)
        self.H = aligned.empty((replicas, slots, n), np.int8, tail=3)
        self.G = np.empty((replicas, n), np.uint64)

    @staticmethod
    def nbytes(replicas: int, n: int, slots: int, entries: int, shared: bool) -> int:
        """Bytes a state of this shape takes (rows by class per replica unless ``shared``)."""
        rows = n * 24 + entries * 8
        return replicas * n * (8 + slots) + (rows if shared else replicas * rows)

    def load(self, hist, gen, egen, counter, cycle: int) -> None:
        """Take the machine's replica-major state at ``cycle`` (the classes filed from the
        counters unless shared)."""
        self.H[...] = hist
        if not self.shared:
            _file_classes(counter, *self.by_pbit, self.order, self.cstart, self.ptr, self.nbr,
                          self.w, self.h)  # fmt: skip
            self.ref[:] = cycle
        _by_position(gen, self.order, self.G, True)

    def store(self, hist, gen, egen, counter, cycle: int) -> None:
        """Write the state at ``cycle`` back into the machine's replica-major arrays."""
        hist[...] = self.H
        _by_position(gen, self.order, self.G, False)
        if not self.shared:
            _class_counters(self.order, self.cstart, self.ref, cycle, counter)


@nb.njit(cache=True, nogil=True)
def _by_position(gen, order, G, into):
    """G[r, k] = gen[r, order[x, k]] (``into``), or back; x = r, or 0 for a shared order."""
    for r in range(gen.shape[0]):
        o = order[r if order.shape[0] > 1 else 0]
        for k in range(o.shape[0]):
            if into:
                G[r, k] = gen[r, o[k]]
            else:
                gen[r, o[k]] = G[r, k]


@nb.njit(cache=True, nogil=True)
def _file_classes(counter, ptr, nbr, w, h, order, cstart, ptr_p, nbr_p, w_p, h_p):
    """Each replica's classes from its counters (:func:`_by_class`) and its rows laid out by
    them (:func:`_position_rows`)."""
    for r in range(counter.shape[0]):
        _by_class(counter[r], order[r], cstart[r])
        p = ptr_p[r if ptr_p.shape[0] > 1 else 0]
        _position_rows(order[r], ptr, nbr, w, h, p, nbr_p[r], w_p[r], h_p[r])


@nb.njit(cache=True, nogil=True)
def _class_counters(order, cstart, ref, cycle, counter):
    """The counters after ``cycle`` implied by the classes (the counter rule in its event form:
    class k acts at cycles next_action(ref, k) + m T, T the number of classes)."""
    T = cstart.shape[1] - 1
    for r in range(counter.shape[0]):
        a0 = next_action(ref[r], 0)
        first = a0 + T * ((cycle - a0) // T + 1)  # class 0's first action after ``cycle``
        for c in range(T):
            due = first + c if first + c - T <= cycle else first + c - T
            k = counter_at(due, cycle)
            for p in range(cstart[r, c], cstart[r, c + 1]):
                counter[r, order[r, p]] = k


@nb.njit(cache=True, nogil=True)
def _classes_block(r0, r1, order, cstart, ptr, nbr, w, h, ref, vector, table, kind, rng_bits,
                   input_max, warm_from, latency, H, G, cycle0, ncycles, stride, out):  # fmt: skip
    """:func:`run_coloured` for replicas r0..r1-1 of a :class:`ClassState`, in turn (layout row
    r, or 0 when shared)."""
    widest = 1
    for x in range(cstart.shape[0]):
        for c in range(cstart.shape[1] - 1):
            widest = max(widest, cstart[x, c + 1] - cstart[x, c])
    acc = np.empty(widest, w.dtype)
    tv = np.empty(widest, np.uint64)
    tmp = np.empty(widest, np.int8)
    classes = cstart.shape[1] - 1
    for r in range(r0, r1):
        x = r if order.shape[0] > 1 else 0
        p = ptr[x if ptr.shape[0] > 1 else 0]
        run_coloured(
            p, nbr[x], w[x], h[x], vector, table, order[x], cstart[x], classes, kind,
            rng_bits, input_max, ref[x], warm_from, latency, H[r], G[r], cycle0, ncycles,
            stride, out[r], acc, tv, tmp,
        )  # fmt: skip


def run_classes(state: ClassState, table, kind: int, rng_bits: int, input_max: int,
                warm_from: int, latency: int, cycle0: int, ncycles: int, stride: int, out,
                threads: int) -> None:  # fmt: skip
    """Cycles cycle0+1 .. cycle0+ncycles of every replica of ``state`` (:func:`run_coloured`;
    ``warm_from`` the first cycle that decides), replicas on ``threads`` threads."""
    b = _bounds(state.H.shape[0], threads)
    rest = (state.order, state.cstart, state.ptr, state.nbr, state.w, state.h, state.ref,
            state.vector, table, kind, rng_bits, input_max, warm_from, latency, state.H, state.G,
            cycle0, ncycles, stride, out)  # fmt: skip
    run_blocks(lambda k: _classes_block(b[k], b[k + 1], *rest), len(b) - 1, len(b) - 1)


@nb.njit(cache=True, nogil=True)
def _enable_pass(kind, egen, threshold, masks):
    """Bit j of masks[b] = whether p-bit 64 b + j acts (its enable number < ``threshold``), and
    every enable generator steps: a loop per generator kind and word, without a branch, so that
    it vectorises."""
    n = egen.shape[0]
    for b in range(masks.shape[0]):
        i0 = 64 * b
        bits = np.uint64(0)
        if kind == 0:
            for j in range(min(64, n - i0)):
                e = egen[i0 + j]
                act = enable_acts(xorshift64_output(e, ENABLE_BITS), threshold)
                bits |= np.uint64(act) << np.uint64(j)
                egen[i0 + j] = xorshift64_next(e)
        else:
            for j in range(min(64, n - i0)):
                e = egen[i0 + j]
                act = enable_acts(lfsr32_xnor_output(e, ENABLE_BITS), threshold)
                bits |= np.uint64(act) << np.uint64(j)
                egen[i0 + j] = lfsr32_xnor_next(e)
        masks[b] = bits


@nb.njit(cache=True, nogil=True)
def _step_pass(kind, gen):
    """Every generator steps (the free-running decision generators): one loop per kind."""
    if kind == 0:
        for i in range(gen.shape[0]):
            gen[i] = xorshift64_next(gen[i])
    else:
        for i in range(gen.shape[0]):
            gen[i] = lfsr32_xnor_next(gen[i])


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
    masks,
    acting,
    tmp,
):
    """Cycles cycle0+1 .. cycle0+ncycles of one replica, "async-random": per cycle, one pass
    over all p-bits sets the bit of each acting one in 64-bit masks (enable number <
    ``threshold``) and steps the enable generators; the acting p-bits, taken off the masks
    lowest bit first, sum and decide with their decision generator's output; a last pass steps
    every decision generator. Rows by p-bit. ``masks`` has (n + 63) // 64 words."""
    slots = latency + 1
    n = h.shape[0]
    uniform = ptr[n] == ENTRIES * n
    acc = np.empty(n, np.int64)
    tv = np.empty(n, np.uint64)
    rv = np.empty(n, np.uint64)
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        warm = t > warmup
        prev = (t - 1) % slots
        cur = t % slots
        read = hist[cur]
        _enable_pass(kind, egen, threshold, masks)
        m = 0
        for b in range(masks.shape[0]):
            word = masks[b]
            while word:
                acting[m] = 64 * b + trailing_zeros(word)
                word &= word - np.uint64(1)
                m += 1
        if warm:  # in loops over the acting p-bits: the comparator's runs without a branch
            if uniform:  # rows of one group: at 4 i, no row pointers read
                for k in range(m):
                    i = acting[k]
                    a = _row_sum(nbr, w, h[i], ENTRIES * i, 1, read)
                    acc[k] = saturate(a, input_max)
            else:
                for k in range(m):
                    acc[k] = _input(ptr, nbr, w, h, acting[k], read, input_max)
            for k in range(m):
                tv[k] = table[np.uint32(abs(acc[k]))]
                rv[k] = rng_output(kind, gen[acting[k]], rng_bits)
            for k in range(m):
                tmp[k] = decide_spin(acc[k], tv[k], rv[k])
        else:
            for k in range(m):
                tmp[k] = hist[prev, acting[k]]
        _step_pass(kind, gen)
        _end_cycle(hist, prev, cur, acting, tmp, m, t - cycle0, stride, out)


@nb.njit(cache=True, nogil=True)
def _random_block(r0, r1, args, threshold, hist, gen, egen, cycle0, ncycles, stride, out):
    """Replicas r0..r1-1 by :func:`run_random`, in turn, with one set of scratch arrays."""
    n = args[3].shape[0]
    masks = np.empty((n + 63) // 64, np.uint64)
    acting = np.empty(n, np.uint32)
    tmp = np.empty(n, np.int8)
    for r in range(r0, r1):
        run_random(
            *args, threshold, hist[r], gen[r], egen[r], cycle0, ncycles, stride, out[r], masks,
            acting, tmp,
        )  # fmt: skip


def run_random_replicas(args: tuple, threshold, hist, gen, egen, cycle0: int, ncycles: int,
                        stride: int, out, threads: int) -> None:  # fmt: skip
    """ "async-random" (:func:`run_random`) for every replica of the replica-major arrays
    (``hist[R, L + 1, n]``, ``gen``/``egen[R, n]``, ``out[R, k, n]``), ``args`` being (ptr,
    nbr, w, h, table, kind, rng_bits, input_max, warmup, latency) with rows by p-bit."""
    b = _bounds(hist.shape[0], threads)
    rest = (args, np.uint64(threshold), hist, gen, egen, cycle0, ncycles, stride, out)
    run_blocks(lambda k: _random_block(b[k], b[k + 1], *rest), len(b) - 1, len(b) - 1)
