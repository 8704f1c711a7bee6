"""Streaming diagnostics: tau_int, ESS and Q of draws that need not fit in memory.

The estimator is :func:`~pbitsim.diagnostics.autocorr.estimate_tau`'s, computed from the samples a
chunk of draws at a time, in memory bounded by a stated budget (``memory``, bytes) whatever the
number of draws. Two passes over the draws, each replica in turn, each chunk of ``chunk`` draws:

1. the lag products up to a maximum lag L (``max_lag``): each chunk with the L draws before it
   (overlap-save, carried over from the previous chunk), summed by FFT in float64 and pooled over
   replicas; with them the sums and squares, the first and last L values of each replica, and
   the sums of every batch size 2^j (carried across chunks) as power sums of the batch means.
   The series is centred on a provisional value (its first chunk's mean) and the exact centre,
   known at the end, enters through the sums and the first and last L values (the correction is
   exact algebra, not an approximation);
2. the blocked error bar: each chunk with the error window's draws on either side.

Q's gradient estimates are batch sums of the +-1 pair products
(:func:`~pbitsim.diagnostics.q.batch_sums`, exact integers), read in one more sweep of the spins.

What is then done with them (the window, the error bar, the cross-check, the trust rules and
their reasons) is the in-memory code itself, :func:`~pbitsim.diagnostics.autocorr.tau_from_acov`.
With ``max_lag >= T - 1`` the results agree with :func:`estimate_tau` to rounding (``rtol``
1e-9 is tested); with a smaller L, an observable whose window (or error window) would need a lag
past L is reported not converged with a reason saying so, never cut silently. L defaults to
``min(T - 1, DEFAULT_MAX_LAG)``, lowered when the budget cannot hold it; a window past
``DEFAULT_MAX_LAG`` draws needs a chain of at least 16 times that to be trusted anyway.

Memory-mapped samples (``load_samples``'s default) are read a chunk at a time and their pages
given back to the kernel after each chunk, so the process's resident memory does not grow with
the file either. :func:`diagnose_streaming` is :func:`~pbitsim.diagnostics.report.diagnose`
computed this way (what ``pbitsim diagnose`` uses when the draws exceed its memory budget).
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft

from pbitsim.blas import blas_threads
from pbitsim.couplings import Couplings
from pbitsim.diagnostics.autocorr import (
    AutocorrWarning,
    IntegratedTime,
    _check_method,
    tau_from_acov,
)
from pbitsim.diagnostics.observables import magnetisation
from pbitsim.diagnostics.q import _target, batch_sums, jackknife_groups, q_from_estimates
from pbitsim.samples import Samples, SamplesFileError, check_fingerprint

__all__ = [
    "DEFAULT_MEMORY",
    "DEFAULT_MAX_LAG",
    "Series",
    "StreamPlan",
    "plan_stream",
    "stream_taus",
    "estimate_tau_stream",
    "diagnose_streaming",
    "in_memory_bytes",
]

#: Default budget for the working arrays of the streaming estimator (bytes).
DEFAULT_MEMORY = 256 << 20

#: Default maximum lag of the autocovariance (draws), when the chain is longer.
DEFAULT_MAX_LAG = 1 << 16

#: Smallest chunk (draws) the planner picks on its own.
_MIN_CHUNK = 1 << 8

#: Observables transformed together by one FFT (bounds the FFT's work arrays).
_FFT_COLUMNS = 8


@dataclass(frozen=True)
class Series:
    """A group of observables of R chains of T draws, computed a chunk of draws at a time.

    Attributes
    ----------
    read : callable
        ``read(r, a, e)`` -> float64 array (e - a, k) (or (e - a,) when k = 1): the observables
        at draws a..e-1 of replica r.
    shape : tuple of int
        The observables' shape (``()`` for one); k = prod(shape).
    per_draw : int
        Bytes of temporary memory ``read`` needs per draw (for the memory plan).
    """

    read: Callable[[int, int, int], np.ndarray]
    shape: tuple[int, ...] = ()
    per_draw: int = 0

    @property
    def k(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class StreamPlan:
    """Chunk length and maximum lag chosen for a memory budget (:func:`plan_stream`).

    Attributes
    ----------
    chunk : int
        Draws per chunk.
    max_lag : int
        Last lag of the autocovariance.
    memory : int
        The budget (bytes).
    estimate : int
        Estimated peak of the working arrays (bytes), <= memory.
    """

    chunk: int
    max_lag: int
    memory: int
    estimate: int


def _working_bytes(chunk: int, lag: int, k: int, per_draw: int) -> int:
    """Estimated peak of the working arrays for chunks of ``chunk`` draws read with ``lag`` draws
    of context on each side: the observables and their centred copy, cumulative and window sums
    (blocked pass), one FFT column group (real input, two spectra, their product, the inverse),
    the autocovariance sums, and what computing the observables needs per draw."""
    span = chunk + 2 * lag
    nfft = scipy.fft.next_fast_len(chunk + 2 * lag)
    w = min(k, _FFT_COLUMNS)
    return int(
        span * (5 * 8 * k + per_draw)
        + nfft * w * (8 + 3 * 16 + 8)
        + (lag + 1) * k * 8 * 3
        + (1 << 16)
    )


def plan_stream(
    replicas: int,
    draws: int,
    k: int,
    per_draw: int = 0,
    *,
    memory: int = DEFAULT_MEMORY,
    max_lag: int | None = None,
    chunk: int | None = None,
) -> StreamPlan:
    """Chunk length and maximum lag that fit the budget.

    Parameters
    ----------
    replicas, draws : int
        R and T.
    k : int
        Observables (all groups together).
    per_draw : int
        Bytes per draw that computing the observables needs (e.g. pair products).
    memory : int
        Budget for the working arrays (bytes).
    max_lag : int, optional
        Last lag of the autocovariance; default ``min(T - 1, DEFAULT_MAX_LAG)``, halved (by at
        most 8) until the budget holds chunks of at least 4 lags (and 256 draws), else halved
        until it holds chunks of one lag. An explicit lag that does not fit is an error.
    chunk : int, optional
        Draws per chunk; default the largest power of two that fits (at most T).

    Raises
    ------
    ValueError
        The budget cannot hold the lag (or the chunk) asked for.
    """
    T = int(draws)
    if T < 2:
        raise ValueError(f"need at least 2 draws per replica, got {T}")
    explicit = max_lag is not None
    lag = min(T - 1, DEFAULT_MAX_LAG if max_lag is None else int(max_lag))
    if lag < 1:
        raise ValueError(f"max_lag must be >= 1, not {max_lag}")

    def fits(lag: int, floor: int) -> bool:
        return _working_bytes(floor, lag, k, per_draw) <= memory

    floor = chunk
    if chunk is None:
        # chunks of >= 4 lags (each chunk transforms its L draws of context again), unless that
        # costs the lag more than a factor 8; then the longest lag that fits at all
        top = lag
        while floor is None and lag >= max(1, top // 8):
            if fits(lag, min(T, max(4 * lag, _MIN_CHUNK))):
                floor = min(T, max(4 * lag, _MIN_CHUNK))
            elif explicit:
                break
            else:
                lag //= 2
        if floor is None:
            lag = top
            while not fits(lag, min(T, max(lag, _MIN_CHUNK))) and lag > 1 and not explicit:
                lag //= 2
            floor = min(T, max(lag, _MIN_CHUNK))
    if not fits(lag, floor):
        need = _working_bytes(floor, lag, k, per_draw)
        what = f"chunks of {floor} draws" + (f" with max_lag = {lag}" if explicit else "")
        raise ValueError(
            f"a memory budget of {memory / 2**20:.1f} MiB cannot hold {what} for {k} "
            f"observable(s) (about {need / 2**20:.1f} MiB needed): raise the budget"
            + (" or lower max_lag" if explicit else "")
        )
    if chunk is None:
        chunk = floor
        while chunk < T and _working_bytes(min(T, 2 * chunk), lag, k, per_draw) <= memory:
            chunk = min(T, 2 * chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, not {chunk}")
    return StreamPlan(int(chunk), int(lag), int(memory), _working_bytes(chunk, lag, k, per_draw))


class _Moments:
    """Power sums of batch means for every batch size b = 2^j (1 <= j, b <= T // 2), fed one
    chunk of one replica at a time (a new object per replica; partial batches are carried
    across chunks), then shifted to the replica's exact centre and merged."""

    def __init__(self, draws: int, k: int, smallest: int = 2) -> None:
        self.T = draws
        self.sizes = []
        b = smallest
        while b <= draws // 2:
            self.sizes.append(b)
            b *= 2
        self.sums = {b: np.zeros((4, k)) for b in self.sizes}
        self.partial = {b: np.zeros(k) for b in self.sizes}
        self.count = {b: 0 for b in self.sizes}

    def add(self, x: np.ndarray, a: int) -> None:
        """Observables ``x`` (B, k) at draws a..a+B-1 of this replica."""
        B = x.shape[0]
        cs = np.empty((B + 1, x.shape[1]))
        cs[0] = 0.0
        np.cumsum(x, axis=0, out=cs[1:])
        for b in self.sizes:
            full = (self.T // b) * b  # draws past the last whole batch are left out
            ends = np.arange((a // b + 1) * b, min(a + B, full) + 1, b)
            if len(ends) == 0:
                if a < full:
                    self.partial[b] += cs[min(B, full - a)] - cs[0]
                continue
            rel = ends - a
            s = np.empty((len(ends), x.shape[1]))
            s[0] = self.partial[b] + cs[rel[0]]
            s[1:] = cs[rel[1:]] - cs[rel[:-1]]
            self.partial[b] = cs[min(B, full - a)] - cs[rel[-1]]
            z = s / b
            z2 = z * z
            acc = self.sums[b]
            acc[0] += z.sum(axis=0)
            acc[1] += z2.sum(axis=0)
            acc[2] += (z2 * z).sum(axis=0)
            acc[3] += (z2 * z2).sum(axis=0)
            self.count[b] += len(ends)

    def shift(self, d: np.ndarray) -> None:
        """Make the sums those of z - d (binomial expansion)."""
        for b in self.sizes:
            n = self.count[b]
            p1, p2, p3, p4 = self.sums[b].copy()
            self.sums[b][0] = p1 - n * d
            self.sums[b][1] = p2 - 2 * d * p1 + n * d**2
            self.sums[b][2] = p3 - 3 * d * p2 + 3 * d**2 * p1 - n * d**3
            self.sums[b][3] = p4 - 4 * d * p3 + 6 * d**2 * p2 - 4 * d**3 * p1 + n * d**4

    def merge(self, other: _Moments) -> None:
        for b in self.sizes:
            self.sums[b] += other.sums[b]
            self.count[b] += other.count[b]

    def stats(self, b: int, var: np.ndarray):
        """(tau, kurtosis ratio, batch count) as ``autocorr._batch_means_kurtosis`` (which are
        central moments: the same whatever the sums' common shift)."""
        if b not in self.count:
            raise AssertionError(f"batch size {b} was not accumulated (smallest {self.sizes[0]})")
        n = self.count[b]
        s1, s2, s3, s4 = self.sums[b]
        mean = s1 / n
        d2 = s2 - n * mean * mean  # sum of (z - mean)^2
        d4 = s4 - 4 * mean * s3 + 6 * mean**2 * s2 - 4 * mean**3 * s1 + n * mean**4
        m2 = d2 / n
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = b * (d2 / (n - 1)) / var
            kurt = np.maximum(1.0, ((d4 - n * m2 * m2) / (n - 1)) / (2.0 * m2 * m2))
        return tau, np.nan_to_num(kurt, nan=1.0), n


def _smallest_batch(method: str, extend: float, last: int) -> int:
    """The smallest batch size the cross-check can ask for: b = 2^j >= 2 (W + 1), and Geyer's
    window is at least ceil(2 extend) - 1 (the initial sequence takes at least one pair) unless
    cut at the last lag; the sizes below it (most of the batch-mean work) need not be summed."""
    if method != "geyer":
        return 2
    w = min(int(np.ceil(2 * extend)) - 1, last)
    return 1 << max(1, int(np.ceil(np.log2(2 * (w + 1)))))


def _centring(d: np.ndarray, total: np.ndarray, head_tail: np.ndarray, R: int, T: int, L: int):
    """What subtracting d from series x changes in sum_r sum_s x_s x_{s+t}, t = 0..L:
    -d (2 sum x - sum_r (head_r(t) + tail_r(t))) + R (T - t) d^2."""
    t = np.arange(L + 1)[:, None]
    return -d * (2 * total - head_tail) + R * (T - t) * d * d


def _lag_sums(x: np.ndarray, z: np.ndarray, P: int, lag: int, nfft: int) -> np.ndarray:
    """sum_i x_i z_{P + i - t} for t = 0..lag (zero where P + i - t < 0), (lag + 1, k): the lag
    products ending in the chunk ``x``, whose draws are ``z[P:]`` (``z[:P]``: those before)."""
    X = scipy.fft.rfft(x, n=nfft, axis=0)
    Z = scipy.fft.rfft(z, n=nfft, axis=0)
    np.conjugate(X, out=X)
    X *= Z
    del Z
    c = scipy.fft.irfft(X, n=nfft, axis=0)
    return c[(P - np.arange(lag + 1)) % nfft]


def _window_sums_chunk(y: np.ndarray, lo: int, a: int, e: int, hi: int, window: np.ndarray):
    """sum_{|t| <= W} y_{s+t} over the replica [0, T) for s = a..e-1, from its draws lo..hi-1
    (lo = max(0, a - W), hi = min(T, e + W)), (e - a, k)."""
    L, k = y.shape
    cs = np.empty((L + 1, k))
    cs[0] = 0.0
    np.cumsum(y, axis=0, out=cs[1:])
    s = np.arange(a, e)
    out = np.empty((e - a, k))
    for w in np.unique(window):
        up = np.minimum(s + int(w) + 1, hi) - lo
        down = np.maximum(s - int(w), lo) - lo
        if np.all(window == w):  # the usual case (a shared window): no column gathers
            np.subtract(cs[up], cs[down], out=out)
        else:
            cols = np.flatnonzero(window == w)
            out[:, cols] = cs[np.ix_(up, cols)] - cs[np.ix_(down, cols)]
    return out


def _as2d(v: np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v.reshape(n, -1)


def stream_taus(
    groups: dict[str, Series],
    replicas: int,
    draws: int,
    *,
    memory: int = DEFAULT_MEMORY,
    max_lag: int | None = None,
    chunk: int | None = None,
    center: str = "pooled",
    c: float = 5.0,
    tol: float = 50.0,
    quiet: bool = False,
    method: str = "geyer",
    extend: float = 2.5,
    shared_window: bool = True,
    min_windows: float = 16.0,
    z: float = 3.0,
    on_chunk: Callable[[], None] | None = None,
) -> dict[str, IntegratedTime]:
    """:func:`~pbitsim.diagnostics.autocorr.estimate_tau` of each group of observables, from
    two passes over the draws in chunks (see the module docstring).

    Each group is one ``estimate_tau`` call (its observables share a window); the groups only
    share the passes over the data.

    Parameters
    ----------
    groups : dict of str to Series
        The observables.
    replicas, draws : int
        R and T of every series.
    memory, max_lag, chunk
        See :func:`plan_stream`.
    center, c, tol, quiet, method, extend, shared_window, min_windows, z
        As for :func:`estimate_tau`.
    on_chunk : callable, optional
        Called after every chunk of every pass (e.g. to give back a memory map's pages).

    Returns
    -------
    dict of str to IntegratedTime
        ``max_lag`` is set on each result when L < T - 1, and ``acf`` has L + 1 rows.
    """
    _check_method(method, extend)
    if center not in ("pooled", "replica"):
        raise ValueError(f"center must be 'pooled' or 'replica', not {center!r}")
    R, T = int(replicas), int(draws)
    if R < 1 or T < 2:
        raise ValueError(f"need at least 1 replica of at least 2 steps, got {R} x {T}")
    names = list(groups)
    ks = [groups[g].k for g in names]
    offs = np.concatenate([[0], np.cumsum(ks)]).astype(int)
    K = int(offs[-1])
    plan = plan_stream(
        R,
        T,
        K,
        max(g.per_draw for g in groups.values()),
        memory=memory,
        max_lag=max_lag,
        chunk=chunk,
    )
    B, L = plan.chunk, plan.max_lag
    nfft = scipy.fft.next_fast_len(B + 2 * L)
    done = on_chunk or (lambda: None)

    def read(r: int, a: int, e: int) -> np.ndarray:
        return np.concatenate([_as2d(groups[g].read(r, a, e), e - a) for g in names], axis=1)

    # Pass 1: lag products to L, sums, squares and batch-mean power sums of x = y - c, with c a
    # provisional centre (the first chunk's mean): the exact centre is only known at the end, and
    # C(t) of y - mu follows from these sums and the first and last L draws of each replica.
    acov = np.zeros((L + 1, K))
    head_tail = np.zeros((L + 1, K))  # sum over replicas of head_r(t) + tail_r(t)
    s1 = np.zeros(K)
    s2 = np.zeros(K)
    smallest = _smallest_batch(method, extend, L)
    total = _Moments(T, K, smallest)
    centre = np.zeros((R, K))
    shift = np.zeros((R, K))
    for r in range(R):
        rep = _Moments(T, K, smallest)
        first = np.zeros((L + 1, K))
        prev = np.zeros((0, K))
        r1 = np.zeros(K)
        for a in range(0, T, B):
            e = min(T, a + B)
            x = read(r, a, e)
            if a == 0:
                centre[r] = x.mean(axis=0) if (center == "replica" or r == 0) else centre[0]
            x -= centre[r]
            ctx = np.concatenate([prev, x]) if len(prev) else x
            for c0 in range(0, K, _FFT_COLUMNS):
                cols = slice(c0, min(K, c0 + _FFT_COLUMNS))
                acov[:, cols] += _lag_sums(x[:, cols], ctx[:, cols], len(prev), L, nfft)
            if a <= L:
                first[a : min(L + 1, e)] = x[: min(L + 1, e) - a]
            r1 += x.sum(axis=0)
            s2 += (x * x).sum(axis=0)
            rep.add(x, a)
            prev = ctx[-L:]
            done()
        # head_r(t) = sum_{s < t} x_s, tail_r(t) = sum_{s >= T - t} x_s, t = 0..L
        ht = np.zeros((L + 1, K))
        ht[1:] = np.cumsum(first[:L], axis=0) + np.cumsum(prev[::-1][:L], axis=0)
        if center == "replica":  # this replica's exact centre is known now
            d = r1 / T
            acov += _centring(d, r1, ht, 1, T, L)
            s2 += -2 * d * r1 + T * d * d
            r1 = np.zeros(K)
            rep.shift(d)
            shift[r] = d
        head_tail += ht
        s1 += r1
        total.merge(rep)
    N = R * T
    if center == "pooled":
        d = s1 / N
        acov += _centring(d, s1, head_tail, R, T, L)
        s2 += -2 * d * s1 + N * d * d
        shift[:] = d
    acov /= N
    var_y = s2 / N
    moments = total
    mu = centre + shift  # the exact centre of each replica's series

    def centred(r: int, a: int, e: int) -> np.ndarray:
        return read(r, a, e) - mu[r]

    kw = dict(
        c=c,
        tol=tol,
        method=method,
        extend=extend,
        shared_window=shared_window,
        min_windows=min_windows,
        z=z,
    )

    # the error windows each group asks for (the window does not depend on the blocked error)
    asked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for g, a0, a1 in zip(names, offs[:-1], offs[1:]):
        cols = slice(a0, a1)

        def ask(w, t, g=g):
            asked[g] = (np.asarray(w), np.asarray(t))
            return np.full(len(w), np.nan)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AutocorrWarning)
            tau_from_acov(
                acov[:, cols],
                R,
                T,
                groups[g].shape,
                batch_stats=lambda b, cols=cols: _slice_stats(moments, b, var_y, cols),
                blocked_error=ask,
                quiet=True,
                **kw,
            )

    blocked = _blocked_errors(asked, names, offs, centred, R, T, B, acov[0], done)

    out = {}
    for g, a0, a1 in zip(names, offs[:-1], offs[1:]):
        cols = slice(a0, a1)
        out[g] = tau_from_acov(
            acov[:, cols],
            R,
            T,
            groups[g].shape,
            batch_stats=lambda b, cols=cols: _slice_stats(moments, b, var_y, cols),
            blocked_error=lambda w, t, g=g: blocked[g],
            quiet=quiet,
            stacklevel=3,
            **kw,
        )
    return out


def _slice_stats(moments: _Moments, b: int, var_y: np.ndarray, cols: slice):
    tau, kurt, n = moments.stats(b, var_y)
    return tau[cols], kurt[cols], n


def _blocked_errors(asked, names, offs, centred, R, T, B, var, done) -> dict[str, np.ndarray]:
    """Pass 2: ``autocorr._blocked_error`` of every group that asked, in one pass over the draws."""
    setup = {}
    for g, a0, a1 in zip(names, offs[:-1], offs[1:]):
        if g not in asked:
            continue
        window, tau_e = asked[g]
        W = int(window.max())
        nb = T // (8 * (W + 1))
        if R * nb < 16:
            nb = T // (4 * (W + 1))
        G = R * max(nb, 1)
        if G < 8:
            continue
        nb = max(nb, 1)
        edges = (np.arange(nb + 1) * T) // nb
        setup[g] = (slice(a0, a1), window, tau_e, W, nb, edges, np.zeros((R, nb, a1 - a0)))
    out = {g: np.full(a1 - a0, np.nan) for g, a0, a1 in zip(names, offs[:-1], offs[1:])}
    if not setup:
        return out
    H = max(s[3] for s in setup.values())
    for r in range(R):
        for a in range(0, T, B):
            e = min(T, a + B)
            lo, hi = max(0, a - H), min(T, e + H)
            y = centred(r, lo, hi)
            for cols, window, tau_e, _W, _nb, edges, sums in setup.values():
                yc = y[:, cols]
                x = yc[a - lo : e - lo]
                u = x * _window_sums_chunk(yc, lo, a, e, hi, window) - tau_e * x * x
                blk = np.searchsorted(edges, np.arange(a, e), side="right") - 1
                starts = np.flatnonzero(np.diff(blk, prepend=-1))
                sums[r, blk[starts]] += np.add.reduceat(u, starts, axis=0)
            done()
    for g, (cols, _w, _t, _W, nb, _e, sums) in setup.items():
        G = R * nb
        U = sums.reshape(G, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[g] = np.sqrt(G / (G - 1) * np.sum(U * U, axis=0)) / (R * T * var[cols])
    return out


def estimate_tau_stream(
    x,
    *,
    memory: int = DEFAULT_MEMORY,
    max_lag: int | None = None,
    chunk: int | None = None,
    **kw,
) -> IntegratedTime:
    """:func:`estimate_tau` of an array that may be a large memory map, read a chunk at a time.

    Parameters
    ----------
    x : array_like
        (T,), (R, T) or (R, T, *obs), e.g. ``np.load(path, mmap_mode="r")``.
    memory, max_lag, chunk
        See :func:`plan_stream`.
    **kw
        ``center``, ``c``, ``tol``, ``quiet``, ``method``... as for :func:`estimate_tau`.
    """
    arr = x if hasattr(x, "shape") and hasattr(x, "ndim") else np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim < 2:
        raise ValueError(f"a time series needs shape (T,), (R, T) or (R, T, ...), not {arr.shape}")
    R, T = arr.shape[:2]
    obs = tuple(arr.shape[2:])
    release = _releaser(arr)

    def read(r, a, e):
        return np.asarray(arr[r, a:e], dtype=np.float64).reshape(e - a, -1)

    res = stream_taus(
        {"x": Series(read, obs)},
        R,
        T,
        memory=memory,
        max_lag=max_lag,
        chunk=chunk,
        on_chunk=release,
        **kw,
    )
    return res["x"]


def _releaser(arr) -> Callable[[], None]:
    """A function that gives back the resident pages of ``arr``'s memory map (no-op if none):
    the map stays valid and pages fault back in from the page cache when read again."""
    mm = getattr(arr, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return lambda: None

    def release() -> None:
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # closed map or a platform without it: nothing to give
            pass

    return release


def in_memory_bytes(samples: Samples, n_pairs: int, observables) -> int:
    """Rough peak of :func:`~pbitsim.diagnostics.report.diagnose` on these samples (bytes): the
    pair products and FFT work arrays of its largest series."""
    N = samples.replicas * samples.draws
    k = n_pairs if "pairs" in observables else 1
    return int(N * (samples.n + 8 * max(n_pairs, 1) * 2 + 48 * k))


def _group_series(samples, couplings, name, rows, pairs, check_values):
    """The Series of one ``diagnose`` observable over the replicas ``rows``."""
    spins = samples.spins
    n = samples.n

    def chunk_of(r, a, e):
        s = np.asarray(spins[rows[r], a:e])
        if check_values:  # what load_samples(check=True) would have read the whole file for
            bad = (s != 1) & (s != -1)
            if bad.any():
                t, i = (int(v[0]) for v in np.nonzero(bad))
                raise SamplesFileError(
                    f"spins must be +1/-1, found {int(s[t, i])} at [{rows[r]}, {a + t}, {i}]"
                )
        return s

    m = 0 if pairs is None else len(pairs)
    if name == "energy":
        if couplings is not None:
            energy = _energy(couplings)
            return Series(lambda r, a, e: energy(chunk_of(r, a, e)), (), 32 * n)
        e_arr = samples.info["energies"]
        return Series(lambda r, a, e: np.asarray(e_arr[rows[r], a:e], dtype=np.float64), (), 16)
    if name == "magnetisation":
        return Series(lambda r, a, e: magnetisation(chunk_of(r, a, e)), (), n)
    if name == "edges":
        f = _edge_mean(pairs)
        return Series(lambda r, a, e: f(chunk_of(r, a, e)), (), 10 * m + n)
    p0, p1 = pairs[:, 0], pairs[:, 1]

    def products(r, a, e):  # pair_products' values (+-1 products are exact in int8)
        s = chunk_of(r, a, e)
        return (s[:, p0] * s[:, p1]).astype(np.float64)

    return Series(products, (m,), 9 * m + n)


#: Up to this many spins the observables below use dense n x n matrices.
_DENSE_N = 1024


def _energy(couplings: Couplings):
    """Energies of a block of states: :meth:`Couplings.energy`'s formula, with a dense J for
    small models (its sparse product costs ~10 times more per draw at n = 16); equal to it up
    to rounding (exactly for integer couplings)."""
    if couplings.n > _DENSE_N:
        return couplings.energy
    J, h = couplings.to_dense()

    def energy(spins):
        s = np.asarray(spins, dtype=np.float64)
        return -(0.5 * np.einsum("ij,ij->i", s @ J, s) + s @ h)

    return energy


def _edge_mean(pairs: np.ndarray):
    """:func:`edge_mean` of a block of states, bit for bit: the products are +-1 in int8 and
    their sum over the pairs an exact integer, as in float64."""
    p0, p1 = pairs[:, 0], pairs[:, 1]
    m = len(pairs)

    def mean(spins):
        s = np.asarray(spins)
        return (s[:, p0] * s[:, p1]).sum(axis=1, dtype=np.int64) / m

    return mean


def diagnose_streaming(
    samples: Samples,
    couplings: Couplings | None = None,
    *,
    observables=("energy", "magnetisation", "edges"),
    data=None,
    batch: int | None = None,
    rung: int | None = None,
    c: float = 5.0,
    tol: float = 50.0,
    allow_mismatch: bool = False,
    memory: int = DEFAULT_MEMORY,
    max_lag: int | None = None,
    chunk: int | None = None,
    check: bool = False,
):
    """:func:`~pbitsim.diagnostics.report.diagnose`, streamed: the same table from passes over
    the draws in bounded memory.

    Parameters
    ----------
    samples, couplings, observables, data, batch, rung, c, tol, allow_mismatch
        As for :func:`~pbitsim.diagnostics.report.diagnose`.
    memory, max_lag, chunk
        See :func:`plan_stream`. Q keeps one gradient estimate (8 m bytes) per batch: if they do
        not fit in a quarter of the budget, a ValueError asks for larger batches.
    check : bool
        Check that every spin is +1/-1 as the spins are read (for samples loaded with
        ``check=False``).

    Notes
    -----
    Parallel-tempering runs: the ladder profile (:func:`~pbitsim.diagnostics.pt.pt_profile`) is
    computed as in memory and reads its per-draw arrays (energies, walker indices) whole; only
    the rung's autocorrelation and Q are streamed.

    Returns
    -------
    Diagnosis
    """
    from pbitsim.diagnostics.pt import is_pt, pt_profile
    from pbitsim.diagnostics.report import (
        OBSERVABLES,
        Diagnosis,
        choose_rung,
        gradient_pairs,
        untrusted_note,
    )

    unknown = set(observables) - set(OBSERVABLES)
    if unknown:
        raise ValueError(f"unknown observables {sorted(unknown)}; choose from {OBSERVABLES}")
    if couplings is not None:
        check_fingerprint(samples, couplings, allow_mismatch)
    notes: list[str] = []
    thin = int(samples.settings.get("thin", 1) or 1)
    pt = None
    k = beta = None
    rows = np.arange(samples.replicas)
    info_ok = "energies" in samples.info
    if is_pt(samples):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="samples' couplings fingerprint differs")
            pt = pt_profile(samples, couplings, allow_mismatch=True)
        k, beta, rows = choose_rung(samples, couplings, rung, pt)
    R, T = len(rows), samples.draws
    pairs = gradient_pairs(samples, couplings, observables, data, notes)
    diag = Diagnosis(repr(samples), k, beta, thin, pt=pt, notes=notes)
    release = [_releaser(samples.spins)]
    if info_ok:
        release.append(_releaser(samples.info["energies"]))

    def done():
        for f in release:
            f()

    labels = {"edges": "edges <s_i s_j>", "pairs": "pairs s_i s_j"}
    groups: dict[str, Series] = {}
    for name in observables:
        if name == "energy" and couplings is None and not info_ok:
            notes.append("energy skipped: no model and no recorded energies")
        elif name in ("edges", "pairs") and pairs is None:
            notes.append(f"{name} skipped: pass the model for its edges")
        else:
            groups[labels.get(name, name)] = _group_series(
                samples, couplings, name, rows, pairs, check
            )
    if groups:
        p = plan_stream(
            R,
            T,
            sum(g.k for g in groups.values()),
            max(g.per_draw for g in groups.values()),
            memory=memory,
            max_lag=max_lag,
            chunk=chunk,
        )
        notes.append(
            f"streamed in chunks of {p.chunk} draws, autocovariance to lag {p.max_lag} "
            f"(memory budget {memory / 2**20:.0f} MiB)"
        )
        with warnings.catch_warnings(record=True) as caught, blas_threads(1):
            warnings.simplefilter("always", AutocorrWarning)
            taus = stream_taus(
                groups,
                R,
                T,
                memory=memory,
                max_lag=max_lag,
                chunk=chunk,
                c=c,
                tol=tol,
                quiet=True,
                on_chunk=done,
            )
        del caught  # one per untrusted group: noted below as report._tau does
        for name, it in taus.items():
            diag.taus[name] = it
            if not np.all(it.converged):
                short = next((o for o in observables if labels.get(o, o) == name), name)
                notes.append(untrusted_note(short, it, tol))
    if pairs is not None and len(pairs):
        if batch is None and R < 8:
            batch = max(1, T // 16)
            notes.append(f"few replicas: gradient estimates from batches of {batch} draws")
        b = T if batch is None else int(batch)
        nb = T // b
        if R * nb >= 3:
            m = len(pairs)
            if R * nb * m * 8 > memory // 4:
                raise ValueError(
                    f"{R * nb} gradient estimates of {m} components do not fit a quarter of the "
                    f"{memory / 2**20:.0f} MiB budget: use larger batches (--batch) or a larger "
                    f"budget"
                )
            target = data if data is not None else np.zeros(m)
            tgt = _target(target, pairs, False, samples.n)
            g = np.empty((R, nb, m))
            step = max(1, min(1 << 16, (memory // 4) // max(1, 16 * m + samples.n)))
            for i, r in enumerate(rows):
                chain = samples.spins[r]

                def read(a, e, x=chain):
                    out = np.asarray(x[a:e])
                    done()
                    return out

                with blas_threads(1):
                    g[i] = tgt - batch_sums(read, nb, b, pairs, False, chunk=step) / b
            g = g.reshape(R * nb, m)
            if data is not None:
                # batches of one chain are correlated: the jackknife leaves them out together
                groups = jackknife_groups(R, nb) if nb > 1 else None
                diag.q = q_from_estimates(g, steps=b, groups=groups)
            else:
                diag.noise = float(g.var(axis=0, ddof=1).sum())
                diag.noise_steps = b
    return diag
