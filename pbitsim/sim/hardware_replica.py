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
from pbitsim.sim import aligned
from pbitsim.sim.gathers import GROUP as GATHER
from pbitsim.sim.gathers import inputs16
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
    "PhaseClasses",
    "PositionState",
    "gathered",
    "rows",
    "wheel_size",
    "run_coloured",
    "run_periodic",
    "run_periodic_replicas",
    "run_random",
]

#: entries per group of a padded row (the inner loop's constant trip count; the gathered path
#: reads rows of exactly one group)
ENTRIES = 4


def rows(indptr, indices, j_codes, h_codes, order, acc_bits: int) -> tuple:
    """Couplings by position (position k is p-bit ``order[k]``), each row padded to a multiple of
    :data:`ENTRIES` entries (at least one group) with weight 0 on the p-bit's own spin, which adds
    exactly 0. Codes in int32 when ``acc_bits`` <= 32, else int64: the accumulator never
    overflows (:func:`pbitsim.fixedpoint.quantize_couplings`), so sums in that type are exact.

    Returns
    -------
    (ptr int64 [n + 1], nbr int32 [ptr[n]], w [ptr[n]], h [n])
    """
    dtype = np.int32 if acc_bits <= 32 else np.int64
    indptr = np.asarray(indptr, np.int64)
    order = np.asarray(order, np.int64)
    deg = np.diff(indptr)[order]
    n = len(order)
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.maximum(-(-deg // ENTRIES), 1) * ENTRIES, out=ptr[1:])
    nbr = np.repeat(order, np.diff(ptr)).astype(np.int32)  # padding: the p-bit itself
    w = np.zeros(ptr[n], dtype)
    within = np.arange(int(deg.sum()), dtype=np.int64) - np.repeat(np.cumsum(deg) - deg, deg)
    src = np.repeat(indptr[:-1][order], deg) + within
    dest = np.repeat(ptr[:-1], deg) + within
    nbr[dest] = np.asarray(indices, np.int64)[src]
    w[dest] = np.asarray(j_codes)[src]
    return ptr, nbr, w, np.asarray(h_codes)[order].astype(dtype)


def gathered(ptr, w) -> bool:
    """Whether rows of :func:`rows` take the gathered path: every row one group (degree <= 4)
    and int32 codes (:func:`pbitsim.sim.gathers.inputs16`)."""
    return w.dtype == np.int32 and int(ptr[-1]) == ENTRIES * (len(ptr) - 1)


@nb.njit(cache=True, nogil=True, inline="always")
def _sum(ptr, nbr, w, h, k, read):
    """The exact input of the p-bit at position k: h plus its row's terms, read from ``read``."""
    acc = np.int64(h[k])
    q = ptr[k]
    for _ in range((ptr[k + 1] - q) >> 2):
        for d in range(ENTRIES):
            acc += w[q + d] * read[np.uint32(nbr[q + d])]
        q += ENTRIES
    return acc


@nb.njit(cache=True, nogil=True, inline="always")
def _input(ptr, nbr, w, h, k, read, input_max):
    """The saturated input of the p-bit at position k."""
    return saturate(_sum(ptr, nbr, w, h, k, read), input_max)


@nb.njit(cache=True, nogil=True)
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
    (classes the phases, :func:`run_periodic_replicas`). ``hist[k % (L + 1)]`` holds S_k, with 3
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


class PositionState:
    """One replica's state as :func:`run_coloured` reads it for the chromatic schedule: spins
    ``H[L + 1, n]`` with 3 readable bytes after them (the gathers read words) and generators
    ``G[n]`` by position (``order``), with scratch for the largest colour. Converted from and
    to the machine's replica-major arrays (:meth:`load`, :meth:`store`) only when one side has
    changed, like :class:`pbitsim.sim.hardware_lanes.LaneState`."""

    def __init__(self, n: int, slots: int, order, widest: int, acc_dtype) -> None:
        self.order = np.ascontiguousarray(order, np.int64)
        self.H = aligned.empty((slots, n), np.int8, tail=3)
        self.G = np.empty(n, np.uint64)
        self.acc = np.empty(widest, acc_dtype)
        self.tv = np.empty(widest, np.uint64)
        self.tmp = np.empty(widest, np.int8)

    def load(self, hist, gen, egen) -> None:
        """Take the machine's replica-major state (one replica)."""
        self.H[...] = hist[0]
        self.G[:] = gen[0][self.order]

    def store(self, hist, gen, egen) -> None:
        """Write the state back into the machine's replica-major arrays."""
        hist[0][...] = self.H
        gen[0][self.order] = self.G


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
    ptr_p[0] = 0
    if ptr[n] == ENTRIES * n:  # every row one group: a copy of constant length
        for k in range(n):
            i = order[k]
            for e in range(ENTRIES):
                nbr_p[ENTRIES * k + e] = nbr[ENTRIES * i + e]
                w_p[ENTRIES * k + e] = w[ENTRIES * i + e]
            ptr_p[k + 1] = ENTRIES * (k + 1)
            h_p[k] = h[i]
        return
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
def _classes_current(counter, label, ref, cycle0, T):
    """Whether the classes filed when the counters read ``label`` after cycle ``ref`` still
    hold: one period T, every p-bit acting every T cycles, so each counter has moved on by
    exactly cycle0 - ref (mod T)."""
    if ref < 0:
        return False
    d = (cycle0 - ref) % T
    for i in range(counter.shape[0]):
        k = label[i] - d
        if counter[i] != (k + T if k < 0 else k):
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _periodic_classes(r0, r1, args, vector, T, hist, gen, counter, cycle0, ncycles, stride, out,
                      kept, c_order, c_cstart, c_ptr, c_nbr, c_w, c_h, c_label, c_ref):  # fmt: skip
    """Replicas r0..r1-1 of "async-periodic" with one period T and every counter < T: each as
    the classes of :func:`run_coloured`, class k the p-bits whose counter read k after cycle
    ``c_ref`` (they act at cycles c_ref + 1 + k + m T), with rows laid out by position. The
    layout of replica r is kept in row r of the ``c_*`` arrays while it holds
    (:func:`_classes_current`), else filed anew; unless ``kept`` (no room to keep them), when
    every replica is filed anew in row 0."""
    ptr, nbr, w, h, table, kind, rng_bits, input_max, warmup, latency = args
    n = h.shape[0]
    slots = latency + 1
    gen_p = np.empty(n, np.uint64)
    acc = np.empty(n, w.dtype)
    tv = np.empty(n, np.uint64)
    tmp = np.empty(n, np.int8)
    # the spins with 3 readable bytes after them (the gathers read words)
    H = np.empty(slots * n + 8, np.int8)[: slots * n].reshape((slots, n))
    end = cycle0 + ncycles
    for r in range(r0, r1):
        x = r if kept else 0
        order = c_order[x]
        if not (kept and _classes_current(counter[r], c_label[x], c_ref[x], cycle0, T)):
            _by_class(counter[r], order, c_cstart[x])
            _position_rows(order, ptr, nbr, w, h, c_ptr[x], c_nbr[x], c_w[x], c_h[x])
            c_label[x, :] = counter[r]
            c_ref[x] = cycle0
        ref = c_ref[x]
        for k in range(n):
            gen_p[k] = gen[r, order[k]]
        H[:] = hist[r]
        run_coloured(
            c_ptr[x], c_nbr[x], c_w[x], c_h[x], vector, table, order, c_cstart[x], T, kind,
            rng_bits, input_max, ref, warmup + 1, latency, H, gen_p, cycle0, ncycles, stride,
            out[r], acc, tv, tmp,
        )  # fmt: skip
        hist[r][:] = H
        for k in range(n):
            gen[r, order[k]] = gen_p[k]
        # the counter rule in its event form: class k acts at cycles next_action(ref, k) + m T;
        # the first of them after the call lies in (end, end + T]
        first = next_action(ref, 0) + T * ((end - next_action(ref, 0)) // T + 1)
        for i in range(n):
            due = first + c_label[x, i]
            counter[r, i] = counter_at(due if due - T <= end else due - T, end)


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


class PhaseClasses:
    """Each replica's "async-periodic" classes and rows laid out by them (period T), kept between
    calls while they hold (:func:`_periodic_classes`): ``replicas`` rows when they fit in
    :data:`CLASSES_BYTES`, else one row refiled for every replica at every call."""

    def __init__(self, replicas: int, T: int, ptr, w) -> None:
        n = len(ptr) - 1
        per = n * (8 + 8 + 8 + 4) + int(ptr[-1]) * (4 + w.itemsize) + 8 * (T + 1)
        self.kept = replicas * per <= CLASSES_BYTES
        rows = replicas if self.kept else 1
        self.T = T
        self.order = np.empty((rows, n), np.int64)
        self.cstart = np.empty((rows, T + 1), np.int64)
        self.ptr = np.empty((rows, n + 1), np.int64)
        self.nbr = np.empty((rows, int(ptr[-1])), np.int32)
        self.w = np.empty((rows, int(ptr[-1])), w.dtype)
        self.h = np.empty((rows, n), w.dtype)
        self.label = np.empty((rows, n), np.int64)
        self.ref = np.full(rows, -1, np.int64)  # nothing filed yet

    def arrays(self) -> tuple:
        return (self.kept, self.order, self.cstart, self.ptr, self.nbr, self.w, self.h,
                self.label, self.ref)  # fmt: skip


#: bytes the kept "async-periodic" classes of all replicas may take (:class:`PhaseClasses`)
CLASSES_BYTES = 1 << 28


#: calls of fewer p-bit updates than this (about a millisecond of work) stay on one thread
ONE_THREAD_BELOW = 1 << 17


def run_periodic_replicas(
    args: tuple,
    reload,
    period: int,
    hist,
    gen,
    counter,
    cycle0: int,
    ncycles: int,
    stride: int,
    out,
    threads: int,
    classes: PhaseClasses | None = None,
) -> PhaseClasses | None:
    """ "async-periodic" for every replica of the replica-major arrays (``hist[R, L + 1, n]``,
    ``gen[R, n]``, ``counter[R, n]``, ``out[R, k, n]``), ``args`` being (ptr, nbr, w, h, table,
    kind, rng_bits, input_max, warmup, latency) with rows by p-bit and ``reload`` the counters'
    reload values; ``period`` is their one period T (every reload T - 1), else 0. With one
    period and every counter below it, a call of at least T cycles runs as classes
    (:func:`run_coloured` on rows laid out by phase class, kept in ``classes`` between calls:
    the layout returned for the next call); otherwise event-driven (:func:`run_periodic`).
    Replicas run independently, so ``threads`` (each taking a contiguous range of replicas)
    never changes a result."""
    R = hist.shape[0]
    T = int(period)
    threads = max(1, min(int(threads), R))
    bounds = [R * k // threads for k in range(threads + 1)]
    if T and ncycles >= T and counter.max() < T:
        if classes is None or classes.T != T or classes.order.shape[0] not in (1, R):
            classes = PhaseClasses(R, T, args[0], args[2])
        if not classes.kept:
            threads = 1  # one row of layouts: one thread
            bounds = [0, R]
        rest = (args, gathered(args[0], args[2]), T, hist, gen, counter, cycle0, ncycles, stride,
                out, *classes.arrays())  # fmt: skip
        run_blocks(lambda b: _periodic_classes(bounds[b], bounds[b + 1], *rest), threads, threads)
        return classes
    W = wheel_size(reload, counter)
    rest = (args, reload, hist, gen, counter, cycle0, ncycles, stride, out, W)
    run_blocks(lambda b: _periodic_events(bounds[b], bounds[b + 1], *rest), threads, threads)
    return classes


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
