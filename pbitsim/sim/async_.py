"""Asynchronous p-bits: each p-bit fires on its own clock and may read stale neighbour values.

A model of clockless p-bit hardware (stochastic MTJs, free-running oscillators, p-bits on
unsynchronised clocks), registered as ``sample(..., method="async")``. It exists to measure how
far such machines are from the Boltzmann distribution, so it computes in float64 with the exact
tanh (no fixed point): every deviation it shows comes from the timing alone.

Time runs in discrete ticks t = 1, 2, ...; S_t is the spin vector after tick t, S_0 the initial
state (default all -1). At tick t a set F_t of p-bits fires; each i in F_t draws

    s_i <- +1 with probability (1 + tanh(beta * I_i)) / 2,   I_i = sum_j J_ij s_j + h_i,

with every s_j read from S_{t-1-d} (d = ``delay``, the staleness in ticks; S_k = S_0 for k < 0).
All p-bits of F_t decide from the same old values and change together, so two coupled p-bits firing
in one tick update in parallel: this is what biases the distribution (d = 0 with one p-bit per
tick is exact Gibbs sampling). p-bits not in F_t hold.

Modes (who fires when)
----------------------
``"poisson"``
    Every tick every p-bit fires independently with probability ``p`` (implemented exactly,
    by geometric gaps between a tick's firing p-bits or, in stream layout 1, geometric waiting
    times: the next firing is G ticks after the last, P(G = g) = (1-p)**(g-1) p).
    One step = round(1/p) ticks, so each p-bit fires p * round(1/p) times per step on average
    (exactly once when 1/p is an integer). p = 1 is synchronous parallel (Little) dynamics.
``"periodic"``
    p-bit i has period T_i (``period``, ticks; a scalar or one per p-bit) and phase phi_i
    (``phase``; default uniform on [0, T_i), drawn from the seed). Its firing times are
    tau_0 = phi_i, tau_{k+1} = max(tau_k + T_i + jitter * z_k, t_k) with z_k standard normal and
    t_k the tick of firing k, which is the first tick t > t_{k-1} (t >= 1 for k = 0) with
    t >= tau_k. The jitter accumulates, like the phase noise of a free-running oscillator, so
    the p-bits' relative phases drift; a p-bit fires at most once per tick. One step =
    round(mean(T)) ticks: each p-bit fires round(mean T) / T_i times per step on average (once
    when all periods are equal to an integer).

Randomness: replica r has one splitmix64 stream started at ``splitmix64(seed, r)``
(:mod:`pbitsim.rng`), consumed in a fixed order that the *stream layout* (``stream_layout``,
recorded in ``settings``) names, so runs are deterministic per seed, independent of the thread
count and of how the run is chunked:

1. per p-bit waiting times (every mode; the only layout before 2026-12, so settings without a
   "stream_layout" were taken in it): the first firing times in index order (a geometric wait
   from tick 0, or a phase), then per tick, firing p-bits in index order: the spin's uniform,
   then that p-bit's next waiting time's uniforms;
2. each tick's firings drawn afresh (mode "poisson", its default): per tick, from index -1, a
   geometric gap floor(log(1 - u) / log(1 - p)) >= 0 to the next firing p-bit, then that p-bit's
   uniform, until a gap passes the last p-bit (2m + 1 uniforms for m firings). The same model
   (every p-bit fires with probability p each tick, independently of the others and of the
   past), other samples for the same seed; no firing times are kept. At p = 1 no gap is drawn
   and both layouts take firing k's uniform from output k + 1: the same stream.

How it is computed (the same numbers, faster; ``docs/performance.md``): in layout 1 the p-bits
of a tick come off a timing wheel of bitmaps (and an overflow list for the few due beyond it)
instead of a scan of all firing times; in layout 2 a tick's gaps are drawn 16 at a time and
summed in index order, with no wheel at all. Fields are summed over neighbour rows padded to a
multiple of four entries (unsigned indices, in the CSR's order, four terms at a time) across the
tick's firings; a tick's uniforms are computed side by side from the stream's closed form
(splitmix64's j-th output is mix64(state + j * golden)); a rational tanh settles every decision
farther than 1e-6 from its threshold and a table every geometric wait whose cell of u floors to
one integer, and the rest are computed with math.tanh and math.log as written above
(``tests/test_perf_paths.py`` holds both layouts to plain transcriptions of these rules).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from pbitsim import rng as _rng
from pbitsim.couplings import Couplings
from pbitsim.rng import splitmix64
from pbitsim.sampling import Runner, register_method
from pbitsim.sim import rows as _rows
from pbitsim.sim.frames import own_frame
from pbitsim.sim.jit import splitmix64_next, uniform53
from pbitsim.sim.prefetch import prefetch as _prefetch
from pbitsim.sim.threads import run_blocks

__all__ = ["AsyncRunner", "MODES", "STREAM_LAYOUTS"]

MODES = ("poisson", "periodic")
#: how a replica's stream is consumed (module docstring, "Randomness"): 1 = per p-bit waiting
#: times (every mode; the only layout before 2026-12), 2 = each tick's firings drawn afresh
#: by geometric gaps (poisson mode; its default). ``Samples.settings["runner"]["stream_layout"]``
#: records it; settings without it were taken in layout 1.
STREAM_LAYOUTS = (1, 2)
_POISSON, _PERIODIC = 0, 1
_GOLDEN = _rng._GOLDEN
# the rules of pbitsim.rng, inlined where the tick's draws are computed side by side
_mix = nb.njit(cache=True, inline="always")(_rng.mix64)
_u53 = nb.njit(cache=True, inline="always")(_rng.uniform53)


@nb.njit(cache=True)
def _uniform(state):
    state, z = splitmix64_next(state)
    return state, uniform53(z)


@nb.njit(cache=True, inline="always")
def _draws(mode, p, jitter):
    """Uniforms a firing takes from the stream after its spin's: what _next_time uses."""
    if mode == _POISSON:
        return 1 if p < 1.0 else 0
    return 2 if jitter > 0.0 else 0


@nb.njit(cache=True, inline="always")
def _wait(mode, p, period_i, jitter, tau, t, u1, u2):
    """Next firing time after a firing at tick t whose scheduled time was tau, given the
    firing's uniforms (u1, u2; only the first :func:`_draws` of them are used)."""
    if mode == _POISSON:
        if p >= 1.0:
            return t + 1.0
        return t + 1.0 + math.floor(math.log(1.0 - u1) / math.log(1.0 - p))
    step = period_i
    if jitter > 0.0:
        step += jitter * math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
    return max(tau + step, float(t))


@nb.njit(cache=True)
def _next_time(mode, p, period_i, jitter, tau, t, state):
    """Next firing time after a firing at tick t whose scheduled time was tau (drawing its
    uniforms from the stream)."""
    u1 = u2 = 0.0
    if _draws(mode, p, jitter) >= 1:
        state, u1 = _uniform(state)
    if _draws(mode, p, jitter) == 2:
        state, u2 = _uniform(state)
    return state, _wait(mode, p, period_i, jitter, tau, t, u1, u2)


@nb.njit(cache=True)
def _first_times(mode, p, period, rng, nxt):
    """Time of every p-bit's first firing: a geometric wait from tick 0 (poisson) or a phase
    uniform on [0, T_i) (periodic)."""
    for r in range(nxt.shape[0]):
        state = rng[r, 0]
        for i in range(nxt.shape[1]):
            if mode == _POISSON:
                state, nxt[r, i] = _next_time(mode, p, 1.0, 0.0, 0.0, 0, state)
            else:
                state, u = _uniform(state)
                nxt[r, i] = u * period[i]
        rng[r, 0] = state


#: bytes of timing wheel per thread, at most: p-bit i waits in slot (its firing tick) mod slots
#: of a bitmap per slot (n / 8 bytes), so the p-bits of a tick are found by scanning n / 64
#: words, in index order, instead of comparing n firing times. One due further ahead than the
#: wheel reaches waits in an overflow list until the lap (``slots`` ticks) it falls in.
_WHEEL_BYTES = 1 << 22


def wheel_slots(mean_wait: float, n: int) -> int:
    """Slots of the timing wheel for a mean wait of ``mean_wait`` ticks and n p-bits: the power
    of 2 at or above four times the mean wait (at p = 0.1 one wait in 1,000 is longer than a lap,
    so the branch filing a p-bit in the overflow list is rarely mispredicted), at least 8,
    and no more than _WHEEL_BYTES of bitmaps allow. A speed choice only: results never depend
    on it."""
    want = 1 << max(3, math.ceil(math.log2(max(1.0, 4.0 * mean_wait))))
    room = 1 << max(3, int(math.log2(max(1, _WHEEL_BYTES // (8 * -(-n // 64))))))
    return int(min(want, room))


#: last tick a p-bit can be scheduled for (a wait beyond it means "never" in any run)
_FOREVER = 2**62
#: |P/Q - tanh(x)| <= 2.7e-7 for the rational tanh below (checked on a dense grid to |x| = 12 and
#: by tests/test_perf_paths.py); a decision whose uniform lies within this margin of the
#: threshold is recomputed with math.tanh
_TANH_MARGIN = 1e-6
_XMAX = 7.90531110763549805
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = (
    4.89352455891786e-03,
    6.37261928875436e-04,
    1.48572235717979e-05,
    5.12229709037114e-08,
    -8.60467152213735e-11,
    2.00018790482477e-13,
    -2.76076847742355e-16,
)
_B0, _B2, _B4, _B6 = (
    4.89352518554385e-03,
    2.26843463243900e-03,
    1.18534705686654e-04,
    1.19825839466702e-06,
)
#: a p-bit's firings are counted in 8 bits (a small array stays in the L1 cache) and added to
#: the 64-bit counts every 255 ticks and at the end of a call (a p-bit fires at most once a tick)
_COUNT_FLUSH = 255
#: cells of the geometric waiting-time table (indexed by the top bits of the random number)
_WAIT_BITS = 14


# fastmath "contract" only (fused multiply-adds: the rational's value moves by ~1e-16, far inside
# the margin; no other fast-math licence). Not inlined by Numba, so LLVM inlines it with these
# flags and keeps them out of the callers, whose sums must round as written.
@nb.njit(cache=True, fastmath={"contract"})
def _decide_fast(u, x):
    """The model's decision ``u < 0.5 * (1.0 + math.tanh(x))`` as +1 / -1, or 0 when it cannot
    be settled without math.tanh.

    Eigen's rational tanh P/Q (no division: (2u - 1) Q is compared with P) settles every
    decision farther than _TANH_MARGIN from the threshold: all but about one in 10^6, which the
    caller recomputes as the rule is written. No branch: a vector loop over a tick's firings.
    """
    xc = min(max(x, -_XMAX), _XMAX)
    x2 = xc * xc
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * xc
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    d = (2.0 * u - 1.0) * q - p  # 2u - 1 is exact: u is a multiple of 2**-53 in [0, 1)
    sure = abs(d) > _TANH_MARGIN * q
    return np.int8(sure) * (np.int8(1) - np.int8(2) * np.int8(d > 0.0))


def wait_table(p: float) -> np.ndarray:
    """floor(log(1 - u) / log(1 - p)) for every u of each of the 2**_WAIT_BITS cells of [0, 1)
    (indexed by the random number's top bits), or -1 where the cell straddles an integer or
    the wait does not fit the table's int16 (32 KB, read at random: it should stay in cache).

    A cell's value is taken only if both ends, moved outwards by 10^-9 relative (a million
    times the error of the computed logarithm and quotient), floor to the same integer: the
    quotient is monotone in u, so every u of the cell then floors to it, as computed by
    :func:`_next_time`. The rest of the draws (about 0.5% at p = 0.1) compute the logarithm.
    """
    cells = 1 << _WAIT_BITS
    table = np.full(cells, -1, np.int16)
    if not 0.0 < p < 1.0:
        return table
    lp = math.log(1.0 - p)
    u_lo = np.arange(cells) / cells
    u_hi = (np.arange(cells) + 1) / cells - 2.0**-53
    with np.errstate(divide="ignore"):
        y_lo = np.log(1.0 - u_lo) / lp
        y_hi = np.log(1.0 - u_hi) / lp
    lo = np.floor(y_lo * (1 - 1e-9) - 1e-9)
    hi = np.floor(y_hi * (1 + 1e-9) + 1e-9)
    pure = (lo == hi) & (hi < 2**15)
    table[pure] = lo[pure].astype(np.int16)
    return table


@nb.njit(cache=True, inline="always")
def _firing_tick(nxt, after):
    """The tick a p-bit scheduled at time ``nxt`` fires: the first tick > ``after`` at or past
    nxt (capped at _FOREVER)."""
    if nxt >= _FOREVER:
        return _FOREVER
    return max(np.int64(math.ceil(nxt)), after + 1)


#: firings ahead whose neighbour rows the field loop asks the caches for
_AHEAD = 8


@nb.njit(cache=True, inline="always")
def _popcount(x):
    """Set bits of a uint64 (SWAR)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@nb.njit(cache=True, inline="always")
def _put(wheel, over_i, over_t, no, i, ft, last):
    """File p-bit i, next firing at tick ft, in the wheel if ft <= ``last`` (the furthest tick
    the wheel holds now), else in the overflow list; returns the overflow's new length."""
    if ft <= last:
        wheel[ft & (wheel.shape[0] - 1), i >> 6] |= np.uint64(1) << np.uint64(i & 63)
        return no
    over_i[no] = i
    over_t[no] = ft
    return no + 1


#: a padded row holds a multiple of this many entries (:mod:`pbitsim.sim.rows`), summed this
#: many terms at a time (an unrolled body instead of a loop over a run-time width: 2.6 -> 2.0
#: ns a four-term field)
_GROUP = _rows.ENTRIES


@nb.njit(cache=True, inline="always")
def _group(field, w, nbr, q, spins):
    """field + the four terms of a padded row's group at flat position q, in order."""
    field += w[q] * spins[nbr[q]]
    field += w[q + np.uint64(1)] * spins[nbr[q + np.uint64(1)]]
    field += w[q + np.uint64(2)] * spins[nbr[q + np.uint64(2)]]
    return field + w[q + np.uint64(3)] * spins[nbr[q + np.uint64(3)]]


@nb.njit(cache=True, inline="always")
def _row_field(h, w, nbr, i, width, spins):
    """h_i + J_i,q1 s_q1 + ... over p-bit i's padded row (``w``/``nbr`` flat, ``width`` a
    multiple of _GROUP entries a row), term by term in the row's order: the model's float64 sum.
    A row of one group (a lattice; degree 3 padded) is summed without a loop: 7-8% of the
    sampler's time, measured against the loop alone."""
    q = np.uint64(i) * np.uint64(width)
    if width == _GROUP:
        return _group(h[i], w, nbr, q, spins)
    field = h[i]
    for g in range(width // _GROUP):
        field = _group(field, w, nbr, q + np.uint64(g * _GROUP), spins)
    return field


@nb.njit(cache=True)
def _fields(nbr, w, indptr, indices, data, h, beta, spins, fired, m, f):
    """f[k] = beta * (the field of p-bit fired[k]) for the m firings of a tick, from the padded
    rows ``nbr``/``w`` (contiguous, unsigned indices: no wrap-around; the rows of the firing
    _AHEAD on asked for) when they have n rows, else from the CSR arrays. ``fired`` has _AHEAD
    spare entries. A function of its own (:mod:`pbitsim.sim.frames`)."""
    own_frame()
    n = h.shape[0]
    if nbr.shape[0] == n:
        width = nbr.shape[1]
        nbr_flat, w_flat = nbr.reshape(nbr.size), w.reshape(w.size)
        fired[m : m + _AHEAD] = fired[m - 1] if m else 0  # rows to ask for past the last
        for k in range(m):
            _prefetch(w, fired[k + _AHEAD])
            _prefetch(nbr, fired[k + _AHEAD])
            f[k] = beta * _row_field(h, w_flat, nbr_flat, fired[k], width, spins)
    else:
        for k in range(m):
            i = fired[k]
            field = h[i]
            for q in range(indptr[i], indptr[i + 1]):
                field += data[q] * spins[indices[q]]
            f[k] = beta * field


@nb.njit(cache=True)
def _decisions(state, per, m, f, u, tmp, exact):
    """tmp[k] = the new spin of firing k of a tick, whose uniform is output per * k + 1 of the
    stream from ``state``: side by side, P/Q first, math.tanh for the few within its margin
    (counted in exact[0]). A function of its own (:mod:`pbitsim.sim.frames`)."""
    own_frame()
    for k in range(m):
        u[k] = _u53(_mix(state + (per * np.uint64(k) + np.uint64(1)) * _GOLDEN))
    for k in range(m):
        tmp[k] = _decide_fast(u[k], f[k])
    for k in range(m):
        if tmp[k] == 0:
            exact[0] += 1
            tmp[k] = 1 if u[k] < 0.5 * (1.0 + math.tanh(f[k])) else -1


@nb.njit(cache=True, inline="always")
def _end_tick(hist, prev, cur, fired, tmp, m, done, stride, out, counts, cnt):
    """The tick's new spins into S_t (hist[cur], after S_{t-1} when a history is kept), its
    firings counted (8-bit counts, added to ``counts`` every _COUNT_FLUSH ticks) and a
    recording every ``stride`` ticks (``done`` ticks into the call)."""
    if hist.shape[0] > 1:
        hist[cur, :] = hist[prev, :]
    for k in range(m):
        hist[cur, fired[k]] = tmp[k]
        cnt[fired[k]] += 1
    if stride > 0 and done % stride == 0:
        out[done // stride - 1, :] = hist[cur, :]
    if done % _COUNT_FLUSH == 0:
        for i in range(counts.shape[0]):
            counts[i] += cnt[i]
            cnt[i] = 0


@nb.njit(cache=True, nogil=True)
def _run_replica(
    nbr,
    w,
    indptr,
    indices,
    data,
    h,
    beta,
    mode,
    p,
    period,
    jitter,
    delay,
    hist,
    nxt,
    counts,
    rng,
    tick0,
    nticks,
    stride,
    out,
    waits,
    exact,
    wheel,
    over_i,
    over_t,
    cnt,
    fired,
    tmp,
    f,
    u,
    g,
):
    """Ticks tick0 + 1 .. tick0 + nticks of one replica, exactly as the module docstring says.

    The p-bits of a tick come off a timing wheel of S slots (bitmaps scanned in index order: a
    tick costs its firings plus n / 64 words): slot t mod S holds exactly the p-bits firing at
    tick t, for the S ticks ahead; a p-bit due further ahead waits in an overflow list, moved
    into the wheel at the start of the lap (S ticks) it falls in. A firing takes 1 + D uniforms
    from the replica's splitmix64 stream (D = :func:`_draws`), so firing k of a tick takes
    outputs (1 + D) k + 1 ... from the stream's state at the start of the tick: they are
    computed side by side (a vector loop), not one after the other, and the fields, decisions
    and waiting times of a tick run as loops across its firings too. Same numbers, in the same
    places, as drawing them in turn.

    Fields come from the padded rows ``nbr``/``w`` (n x max degree; padding adds 0.0 * s_i,
    which changes no decision) when ``nbr`` has n rows, else from the CSR arrays; either way
    each field is the float64 sum h_i + J_i,q1 s_q1 + ... in the model's order.
    """
    slots = delay + 1
    n = h.shape[0]
    words = wheel.shape[1]
    S = np.int64(wheel.shape[0])
    mask = S - 1
    poisson = mode == _POISSON
    draws = _draws(mode, p, jitter)
    per = np.uint64(1 + draws)
    geometric = poisson and p < 1.0
    top = np.uint64(64 - _WAIT_BITS)
    # the wheel and overflow list are rebuilt from the firing times at each call: those are the
    # state between calls
    wheel[:] = 0
    cnt[:] = 0
    no = 0
    for i in range(n):
        no = _put(wheel, over_i, over_t, no, i, _firing_tick(nxt[i], tick0), tick0 + S)
    state = rng[0]
    for t in range(tick0 + 1, tick0 + nticks + 1):
        if t & mask == 0 and no:  # a new lap: the overflow's p-bits due in it join the wheel
            keep = 0
            for j in range(no):
                keep = _put(wheel, over_i, over_t, keep, over_i[j], over_t[j], t + mask)
            no = keep
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-delay} (or S_0 early on); receives S_t
        row = wheel[t & mask]
        m = 0
        for wi in range(words):  # the tick's p-bits, in index order
            word = row[wi]
            if word:
                row[wi] = 0
                base = np.uint32(wi << 6)
                while word:  # eight bits a round without a branch (fired has spare entries)
                    rest = word
                    for j in range(8):
                        fired[m + j] = base + np.uint32(trailing_zeros(rest))
                        rest &= rest - np.uint64(1)
                    m += min(8, _popcount(word))
                    word = rest
        _fields(nbr, w, indptr, indices, data, h, beta, hist[cur], fired, m, f)
        _decisions(state, per, m, f, u, tmp, exact)
        if geometric:
            for k in range(m):  # firing ticks from the table of waits, side by side
                g[k] = (
                    t
                    + 1
                    + waits[_mix(state + (per * np.uint64(k) + np.uint64(2)) * _GOLDEN) >> top]
                )
        for k in range(m):
            if not geometric or g[k] <= t:  # no table entry: as _next_time computes it
                exact[1] += geometric
                i = fired[k]
                z = state + per * np.uint64(k) * _GOLDEN
                u1 = _u53(_mix(z + np.uint64(2) * _GOLDEN)) if draws >= 1 else 0.0
                u2 = _u53(_mix(z + np.uint64(3) * _GOLDEN)) if draws == 2 else 0.0
                nxt[i] = _wait(mode, p, period[i], jitter, nxt[i], t, u1, u2)
                g[k] = _firing_tick(nxt[i], t)
        for k in range(m):  # (nxt[i] = g[k] in a table's wait: written back at the end)
            no = _put(wheel, over_i, over_t, no, fired[k], g[k], t + S)
        state += per * np.uint64(m) * _GOLDEN
        _end_tick(hist, prev, cur, fired, tmp, m, t - tick0, stride, out, counts, cnt)
    rng[0] = state
    for i in range(n):
        counts[i] += cnt[i]
    if poisson:  # firing times are whole ticks: the wheel's slot and the overflow's entry
        end = tick0 + nticks
        for j in range(S):
            tick = float(end + 1 + ((j - end - 1) & mask))
            for wi in range(words):
                word = wheel[j, wi]
                while word:
                    nxt[(wi << 6) + trailing_zeros(word)] = tick
                    word &= word - np.uint64(1)
        for j in range(no):
            if over_t[j] < _FOREVER:  # else nxt holds what _wait computed (beyond any run)
                nxt[over_i[j]] = float(over_t[j])


#: gaps of stream layout 2 drawn side by side, this many at a time (a speed choice only: the
#: gaps past a tick's last firing are drawn and dropped, never consumed from the stream)
_BATCH = 16


@nb.njit(cache=True)
def _firing_set(n, state, waits, lp, fired, z, exact):
    """The p-bits firing in a tick of stream layout 2 whose stream starts at ``state``: gap k is
    output 2k + 1 (a wait from the table ``waits``, or math.log where a cell straddles an
    integer, counted in exact[1]; ``lp`` = log(1 - p)), drawn _BATCH at a time into ``z``; the
    sites in fired[:m], ascending; returns m. A function of its own (:mod:`pbitsim.sim.frames`)."""
    own_frame()
    top = np.uint64(64 - _WAIT_BITS)
    two = np.uint64(2) * _GOLDEN
    i = np.int64(-1)
    m = 0
    while i < n:  # firings in batches: fired[m + b] = the site gap m + b lands on
        base = state + np.uint64(2 * m + 1) * _GOLDEN
        for b in range(_BATCH):
            z[b] = _mix(base + np.uint64(b) * two)
        for b in range(_BATCH):
            gap = np.int64(waits[z[b] >> top])
            if gap < 0:  # no table entry: as _next_time computes it
                exact[1] += 1
                gap = min(np.int64(math.floor(math.log(1.0 - _u53(z[b])) / lp)), n)
            i += 1 + gap
            fired[m + b] = np.uint32(min(i, n))
        m += _BATCH
    last = m  # the batch drawn past the tick's end: its gaps beyond the ending one uncounted
    m -= _BATCH
    while fired[m] < n:
        m += 1
    for b in range(m + 1, last):
        exact[1] -= waits[z[b - last + _BATCH] >> top] < 0
    return m


@nb.njit(cache=True, nogil=True)
def _run_ticks(
    nbr,
    w,
    indptr,
    indices,
    data,
    h,
    beta,
    p,
    hist,
    counts,
    rng,
    tick0,
    nticks,
    stride,
    out,
    waits,
    exact,
    cnt,
    fired,
    tmp,
    f,
    u,
    z,
):
    """Ticks tick0 + 1 .. tick0 + nticks of one replica in stream layout 2 (poisson, p < 1): a
    tick's firing p-bits are drawn afresh by skipping, in index order, geometric gaps G >= 0
    (P(G = g) = (1-p)**g p) from the last (-1 at the start of the tick): every p-bit fires with
    probability p, independently of the others and of the past, as the model says. Gap k and
    the uniform of firing k are outputs 2k + 1 and 2k + 2 of the stream from the tick's start
    (the gap that passes n - 1 ends the tick, 2m + 1 outputs for m firings): computed side by
    side, _BATCH gaps at a time (:func:`_firing_set`), from the same table of waits as layout 1
    (math.log where a cell straddles an integer, counted in exact[1]). No firing times, no
    wheel: the rest (fields, decisions, the tick's end) is layout 1's."""
    n = h.shape[0]
    slots = hist.shape[0]
    lp = math.log(1.0 - p)
    cnt[:] = 0
    state = rng[0]
    for t in range(tick0 + 1, tick0 + nticks + 1):
        prev = (t - 1) % slots
        cur = t % slots
        m = _firing_set(n, state, waits, lp, fired, z, exact)
        _fields(nbr, w, indptr, indices, data, h, beta, hist[cur], fired, m, f)
        _decisions(state + _GOLDEN, np.uint64(2), m, f, u, tmp, exact)
        state += np.uint64(2 * m + 1) * _GOLDEN
        _end_tick(hist, prev, cur, fired, tmp, m, t - tick0, stride, out, counts, cnt)
    rng[0] = state
    for i in range(n):
        counts[i] += cnt[i]


@nb.njit(cache=True, nogil=True)
def _run_block(
    r0,
    r1,
    nbr,
    w,
    indptr,
    indices,
    data,
    h,
    beta,
    mode,
    p,
    period,
    jitter,
    delay,
    hist,
    nxt,
    counts,
    rng,
    tick0,
    nticks,
    stride,
    out,
    waits,
    exact,
    slots,
    layout,
):
    """Replicas r0..r1-1, one after the other, on the calling thread: stream layout 2 by
    :func:`_run_ticks`, else :func:`_run_replica` with a timing wheel of ``slots`` slots."""
    n = h.shape[0]
    cnt = np.empty(n, np.uint8)
    fired = np.empty(n + max(8, _AHEAD) + _BATCH, np.uint32)
    tmp = np.empty(n, np.int8)
    f = np.empty(n)
    u = np.empty(n)
    if layout == 2:
        z = np.empty(_BATCH, np.uint64)  # the batch's random words
        for r in range(r0, r1):
            _run_ticks(
                nbr, w, indptr, indices, data, h, beta, p, hist[r], counts[r], rng[r], tick0,
                nticks, stride, out[r], waits, exact[r], cnt, fired, tmp, f, u, z,
            )  # fmt: skip
        return
    wheel = np.empty((slots, (n + 63) >> 6), np.uint64)
    over_i = np.empty(n, np.uint32)
    over_t = np.empty(n, np.int64)
    g = np.empty(n, np.int64)
    for r in range(r0, r1):
        _run_replica(
            nbr,
            w,
            indptr,
            indices,
            data,
            h,
            beta,
            mode,
            p,
            period,
            jitter,
            delay,
            hist[r],
            nxt[r],
            counts[r],
            rng[r],
            tick0,
            nticks,
            stride,
            out[r],
            waits,
            exact[r],
            wheel,
            over_i,
            over_t,
            cnt,
            fired,
            tmp,
            f,
            u,
            g,
        )


def padded_rows(couplings: Couplings) -> tuple[np.ndarray, np.ndarray]:
    """Each p-bit's neighbours and couplings as rows of equal length (the maximum degree rounded
    up to a multiple of _GROUP), in the CSR's order, padded with the p-bit itself at coupling
    0.0: uint32 and float64 (n, width).

    A field is then h_i plus ``width`` terms, the padding adding 0.0 * s_i: the same float64
    sum, up to the sign of a zero field, which no decision sees (tanh(-0.0) = -0.0 and
    1 + -0.0 = 1; the rational tanh's numerator is +-0.0 and its comparison alike). A row is
    read without the CSR's row pointers, in one loop of fixed length, and unsigned indices
    spare Numba's negative-index wrap-around (a third of the field's cost). Empty (0, 0)
    arrays, meaning "use the CSR", when padding would more than double the stored couplings.
    """
    n, nnz = couplings.n, couplings.nnz
    degree = np.diff(couplings.indptr)
    width = -(-int(degree.max()) // _GROUP) * _GROUP if n else 0
    if n == 0 or width == 0 or n * width > 2 * nnz + n:
        return np.zeros((0, 0), np.uint32), np.zeros((0, 0), np.float64)
    _, nbr, w = _rows.padded_rows(
        couplings.indptr, couplings.indices, couplings.data, np.arange(n), np.float64, width
    )
    return nbr.astype(np.uint32).reshape(n, width), w.reshape(n, width)


#: a call firing fewer p-bits than this (about a millisecond of work) stays on one thread
_ONE_THREAD_BELOW = 1 << 16


def _run(threads: int, replicas: int, firings: float, *args) -> None:
    """:func:`_run_block` over all replicas: on the calling thread for a short call or one
    replica, else on ``threads`` threads, each owning a contiguous range of replicas (streams are
    per replica, so the split never changes a result)."""
    threads = min(threads, replicas)
    if threads <= 1 or firings < _ONE_THREAD_BELOW:
        _run_block(0, replicas, *args)
        return
    bounds = [replicas * k // threads for k in range(threads + 1)]
    run_blocks(lambda k: _run_block(bounds[k], bounds[k + 1], *args), threads, threads)


@register_method("async")
class AsyncRunner(Runner):
    """``sample(..., method="async")``: asynchronous p-bits (see the module docstring).

    Parameters
    ----------
    couplings : Couplings
    replicas : int
    seed : int, optional
        Master seed (random when None; recorded in ``settings``).
    mode : {"poisson", "periodic"}
    p : float
        Firing probability per tick, 0 < p <= 1 (poisson).
    period : float or array_like
        Mean ticks between firings, > 0, scalar or per p-bit (periodic).
    phase : array_like, optional
        Time of each p-bit's first firing (periodic); default uniform on [0, period).
    jitter : float
        Standard deviation of each period, in ticks (periodic).
    delay : int
        Staleness d >= 0 of the neighbour values read, in ticks.
    initial : array_like, optional
        Initial spins, (n,) or (replicas, n); default all -1.
    stream_layout : {1, 2}, optional
        How the seed's stream is consumed (module docstring, "Randomness"): 2 (the default in
        poisson mode, 1.3x faster) draws each tick's firings afresh; 1 (the only layout in
        periodic mode) keeps per-p-bit waiting times and reproduces runs recorded before
        layout 2 existed (their settings have no "stream_layout"). Same model, other samples.
    """

    step_unit = "async step"

    def __init__(
        self,
        couplings: Couplings,
        replicas: int = 1,
        seed: int | None = None,
        mode: str = "poisson",
        p: float = 0.1,
        period=8.0,
        phase=None,
        jitter: float = 0.5,
        delay: int = 0,
        initial=None,
        stream_layout: int | None = None,
    ) -> None:
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
        super().__init__(couplings, replicas, seed)
        n = couplings.n
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 0.0 < float(p) <= 1.0:
            raise ValueError(f"p must be in (0, 1], not {p!r}")
        per = np.broadcast_to(np.asarray(period, dtype=np.float64), (n,)).copy()
        if not np.all(per > 0) or not np.all(np.isfinite(per)):
            raise ValueError("period must be finite and > 0")
        if not (np.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"jitter must be >= 0, not {jitter!r}")
        if isinstance(delay, bool) or not isinstance(delay, int | np.integer) or delay < 0:
            raise ValueError(f"delay must be an int >= 0, not {delay!r}")
        if stream_layout is None:
            stream_layout = 2 if mode == "poisson" else 1
        if (
            isinstance(stream_layout, bool)
            or not isinstance(stream_layout, int | np.integer)
            or stream_layout not in STREAM_LAYOUTS
        ):
            raise ValueError(
                f"stream_layout must be one of {STREAM_LAYOUTS}, not {stream_layout!r}"
            )
        if stream_layout == 2 and mode != "poisson":
            raise ValueError(
                "stream_layout=2 draws each tick's firing p-bits afresh: it applies to "
                "mode='poisson' only (periodic p-bits keep their own clocks: layout 1)"
            )
        self.stream_layout = int(stream_layout)
        # the kernel that runs it: at p = 1 every p-bit fires every tick and both layouts take
        # firing k's uniform from output k + 1 (no waits drawn): the same stream, layout 1's kernel
        self._layout = 2 if self.stream_layout == 2 and float(p) < 1.0 else 1
        self.mode, self.p, self.period, self.jitter, self.delay = (
            mode,
            float(p),
            per,
            float(jitter),
            int(delay),
        )
        self._mode = MODES.index(mode)
        self._waits = wait_table(self.p) if mode == "poisson" else wait_table(1.0)
        self.ticks_per_step = max(1, round(1.0 / self.p if mode == "poisson" else per.mean()))

        R = self.replicas
        s0 = np.full(n, -1, dtype=np.int8) if initial is None else np.asarray(initial)
        if s0.shape[-1:] != (n,) or not np.all(np.isin(s0, (-1, 1))):
            raise ValueError(f"initial state must hold n = {n} values of -1/+1 (per replica)")
        s0 = np.broadcast_to(s0.astype(np.int8), (R, n))
        self._hist = np.ascontiguousarray(np.repeat(s0[:, None, :], self.delay + 1, axis=1))
        self._rng = np.array([[splitmix64(int(seed), r)] for r in range(R)], dtype=np.uint64)
        self._counts = np.zeros((R, n), dtype=np.int64)
        # per replica: decisions and waiting times the fast paths handed to the exact formula
        self._exact = np.zeros((R, 2), dtype=np.int64)
        # firing times: layout 1's state (layout 2 draws each tick's firings afresh, keeps none)
        self._nxt = np.empty((R, n if self._layout == 1 else 0), dtype=np.float64)
        if phase is not None:
            ph = np.asarray(phase, dtype=np.float64)
            if mode != "periodic":
                raise ValueError("phase applies to mode='periodic' only")
            if ph.shape[-1:] != (n,) or not np.all(np.isfinite(ph)):
                raise ValueError(f"phase must hold n = {n} finite times (per replica)")
            self._nxt[:] = ph
        elif self._layout == 1:
            _first_times(self._mode, self.p, per, self._rng, self._nxt)
        self._csr = (
            couplings.indptr.astype(np.int64),
            couplings.indices.astype(np.uint32),
            couplings.data.astype(np.float64),
            couplings.h.astype(np.float64),
        )
        self._rows = padded_rows(couplings)
        self.tick = 0
        self.settings = {
            "mode": mode,
            "p": self.p,
            "period": per.tolist(),
            "jitter": self.jitter,
            "delay": self.delay,
            "ticks_per_step": self.ticks_per_step,
            "stream_layout": self.stream_layout,
            "master_seed": seed,
        }
        if phase is not None:
            self.settings["phase"] = np.asarray(phase).tolist()
        if initial is not None:
            self.settings["initial"] = np.asarray(initial).tolist()

    def _ticks(self, nticks: int, stride: int) -> np.ndarray:
        k = nticks // stride if stride else 0
        out = np.empty((self.replicas, k, self.couplings.n), dtype=np.int8)
        if nticks and self.couplings.n:
            indptr, indices, data, h = self._csr
            nbr, w = self._rows
            firings = self.replicas * self.couplings.n * nticks / self.ticks_per_step
            _run(
                nb.get_num_threads(),
                self.replicas,
                firings,
                nbr,
                w,
                indptr,
                indices,
                data,
                h,
                self.couplings.beta,
                self._mode,
                self.p,
                self.period,
                self.jitter,
                self.delay,
                self._hist,
                self._nxt,
                self._counts,
                self._rng,
                self.tick,
                nticks,
                stride,
                out,
                self._waits,
                self._exact,
                wheel_slots(self.ticks_per_step, self.couplings.n),
                self._layout,
            )
        self.tick += nticks
        return out

    def _load(self, couplings: Couplings) -> None:
        """New J data and h (the CSR structure is the topology, unchanged); the beta is read from
        ``self.couplings`` at every call, which :meth:`Runner.load` replaces after this. Spins,
        history, firing times and streams continue."""
        indptr, indices, _, _ = self._csr
        self._csr = (
            indptr,
            indices,
            couplings.data.astype(np.float64),
            couplings.h.astype(np.float64),
        )
        self._rows = padded_rows(couplings)

    def _set_state(self, spins: np.ndarray) -> None:
        """Every history slot gets the new spins: a stale read then sees them too, as if the chain
        had been held there for ``delay`` + 1 ticks. Firing times and streams continue."""
        self._hist[:] = spins[:, None, :]

    def advance(self, sweeps: int) -> None:
        self._ticks(int(sweeps) * self.ticks_per_step, 0)

    def draw(self, k: int, thin: int = 1) -> np.ndarray:
        stride = int(thin) * self.ticks_per_step
        return self._ticks(int(k) * stride, stride)

    def info(self) -> dict:
        steps = self.tick / self.ticks_per_step
        return {
            "ticks": self.tick,
            "updates_per_step": (self._counts.mean(axis=0) / steps)
            if steps
            else np.zeros(self.couplings.n),
        }
