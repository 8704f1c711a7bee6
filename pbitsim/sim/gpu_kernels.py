"""CUDA kernels of the GPU samplers (:mod:`pbitsim.sim.gpu`): chromatic Gibbs and the cycle model.

Importing this module imports ``numba.cuda`` (the ``numba-cuda`` package); :mod:`pbitsim.sim.gpu`
does so only after checking that a GPU, or Numba's CUDA simulator, is there. Under the simulator
(``NUMBA_ENABLE_CUDASIM=1``, set before ``numba.cuda`` is first imported) every kernel below runs
as Python on the CPU, thread by thread, with the same arguments and results.

No rule is written here a second time. The scalar rules are plain Python functions, compiled with
``cuda.jit(device=True)`` below (and with ``numba.njit`` for the CPU kernels):

* chromatic Gibbs: :func:`pbitsim.sim.gibbs_kernels.xoshiro128p_step` (the generator) and
  :func:`~pbitsim.sim.gibbs_kernels.tanh_accept` (the rational tanh and the decision, whose
  multiply-adds call :func:`~pbitsim.sim.gibbs_kernels.fma32`: ``fma.rn.f32`` when compiled, a
  correctly rounded float32 FMA as Python);
* the cycle model: the generator steps of :mod:`pbitsim.rng`, the saturation and decision of
  :mod:`pbitsim.fixedpoint` and, for the un-coloured schedules, the enable decision, the
  PERIOD/PHASE counter and the free-running rule of :mod:`pbitsim.sim.async_rules`.

Chromatic layout (that of :mod:`pbitsim.sim.gibbs_kernels`): spins int8 ``S[n + 1, R]`` (row n is
zero, replicas contiguous) and xoshiro128+ states uint32 ``st[4 * streams, R]``. Stream s serves
the positions ``first[s], first[s] + 32, ... < end[s]`` of one block of one colour, in that order,
so one GPU thread owns one (replica, stream) pair of a colour and walks its positions as the CPU
kernels do: each position's field is summed in the padded CSR order (h first, then the row's
entries, each rounded once as the CPU's fused multiply-adds round it) and its decision uses the
stream's next output. Positions of one colour never read each other, so which thread runs when
does not change a bit.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from pbitsim import fixedpoint as _fp
from pbitsim import rng as _rng
from pbitsim.board.design import ENABLE_BITS
from pbitsim.sim import async_rules as _ar
from pbitsim.sim import gibbs_kernels as gk
from pbitsim.sim.gibbs_kernels import LANES

__all__ = [
    "chromatic_colour",
    "chromatic_fused",
    "energies",
    "cycles",
    "async_cycles",
    "simulating",
]

_UP, _DOWN = np.int8(1), np.int8(-1)
_U1, _U2, _U3 = np.uint64(1), np.uint64(2), np.uint64(3)
_LANES = np.uint64(LANES)


def simulating() -> bool:
    """True when these kernels run on Numba's CUDA simulator (on the CPU)."""
    from numba.cuda.core import config

    return bool(config.ENABLE_CUDASIM)


# Device functions compiled from the plain rules (inlined at Numba IR level on a GPU).
_device = cuda.jit(device=True, inline="always")
_xoshiro = _device(gk.xoshiro128p_step)
_accept = _device(gk.tanh_accept)
_xorshift64_next = _device(_rng.xorshift64_next)
_xorshift64_output = _device(_rng.xorshift64_output)
_lfsr32_next = _device(_rng.lfsr32_xnor_next)
_lfsr32_output = _device(_rng.lfsr32_xnor_output)
_saturate = _device(_fp.saturate)
_decide_spin = _device(_fp.decide_spin)
_enable_acts = _device(_ar.enable_acts)
_counter_tick = _device(_ar.counter_tick)
_decision_steps = _device(_ar.decision_generator_steps)
_RANDOM = _ar.RANDOM


@_device
def _rng_next(kind, state):
    """:func:`pbitsim.sim.jit.rng_next`: the step of the generator of kind code ``kind``."""
    if kind == 0:
        return _xorshift64_next(state)
    return _lfsr32_next(state)


@_device
def _rng_output(kind, state, rng_bits):
    """:func:`pbitsim.sim.jit.rng_output`: the output of the generator of kind code ``kind``."""
    if kind == 0:
        return _xorshift64_output(state, rng_bits)
    return _lfsr32_output(state, rng_bits)


# --------------------------------------------------------------------------------------------
# Chromatic Gibbs.
# --------------------------------------------------------------------------------------------


@_device
def _beta(ladder, sched, temp, col, t):
    """beta of column col at global step t, rounded to float32 as the CPU kernels round it."""
    return np.float32(ladder[temp[col]] * sched[min(t, sched.shape[0] - 1)])


@_device
def _sweep_stream(S, st, R, r, s, beta, ptr, nbr, w, h, first, end):
    """Update the positions of stream s of replica r, in order, with that stream's numbers.

    S and st are the flat (C-order) views of S[n + 1, R] and st[4 * streams, R]; R is uint32 and
    nbr uint32, so an element's offset is one 32 x 32 -> 64-bit multiply-add, and every index is
    unsigned (no negative-index wraparound code). Plain while loops: Numba's range iterator costs
    a handful of integer instructions per trip.
    """
    uR = np.uint64(R)
    ur = np.uint64(r)
    row = np.uint64(4) * np.uint64(s) * uR + ur
    a0 = np.uint64(st[row])
    a1 = np.uint64(st[row + uR])
    a2 = np.uint64(st[row + _U2 * uR])
    a3 = np.uint64(st[row + _U3 * uR])
    p = np.uint64(first[s])
    pe = np.uint64(end[s])
    while p < pe:
        f = h[p]
        k = np.uint64(ptr[p])
        ke = np.uint64(ptr[p + _U1])
        while k < ke:
            # fma(w, s, f) with s = +-1 is f +- w rounded once: added without converting s to
            # float (a slow instruction on GPUs). A padding entry (s = 0, w = 0) adds -0, which
            # leaves f as it is; fma(0, 0, f) may turn a field of -0 into +0, a difference no
            # decision can see (x = beta * f only meets comparisons, where -0 == +0).
            wk = w[k]
            f = f + (wk if S[np.uint64(nbr[k]) * uR + ur] > 0 else -wk)
            k += _U1
        out, a0, a1, a2, a3 = _xoshiro(a0, a1, a2, a3)
        S[p * uR + ur] = _UP if _accept(f, beta, out) else _DOWN
        p += _LANES
    st[row] = np.uint32(a0)
    st[row + uR] = np.uint32(a1)
    st[row + _U2 * uR] = np.uint32(a2)
    st[row + _U3 * uR] = np.uint32(a3)


@cuda.jit(cache=True)
def chromatic_colour(S, st, R, ptr, nbr, w, h, first, end, s0, s1, ladder, sched, temp, t):
    """Streams s0..s1-1 (one colour) of every replica at global step t: one thread per
    (stream, replica), replicas fastest (coalesced spins). One launch per colour and step.
    S, st: flat views of the spins and streams of R (uint32) replicas."""
    i = cuda.grid(1)
    if i < (s1 - s0) * R:
        r = i % R
        s = s0 + i // R
        beta = _beta(ladder, sched, temp, r, t)
        _sweep_stream(S, st, R, r, s, beta, ptr, nbr, w, h, first, end)


@cuda.jit(cache=True)
def chromatic_fused(S, st, R, ptr, nbr, w, h, first, end, cs, ladder, sched, temp, t0, nsteps):
    """Steps t0..t0+nsteps-1 of every replica in one launch: a thread block owns blockDim.x whole
    replicas (threadIdx.x, fastest) and its blockDim.y rows of threads share out each colour's
    streams; the block meets at a barrier after every colour (``cs[c]..cs[c+1]-1`` are the
    streams of colour c)."""
    r = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    active = r < R
    for step in range(nsteps):
        t = t0 + step
        beta = _beta(ladder, sched, temp, r, t) if active else np.float32(0.0)
        for c in range(cs.shape[0] - 1):
            if active:
                for s in range(cs[c] + cuda.threadIdx.y, cs[c + 1], cuda.blockDim.y):
                    _sweep_stream(S, st, R, r, s, beta, ptr, nbr, w, h, first, end)
            cuda.syncthreads()


@cuda.jit(cache=True)
def energies(S, ptr, nbr, w64, h64, e):
    """e[r] = E(column r) in float64, the terms added in the order of
    :func:`pbitsim.sim.gibbs_kernels.energies_of` (so swap decisions agree with the CPU's).

    Every product here is exact (a spin is -1, 0 or +1; 0.5 * x is exact), so a multiply-add the
    GPU compiler contracts into an FMA rounds exactly as the CPU's multiply then add.
    """
    r = cuda.grid(1)
    if r < e.shape[0]:
        acc = 0.0
        for p in range(S.shape[0] - 1):
            inner = 0.0
            for k in range(ptr[p], ptr[p + 1]):
                inner = inner + w64[k] * np.float64(S[nbr[k], r])
            acc -= np.float64(S[p, r]) * (h64[p] + 0.5 * inner)
        e[r] = acc


# --------------------------------------------------------------------------------------------
# The hardware-faithful cycle model (pbitsim.sim.hardware), one thread block per replica.
# --------------------------------------------------------------------------------------------


@cuda.jit(cache=True)
def cycles(
    indptr,
    indices,
    j_codes,
    h_codes,
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
    tmp,
    cycle0,
    ncycles,
    stride,
    out,
):
    """Cycles cycle0+1 .. cycle0+ncycles of replica blockIdx.x, as
    :func:`pbitsim.sim.hardware_replica.run_coloured` runs them: the block's threads share out
    the p-bits of the cycle's colour, decide into ``tmp[replica]``, meet at a barrier, then
    write S_t.

    ``hist[rep, k % (latency + 1)]`` holds S_k for the last latency + 1 values of k; ``out[rep,
    j]`` receives S after every ``stride``-th cycle (stride 0: none).
    """
    rep = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    n = hist.shape[2]
    slots = latency + 1
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        colour = (t - 1) % n_colors
        edge = (t - 1) // n_colors + 1
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-L} now (or S_0 early on); receives S_t
        lo = cstart[colour]
        hi = cstart[colour + 1]
        for k in range(lo + tid, hi, nt):
            i = order[k]
            g = gen[rep, i]
            r = _rng_output(kind, g, rng_bits)
            if edge > warmup:
                acc = h_codes[i]
                for p in range(indptr[i], indptr[i + 1]):
                    acc += j_codes[p] * hist[rep, cur, indices[p]]
                acc = _saturate(acc, input_max)
                tmp[rep, k - lo] = _decide_spin(acc, table[abs(acc)], r)
            else:
                tmp[rep, k - lo] = hist[rep, prev, i]
            gen[rep, i] = _rng_next(kind, g)
        cuda.syncthreads()
        if slots > 1:
            for i in range(tid, n, nt):
                hist[rep, cur, i] = hist[rep, prev, i]
            cuda.syncthreads()
        for k in range(lo + tid, hi, nt):
            hist[rep, cur, order[k]] = tmp[rep, k - lo]
        done = t - cycle0
        if stride > 0 and done % stride == 0:
            cuda.syncthreads()
            for i in range(tid, n, nt):
                out[rep, done // stride - 1, i] = hist[rep, cur, i]
        cuda.syncthreads()


@cuda.jit(cache=True)
def async_cycles(
    indptr,
    indices,
    j_codes,
    h_codes,
    table,
    mode,
    kind,
    rng_bits,
    input_max,
    warmup,
    latency,
    threshold,
    reload,
    hist,
    gen,
    egen,
    counter,
    tmp,
    cycle0,
    ncycles,
    stride,
    out,
):
    """Cycles cycle0+1 .. cycle0+ncycles of replica blockIdx.x of an un-coloured schedule, as
    the rules of :mod:`pbitsim.sim.hardware` state them (the CPU runs them as
    :func:`pbitsim.sim.hardware_replica.run_random` and ``run_periodic``): ``mode`` 0 = async-random
    (``egen`` the enable generators, ``threshold`` the ENABLE register as uint64), 1 =
    async-periodic (``counter`` the counters, ``reload`` the values T_i - 1 they reload).

    The block's threads share out the p-bits; each decides its p-bits' S_t into ``tmp[replica]``
    from S_{t-1-L}, the block meets at a barrier, and each thread writes its own p-bits' S_t (a
    p-bit's enable generator, counter and decision generator belong to one thread, so they need
    no barrier). ``hist``, ``out``, ``stride`` as in :func:`cycles`.
    """
    rep = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    n = hist.shape[2]
    slots = latency + 1
    for t in range(cycle0 + 1, cycle0 + ncycles + 1):
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-L} now (or S_0 early on); receives S_t
        warm = t > warmup
        for i in range(tid, n, nt):
            if mode == _RANDOM:
                e = egen[rep, i]
                act = _enable_acts(_rng_output(kind, e, ENABLE_BITS), threshold)
                egen[rep, i] = _rng_next(kind, e)
            else:
                act, k = _counter_tick(counter[rep, i], reload[i])
                counter[rep, i] = k
            g = gen[rep, i]
            s = hist[rep, prev, i]
            if act and warm:
                r = _rng_output(kind, g, rng_bits)
                acc = h_codes[i]
                for p in range(indptr[i], indptr[i + 1]):
                    acc += j_codes[p] * hist[rep, cur, indices[p]]
                acc = _saturate(acc, input_max)
                s = _decide_spin(acc, table[abs(acc)], r)
            if _decision_steps(mode, act):
                gen[rep, i] = _rng_next(kind, g)
            tmp[rep, i] = s
        cuda.syncthreads()
        done = t - cycle0
        record = stride > 0 and done % stride == 0
        for i in range(tid, n, nt):
            hist[rep, cur, i] = tmp[rep, i]
            if record:
                out[rep, done // stride - 1, i] = tmp[rep, i]
        cuda.syncthreads()
