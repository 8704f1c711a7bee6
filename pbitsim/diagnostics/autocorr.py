"""Autocorrelation of Markov-chain time series: FFT autocovariance, tau_int with an error bar that
does not ignore slow modes, effective sample size, variance of a time average.

Modelled on emcee's ``autocorr.py``; conventions from ``shared/reference/diagnostics-definitions``:

    rho(t) = Cov(f(X_0), f(X_t)) / Var(f),   tau_int = 1 + 2 sum_{t>=1} rho(t).

The default estimator (``method="geyer"``; ``docs/diagnostics.md`` has the reasoning, what it
guarantees for which kernel, and the validation table):

1. the autocovariance is pooled over replicas (mean over all replicas subtracted) *before* any
   window is chosen;
2. Geyer's initial positive sequence finds where the autocorrelation sinks into its noise: the
   first pair sum Gamma_j = C(2j) + C(2j + 1) <= 0;
3. the sum runs ``extend`` (2.5) times as far, because a slow mode with a small weight is still
   there below the noise and its tail is most of what a window at the noise level misses; and
   observables passed together share the longest window (``shared_window``), since a slow mode
   that one of them shows may hide below the noise of another's;
4. the error bar is the larger of Madras-Sokal's formula and a blocked estimate of the variance
   (which also holds for non-Gaussian series), both for the sum to a window a fifth longer
   (``ERROR_WINDOW_FACTOR``), so that it also spans what a slow tail adds just past the window;
5. batch means over several batch sizes cross-check the sum; when they disagree beyond their
   error bars (a slow mode beyond the window) the result says so and is not ``converged``.

No tau is reported (an :class:`AutocorrError`, or a warning with ``quiet=True``) when the chain is
shorter than ``tol`` (~50) times tau or than ``min_windows`` (16) times the error window, when the
window search ran off the end, when the chain is too short for the cross-check to run at even one
batch size, when the cross-check fails, or when the series is constant.

``method="sokal"`` is the previous estimator (Sokal's automatic window, the smallest W with
W >= c tau(W), the Madras-Sokal error and the ``tol`` rule), kept for comparison and with the
same cross-check: it stops before the tail of a slow mode with a small weight.

:func:`tau_from_acov` is the one implementation of steps 2-5 and of the trust rules, from the
pooled autocovariance; :func:`estimate_tau` feeds it from an array in memory and
:mod:`pbitsim.diagnostics.streaming` from draws read a chunk at a time (up to a maximum lag).

Times are counted in the series' own steps (draws); converting them to kernel steps or
single-site updates: ``docs/diagnostics.md``, "Time units" (the one place that says how).

Shapes: a series is ``(T,)``; ``(R, T)`` is R replicas of one observable; ``(R, T, *obs)`` is R
replicas of several observables. Replicas must be independent chains of the same kernel; their
autocovariances are pooled (averaged), which is why tau is only trusted when every replica is long.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.fft

__all__ = [
    "AutocorrError",
    "AutocorrWarning",
    "IntegratedTime",
    "METHODS",
    "autocovariance",
    "autocorrelation",
    "auto_window",
    "initial_sequence_window",
    "batch_means_tau",
    "estimate_tau",
    "tau_from_acov",
    "integrated_time",
    "effective_sample_size",
    "time_average_variance",
]

METHODS = ("geyer", "sokal")

#: Largest number of (replica, step, observable) values handled at once by the blocked error.
_BLOCK_VALUES = 1 << 22

#: The error bar and the length rule use the sum to a window this much longer than the one the
#: estimate sums to, so that they also span what a slow tail adds just past the estimate's window.
ERROR_WINDOW_FACTOR = 1.2


class AutocorrWarning(UserWarning):
    """tau cannot be trusted (issued instead of the error when ``quiet=True``)."""


class AutocorrError(RuntimeError):
    """tau_int cannot be estimated reliably from this chain (too short, slow mode beyond the
    window, or constant).

    Attributes
    ----------
    result : IntegratedTime
        The untrusted estimate, for inspection (``err.tau`` is ``err.result.tau``).
    """

    def __init__(self, message: str, result: IntegratedTime) -> None:
        super().__init__(message)
        self.result = result

    @property
    def tau(self) -> np.ndarray:
        return self.result.tau


@dataclass(frozen=True)
class IntegratedTime:
    """Result of :func:`estimate_tau`; array fields have the observables' shape.

    Attributes
    ----------
    tau, tau_err : np.ndarray
        tau_int (the autocorrelation summed to ``window``) and its standard error (that of the
        sum to ``error_window``, which is at least as large).
    window : np.ndarray of int
        Last lag included in the sum.
    ess, ess_err : np.ndarray
        Effective sample size R * T / tau and its standard error R * T tau_err / tau^2.
    variance : np.ndarray
        C(0), the pooled variance of the observable.
    acf : np.ndarray
        Normalised autocorrelation rho(t), shape (T, *obs).
    converged : np.ndarray of bool
        tau can be trusted: the observable fluctuates, the window search ended inside the chain,
        T >= tol * tau, T >= min_windows * (error_window + 1) (``"geyer"``), and the batch-means
        cross-check ran (at one batch size at least) and agrees.
    n_steps, replicas : int
        T and R.
    c, tol : float
        Sokal's window factor (``method="sokal"`` only) and the minimum length in units of tau.
    method : str
        "geyer" or "sokal".
    batch_sizes : np.ndarray of int
        Batch sizes of the cross-check (empty when the chain is too short for any).
    batch_tau, batch_err : np.ndarray
        tau from batch means, b Var(batch mean) / C(0), and its standard error, for each batch
        size: shape (len(batch_sizes), *obs).
    disagree : np.ndarray of bool
        The batch means and the windowed sum differ by more than ``z`` combined standard errors
        at some batch size.
    reasons : tuple of str
        Why some observable is not converged (empty when all are).
    error_window : np.ndarray of int
        Last lag of the sum whose standard error is ``tau_err`` and against which the chain's
        length is judged (``method="geyer"``: ERROR_WINDOW_FACTOR times ``window``).
    max_lag : int or None
        Last lag of the autocovariance that was computed (``acf`` has ``max_lag + 1`` rows) when
        it stops before T - 1 (the streaming estimator, :mod:`pbitsim.diagnostics.streaming`);
        None when every lag was.
    """

    tau: np.ndarray
    tau_err: np.ndarray
    window: np.ndarray
    ess: np.ndarray
    variance: np.ndarray
    acf: np.ndarray
    converged: np.ndarray
    n_steps: int
    replicas: int
    c: float
    tol: float
    method: str = "geyer"
    ess_err: np.ndarray | None = None
    batch_sizes: np.ndarray | None = None
    batch_tau: np.ndarray | None = None
    batch_err: np.ndarray | None = None
    disagree: np.ndarray | None = None
    reasons: tuple = ()
    error_window: np.ndarray | None = None
    max_lag: int | None = None


def _as_rtk(x) -> tuple[np.ndarray, tuple[int, ...]]:
    """(R, T, k) float view of a (T,), (R, T) or (R, T, *obs) array, plus the obs shape."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return x[None, :, None], ()
    if x.ndim == 2:
        return x[:, :, None], ()
    if x.ndim >= 3:
        return x.reshape(x.shape[0], x.shape[1], -1), x.shape[2:]
    raise ValueError(f"a time series needs shape (T,), (R, T) or (R, T, ...), not {x.shape}")


def _centred(y: np.ndarray, center: str) -> np.ndarray:
    if center == "pooled":
        return y - y.mean(axis=(0, 1), keepdims=True)
    if center == "replica":
        return y - y.mean(axis=1, keepdims=True)
    raise ValueError(f"center must be 'pooled' or 'replica', not {center!r}")


def autocovariance(x, center: str = "pooled") -> np.ndarray:
    """FFT estimate of C(t) = Cov(f(X_s), f(X_{s+t})), t = 0..T-1, averaged over replicas.

    Parameters
    ----------
    x : array_like
        (T,), (R, T) or (R, T, *obs).
    center : {"pooled", "replica"}
        Subtract the mean over all replicas (right when they sample one distribution; removes the
        per-replica-mean bias of order tau / T) or each replica's own mean (robust to replicas
        that disagree, e.g. different boards).

    Returns
    -------
    np.ndarray
        C(t) with the 1/T normalisation (a positive-definite sequence), shape (T, *obs).
    """
    y, obs = _as_rtk(x)
    if y.shape[1] < 2:
        raise ValueError(f"need at least 2 steps per replica, got {y.shape[1]}")
    return _pooled_acov(_centred(y, center)).reshape((y.shape[1],) + obs)


def _pooled_acov(y: np.ndarray) -> np.ndarray:
    """C(t), (T, k), of centred (R, T, k) series, pooled over replicas."""
    R, T, k = y.shape
    # time last and contiguous for the FFTs; the power spectra are summed over replicas before
    # the one inverse transform per observable (the transform is linear)
    nfft = scipy.fft.next_fast_len(2 * T)
    f = scipy.fft.rfft(np.moveaxis(y, 1, 2), n=nfft, axis=-1)
    power = np.sum(f.real**2 + f.imag**2, axis=0)
    acov = scipy.fft.irfft(power, n=nfft, axis=-1)[:, :T] / (R * T)
    return np.ascontiguousarray(acov.T)


def autocorrelation(x, center: str = "pooled") -> np.ndarray:
    """Normalised autocorrelation rho(t) = C(t) / C(0) (NaN where C(0) = 0); see
    :func:`autocovariance`."""
    acov = autocovariance(x, center)
    with np.errstate(invalid="ignore", divide="ignore"):
        return acov / acov[0]


def auto_window(taus: np.ndarray, c: float) -> np.ndarray:
    """Sokal's window: the smallest W with W >= c * taus[W] (last index when there is none).

    ``taus`` has shape (T, k); returns k windows.
    """
    m = np.arange(taus.shape[0])[:, None] < c * taus
    found = ~m.all(axis=0)
    return np.where(found, np.argmin(m, axis=0), taus.shape[0] - 1)


def initial_sequence_window(acov) -> tuple[np.ndarray, np.ndarray]:
    """Geyer's initial positive sequence: the window where the autocorrelation sinks into noise.

    With Gamma_j = C(2j) + C(2j + 1), the window is W = 2m - 1 for the first m >= 1 with
    Gamma_m <= 0, so the sum 1 + 2 sum_{t=1}^{W} rho(t) takes every pair before it. For a
    reversible chain every Gamma_j is positive (and decreasing and convex), so a non-positive
    one is noise (Geyer 1992).

    Parameters
    ----------
    acov : array_like
        C(t), t = 0..T-1, shape (T,) or (T, k).

    Returns
    -------
    window : np.ndarray of int
        Shape (k,) (or 0-d); T - 1 where no pair sum is non-positive.
    found : np.ndarray of bool
        Whether a non-positive pair sum was found.
    """
    a = np.asarray(acov, dtype=np.float64)
    single = a.ndim == 1
    a = a.reshape(a.shape[0], -1)
    T, k = a.shape
    m = T // 2
    if m < 2:
        w, f = np.full(k, T - 1), np.zeros(k, bool)
    else:
        gam = a[: 2 * m].reshape(m, 2, k).sum(axis=1)[1:]  # Gamma_1 .. Gamma_{m-1}
        stop = gam <= 0
        f = stop.any(axis=0)
        w = np.where(f, 2 * (np.argmax(stop, axis=0) + 1) - 1, T - 1)
    return (w[0], f[0]) if single else (w, f)


def batch_means_tau(x, size: int, center: str = "pooled") -> tuple[np.ndarray, np.ndarray, int]:
    """tau from batch means: b Var(batch mean) / Var(f), from every replica's batches of b steps.

    For b >> the slowest autocorrelation time this tends to tau_int whatever the kernel;
    for finite b its expectation is 1 + 2 sum_{t<b} (1 - t/b) rho(t).

    Returns
    -------
    tau, err : np.ndarray
        Estimate and standard error tau sqrt(2 / (n - 1)) for each observable, shape (*obs).
    n : int
        Number of batches (R * floor(T / b); a replica's last T mod b steps are left out).
    """
    y, obs = _as_rtk(x)
    R, T, k = y.shape
    b = int(size)
    if not 1 <= b <= T // 2:
        raise ValueError(f"batch size must be in 1..{T // 2} (two batches per replica), not {b}")
    tau, err, n = _batch_means(_centred(y, center), b)
    return tau.reshape(obs), err.reshape(obs), n


def _batch_means(y: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray, int]:
    """tau from batch means, its standard error and the batch count. The error is the Gaussian
    one, tau sqrt(2 / (n - 1)), widened by the batch means' excess kurtosis when they have any
    (a series whose amplitude wanders has heavy-tailed batch means)."""
    tau, kurt, n = _batch_means_kurtosis(y, b, y.var(axis=(0, 1)))
    return tau, tau * np.sqrt(2.0 / (n - 1) * kurt), n


def _batch_means_kurtosis(y: np.ndarray, b: int, var: np.ndarray):
    """(tau, kurtosis ratio, batch count) from batches of b steps; ``var`` is Var(f)."""
    R, T, k = y.shape
    nb = T // b
    z = y[:, : nb * b].reshape(R, nb, b, k).mean(axis=2).reshape(R * nb, k)
    n = R * nb
    d = z - z.mean(axis=0)
    m2 = np.mean(d * d, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = b * z.var(axis=0, ddof=1) / var
        # Var(d^2) / (2 m2^2): 1 for Gaussian batch means
        kurt = np.maximum(1.0, np.var(d * d, axis=0, ddof=1) / (2.0 * m2 * m2))
    return tau, np.nan_to_num(kurt, nan=1.0), n


def _window_sums(y: np.ndarray, window: np.ndarray) -> np.ndarray:
    """sum_{|t| <= W} y_{s+t} for every step s (clipped at the ends), (R, T, k)."""
    R, T, k = y.shape
    cs = np.zeros((R, T + 1, k))
    np.cumsum(y, axis=1, out=cs[:, 1:])
    out = np.empty_like(y)
    for w in np.unique(window):  # usually one window for all (shared)
        w = int(w)
        cols = np.flatnonzero(window == w)
        c = cs if len(cols) == k else cs[:, :, cols]
        if w >= T - 1:
            sums = np.broadcast_to(c[:, T : T + 1] - c[:, :1], (R, T, len(cols)))
        else:  # upper end min(s + w + 1, T), lower end max(s - w, 0), as slices
            hi = np.concatenate([c[:, w + 1 :], np.repeat(c[:, T : T + 1], w, axis=1)], axis=1)
            lo = np.concatenate([np.repeat(c[:, :1], w + 1, axis=1), c[:, 1 : T - w]], axis=1)
            sums = hi - lo
        out[:, :, cols] = sums
    return out


def _blocked_error(y: np.ndarray, window: np.ndarray, tau: np.ndarray, var: np.ndarray):
    """Standard error of the windowed sum from blocks of the chains, NaN when too few blocks.

    N C(0) tau_hat = sum_s y_s S_s with S_s the window sum around s, so tau_hat - tau is the mean
    of u_s = (y_s S_s - tau_hat y_s^2) / C(0) to first order. u is correlated over ~2W steps;
    blocks of >= 8 (W + 1) steps (4 (W + 1) when that leaves too few) are nearly independent,
    and the spread of their sums of u gives the variance without assuming a Gaussian series.
    """
    R, T, k = y.shape
    W = int(window.max())
    nb = T // (8 * (W + 1))
    if R * nb < 16:
        nb = T // (4 * (W + 1))
    G = R * max(nb, 1)
    if G < 8:
        return np.full(k, np.nan)
    nb = max(nb, 1)
    edges = (np.arange(nb + 1) * T) // nb
    width = max(1, _BLOCK_VALUES // (R * T))
    sums = np.empty((R, nb, k))
    for a in range(0, k, width):
        c = slice(a, min(k, a + width))
        yc = y[:, :, c]
        u = yc * _window_sums(yc, window[c]) - tau[c] * yc * yc
        sums[:, :, c] = np.add.reduceat(u, edges[:-1], axis=1)
    U = sums.reshape(G, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(G / (G - 1) * np.sum(U * U, axis=0)) / (R * T * var)


def _sokal(rho, var, flat, c, last):
    """(window, found); ``last`` is the last lag of ``rho`` (T - 1 unless it was cut)."""
    taus = 2.0 * np.cumsum(np.where(flat, rho, 0.0), axis=0) - 1.0
    window = auto_window(taus, c)
    return window, window < last


def _geyer(acov, flat, extend, shared, last):
    """(sum window, error window, found, unclipped error window): ``extend`` and
    ``ERROR_WINDOW_FACTOR * extend`` times the initial positive sequence's window, the longest
    one of the observables when shared; both clipped at ``last``, the last lag of ``acov``."""
    ips, found = initial_sequence_window(np.where(flat, acov, 0.0))
    base = ips + 1
    ok = flat & found
    if shared and ok.any():
        base = np.where(ok, base[ok].max(), base)
    window = np.minimum(np.ceil(extend * base).astype(np.int64) - 1, last)
    wanted = np.ceil(ERROR_WINDOW_FACTOR * extend * base).astype(np.int64) - 1
    window = np.where(found, window, last)
    return window, np.where(found, np.minimum(wanted, last), last), found, wanted


def estimate_tau(
    x,
    c: float = 5.0,
    tol: float = 50.0,
    quiet: bool = False,
    center: str = "pooled",
    *,
    method: str = "geyer",
    extend: float = 2.5,
    shared_window: bool = True,
    min_windows: float = 16.0,
    z: float = 3.0,
) -> IntegratedTime:
    """Integrated autocorrelation time with an error bar, a cross-check and the ESS.

    Parameters
    ----------
    x : array_like
        (T,), (R, T) or (R, T, *obs) time series (see the module docstring).
    c : float
        Sokal's window factor (``method="sokal"`` only).
    tol : float
        Minimum chain length per replica in units of tau for the estimate to be trusted.
    quiet : bool
        Warn (:class:`AutocorrWarning`) instead of raising when the estimate is not trusted.
    center : {"pooled", "replica"}
        See :func:`autocovariance`.
    method : {"geyer", "sokal"}
        The window: Geyer's initial positive sequence, extended (default; see the module
        docstring), or Sokal's automatic window (the previous default; underestimates
        observables with a slow mode of small weight).
    extend : float
        ``"geyer"``: the window is ``extend`` times the initial positive sequence's (the error
        bar's, ``ERROR_WINDOW_FACTOR`` times more).
    shared_window : bool
        ``"geyer"``: observables given together share the longest window (their estimates then
        depend on which observables are passed together; pass False for one window each).
    min_windows : float
        ``"geyer"``: minimum chain length per replica in units of the error window (+ 1).
    z : float
        Batch means and the windowed sum disagree when they differ by more than z combined
        standard errors.

    Returns
    -------
    IntegratedTime

    Raises
    ------
    AutocorrError
        When tau is not trusted for some observable (see :attr:`IntegratedTime.converged` and
        ``reasons``), unless ``quiet``.
    """
    _check_method(method, extend)
    y, obs = _as_rtk(x)
    R, T, k = y.shape
    if T < 2:
        raise ValueError(f"need at least 2 steps per replica, got {T}")
    y = _centred(y, center)
    acov = _pooled_acov(y)
    var_y = y.var(axis=(0, 1))
    return tau_from_acov(
        acov,
        R,
        T,
        obs,
        batch_stats=lambda b: _batch_means_kurtosis(y, b, var_y),
        blocked_error=lambda w, t: _blocked_error(y, w, t, acov[0]),
        c=c,
        tol=tol,
        quiet=quiet,
        method=method,
        extend=extend,
        shared_window=shared_window,
        min_windows=min_windows,
        z=z,
    )


def _check_method(method: str, extend: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if extend < 1:
        raise ValueError(f"extend must be >= 1, not {extend}")


def tau_from_acov(
    acov: np.ndarray,
    R: int,
    T: int,
    obs: tuple[int, ...],
    *,
    batch_stats,
    blocked_error,
    c: float = 5.0,
    tol: float = 50.0,
    quiet: bool = False,
    method: str = "geyer",
    extend: float = 2.5,
    shared_window: bool = True,
    min_windows: float = 16.0,
    z: float = 3.0,
    stacklevel: int = 3,
) -> IntegratedTime:
    """:func:`estimate_tau` from the pooled autocovariance and two views of the data.

    The one implementation of the window, error bar, cross-check and trust rules, shared by the
    in-memory estimator and the streaming one (:mod:`pbitsim.diagnostics.streaming`), which only
    differ in how they compute what this takes.

    Parameters
    ----------
    acov : np.ndarray, shape (L + 1, k)
        C(t) for t = 0..L of the centred series, pooled over replicas (1/(R T) normalisation);
        L = T - 1 in memory. With L < T - 1 (a maximum lag) a window that would need a lag past
        L is not cut silently: the observable is not converged and a reason says so.
    R, T : int
        Replicas and steps per replica.
    obs : tuple of int
        Shape of the observables (k = prod(obs)).
    batch_stats : callable
        ``batch_stats(b) -> (tau, kurtosis ratio, batch count)`` of batches of b steps (see
        ``_batch_means_kurtosis``).
    blocked_error : callable
        ``blocked_error(error_window, tau_e) -> (k,)`` standard error of the windowed sum from
        blocks (see ``_blocked_error``; NaN when too few blocks).
    c, tol, quiet, method, extend, shared_window, min_windows, z
        As for :func:`estimate_tau`.
    stacklevel : int
        Of the :class:`AutocorrWarning` with ``quiet`` (the caller of the public function).
    """
    _check_method(method, extend)
    k = acov.shape[1]
    last = acov.shape[0] - 1
    cut = last < T - 1
    var = acov[0]
    flat = var > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = acov / var
    if method == "sokal":
        window, found = _sokal(rho, var, flat, c, last)
        err_window = window
        beyond = flat & ~found & cut
    else:
        window, err_window, found, wanted = _geyer(acov, flat, extend, shared_window, last)
        beyond = flat & cut & (~found | (wanted > last))
    cols = np.arange(k)
    taus = 2.0 * np.cumsum(np.where(flat, rho, 0.0), axis=0) - 1.0
    tau = np.where(flat, taus[window, cols], np.nan)
    n_total = R * T
    if method == "sokal":
        # Madras & Sokal (1988): var(tau_hat) ~ 2 (2W + 1) / N tau^2 for W >> tau (Gaussian).
        tau_err = tau * np.sqrt(2.0 * (2 * window + 1) / n_total)
    else:
        # The same formula and a blocked estimate (any series), for the sum to the error window.
        tau_e = np.where(flat, taus[err_window, cols], np.nan)
        tau_err = np.fmax(tau, tau_e) * np.sqrt(2.0 * (2 * err_window + 1) / n_total)
        tau_err = np.fmax(tau_err, blocked_error(err_window, np.nan_to_num(tau_e)))
    sizes, btau, berr, disagree = _cross_check(
        batch_stats, R, T, rho, window, tau, tau_err, flat, z
    )
    long_enough = tol * tau <= T
    if method == "geyer":
        # only what could be cross-checked is reported
        long_enough &= (min_windows * (err_window + 1) <= T) & (len(sizes) > 0)
    with np.errstate(invalid="ignore"):
        converged = flat & found & long_enough & ~disagree & ~beyond
    reasons = _reasons(
        T,
        tol,
        min_windows if method == "geyer" else None,
        tau,
        err_window,
        flat,
        found | beyond,  # beyond max_lag has its own reason below
        long_enough | beyond,
        disagree,
        (sizes, btau, berr),
    )
    if beyond.any():
        reasons.append(
            f"for {int(beyond.sum())} observable(s) the window "
            + ("search" if method == "sokal" else "(or its error window)")
            + f" needs lags past max_lag = {last}, the last one computed: pass a larger "
            f"max_lag (or a larger memory budget)"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = n_total / tau
        ess_err = n_total * tau_err / tau**2
    res = IntegratedTime(
        tau=tau.reshape(obs),
        tau_err=tau_err.reshape(obs),
        window=window.reshape(obs),
        ess=ess.reshape(obs),
        variance=var.reshape(obs),
        acf=rho.reshape((last + 1,) + obs),
        converged=converged.reshape(obs),
        n_steps=T,
        replicas=R,
        c=c,
        tol=tol,
        method=method,
        ess_err=ess_err.reshape(obs),
        batch_sizes=sizes,
        batch_tau=btau.reshape((len(sizes),) + obs),
        batch_err=berr.reshape((len(sizes),) + obs),
        disagree=disagree.reshape(obs),
        reasons=tuple(reasons),
        error_window=err_window.reshape(obs),
        max_lag=last if cut else None,
    )
    if not converged.all():
        bad = int((~converged).sum())
        msg = (
            f"tau_int cannot be trusted for {bad} of {converged.size} observable(s) "
            f"({T} steps per replica, {R} replica(s); tau estimates: "
            f"{np.array2string(tau, precision=3, threshold=8)}): " + "; ".join(reasons)
        )
        if not quiet:
            raise AutocorrError(msg, res)
        warnings.warn(msg, AutocorrWarning, stacklevel=stacklevel)
    return res


def _cross_check(batch_stats, R, T, rho, window, tau, tau_err, flat, z):
    """Batch means at b = 2^j >= 2 (W + 1), while there are >= 16 batches, against the windowed
    sum's prediction for the same b: 1 + 2 sum_{t <= min(W, b-1)} (1 - t/b) rho(t)."""
    k = rho.shape[1]
    W = int(window[flat].max()) if flat.any() else T - 1
    b = 1 << max(1, int(np.ceil(np.log2(2 * (W + 1)))))
    sizes, bt, be = [], [], []
    disagree = np.zeros(k, bool)
    # the taper is 0 past every window (and rho may stop at a maximum lag past them)
    t = np.arange(1, min(T, W + 1, rho.shape[0]))[:, None]
    while b <= T // 2 and R * (T // b) >= 16:
        tb, kurt, n = batch_stats(b)
        taper = np.where((t <= window[None, :]) & (t < b), 1.0 - t / b, 0.0)
        pred = 1.0 + 2.0 * np.sum(taper * np.where(flat, rho[1 : len(t) + 1], 0.0), axis=0)
        # under agreement, tb ~ pred * chi2_{n-1} / (n - 1) (Gaussian batch means): its sd is
        # pred sqrt(2 / (n - 1)), widened by the batch means' excess kurtosis
        spread = np.sqrt(2.0 / (n - 1) * kurt)
        sd = np.hypot(np.abs(pred) * spread, tau_err)
        with np.errstate(invalid="ignore"):
            disagree |= flat & (np.abs(tb - pred) > z * sd)
        sizes.append(b)
        bt.append(tb)
        be.append(tb * spread)
        b *= 2
    arr = (lambda v: np.array(v).reshape(len(sizes), k)) if sizes else (lambda v: np.empty((0, k)))
    return np.array(sizes, dtype=np.int64), arr(bt), arr(be), disagree


def _reasons(T, tol, min_windows, tau, err_window, flat, found, long_enough, disagree, bm):
    sizes, bt, be = bm
    out = []
    const = ~flat
    if const.any():
        out.append(f"{int(const.sum())} observable(s) are constant (no fluctuation: tau undefined)")
    nf = flat & ~found
    if nf.any():
        out.append(
            f"for {int(nf.sum())} observable(s) the autocorrelation never sank into its noise "
            f"within the chain (no window found): run a longer chain"
        )
    with np.errstate(invalid="ignore"):
        short = flat & found & ~long_enough
        by_tau = short & (tol * tau > T)
    if by_tau.any():
        j = int(np.flatnonzero(by_tau)[0])
        out.append(
            f"the chain ({T} steps per replica) is shorter than {tol:g} times tau_int for "
            f"{int(by_tau.sum())} observable(s) (e.g. tau {tau[j]:.3g}): run a longer chain"
        )
    by_window = short & ~by_tau
    if by_window.any():
        j = int(np.flatnonzero(by_window)[0])
        out.append(
            f"the chain ({T} steps per replica) is too short against the window its error bar "
            f"needed ({int(err_window[j])} lags; at least {min_windows:g} times it, and 16 "
            f"batches of twice it over the replicas for the cross-check) for "
            f"{int(by_window.sum())} observable(s): a slow tail may be below the noise; run a "
            f"longer chain"
        )
    if disagree.any():
        j = int(np.flatnonzero(disagree)[0])
        i = int(np.argmax(np.abs(bt[:, j] - tau[j]) / np.where(be[:, j] > 0, be[:, j], np.inf)))
        out.append(
            f"batch means disagree with the autocorrelation sum for {int(disagree.sum())} "
            f"observable(s) (e.g. batches of {int(sizes[i])}: tau {bt[i, j]:.3g} +- "
            f"{be[i, j]:.2g} against {tau[j]:.3g} from the autocorrelation sum): a slow mode "
            f"beyond the window, or replicas that do not sample one distribution; run longer"
        )
    return out


def integrated_time(
    x, c: float = 5.0, tol: float = 50.0, quiet: bool = False, center: str = "pooled", **kw
) -> np.ndarray:
    """tau_int only, like emcee's ``integrated_time`` (but replicas first: (R, T, *obs)).

    Returns an array of the observables' shape (0-d for one observable); see
    :func:`estimate_tau` for the error bar, window and ESS, and for the parameters.

    Raises
    ------
    AutocorrError
        When tau is not trusted (unless ``quiet``).
    """
    return estimate_tau(x, c=c, tol=tol, quiet=quiet, center=center, **kw).tau


def effective_sample_size(
    x, c: float = 5.0, tol: float = 50.0, quiet: bool = False, **kw
) -> np.ndarray:
    """R * T / tau_int for each observable (see :func:`estimate_tau`; its ``ess_err`` is the
    error bar)."""
    return estimate_tau(x, c=c, tol=tol, quiet=quiet, **kw).ess


def time_average_variance(acov, M: int, window: int | None = None) -> np.ndarray:
    """Variance of the time average of M consecutive steps, from the autocovariance C(t).

    Var(f_bar_M) = (M C(0) + 2 sum_{t=1}^{M-1} (M - t) C(t)) / M^2,
    which tends to C(0) tau_int / M for M >> tau.

    Parameters
    ----------
    acov : array_like
        C(t) for t = 0, 1, ... along axis 0 (exact, or :func:`autocovariance`); any trailing shape.
    M : int
        Length of the average, in the same steps as ``acov``.
    window : int, optional
        Treat C(t) as 0 for t > window (use the window of :func:`estimate_tau` for an estimated
        C, whose tail is noise). Without it, ``acov`` must hold at least M lags.
    """
    acov = np.asarray(acov, dtype=np.float64)
    M = int(M)
    if M < 1:
        raise ValueError(f"M must be >= 1, not {M}")
    last = M - 1 if window is None else min(M - 1, int(window))
    if acov.shape[0] <= last:
        raise ValueError(
            f"need C(t) up to t = {last} for M = {M}; only {acov.shape[0]} lags given "
            f"(pass window= to cut an estimated autocovariance)"
        )
    t = np.arange(1, last + 1).reshape((-1,) + (1,) * (acov.ndim - 1))
    return (M * acov[0] + 2.0 * np.sum((M - t) * acov[1 : last + 1], axis=0)) / M**2
