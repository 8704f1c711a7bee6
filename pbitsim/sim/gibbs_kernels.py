"""Numba kernels of the exact p-bit samplers (sequential sweep, chromatic, random scan).

Everything here works on a *layout* built by :mod:`pbitsim.sim.gibbs`: sites renumbered into
*positions* in update order (colour classes contiguous for the chromatic scheme), and J as a CSR
over positions padded to a multiple of 4 entries per row (padding points at the zero row ``n`` of
the spin array with weight 0).

State is int8 spins ``S[n + 1, R]`` (row ``n`` stays 0) and xoshiro128+ streams
``rng[4 * streams, R]``: the random number that updates position p of column r comes from stream
``sidx[p]`` of column r and from nowhere else. Every kernel below consumes each stream in the same
order with the same float32 arithmetic (the fused multiply-adds are explicit ``llvm.fma`` calls,
no fast-math), so which kernel processes a column, how columns are split into blocks and how many
threads run never changes a result.

A p-bit update sets s = +1 iff v * Q(x^2) < x * P(x^2), where x = clamp(beta * I, +-7.9053),
P/Q is Eigen's rational approximation of tanh and v = 2u - 1 is uniform on the 2**24-point grid
{-1, -1 + 2**-23, ..., 1 - 2**-23} (the top 24 bits of one xoshiro128+ output). So
P(s = +1) = (1 + tanh(beta I)) / 2 within 2e-7 absolute (float32 rounding of the approximation
plus the 2**-24 grid), with no division, exp or tanh, so the loop over replicas vectorises.

The two scalar rules, the xoshiro128+ step (:func:`xoshiro128p_step`) and that decision
(:func:`tanh_accept`), are plain Python functions written once: compiled here with ``njit`` for
the CPU kernels and with ``cuda.jit(device=True)`` by :mod:`pbitsim.sim.gpu_kernels`; under
Numba's CUDA simulator they run as Python. Their multiply-adds call :func:`fma32`, which compiles
to the ``llvm.fma`` intrinsic on both targets (``fma.rn.f32`` on a GPU) and, as Python, rounds once
too.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from pbitsim.sim import aligned
from pbitsim.sim.byte_tiles import ROW, scatter4, scatter16, transpose8
from pbitsim.sim.gathers import GROUP, fields16
from pbitsim.sim.prefetch import prefetch as _prefetch
from pbitsim.sim.threads import run_blocks

__all__ = [
    "block_calls",
    "run",
    "run_split",
    "site_parts",
    "energies_of",
    "fma32",
    "xoshiro128p_step",
    "tanh_accept",
]

_F = np.float32
# Eigen's float tanh: x * P(x^2) / Q(x^2) on |x| <= 7.90531110763549805 (tanh rounds to +-1 in
# float32 beyond it).
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = (
    _F(4.89352455891786e-03),
    _F(6.37261928875436e-04),
    _F(1.48572235717979e-05),
    _F(5.12229709037114e-08),
    _F(-8.60467152213735e-11),
    _F(2.00018790482477e-13),
    _F(-2.76076847742355e-16),
)
_B0, _B2, _B4, _B6 = (
    _F(4.89352518554385e-03),
    _F(2.26843463243900e-03),
    _F(1.18534705686654e-04),
    _F(1.19825839466702e-06),
)
_XMAX = _F(7.90531110763549805)
_ONE = _F(1.0)
_UP, _DOWN = np.int8(1), np.int8(-1)
_GRID = _F(2.0**-23)
# Numba widens uint32 arithmetic to 64 bits: every xoshiro128+ operation is masked explicitly.
_M32 = np.uint64(0xFFFFFFFF)
_U8, _U9, _U11, _U21 = np.uint64(8), np.uint64(9), np.uint64(11), np.uint64(21)

#: lanes (streams) per block of 1024 positions: position p of a block uses lane p mod LANES.
LANES = 32
BLOCK = 1024
KERNEL_REPLICAS, KERNEL_COLUMNS, KERNEL_SITES, KERNEL_RANDOM_SCAN = 0, 1, 2, 3
#: column kernels of the reversible family: a forward then a backward sweep; a forward sweep with
#: probability q, else a backward one (:mod:`pbitsim.sim.gibbs`, ``"symmetric"`` and
#: ``"sweep-mixture"``)
KERNEL_SYMMETRIC, KERNEL_MIXTURE = 4, 5
#: positions ahead whose neighbours' spin rows the replica kernel asks the caches for
_PREFETCH_AHEAD = 4
#: positions ahead whose layout (neighbours, weights, field) the site kernel asks for
_LAYOUT_AHEAD = 2 * LANES
#: sites from which the site kernel gathers its fields (:mod:`pbitsim.sim.gathers`): below it a
#: call with gathers measured ~1 us slower (draw(10) of 1 replica of 100 spins, 17.1-17.7 us
#: against 16.4), from it faster (47-50 against 50-52 us at 1,024 spins, 138-147 against
#: 148-152 at 4,096, 475-518 against 559-579 at 16,384; interleaved runs)
_GATHERS_FROM = 1024


@intrinsic
def _fma(typingctx, a, b, c):
    """float32 fused multiply-add, the same instruction in scalar and vector code."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32] * 3))
        return builder.call(fn, args)

    return sig, codegen


#: float32 rounds values at or beyond this (the midpoint of FLT_MAX and 2**128) to infinity
_F32_OVERFLOW = 2.0**128 - 2.0**103


def fma32(a, b, c):
    """float32 a * b + c rounded once (to nearest even), as Python: the fused multiply-add of
    the scalar rules when they run uncompiled (Numba's CUDA simulator, whose own ``cuda.fma``
    rounds twice).

    a * b is exact in float64 (two 24-bit significands); the sum is rounded to odd in float64
    (53 >= 24 + 2 bits), so the final rounding to float32 is the correct one (Boldo and
    Melquiond, "Emulation of FMA and correctly rounded sums", IEEE Trans. Comput. 2008).
    Compiled code (``njit``, ``cuda.jit``) gets the hardware instruction instead (the overload
    below).
    """
    x = float(a) * float(b)
    y = float(c)
    s = x + y
    if math.isfinite(s):
        t = s - x  # TwoSum: err is exactly (x + y) - s
        err = (x - (s - t)) + (y - t)
        if err != 0.0 and not math.frexp(s)[0] * 9007199254740992.0 % 2.0:
            s = math.nextafter(s, math.inf if err > 0.0 else -math.inf)  # round to odd
        if abs(s) >= _F32_OVERFLOW:  # rounds to +-inf (numpy would warn)
            return np.float32(math.copysign(math.inf, s))
    return np.float32(s)


@overload(fma32, inline="always")
def _fma32_compiled(a, b, c):
    return lambda a, b, c: _fma(a, b, c)


def xoshiro128p_step(a0, a1, a2, a3):
    """One xoshiro128+ step on four 32-bit words held in uint64: (output, new state).

    A plain function (the rule, written once): compiled for the CPU below and for the GPU by
    :mod:`pbitsim.sim.gpu_kernels`.
    """
    out = (a0 + a3) & _M32
    t = (a1 << _U9) & _M32
    a2 ^= a0
    a3 ^= a1
    a1 ^= a2
    a0 ^= a3
    a2 ^= t
    a3 = ((a3 << _U11) | (a3 >> _U21)) & _M32
    return out, a0, a1, a2, a3


def tanh_accept(field, beta, out):
    """True (spin +1) with probability (1 + tanh(beta * field)) / 2, given 32 random bits (uint64)
    and float32 field and beta. A plain function (the rule, written once), like
    :func:`xoshiro128p_step`."""
    v = _F(np.int32(out >> _U8)) * _GRID - _ONE
    x = min(max(beta * field, -_XMAX), _XMAX)
    x2 = x * x
    p = (
        fma32(
            fma32(fma32(fma32(fma32(fma32(_A13, x2, _A11), x2, _A9), x2, _A7), x2, _A5), x2, _A3),
            x2,
            _A1,
        )
        * x
    )
    q = fma32(fma32(fma32(_B6, x2, _B4), x2, _B2), x2, _B0)
    return v * q < p


_xoshiro = njit(cache=True, inline="always")(xoshiro128p_step)
_accept = njit(cache=True, inline="always")(tanh_accept)


@njit(cache=True, inline="always")
def _update(st, row, r, field, beta):
    """Step stream ``row // 4`` of column r in the [4 * streams, m] array st; accept?"""
    out, a0, a1, a2, a3 = _xoshiro(
        np.uint64(st[row, r]),
        np.uint64(st[row + 1, r]),
        np.uint64(st[row + 2, r]),
        np.uint64(st[row + 3, r]),
    )
    st[row, r] = a0
    st[row + 1, r] = a1
    st[row + 2, r] = a2
    st[row + 3, r] = a3
    return _accept(field, beta, out)


@njit(cache=True, nogil=True)  # run_split calls it from its threads
def _sweep_replicas(S, st, ptr, nbr, w, h, sidx, bstart, bv, f):
    """One sweep of all positions in order, vectorised over the m columns of int8 S[n + 1, m].

    int8 rows (one cache line per 64 replicas) keep a random graph's neighbour rows in cache.
    """
    m = np.uint64(S.shape[1])  # unsigned column indices: no negative-index wraparound checks
    last = bstart[bstart.shape[0] - 1] - 1
    # Positions are walked block by block with bounds read from an array: LLVM then keeps the
    # aliasing checks of the vectorised column loops per position. Given a loop bound it can
    # analyse (range(n)) it hoists them over the whole sweep, where the rows of S always overlap,
    # and every column loop silently runs scalar (3x slower).
    for b in range(bstart.shape[0] - 1):
        for p in range(bstart[b], bstart[b + 1]):
            k0 = ptr[p]
            k1 = ptr[p + 1]
            ahead = ptr[min(p + _PREFETCH_AHEAD, last)]
            for k in range(ahead, ahead + 4):  # the first 4 neighbours, a few positions on
                _prefetch(S, nbr[k])
            row = np.int64(sidx[p]) * 4
            hp = h[p]
            q0, q1, q2, q3 = nbr[k0], nbr[k0 + 1], nbr[k0 + 2], nbr[k0 + 3]
            w0, w1, w2, w3 = w[k0], w[k0 + 1], w[k0 + 2], w[k0 + 3]
            if k1 - k0 == 4:  # degree <= 4: field and update in one pass
                for r in range(m):
                    fr = _fma(w0, _F(S[q0, r]), hp)
                    fr = _fma(w1, _F(S[q1, r]), fr)
                    fr = _fma(w2, _F(S[q2, r]), fr)
                    fr = _fma(w3, _F(S[q3, r]), fr)
                    S[p, r] = _UP if _update(st, row, r, fr, bv[r]) else _DOWN
                continue
            for r in range(m):
                fr = _fma(w0, _F(S[q0, r]), hp)
                fr = _fma(w1, _F(S[q1, r]), fr)
                fr = _fma(w2, _F(S[q2, r]), fr)
                f[r] = _fma(w3, _F(S[q3, r]), fr)
            for k in range(k0 + 4, k1, 4):
                q0, q1, q2, q3 = nbr[k], nbr[k + 1], nbr[k + 2], nbr[k + 3]
                w0, w1, w2, w3 = w[k], w[k + 1], w[k + 2], w[k + 3]
                for r in range(m):
                    fr = _fma(w0, _F(S[q0, r]), f[r])
                    fr = _fma(w1, _F(S[q1, r]), fr)
                    fr = _fma(w2, _F(S[q2, r]), fr)
                    f[r] = _fma(w3, _F(S[q3, r]), fr)
            for r in range(m):
                S[p, r] = _UP if _update(st, row, r, f[r], bv[r]) else _DOWN


@njit(cache=True)
def _sweep_column(s, st, ptr, nbr, w, h, sidx, bstart, beta):
    """One sweep of one column s[n + 1] in position order, scalar (few replicas, any order)."""
    for b in range(bstart.shape[0] - 1):
        for p in range(np.uint64(bstart[b]), np.uint64(bstart[b + 1])):
            fp = h[p]
            for k in range(np.uint64(ptr[p]), np.uint64(ptr[p + 1])):
                fp = _fma(w[k], _F(s[np.uint64(nbr[k])]), fp)
            row = np.uint64(sidx[p]) * np.uint64(4)
            out, a0, a1, a2, a3 = _xoshiro(
                np.uint64(st[row]),
                np.uint64(st[row + 1]),
                np.uint64(st[row + 2]),
                np.uint64(st[row + 3]),
            )
            st[row], st[row + 1], st[row + 2], st[row + 3] = a0, a1, a2, a3
            s[p] = _ONE if _accept(fp, beta, out) else -_ONE


def _site_sweep(uniform: bool):
    """One chromatic step of one column s[n + 1], vectorised over the sites of a group.

    A block's positions are taken LANES at a time (a group: one colour, so independent); the
    fields are summed site by site, then the decisions run as one vector loop over the group with
    the block's LANES streams, which position p would use in :func:`_sweep_replicas` too.
    ``lanes`` is [4, LANES] scratch for the stream states, f and res [LANES] scratch. s is float32
    or, for a large random graph, int8 (:func:`column_dtype`).

    ``uniform``: every padded row holds 4 entries (degree <= 4: lattices, regular graphs of degree
    3 or 4), so row p starts at 4p and ``ptr`` is not read: at 10^6 sites it streams from memory,
    and its 8 bytes are a sixth of the layout read per site (the same sums in the same order).
    From :data:`_GATHERS_FROM` sites on, a whole group's fields are then summed 16 sites at a
    time, the neighbours' spins fetched by vector gathers (:data:`pbitsim.sim.gathers.fields16`:
    the same multiply-adds in the same order; 1.2-1.3x the single-column rate). The flag is a
    constant of the closure, as is the choice of sweep in :func:`_block_kernel`, so a run
    compiles only the sweep it uses.
    """

    @njit(cache=True)
    def sweep(s, st, ptr, nbr, w, h, bstart, beta, lanes, f, res):
        s0, s1, s2, s3 = lanes[0], lanes[1], lanes[2], lanes[3]
        n = h.shape[0]
        gathered = n >= _GATHERS_FROM
        nu = np.uint64(n)
        last = np.uint64(nbr.shape[0] - 1)
        first = np.uint64(0)
        for b in range(bstart.shape[0] - 1):
            b0 = np.uint64(bstart[b])
            b1 = np.uint64(bstart[b + 1])
            nl = min(np.uint64(LANES), b1 - b0)
            for j in range(nl):
                row = (first + j) * np.uint64(4)
                s0[j], s1[j], s2[j], s3[j] = st[row], st[row + 1], st[row + 2], st[row + 3]
            for g0 in range(b0, b1, np.uint64(LANES)):
                cnt = min(np.uint64(LANES), b1 - g0)
                # the layout of the group _LAYOUT_AHEAD positions on: the hardware prefetchers stop
                # at every 4 KB page of each array, and at 10^6 sites these reads come from memory
                # (1.2-1.3x there, measured)
                ahead = min(g0 + np.uint64(_LAYOUT_AHEAD), nu)
                ka = ahead * np.uint64(4) if uniform else np.uint64(ptr[ahead])
                for t in range(np.uint64(0), np.uint64(4 * LANES), np.uint64(16)):  # a line each
                    _prefetch(nbr, min(ka + t, last))
                    _prefetch(w, min(ka + t, last))
                _prefetch(h, min(ahead, nu - np.uint64(1)))
                if uniform and cnt == LANES and gathered:  # 16 sites a vector of gathers
                    for j0 in range(0, LANES, GROUP):
                        fields16(s, nbr, w, h, np.int64(g0) + j0, f, j0)
                elif uniform:
                    for j in range(cnt):
                        p = g0 + j
                        k = p * np.uint64(4)
                        acc = _fma(w[k], _F(s[np.uint64(nbr[k])]), h[p])
                        acc = _fma(w[k + 1], _F(s[np.uint64(nbr[k + 1])]), acc)
                        acc = _fma(w[k + 2], _F(s[np.uint64(nbr[k + 2])]), acc)
                        f[j] = _fma(w[k + 3], _F(s[np.uint64(nbr[k + 3])]), acc)
                else:
                    # fields site by site (written out: Numba's inliner slows it)
                    for j in range(cnt):
                        p = g0 + j
                        acc = h[p]
                        for k in range(np.uint64(ptr[p]), np.uint64(ptr[p + 1])):
                            acc = _fma(w[k], _F(s[np.uint64(nbr[k])]), acc)
                        f[j] = acc
                for j in range(cnt):
                    out, a0, a1, a2, a3 = _xoshiro(
                        np.uint64(s0[j]), np.uint64(s1[j]), np.uint64(s2[j]), np.uint64(s3[j])
                    )
                    s0[j], s1[j], s2[j], s3[j] = a0, a1, a2, a3
                    res[j] = _ONE if _accept(f[j], beta, out) else -_ONE
                for j in range(cnt):
                    s[g0 + j] = res[j]
            for j in range(nl):
                row = (first + j) * np.uint64(4)
                st[row], st[row + 1], st[row + 2], st[row + 3] = s0[j], s1[j], s2[j], s3[j]
            first += nl

    return sweep


_sweep_sites_uniform = _site_sweep(True)
_sweep_sites_any = _site_sweep(False)


@njit(cache=True)
def _sweep_column_back(s, st, ptr, nbr, w, h, sidx, beta, skip):
    """A backward sweep of one column s[n + 1]: positions n - 1 - skip down to 0, each with the
    stream it uses in a forward sweep (scalar; ``skip`` = 1 leaves out the turning site of a
    symmetric sweep, which the forward sweep has just updated)."""
    for p in range(h.shape[0] - 1 - skip, -1, -1):
        fp = h[p]
        for k in range(np.uint64(ptr[p]), np.uint64(ptr[p + 1])):
            fp = _fma(w[k], _F(s[np.uint64(nbr[k])]), fp)
        row = np.uint64(sidx[p]) * np.uint64(4)
        out, a0, a1, a2, a3 = _xoshiro(
            np.uint64(st[row]),
            np.uint64(st[row + 1]),
            np.uint64(st[row + 2]),
            np.uint64(st[row + 3]),
        )
        st[row], st[row + 1], st[row + 2], st[row + 3] = a0, a1, a2, a3
        s[p] = _ONE if _accept(fp, beta, out) else -_ONE


@njit(cache=True)
def _scan_random(s, st, ptr, nbr, w, h, beta):
    """n single-site updates of one column s[n + 1] at uniformly chosen sites (one stream)."""
    n = np.uint64(h.shape[0])
    a0, a1, a2, a3 = np.uint64(st[0]), np.uint64(st[1]), np.uint64(st[2]), np.uint64(st[3])
    reject = ((_M32 + np.uint64(1)) - n) % n  # Lemire's unbiased bounded integers
    for _ in range(h.shape[0]):
        while True:
            x, a0, a1, a2, a3 = _xoshiro(a0, a1, a2, a3)
            prod = x * n
            if (prod & _M32) >= reject:
                break
        p = prod >> np.uint64(32)
        fp = h[p]
        for k in range(np.uint64(ptr[p]), np.uint64(ptr[p + 1])):
            fp = _fma(w[k], _F(s[np.uint64(nbr[k])]), fp)
        out, a0, a1, a2, a3 = _xoshiro(a0, a1, a2, a3)
        s[p] = _ONE if _accept(fp, beta, out) else -_ONE
    st[0], st[1], st[2], st[3] = a0, a1, a2, a3


@njit(cache=True)
def energies_of(S, by_column, ptr, nbr, w64, h64, bstart, e, inner):
    """E = -(sum_{i<j} J s s + sum h s) of each column, float64, in one fixed summation order.

    S is [n + 1, m] (``by_column`` False) or [m, n + 1]; both orders add the same terms in the
    same sequence per column, so the result does not depend on the layout. (Positions are walked
    by blocks for the vectoriser's sake, see :func:`_sweep_replicas`.)
    """
    m = e.shape[0]
    e[:] = 0.0
    if by_column:
        for r in range(m):
            s = S[r]
            acc = 0.0
            for b in range(bstart.shape[0] - 1):
                for p in range(np.uint64(bstart[b]), np.uint64(bstart[b + 1])):
                    t = 0.0
                    for k in range(np.uint64(ptr[p]), np.uint64(ptr[p + 1])):
                        t += w64[k] * s[np.uint64(nbr[k])]
                    acc -= s[p] * (h64[p] + 0.5 * t)
            e[r] = acc
        return
    mu = np.uint64(m)
    for b in range(bstart.shape[0] - 1):
        for p in range(bstart[b], bstart[b + 1]):
            for r in range(mu):
                inner[r] = 0.0
            for k in range(ptr[p], ptr[p + 1], 4):  # rows hold a multiple of 4 entries
                q0, q1, q2, q3 = nbr[k], nbr[k + 1], nbr[k + 2], nbr[k + 3]
                w0, w1, w2, w3 = w64[k], w64[k + 1], w64[k + 2], w64[k + 3]
                for r in range(mu):
                    t = inner[r] + w0 * np.float64(S[q0, r])
                    t = t + w1 * np.float64(S[q1, r])
                    t = t + w2 * np.float64(S[q2, r])
                    inner[r] = t + w3 * np.float64(S[q3, r])
            hp = h64[p]
            for r in range(mu):
                e[r] -= np.float64(S[p, r]) * (hp + 0.5 * inner[r])


@njit(cache=True)
def _uniform53(st):
    """A float64 uniform on [0, 1) from two xoshiro128+ outputs of the 4-word stream st."""
    a0, a1, a2, a3 = np.uint64(st[0]), np.uint64(st[1]), np.uint64(st[2]), np.uint64(st[3])
    x, a0, a1, a2, a3 = _xoshiro(a0, a1, a2, a3)
    y, a0, a1, a2, a3 = _xoshiro(a0, a1, a2, a3)
    st[0], st[1], st[2], st[3] = a0, a1, a2, a3
    return np.float64((x >> np.uint64(5)) * np.uint64(67108864) + (y >> np.uint64(6))) * (
        1.0 / 9007199254740992.0
    )


@njit(cache=True)
def _swap(c, event, K, c0, e, ladder, temp, walker, label, swap_rng, acc, att, trips, stats):
    """Replica exchange in chain c: rungs (k, k+1) with k of the event's parity; round trips.

    ``walker[c, k]`` is the walker (0..K-1) at rung k, ``temp[c*K + w]`` the rung of walker w;
    walkers are columns c*K + w and keep their state and streams, only rungs move. ``label`` is 0
    until a walker first visits rung 0, then 1 (left rung 0 last) or 2 (reached rung K-1 since).
    """
    base = c * K
    for k in range(event % 2, K - 1, 2):
        wa = walker[c, k]
        wb = walker[c, k + 1]
        d = (ladder[k] - ladder[k + 1]) * (e[base + wa - c0] - e[base + wb - c0])
        u = _uniform53(swap_rng[c])
        ok = d >= 0.0 or u < np.exp(d)
        if stats:
            att[c, k] += 1
            if ok:
                acc[c, k] += 1
        if ok:
            walker[c, k] = wb
            walker[c, k + 1] = wa
            temp[base + wa] = k + 1
            temp[base + wb] = k
    for wk in range(K):
        k = temp[base + wk]
        if k == 0:
            if label[base + wk] == 2 and stats:
                trips[c] += 1
            label[base + wk] = 1
        elif k == K - 1 and label[base + wk] == 1:
            label[base + wk] = 2


@njit(cache=True)
def _rows_of(c0, K, temp, e, d, out_e, out_w):
    """The output row of each column c0 + j of a block (whole chains of K columns): chain c's
    column c*K + k goes to row c*K + temp[c*K + k], its rung's; and, where asked for (outputs
    with columns), draw d's energy and walker slot k there. Chains, not a division per column:
    for 64 replicas that was a third of a draw's recording."""
    m = e.shape[0]
    rows = np.empty(m, np.int64)
    j = 0
    for c in range(c0 // K, (c0 + m) // K):
        for k in range(K):
            row = c * K + temp[c * K + k]
            rows[j] = row
            if out_e.shape[1]:  # (0 columns: not asked for)
                out_e[row, d] = e[j]
            if out_w.shape[1]:
                out_w[row, d] = k
            j += 1
    return rows


@njit(cache=True)
def _record(S, by_column, c0, K, temp, site, e, d, out, out_e, out_w):
    """Write the state of each column into its rung's row: row c*K + temp[col] (K = 1: col)."""
    m = e.shape[0]
    n = site.shape[0]
    rows = _rows_of(c0, K, temp, e, d, out_e, out_w)
    for j in range(m):
        row = rows[j]
        for p in range(n):
            out[row, d, site[p]] = np.int8(S[j, p] if by_column else S[p, j])


@njit(cache=True, inline="always")
def _put8(o, i0, a):
    """o[i0 + t] = byte t of the uint64 a (LLVM merges the eight stores into one)."""
    for t in range(8):
        o[i0 + t] = np.int8((a >> np.uint64(8 * t)) & np.uint64(0xFF))


@njit(cache=True)
def _record_lanes(S, pos, c0, K, temp, e, d, out, out_e, out_w):
    """:func:`_record` for the replica layout S int8 [n + 1, m] with m a multiple of 8:
    out[row, d, i] = S[pos[i], j].

    Tiles of 8 sites x 8 lanes go as eight uint64 words through
    :func:`pbitsim.sim.byte_tiles.transpose8`, the rows of the tile's sites read by ``pos`` so
    the output is written a word at a time in site order, and ragged sites a byte at a time
    (~1.2 us a draw for 64 replicas of 100 spins; ~4 us a byte at a time, when a PCD step's 10
    draws cost a third of its sweeps). Blocks of a multiple of 64 lanes record by
    :func:`_record_wide` instead (~0.65 us).
    """
    m = e.shape[0]
    n = pos.shape[0]
    rows = _rows_of(c0, K, temp, e, d, out_e, out_w)
    S8 = S.view(np.uint64)  # [n + 1, m / 8]: word jb of row p = lanes 8 jb .. 8 jb + 7
    mb = m // 8
    T = np.empty((8, mb), np.uint64)  # the tiles of 8 sites, lane t of each in row t
    for i0 in range(0, n // 8 * 8, 8):
        r0, r1, r2, r3 = S8[pos[i0]], S8[pos[i0 + 1]], S8[pos[i0 + 2]], S8[pos[i0 + 3]]
        r4, r5, r6, r7 = S8[pos[i0 + 4]], S8[pos[i0 + 5]], S8[pos[i0 + 6]], S8[pos[i0 + 7]]
        T0, T1, T2, T3, T4, T5, T6, T7 = T[0], T[1], T[2], T[3], T[4], T[5], T[6], T[7]
        for jb in range(mb):  # over whole rows: the swaps vectorise (2x a tile at a time)
            a0, a1, a2, a3, a4, a5, a6, a7 = transpose8(
                r0[jb], r1[jb], r2[jb], r3[jb], r4[jb], r5[jb], r6[jb], r7[jb]
            )
            T0[jb], T1[jb], T2[jb], T3[jb] = a0, a1, a2, a3
            T4[jb], T5[jb], T6[jb], T7[jb] = a4, a5, a6, a7
        for jb in range(mb):
            for t in range(8):
                _put8(out[rows[8 * jb + t], d], i0, T[t, jb])
    for i in range(n // 8 * 8, n):
        row_s = S[pos[i]]
        for j in range(m):
            out[rows[j], d, i] = row_s[j]


@njit(cache=True)
def _record_rows(S, pos, rows, d, out):
    """out[rows[j], d, i] = S[pos[i], j] for m (a multiple of :data:`ROW`) lanes of int8 S, a
    group of rows of S at a time (:data:`pbitsim.sim.byte_tiles.scatter16`; then 4, and the
    last 0-3 a byte at a time: each shuffle compiled costs a fresh install's first run)."""
    m = rows.shape[0]
    n = pos.shape[0]
    k = out.shape[1]
    flat = out.reshape(out.size)
    src = S.reshape(S.size).view(np.int8)
    base = np.empty(m, np.int64)  # where row j's draw d starts in flat
    for j in range(m):
        base[j] = (rows[j] * k + d) * n
    offs = np.empty(16, np.int64)
    for jb in range(0, m, ROW):
        bj = base[jb : jb + ROW]
        i0 = 0
        while n - i0 >= 16:  # (a loop per group size: one over the sizes measured 40% slower)
            for t in range(16):
                offs[t] = pos[i0 + t] * m + jb
            scatter16(src, offs, flat, bj, i0)
            i0 += 16
        while n - i0 >= 4:
            for t in range(4):
                offs[t] = pos[i0 + t] * m + jb
            scatter4(src, offs, flat, bj, i0)
            i0 += 4
        for i in range(i0, n):  # the last 0-3 sites a byte at a time
            row_s = src[pos[i] * m + jb : pos[i] * m + jb + ROW]
            for j in range(ROW):
                flat[bj[j] + i] = row_s[j]


@njit(cache=True)
def _record_wide(S, pos, c0, K, temp, e, d, out, out_e, out_w):
    """:func:`_record_lanes` for int8 S with a multiple of :data:`ROW` lanes, by
    :func:`_record_rows` (~0.6 us a draw at 64 replicas of 100 spins, against ~1.2 us by
    tiles). Only blocks of such widths compile it (:func:`_after_step_for`): its shuffles cost
    a fresh install's first run about a second."""
    _record_rows(S, pos, _rows_of(c0, K, temp, e, d, out_e, out_w), d, out)


@njit(cache=True)
def fill_values(w64, w, h64, h, dst, src, site, data, hc):
    """The layout's value arrays from couplings of its topology: ``w64[dst] = data[src]``,
    ``w = float32(w64)``, ``h64 = hc[site]``, ``h = float32(h64)`` (padding entries keep their
    0). One compiled call: a PCD step loads new weights every step, and four numpy fancy-index
    calls cost it several microseconds more (their code is cold after a sweep)."""
    for k in range(dst.shape[0]):
        w64[dst[k]] = data[src[k]]
    for k in range(w.shape[0]):
        w[k] = np.float32(w64[k])
    for p in range(site.shape[0]):
        h64[p] = hc[site[p]]
        h[p] = np.float32(h64[p])


@njit(cache=True)
def _step_betas(ladder, betaf, temp, c0, t, bv):
    """bv[j] = the beta of column c0 + j at global step t, rounded to float32 (see :func:`run`)."""
    scale = betaf[min(t, betaf.shape[0] - 1)]
    for j in range(bv.shape[0]):
        bv[j] = np.float32(ladder[temp[c0 + j]] * scale)


def _after_step_for(wide: bool):
    """The step's epilogue (:func:`_after_step` is the general one): ``wide`` (a constant of the
    closure, so the other branch is never compiled) records through :func:`_record_wide`, for
    replica-kernel blocks whose width is a multiple of :data:`ROW`."""

    @njit(cache=True)
    def after_step(
        Sl, by_column, c0, lay, ladder, temp, pt, t, step, swap_every, thin, record, energies,
        pos, out, out_e, out_w, e, inner, ndraw,
    ):  # fmt: skip
        """What follows the sweep of global step t (``step`` of this call) for the columns c0..
        held in Sl: their energies where a swap event or a recorded draw needs them, the swap
        event, the recording. Returns the number of draws recorded so far in this call."""
        ptr, nbr, w, h, sidx, site, w64, h64, bstart = lay
        walker, label, swap_rng, acc, att, trips = pt
        K = ladder.shape[0]
        m = e.shape[0]
        swap = swap_every > 0 and (t + 1) % swap_every == 0
        rec = record and (step + 1) % thin == 0
        if swap or (rec and energies):
            energies_of(Sl, by_column, ptr, nbr, w64, h64, bstart, e, inner)
        if swap:
            event = (t + 1) // swap_every - 1
            for c in range(c0 // K, (c0 + m) // K):
                _swap(
                    c, event, K, c0, e, ladder, temp, walker, label, swap_rng, acc, att, trips,
                    record,
                )  # fmt: skip
        if rec:
            if wide:
                _record_wide(Sl, pos, c0, K, temp, e, ndraw, out, out_e, out_w)
            elif not by_column and m % 8 == 0:
                _record_lanes(Sl, pos, c0, K, temp, e, ndraw, out, out_e, out_w)
            else:
                _record(Sl, by_column, c0, K, temp, site, e, ndraw, out, out_e, out_w)
            ndraw += 1
        return ndraw

    return after_step


_after_step = _after_step_for(False)
_after_step_wide = _after_step_for(True)


def _records_wide(width: int) -> bool:
    """Whether a replica-kernel block of ``width`` int8 lanes records by :func:`_record_wide`
    (and so compiles its shuffles): a whole number of :data:`ROW`-lane rows."""
    return width % ROW == 0


#: column kernels copy a column into int8, not float32, above this many rows of spins: its
#: float32 copy (4 MB at 10^6 sites) would outgrow the 2 MB L2 cache, where a random graph's
#: neighbour reads then wait on L3 (the same values: +-1 and 0 convert exactly) ...
_NARROW_ABOVE = 1 << 18
#: ... unless a block's neighbours typically lie within this many positions (a lattice in
#: Cuthill-McKee order): they then stay in cache anyway, and float32 saves a conversion per
#: read (int8 costs a 10^6-spin lattice 8%, and gains a random graph 35%)
_NEAR = 1 << 15


def column_dtype(rows: int, window: int, kern: int) -> type:
    """Spin type of the column kernels' private copy of a column of ``rows`` entries (n + 1),
    given the layout's ``window`` (:class:`pbitsim.sim.gibbs.Layout`; random scan jumps
    anywhere)."""
    far = window > _NEAR or kern == KERNEL_RANDOM_SCAN
    return np.int8 if rows > _NARROW_ABOVE and far else np.float32


@njit(cache=True, nogil=True)
def _copy_columns(A, B, c0, back):
    """B[:, :] = A[:, c0:c0 + m] (``back``: the other way), m = B.shape[1].

    Two-dimensional indexing into arrays the caller keeps: for the spins of a 32-replica block of
    a 10^6-spin model, 14 ms there and back against 35 ms for ``np.ascontiguousarray`` of the
    slice into a fresh array and the slice assignment back (measured).
    """
    m = np.uint64(B.shape[1])
    cu = np.uint64(c0)
    if back:
        for p in range(A.shape[0]):
            for j in range(m):
                A[p, cu + j] = B[p, j]
    else:
        for p in range(A.shape[0]):
            for j in range(m):
                B[p, j] = A[p, cu + j]


@njit(cache=True, nogil=True)
def _copy_transposed(A, B, c0, back):
    """B[j, p] = A[p, c0 + j] (``back``: the other way), converting the element type."""
    m = np.uint64(B.shape[0])
    cu = np.uint64(c0)
    if back:
        for p in range(A.shape[0]):
            for j in range(m):
                A[p, cu + j] = B[j, p]
    else:
        for p in range(A.shape[0]):
            for j in range(m):
                B[j, p] = A[p, cu + j]


def _block_kernel(kern: int, uniform: bool = False, wide: bool = False):
    """:func:`run` for the columns c0..c1 - 1 (whole chains) with kernel ``kern``, on the calling
    thread: one compiled function per kernel (and, for KERNEL_SITES, per ``uniform``: rows of 4
    entries each, see :func:`_site_sweep`), made by this factory.

    ``kern`` is a constant of the closure, so Numba prunes the other kernels' branches before
    typing: a run compiles only the sweep and the spin type it uses (the cold start of a fresh
    install is a third of compiling every kernel for both spin types). Numba's cache keys a
    closure by its cell values too, so each kernel keeps its own cache entry. ``nogil=True``
    lets :func:`run` put blocks on several threads without a ``parallel=True`` region (whose
    parfor machinery re-optimises everything linked into it, and whose barrier makes a short
    call wait out a scheduler slice on a busy machine).

    It works on private copies: the vectoriser then needs no aliasing checks against other
    threads' columns, and the column kernels get each column contiguous, in float32 (int8 for a
    random graph, :func:`column_dtype`). Sl is int8 [n + 1, m] for the replica kernel, [m, n + 1]
    (a column per row) for the others. The copies go into ``Sb`` and ``stb``, which the caller
    allocates (:func:`run`) and may keep between calls.
    """

    @njit(cache=True, nogil=True)
    def _run_block(
        S,
        rng,
        c0,
        c1,
        lay,
        ladder,
        betaf,
        temp,
        pt,
        t0,
        nsteps,
        swap_every,
        thin,
        record,
        out,
        out_e,
        out_w,
        q,
        dirs,
        energies,
        pos,
        Sb,
        stb,
    ):
        # one block of every column (a one-thread call): no other thread shares the arrays, and
        # the copies would cost more than a short call's sweeps (~9 us for 64 replicas of 100
        # spins, the streams being 10x the spins)
        whole = c0 == 0 and c1 == S.shape[1]
        if kern == KERNEL_REPLICAS and whole:
            Sl = S
            stl = rng
        elif kern == KERNEL_REPLICAS:
            Sl = Sb
            stl = stb
            _copy_columns(S, Sl, c0, False)
            _copy_columns(rng, stl, c0, False)
        else:
            Sl = Sb
            stl = stb
            _copy_transposed(S, Sl, c0, False)
            _copy_transposed(rng, stl, c0, False)
        ptr, nbr, w, h, sidx, site, w64, h64, bstart = lay
        by_column = kern != KERNEL_REPLICAS
        m = c1 - c0
        bv = np.empty(m, np.float32)
        f = np.empty(m, np.float32)
        e = np.empty(m, np.float64)
        inner = np.empty(m, np.float64)
        lanes = np.empty((4, LANES), np.uint32)
        fl = np.empty(LANES, np.float32)
        res = np.empty(LANES, np.float32)
        ndraw = 0
        for step in range(nsteps):
            t = t0 + step
            _step_betas(ladder, betaf, temp, c0, t, bv)
            if kern == KERNEL_REPLICAS:
                _sweep_replicas(Sl, stl, ptr, nbr, w, h, sidx, bstart, bv, f)
            elif kern == KERNEL_COLUMNS:
                for j in range(m):
                    _sweep_column(Sl[j], stl[j], ptr, nbr, w, h, sidx, bstart, bv[j])
            elif kern == KERNEL_SITES:
                for j in range(m):
                    if uniform:
                        _sweep_sites_uniform(
                            Sl[j], stl[j], ptr, nbr, w, h, bstart, bv[j], lanes, fl, res
                        )
                    else:
                        _sweep_sites_any(
                            Sl[j], stl[j], ptr, nbr, w, h, bstart, bv[j], lanes, fl, res
                        )
            elif kern == KERNEL_SYMMETRIC:
                for j in range(m):
                    _sweep_column(Sl[j], stl[j], ptr, nbr, w, h, sidx, bstart, bv[j])
                    _sweep_column_back(Sl[j], stl[j], ptr, nbr, w, h, sidx, bv[j], 1)
            elif kern == KERNEL_MIXTURE:
                for j in range(m):  # the direction from the column's own stream dirs[col]
                    if _uniform53(dirs[c0 + j]) < q:
                        _sweep_column(Sl[j], stl[j], ptr, nbr, w, h, sidx, bstart, bv[j])
                    else:
                        _sweep_column_back(Sl[j], stl[j], ptr, nbr, w, h, sidx, bv[j], 0)
            else:
                for j in range(m):
                    _scan_random(Sl[j], stl[j], ptr, nbr, w, h, bv[j])
            if wide:  # (a constant of the closure: one branch is compiled; globals, not cells,
                # name the functions, so that Numba's cache recognises the closure)
                ndraw = _after_step_wide(
                    Sl, by_column, c0, lay, ladder, temp, pt, t, step, swap_every, thin, record,
                    energies, pos, out, out_e, out_w, e, inner, ndraw,
                )  # fmt: skip
            else:
                ndraw = _after_step(
                    Sl, by_column, c0, lay, ladder, temp, pt, t, step, swap_every, thin, record,
                    energies, pos, out, out_e, out_w, e, inner, ndraw,
                )  # fmt: skip
        if kern == KERNEL_REPLICAS:
            if not whole:
                _copy_columns(S, Sl, c0, True)
                _copy_columns(rng, stl, c0, True)
        else:
            _copy_transposed(S, Sl, c0, True)
            _copy_transposed(rng, stl, c0, True)

    return _run_block


@functools.cache
def _block_function(kern: int, uniform: bool = False, wide: bool = False):
    """The compiled block function of kernel ``kern`` (made once per process)."""
    return _block_kernel(kern, uniform, wide)


def _uniform_rows(lay) -> bool:
    """Whether every padded row of the layout holds 4 entries (row p then starts at 4p)."""
    ptr = lay[0]
    return bool(ptr[-1] == 4 * (len(ptr) - 1))


def block_calls(S, rng, bounds, kernels, lay, buffers=None, window=0) -> list[tuple]:
    """What :func:`run` calls for each column block: (compiled block function, c0, c1, Sb, stb),
    in Python ints, with the block's private copies (``Sb``, ``stb``) made in ``buffers``.

    bounds : int64 [blocks + 1], column blocks (whole PT chains); one thread owns a block.
    kernels : int64 [blocks], KERNEL_* for each block (results do not depend on the choice).
    buffers : dict in which the blocks' private copies of their columns are kept from one call
        to the next (the caller's, one per runner: never shared by concurrent calls); None
        allocates them for these calls only.
    window : the layout's ``window`` (how far apart a block's neighbours lie), which with n
        decides the spin type of the column kernels' copies (:func:`column_dtype`).

    It depends on the layout's topology and the state's shapes only, so a runner makes it once
    per plan: a short call (a PCD step) then spends nothing on it.
    """
    if buffers is None:
        buffers = {}
    uniform = _uniform_rows(lay)
    calls = []
    for bi in range(len(bounds) - 1):
        kern, c0, c1 = int(kernels[bi]), int(bounds[bi]), int(bounds[bi + 1])
        Sb, stb = _private(buffers, S, rng, kern, c0, c1, window)
        wide = kern == KERNEL_REPLICAS and _records_wide(c1 - c0)
        fn = _block_function(kern, uniform and kern == KERNEL_SITES, wide)
        calls.append((fn, c0, c1, Sb, stb))
    return calls


def run(
    S,
    rng,
    calls,
    lay,
    ladder,
    betaf,
    temp,
    pt,
    t0,
    nsteps,
    swap_every,
    thin,
    record,
    out,
    out_e,
    out_w,
    threads,
    q,
    dirs,
    energies,
    pos,
):
    """Advance every column ``nsteps`` steps from global step ``t0``; optionally record draws.

    Parameters
    ----------
    S, rng : persistent state, int8 [n + 1, R] and uint32 [4 * streams, R] (updated in place).
    calls : the column blocks' calls, :func:`block_calls`.
    lay : tuple of layout arrays (see :class:`pbitsim.sim.gibbs.Layout`).
    ladder : float64 [K] rungs; betaf : float64 [L] beta factor per global step (last one held).
        Column col runs at beta = ladder[temp[col]] * betaf[min(t, L - 1)] (rounded to float32).
    temp : int32 [R], rung of each column.
    pt : tuple (walker int32 [C, K], label int8 [R], swap_rng uint32 [C, 4], acc, att int64
        [C, K - 1], trips int64 [C]).
    swap_every : steps between replica-exchange events (0: none).
    thin, record : record after every thin-th step of this call when ``record``; swap statistics
        and round trips count only when ``record``.
    out, out_e, out_w : int8 [R, k, n], float64 [R, k], int32 [R, k] outputs; out_e and out_w
        may have 0 columns when the caller needs no energies or walker indices.
    threads : how many threads share the blocks (thread t runs blocks t, t + threads, ...; the
        calling thread is one of them). Blocks never wait for each other inside a call, and
        1 runs everything on the calling thread: no thread is woken, which is what a short
        call wants on a busy machine. Results do not depend on it.
    q, dirs : KERNEL_MIXTURE only: the probability (float) of a forward sweep, and uint32
        [R, 4] one xoshiro128+ stream per column that draws each step's direction (a float64
        uniform u < q: forward); :data:`_NO_DIRS` for the other kernels.
    energies : whether recorded draws need their energies (``out_e``); without a swap event
        the step's energies are then not computed and ``out_e`` holds no meaning (a PCD step
        needs the spins only, and for 64 replicas of 100 spins the energies cost ~7 us a draw).
    pos : int64 [n], the position of each site (the inverse of the layout's ``site``), for the
        word-at-a-time recording of the replica kernel.
    """
    rest = (lay, ladder, betaf, temp, pt, t0, nsteps, swap_every, thin, record, out, out_e, out_w)
    rest += (q, dirs, energies, pos)
    if threads <= 1:  # the short calls' path: a few microseconds count here (PCD steps)
        for fn, c0, c1, Sb, stb in calls:
            fn(S, rng, c0, c1, *rest, Sb, stb)
        return

    def block(bi: int) -> None:
        fn, c0, c1, Sb, stb = calls[bi]
        fn(S, rng, c0, c1, *rest, Sb, stb)

    run_blocks(block, len(calls), threads)


def site_parts(bstart: np.ndarray, starts, threads: int) -> list[list[np.ndarray]]:
    """For each update class (positions ``starts[c]``..``starts[c + 1]``), its position blocks
    cut into at most ``threads`` runs of consecutive blocks: the ``bstart`` bounds of each run.

    A block's positions share their streams with no other block, and each stream is still
    consumed in position order, so how a class is cut changes no number.
    """
    first = np.searchsorted(bstart, np.asarray(starts, np.int64))
    parts = []
    for c in range(len(first) - 1):
        b0, b1 = int(first[c]), int(first[c + 1])
        cuts = np.unique(b0 + (np.arange(threads + 1) * (b1 - b0)) // threads)
        parts.append([np.ascontiguousarray(bstart[x : y + 1]) for x, y in zip(cuts, cuts[1:])])
    return parts


def run_split(
    S, rng, parts, lay, ladder, betaf, temp, pt, t0, nsteps, swap_every, thin, record, out,
    out_e, out_w, threads, energies, pos,
):  # fmt: skip
    """:func:`run` with the replica kernel on every column at once, in place, and each update
    class's positions shared over ``threads`` threads instead of the columns
    (``parts`` = :func:`site_parts`); the threads meet after each class. Only for classes that
    are independent sets (chromatic): no position then reads one that another thread writes.

    For a large model: an int8 row of 64 replicas is one cache line, and a thread that holds all
    the replicas of its positions uses every byte of each neighbour line it pulls from memory
    (blocks of 32 replicas on two threads use half), with no private copies to make. The meeting
    per class costs a thread wake-up, which a sweep of a large model earns back many times. The
    numbers are those of :func:`run` (same kernel, streams consumed in the same order). The
    other arguments are :func:`run`'s (``pos`` given).
    """
    m = S.shape[1]
    ptr, nbr, w, h, sidx = lay[:5]
    bv = np.empty(m, np.float32)
    fs = [np.empty(m, np.float32) for _ in range(threads)]
    e = np.empty(m, np.float64)
    inner = np.empty(m, np.float64)
    ndraw = 0
    after = _after_step_wide if _records_wide(m) else _after_step
    for step in range(nsteps):
        t = t0 + step
        _step_betas(ladder, betaf, temp, 0, t, bv)
        for runs in parts:

            def block(i: int, runs=runs) -> None:
                _sweep_replicas(S, rng, ptr, nbr, w, h, sidx, runs[i], bv, fs[i])

            run_blocks(block, len(runs), threads)
        ndraw = after(
            S, False, 0, lay, ladder, temp, pt, t, step, swap_every, thin, record, energies, pos,
            out, out_e, out_w, e, inner, ndraw,
        )  # fmt: skip


def _private(buffers: dict, S, rng, kern: int, c0: int, c1: int, window: int) -> tuple:
    """The arrays a block copies its columns c0..c1 - 1 into (see :func:`_block_kernel`), from
    ``buffers`` or made there."""
    if kern == KERNEL_REPLICAS and c0 == 0 and c1 == S.shape[1]:
        return _NO_SPINS, _NO_STREAMS  # one block of every column works in place
    m = int(c1 - c0)
    spins = np.int8 if kern == KERNEL_REPLICAS else column_dtype(S.shape[0], window, kern)
    key = (kern == KERNEL_REPLICAS, spins, int(c0), S.shape[0], rng.shape[0], m)
    got = buffers.get(key)
    if got is None:
        if kern == KERNEL_REPLICAS:
            got = aligned.empty((S.shape[0], m), spins), aligned.empty((rng.shape[0], m), np.uint32)
        else:  # (an int8 column's last spin is gathered as a 4-byte word: 3 bytes more)
            got = (
                aligned.empty((m, S.shape[0]), spins, tail=3),
                aligned.empty((m, rng.shape[0]), np.uint32),
            )
        buffers[key] = got
    return got


#: ``dirs`` of the kernels other than KERNEL_MIXTURE (never read)
_NO_DIRS = np.zeros((0, 4), np.uint32)
#: private copies of a block that works in place (never read)
_NO_SPINS = np.zeros((0, 0), np.int8)
_NO_STREAMS = np.zeros((0, 0), np.uint32)
