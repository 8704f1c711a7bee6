"""Autocorrelation of Markov-chain time series: FFT autocovariance, tau_int with Sokal's automatic
window and a Madras-Sokal error bar, effective sample size, variance of a time average.

Modelled on emcee's ``autocorr.py``; conventions from ``shared/reference/diagnostics-definitions``:

    rho(t) = Cov(f(X_0), f(X_t)) / Var(f),   tau_int = 1 + 2 sum_{t>=1} rho(t),

the sum cut at the smallest window W with W >= c * tau(W) (c ~ 5), and no tau reported (an
:class:`AutocorrError`, or a warning with ``quiet=True``) when the chain is shorter than ``tol``
(~50) times tau. Times are counted in the series' own steps (draws); multiply by ``thin`` to get
kernel steps.

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
    "autocovariance",
    "autocorrelation",
    "auto_window",
    "estimate_tau",
    "integrated_time",
    "effective_sample_size",
    "time_average_variance",
]


class AutocorrWarning(UserWarning):
    """The chain is too short to trust tau (issued instead of the error when ``quiet=True``)."""


class AutocorrError(RuntimeError):
    """The chain is too short (< ``tol`` * tau) to estimate tau_int reliably.

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
        tau_int and its Madras-Sokal standard error, sqrt(2 (2W + 1) / N) * tau, N = R * T.
    window : np.ndarray of int
        Sokal window W (last lag included in the sum).
    ess : np.ndarray
        Effective sample size R * T / tau.
    variance : np.ndarray
        C(0), the pooled variance of the observable.
    acf : np.ndarray
        Normalised autocorrelation rho(t), shape (T, *obs).
    converged : np.ndarray of bool
        T >= tol * tau, a window was found, and the observable fluctuates.
    n_steps, replicas : int
        T and R.
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
    R, T, k = y.shape
    if T < 2:
        raise ValueError(f"need at least 2 steps per replica, got {T}")
    if center == "pooled":
        y = y - y.mean(axis=(0, 1), keepdims=True)
    elif center == "replica":
        y = y - y.mean(axis=1, keepdims=True)
    else:
        raise ValueError(f"center must be 'pooled' or 'replica', not {center!r}")
    nfft = scipy.fft.next_fast_len(2 * T)
    f = scipy.fft.rfft(y, n=nfft, axis=1)
    acov = scipy.fft.irfft(f.real**2 + f.imag**2, n=nfft, axis=1)[:, :T].sum(axis=0) / (R * T)
    return acov.reshape((T,) + obs)


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


def estimate_tau(
    x, c: float = 5.0, tol: float = 50.0, quiet: bool = False, center: str = "pooled"
) -> IntegratedTime:
    """Integrated autocorrelation time with Sokal's automatic window, error bar and ESS.

    Parameters
    ----------
    x : array_like
        (T,), (R, T) or (R, T, *obs) time series (see the module docstring).
    c : float
        Window factor: W is the smallest lag with W >= c * tau(W).
    tol : float
        Minimum chain length in units of tau for the estimate to be trusted.
    quiet : bool
        Warn (:class:`AutocorrWarning`) instead of raising when the estimate is not trusted.
    center : {"pooled", "replica"}
        See :func:`autocovariance`.

    Returns
    -------
    IntegratedTime

    Raises
    ------
    AutocorrError
        When any observable's chain is shorter than ``tol * tau``, no window was found, or it does
        not fluctuate at all (constant), unless ``quiet``.
    """
    y, obs = _as_rtk(x)
    R, T, _ = y.shape
    acov = autocovariance(y, center).reshape(T, -1)
    var = acov[0]
    flat = var > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = acov / var
    taus = 2.0 * np.cumsum(np.where(flat, rho, 0.0), axis=0) - 1.0
    window = auto_window(taus, c)
    tau = np.where(flat, taus[window, np.arange(taus.shape[1])], np.nan)
    n_total = R * T
    # Madras & Sokal (1988): var(tau_hat) ~ 2 (2W + 1) / N tau^2 for W >> tau.
    tau_err = tau * np.sqrt(2.0 * (2 * window + 1) / n_total)
    with np.errstate(invalid="ignore"):
        converged = flat & (window < T - 1) & (tol * tau <= T)
    res = IntegratedTime(
        tau=tau.reshape(obs),
        tau_err=tau_err.reshape(obs),
        window=window.reshape(obs),
        ess=(n_total / tau).reshape(obs),
        variance=var.reshape(obs),
        acf=rho.reshape((T,) + obs),
        converged=converged.reshape(obs),
        n_steps=T,
        replicas=R,
        c=c,
        tol=tol,
    )
    if not converged.all():
        bad = int((~converged).sum())
        const = int((~flat).sum())
        msg = (
            f"the chain ({T} steps per replica) is shorter than {tol:g} times the integrated "
            f"autocorrelation time for {bad} of {converged.size} observable(s); run a longer "
            f"chain (tau estimates: {np.array2string(tau, precision=3, threshold=8)})"
        )
        if const:
            msg += f"; {const} observable(s) are constant (no fluctuation: tau undefined)"
        if not quiet:
            raise AutocorrError(msg, res)
        warnings.warn(msg, AutocorrWarning, stacklevel=2)
    return res


def integrated_time(
    x, c: float = 5.0, tol: float = 50.0, quiet: bool = False, center: str = "pooled"
) -> np.ndarray:
    """tau_int only, like emcee's ``integrated_time`` (but replicas first: (R, T, *obs)).

    Returns an array of the observables' shape (0-d for one observable); see
    :func:`estimate_tau` for the error bar, window and ESS, and for the parameters.

    Raises
    ------
    AutocorrError
        When the chain is shorter than ``tol * tau`` (unless ``quiet``).
    """
    return estimate_tau(x, c=c, tol=tol, quiet=quiet, center=center).tau


def effective_sample_size(x, c: float = 5.0, tol: float = 50.0, quiet: bool = False) -> np.ndarray:
    """R * T / tau_int for each observable (see :func:`estimate_tau`)."""
    return estimate_tau(x, c=c, tol=tol, quiet=quiet).ess


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
        Treat C(t) as 0 for t > window (use the Sokal window for an estimated C, whose tail is
        noise). Without it, ``acov`` must hold at least M lags.
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
