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
    Every tick every p-bit fires independently with probability ``p`` (implemented exactly as
    geometric waiting times: the next firing is G ticks after the last, P(G = g) = (1-p)**(g-1) p).
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
(:mod:`pbitsim.rng`), consumed in a fixed order (per tick, firing p-bits in index order: the spin's
uniform, then that p-bit's next waiting time), so runs are deterministic per seed, independent of
the thread count and of how the run is chunked.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from pbitsim.couplings import Couplings
from pbitsim.rng import splitmix64
from pbitsim.sampling import Runner, register_method
from pbitsim.sim.jit import splitmix64_next, uniform53

__all__ = ["AsyncRunner", "MODES"]

MODES = ("poisson", "periodic")
_POISSON, _PERIODIC = 0, 1


@nb.njit(cache=True)
def _uniform(state):
    state, z = splitmix64_next(state)
    return state, uniform53(z)


@nb.njit(cache=True)
def _next_time(mode, p, period_i, jitter, tau, t, state):
    """Next firing time after a firing at tick t whose scheduled time was tau."""
    if mode == _POISSON:
        if p >= 1.0:
            return state, t + 1.0
        state, u = _uniform(state)
        return state, t + 1.0 + math.floor(math.log(1.0 - u) / math.log(1.0 - p))
    step = period_i
    if jitter > 0.0:
        state, u1 = _uniform(state)
        state, u2 = _uniform(state)
        step += jitter * math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
    return state, max(tau + step, float(t))


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


@nb.njit(cache=True)
def _run_replica(
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
    fired,
    tmp,
):
    slots = delay + 1
    n = h.shape[0]
    state = rng[0]
    for t in range(tick0 + 1, tick0 + nticks + 1):
        prev = (t - 1) % slots
        cur = t % slots  # holds S_{t-1-delay} (or S_0 early on); receives S_t
        m = 0
        for i in range(n):
            if nxt[i] <= t:
                fired[m] = i
                m += 1
        for k in range(m):
            i = fired[k]
            field = h[i]
            for q in range(indptr[i], indptr[i + 1]):
                field += data[q] * hist[cur, indices[q]]
            state, u = _uniform(state)
            tmp[k] = 1 if u < 0.5 * (1.0 + math.tanh(beta * field)) else -1
            state, nxt[i] = _next_time(mode, p, period[i], jitter, nxt[i], t, state)
            counts[i] += 1
        if slots > 1:
            hist[cur, :] = hist[prev, :]
        for k in range(m):
            hist[cur, fired[k]] = tmp[k]
        done = t - tick0
        if stride > 0 and done % stride == 0:
            out[done // stride - 1, :] = hist[cur, :]
    rng[0] = state


@nb.njit(cache=True, parallel=True)
def _run(
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
):
    n = h.shape[0]
    for r in nb.prange(hist.shape[0]):
        fired = np.empty(n, dtype=np.int64)
        tmp = np.empty(n, dtype=np.int8)
        _run_replica(
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
            fired,
            tmp,
        )


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
        self.mode, self.p, self.period, self.jitter, self.delay = (
            mode,
            float(p),
            per,
            float(jitter),
            int(delay),
        )
        self._mode = MODES.index(mode)
        self.ticks_per_step = max(1, round(1.0 / self.p if mode == "poisson" else per.mean()))

        R = self.replicas
        s0 = np.full(n, -1, dtype=np.int8) if initial is None else np.asarray(initial)
        if s0.shape[-1:] != (n,) or not np.all(np.isin(s0, (-1, 1))):
            raise ValueError(f"initial state must hold n = {n} values of -1/+1 (per replica)")
        s0 = np.broadcast_to(s0.astype(np.int8), (R, n))
        self._hist = np.ascontiguousarray(np.repeat(s0[:, None, :], self.delay + 1, axis=1))
        self._rng = np.array([[splitmix64(int(seed), r)] for r in range(R)], dtype=np.uint64)
        self._counts = np.zeros((R, n), dtype=np.int64)
        self._nxt = np.empty((R, n), dtype=np.float64)
        if phase is None:
            _first_times(self._mode, self.p, per, self._rng, self._nxt)
        else:
            ph = np.asarray(phase, dtype=np.float64)
            if mode != "periodic":
                raise ValueError("phase applies to mode='periodic' only")
            if ph.shape[-1:] != (n,) or not np.all(np.isfinite(ph)):
                raise ValueError(f"phase must hold n = {n} finite times (per replica)")
            self._nxt[:] = ph
        self._csr = (
            couplings.indptr.astype(np.int64),
            couplings.indices.astype(np.int64),
            couplings.data.astype(np.float64),
            couplings.h.astype(np.float64),
        )
        self.tick = 0
        self.settings = {
            "mode": mode,
            "p": self.p,
            "period": per.tolist(),
            "jitter": self.jitter,
            "delay": self.delay,
            "ticks_per_step": self.ticks_per_step,
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
            _run(
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
